// chatd's web client: the chat port's protocol (docs/PROTOCOL.md) over a
// WebSocket with the subprotocol "chatd": one message per frame's payload
// out, one event (JSON) per message in. No framework, no build step; every
// untrusted text goes in through textContent, never as HTML.
"use strict";

const MAX_MESSAGE_BYTES = 16384; // chatd's default --max-frame
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
const $ = (id) => document.getElementById(id);
const utf8 = new TextEncoder();

// What the refusals mean, in the words `chat` uses.
const ERRORS = {
  "400": "Pedido malformado.",
  "401": "Login necessário ou recusado: nome ou senha errados.",
  "403": "Sala privada: você não está na lista e a chave falta ou está errada.",
  "404": "A sala não existe.",
  "408": "Tempo esgotado antes da entrada.",
  "409": "Esse nome já está na sala (ou parece com um que está).",
  "413": "Mensagem longa demais.",
  "429": "Devagar: a mensagem não foi enviada (controle de flood).",
  "501": "A sala está cheia.",
  "503": "Servidor ocupado.",
};
// Refusals worth trying again after a pause; the others end the session.
const RETRY = new Set(["503"]);

let state = null; // { name, room, password, key, ws, tries, timer, seen, members, joined }

function describe(ev) {
  const base = ERRORS[ev.message] || "Erro " + ev.message + ".";
  return ev.reason ? base + " (" + ev.message + ": " + ev.reason + ")" : base;
}

function localTime(ts) {
  const d = ts ? new Date(ts) : new Date();
  return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function line(kind, who, text, ts, history) {
  const li = document.createElement("li");
  li.className = kind + (history ? " historico" : "");
  const t = document.createElement("time");
  if (ts) t.dateTime = ts;
  t.textContent = localTime(ts);
  li.append(t);
  if (who) {
    const n = document.createElement("span");
    n.className = "nome";
    n.dir = "auto";
    n.textContent = who;
    li.append(n);
  }
  const body = document.createElement("span");
  body.className = "fala";
  body.dir = "auto"; // each line's own direction (Arabic, Hebrew)
  body.textContent = text;
  li.append(body);
  const list = $("mensagens");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom || !history) list.scrollTop = list.scrollHeight;
}

function marker(text) {
  const li = document.createElement("li");
  li.className = "marcador";
  li.textContent = text;
  $("mensagens").append(li);
}

function status(text) {
  $("estado").textContent = text;
}

function renderMembers() {
  const ul = $("membros");
  ul.replaceChildren();
  for (const m of state.members) {
    const li = document.createElement("li");
    li.dir = "auto";
    li.textContent = m === state.name ? m + " (você)" : m;
    ul.append(li);
  }
  $("contagem").textContent = String(state.members.length);
}

// -- the room list ----------------------------------------------------------

function listRooms() {
  const ul = $("lista-salas");
  let ws;
  try {
    ws = new WebSocket(url, "chatd");
  } catch (e) {
    ul.replaceChildren(item("não foi possível consultar as salas"));
    return;
  }
  ws.onopen = () => ws.send(JSON.stringify({ list: "rooms" }));
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type !== "rooms") return;
    ul.replaceChildren();
    const names = $("salas");
    names.replaceChildren();
    if (!ev.rooms.length) ul.append(item("nenhuma sala pública"));
    for (const [name, members, limit] of ev.rooms) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = name;
      b.dir = "auto";
      b.onclick = () => { $("sala").value = name; $("nome").focus(); };
      li.append(b, " " + members + "/" + limit + (members >= limit ? " (cheia)" : ""));
      ul.append(li);
      const o = document.createElement("option");
      o.value = name;
      names.append(o);
    }
  };
  ws.onerror = () => ul.replaceChildren(item("não foi possível consultar as salas"));
}

function item(text) {
  const li = document.createElement("li");
  li.className = "vazio";
  li.textContent = text;
  return li;
}

// -- the session --------------------------------------------------------------

