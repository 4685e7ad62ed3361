// chatd's web client in a real browser: Debian's chromium, headless,
// driven by playwright-core. Run by tests/it/web.rs, which starts chatd
// (WEB_URL), a `chat` user in room Teste, and restarts chatd when this
// script prints RESTART (answering RESTARTED on stdin). Each step prints
// a line; any failure exits non-zero with what was on the page.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const url = process.env.WEB_URL;
const shots = process.env.SHOT_DIR;
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const T = 10_000;

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const say = (s) => console.log(s);

async function page(browser, width, height) {
  const ctx = await browser.newContext({ viewport: { width, height }, locale: "pt-BR" });
  const p = await ctx.newPage();
  p.on("pageerror", (e) => say("page error: " + e));
  await p.goto(url);
  return p;
}

async function enter(p, name, room, extra = {}) {
  await p.fill("#nome", name);
  await p.fill("#sala", room);
  await p.fill("#senha", extra.password || "");
  await p.fill("#chave", extra.key || "");
  await p.click("#entrar");
}

async function refusal(p, name, room, words) {
  await enter(p, name, room);
  await p.waitForFunction(
    (w) => document.getElementById("erro-entrada").textContent.includes(w),
    words,
    { timeout: T },
  );
  say("refused in words: " + (await p.textContent("#erro-entrada")));
}

async function sees(p, text) {
  await p.waitForFunction(
    (t) => document.getElementById("mensagens").textContent.includes(t),
    text,
    { timeout: T },
  );
}

async function connected(p) {
  await p.waitForFunction(() => document.getElementById("estado").textContent === "conectado", null, {
    timeout: 30_000,
  });
}

async function send(p, text) {
  await p.fill("#mensagem", text);
  await p.press("#mensagem", "Enter");
}

const browser = await chromium.launch({
  executablePath: browserPath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let ana, bia;
try {
  ana = await page(browser, 1280, 800);
  // The room list, from chatd.
  await ana.waitForSelector("#lista-salas button", { timeout: T });
  say("rooms listed: " + (await ana.textContent("#lista-salas")));

  // Refusals, in words (the web client's own).
  await refusal(ana, "Ana", "Nenhuma", "A sala não existe");
  await refusal(ana, "Ana", "Cheia", "A sala está cheia");
  await refusal(ana, "Carla", "Teste", "Esse nome já está na sala");
  await refusal(ana, "conta", "Teste", "Login necessário ou recusado");

  // Two browser users and the `chat` user in one room.
  await enter(ana, "Ana", "Teste");
  await connected(ana);
  await sees(ana, "-- histórico --");
  await sees(ana, "antes de todos");
  await sees(ana, "Tópico: Pauta do dia");
  bia = await page(browser, 390, 844);
  await enter(bia, "Bia", "Teste");
  await connected(bia);
  await ana.waitForFunction(() => document.getElementById("membros").textContent.includes("Bia"), null, {
    timeout: T,
  });
  const members = await ana.textContent("#membros");
  if (!members.includes("Carla") || !members.includes("Ana")) throw new Error("members: " + members);
  say("members seen: " + members);
  await send(ana, "Olá de Ana 👋");
  await sees(bia, "Olá de Ana 👋");
  await send(bia, "مرحبا from Bia");
  await sees(ana, "مرحبا from Bia");
  const dir = await ana.evaluate(() => {
    const span = [...document.querySelectorAll("#mensagens .fala")].find((l) => l.textContent.includes("مرحبا"));
    return getComputedStyle(span).direction;
  });
  if (dir !== "rtl") throw new Error("right-to-left text is shown " + dir);
  say("RTL line shown right to left");
  say("SAY_CHAT");
  await lines.next();
  await sees(ana, "oi do terminal");
  await sees(bia, "oi do terminal");
  say("chat user seen by both browsers");
  await ana.screenshot({ path: shots + "/desktop.png" });
  await bia.screenshot({ path: shots + "/phone.png" });
  say("screenshots: " + shots + "/desktop.png " + shots + "/phone.png");

  // chatd restarts: both pages reconnect by themselves.
  say("RESTART");
  await lines.next();
  await ana.waitForFunction(() => document.getElementById("estado").textContent.includes("tentando"), null, {
    timeout: T,
  }).catch(() => {});
  await connected(ana);
  await connected(bia);
  say("both reconnected");
  await send(bia, "de volta");
  await sees(ana, "de volta");
  const shown = await ana.evaluate(
    () => [...document.querySelectorAll("#mensagens li")].filter((l) => l.textContent.includes("Olá de Ana")).length,
  );
  if (shown !== 1) throw new Error("a message shown " + shown + " times after the reconnect");
  say("no line shown twice after the reconnect");
  say("OK");
} catch (e) {
  for (const [n, p] of [["ana", ana], ["bia", bia]]) {
    if (!p) continue;
    say(n + " page: " + (await p.textContent("body").catch(() => "?")).replace(/\s+/g, " "));
    await p.screenshot({ path: shots + "/failure-" + n + ".png" }).catch(() => {});
  }
  say("FAILED: " + (e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
  stdin.close();
}
