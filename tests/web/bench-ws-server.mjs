// The yardstick for the WebSocket fan-out benchmark (benches/fanout.rs
// --ws): a chat room server as most people would write it with the `ws`
// package, speaking what the generator speaks to chatd's web port
// (subprotocol "chatd"): the first message is {"username","room"}, later
// ones are chat messages, relayed to the room's other members as chatd's
// JSON events. permessage-deflate off, as on chatd.
import { WebSocketServer } from "ws";

const port = Number(process.env.PORT || 8080);
const rooms = new Map();
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has("chatd") ? "chatd" : false),
});

wss.on("connection", (ws) => {
  ws.once("message", (hello) => {
    const { username, room } = JSON.parse(hello.toString());
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    const join = JSON.stringify({ username, message: "*** ENTROU NA SALA ***", type: "join", room });
    for (const m of members) m.send(join);
    ws.on("message", (data) => {
      const line = JSON.stringify({ username, message: data.toString(), type: "message", room });
      for (const m of members) if (m !== ws && m.readyState === 1) m.send(line);
    });
    ws.on("close", () => members.delete(ws));
  });
});
wss.on("listening", () => console.log("listening on 127.0.0.1:" + port));