function connect() {
  const s = state;
  status(s.tries ? "reconectando…" : "conectando…");
  const ws = new WebSocket(url, "chatd");
  s.ws = ws;
  s.joined = false;
  s.inHistory = false;
  ws.onopen = () => {
    const hello = { username: s.name, room: s.room, features: ["history", "members", "topic"] };
    if (s.password) hello.password = s.password;
    if (s.key) hello.key = s.key;
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (m) => {
    if (s !== state) return;
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    onEvent(s, ev);
  };
  ws.onclose = () => {
    if (s !== state || s.ws !== ws) return;
    if (s.final) return;
    retry(s, s.joined ? "conexão perdida" : "sem conexão");
  };
}

function retry(s, why) {
  s.tries += 1;
  const delay = Math.min(30, 2 ** Math.min(s.tries - 1, 5)) * (0.75 + Math.random() * 0.5);
  let left = Math.ceil(delay);
  status(why + "; tentando de novo em " + left + " s");
  clearInterval(s.timer);
  s.timer = setInterval(() => {
    left -= 1;
    if (left > 0) {
      status(why + "; tentando de novo em " + left + " s");
      return;
    }
    clearInterval(s.timer);
    if (s === state) connect();
  }, 1000);
}

function onEvent(s, ev) {
  const key = ev.type + "\u0000" + ev.ts + "\u0000" + ev.username + "\u0000" + ev.message;
  switch (ev.type) {
    case "message":
    case "join":
    case "leave": {
      if (ev.history) {
        // Shown before a reconnect already: what is older than the last
        // live line, or the same line.
        if (s.seen.has(key) || (s.lastTs && ev.ts < s.lastTs)) return;
        // One's own message, shown when it was sent.
        if (ev.type === "message" && ev.username === s.name && s.mine.delete(ev.message)) return;
        if (!s.inHistory) { marker("-- histórico --"); s.inHistory = true; }
      } else if (s.inHistory) {
        marker("-- agora --");
        s.inHistory = false;
      }
      s.seen.add(key);
      if (!ev.history && ev.ts) s.lastTs = ev.ts;
      if (ev.type === "message") {
        line("texto", ev.username, ev.message, ev.ts, ev.history);
      } else {
        const verb = ev.type === "join" ? "entrou na sala" : "saiu da sala";
        line("evento", "", ev.username + " " + verb, ev.ts, ev.history);
      }
      if (ev.history) return;
      if (ev.type === "join" && ev.username === s.name && !s.joined) {
        s.joined = true;
        s.tries = 0;
        status("conectado");
        $("mensagem").focus();
      } else if (ev.type === "join" && !s.members.includes(ev.username)) {
        s.members.push(ev.username);
        renderMembers();
      } else if (ev.type === "leave") {
        s.members = s.members.filter((m) => m !== ev.username);
        renderMembers();
      }
      return;
    }
    case "members":
      s.members = ev.members || [];
      renderMembers();
      return;
    case "topic":
      line("topico", "Sistema", ev.message ? "Tópico: " + ev.message : "(sem tópico)", ev.ts, false);
      return;
    case "error":
      if (!s.joined) {
        // A 503: the server closes, and onclose tries again.
        if (RETRY.has(ev.message)) return;
        s.final = true;
        leave(describe(ev));
        return;
      }
      line("sistema", "Sistema", describe(ev), ev.ts, false);
      return;
    case "kicked":
      s.final = true;
      line("sistema", "Sistema", ev.reason ? "Você foi removido da sala: " + ev.reason : "Você foi removido da sala.", ev.ts, false);
      status("desconectado");
      return;
    case "closed":
      s.final = true;
      line("sistema", "Sistema", "A sala foi encerrada.", ev.ts, false);
      status("desconectado");
      return;
    case "shutdown":
      line("sistema", "Sistema", "O servidor está reiniciando.", ev.ts, false);
      return;
    default:
      return;
  }
}

function join(e) {
  e.preventDefault();
  const name = $("nome").value.trim();
  const room = $("sala").value.trim();
  if (!name || !room) return;
  $("erro-entrada").textContent = "";
  state = {
    name, room, password: $("senha").value, key: $("chave").value,
    ws: null, tries: 0, timer: null, seen: new Set(), mine: new Set(), members: [], joined: false, final: false,
  };
  $("titulo").textContent = room;
  $("titulo").dir = "auto";
  $("mensagens").replaceChildren();
  $("membros").replaceChildren();
  $("entrada").hidden = true;
  $("conversa").hidden = false;
  history.replaceState(null, "", "?sala=" + encodeURIComponent(room));
  connect();
}

function leave(why) {
  const s = state;
  state = null;
  if (s) {
    clearInterval(s.timer);
    if (s.ws) s.ws.close();
  }
  $("conversa").hidden = true;
  $("entrada").hidden = false;
  $("erro-entrada").textContent = why || "";
  listRooms();
}

function send(e) {
  e.preventDefault();
  const input = $("mensagem");
  const text = input.value;
  const s = state;
  if (!text.trim() || !s) return;
  if (!s.joined || s.ws.readyState !== WebSocket.OPEN) {
    line("sistema", "Sistema", "Sem conexão: a mensagem não foi enviada.", null, false);
    return;
  }
  if (utf8.encode(text).length > MAX_MESSAGE_BYTES) {
    line("sistema", "Sistema", "Mensagem longa demais: no máximo " + MAX_MESSAGE_BYTES + " bytes.", null, false);
    return;
  }
  s.ws.send(text);
  s.mine.add(text);
  line("texto minha", s.name, text, null, false);
  input.value = "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("form-entrar").addEventListener("submit", join);
  $("form-mensagem").addEventListener("submit", send);
  $("sair").addEventListener("click", () => leave(""));
  $("atualizar").addEventListener("click", listRooms);
  const q = new URLSearchParams(location.search);
  if (q.get("sala")) $("sala").value = q.get("sala");
  listRooms();
});
