//! The web layer of a connection on a `--web-listen` port, between its
//! transport (plain or TLS) and its session: first an HTTP/1.1 request
//! head (core/http.rs parses and routes it), then, once upgraded, a
//! WebSocket whose frames tungstenite's `WebSocketContext` reads and
//! writes over two byte buffers (no I/O here: conn.rs moves the bytes).
//!
//! Each WebSocket message is one unit of the protocol it carries: for
//! IRC (`text.ircv3.net`, `binary.ircv3.net`) one line without its CRLF,
//! for the chat port's protocol (`chatd`) one frame's payload in and one
//! event line (JSON, without its newline) out. So the session's codec sees
//! the byte stream it sees on its own port, and nothing else changes.
//!
//! Bounds: a head of at most `http::MAX_HEAD` bytes; a message of at most
//! [`MAX_MESSAGE`] bytes (the handshake frame's bound); at most
//! [`WEB_BUFFER`] bytes of decoded input waiting for the session and of
//! framed output waiting for the transport; permessage-deflate is never
//! agreed to (tungstenite does not offer it).

use std::io::{self, Read, Write};

use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};

use crate::core::http::{self, Head, Request, WsKind};

/// Most bytes held on either side of the layer.
pub const WEB_BUFFER: usize = 64 * 1024;
/// The largest WebSocket message taken: the chat port's handshake bound
/// (docs/PROTOCOL.md §1), which is larger than any IRC line.
pub const MAX_MESSAGE: usize = 22_528;
/// Bytes read and discarded after a complete head (a request body).
const AFTER_HEAD: usize = 4096;

/// Where the connection is.
enum Phase {
    /// Reading the request head.
    Head(Vec<u8>),
    /// The head is in and answered (a page that closes, a refusal, or
    /// the upgrade to come), with what followed the head.
    Answered(Vec<u8>),
    /// A WebSocket carrying `kind`.
    Ws(Box<Ws>),
}

struct Ws {
    kind: WsKind,
    ctx: WebSocketContext,
    /// Received bytes tungstenite has not read yet.
    raw_in: Vec<u8>,
}

/// What feeding received bytes gave.
#[derive(Debug, Default)]
pub struct Fed {
    /// The request head is complete (or bad: the status and why).
    pub request: Option<Result<Request, (u16, &'static str)>>,
    /// A WebSocket frame arrived (a ping or pong counts): the peer lives.
    pub heard: bool,
    /// The peer sent a close frame.
    pub closed: bool,
    /// The WebSocket broke (a bad frame, an over-long message): why.
    pub error: Option<String>,
}

pub struct Web {
    phase: Phase,
    /// Decoded input for the session (its codec's byte stream).
    inbound: Vec<u8>,
    /// Bytes for the transport, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
}

/// The two buffers tungstenite reads from and writes to.
struct Pipe<'a> {
    input: &'a mut Vec<u8>,
    output: &'a mut Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Default for Web {
    fn default() -> Web {
        Web {
            phase: Phase::Head(Vec::new()),
            inbound: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }
}

impl Web {
    /// The WebSocket's kind, once upgraded.
    pub fn kind(&self) -> Option<WsKind> {
        match &self.phase {
            Phase::Ws(ws) => Some(ws.kind),
            _ => None,
        }
    }

    /// Still reading (or answering) the HTTP request.
    pub fn is_http(&self) -> bool {
        !matches!(self.phase, Phase::Ws(_))
    }

    /// How many bytes the transport may hand in now.
    pub fn read_budget(&self) -> usize {
        match &self.phase {
            Phase::Head(h) => (http::MAX_HEAD + 1).saturating_sub(h.len()),
            Phase::Answered(_) => AFTER_HEAD,
            // Nothing more is read while the layer's output is full: a
            // peer that sends pings and never reads gets no more pongs
            // queued than that.
            Phase::Ws(ws)
                if self.inbound.len() < WEB_BUFFER
                    && ws.raw_in.len() < WEB_BUFFER
                    && self.pending().len() < WEB_BUFFER =>
            {
                WEB_BUFFER
            }
            Phase::Ws(_) => 0,
        }
    }

    /// Decoded input waits for the session.
    pub fn has_input(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// Takes bytes the transport received.
    pub fn feed(&mut self, bytes: &[u8]) -> Fed {
        let mut fed = Fed::default();
        match &mut self.phase {
            Phase::Answered(early) => {
                if early.len() < AFTER_HEAD {
                    early.extend_from_slice(bytes);
                }
            }
            Phase::Head(head) => {
                head.extend_from_slice(bytes);
                match http::parse(head) {
                    Head::Partial => {}
                    Head::Complete(req, used) => {
                        // Whatever follows the head (a client that sends its
                        // first frames at once) waits for the upgrade.
                        let early = head.split_off(used);
                        self.phase = Phase::Answered(early);
                        fed.request = Some(Ok(req));
                    }
                    Head::Bad(status, why) => {
                        self.phase = Phase::Answered(Vec::new());
                        fed.request = Some(Err((status, why)));
                    }
                }
            }
            Phase::Ws(ws) => {
                ws.raw_in.extend_from_slice(bytes);
                self.read_messages(&mut fed);
            }
        }
        fed
    }

    /// Becomes a WebSocket carrying `kind`, after `switching` (the 101).
    /// Bytes that came after the head are read as frames at once.
    pub fn upgrade(&mut self, kind: WsKind, switching: &[u8]) -> Fed {
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let early = match std::mem::replace(&mut self.phase, Phase::Answered(Vec::new())) {
            Phase::Answered(early) => early,
            _ => Vec::new(),
        };
        self.phase = Phase::Ws(Box::new(Ws {
            kind,
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            raw_in: early,
        }));
        self.queue(switching);
        let mut fed = Fed::default();
        self.read_messages(&mut fed);
        fed
    }

    /// Queues raw bytes for the transport (an HTTP response).
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn read_messages(&mut self, fed: &mut Fed) {
        let Phase::Ws(ws) = &mut self.phase else {
            return;
        };
        loop {
            let mut pipe = Pipe {
                input: &mut ws.raw_in,
                output: &mut self.out,
            };
            match ws.ctx.read(&mut pipe) {
                Ok(Message::Text(t)) => {
                    fed.heard = true;
                    push_unit(&mut self.inbound, ws.kind, t.as_bytes());
                }
                Ok(Message::Binary(b)) => {
                    fed.heard = true;
                    push_unit(&mut self.inbound, ws.kind, &b);
                }
                Ok(Message::Close(_)) => {
                    fed.heard = true;
                    fed.closed = true;
                }
                Ok(_) => fed.heard = true,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    fed.closed = true;
                    return;
                }
                Err(e) => {
                    fed.error = Some(format!("websocket: {e}"));
                    let code = match e {
                        tungstenite::Error::Capacity(_) => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    };
                    self.close(code, "");
                    return;
                }
            }
        }
    }

    /// Moves decoded input to the front of `scratch`, at most `budget`.
    pub fn drain_into(&mut self, scratch: &mut [u8], budget: usize) -> usize {
        let n = budget.min(scratch.len()).min(self.inbound.len());
        scratch[..n].copy_from_slice(&self.inbound[..n]);
        self.inbound.drain(..n);
        n
    }

    /// Takes what it can of the session's `output` (whole lines, framed
    /// one message each, once upgraded; as it is before) while under
    /// [`WEB_BUFFER`]; returns how many bytes it took.
    pub fn take(&mut self, output: &[u8]) -> usize {
        self.take_under(output, WEB_BUFFER)
    }

    /// Takes all of the session's `output`, whatever the layer holds (a
    /// ring sub's own output, before its ring frames join the layer).
    pub fn take_all(&mut self, output: &[u8]) -> usize {
        self.take_under(output, usize::MAX)
    }

    fn take_under(&mut self, output: &[u8], bound: usize) -> usize {
        let room = bound.saturating_sub(self.pending().len());
        if room == 0 || output.is_empty() {
            return 0;
        }
        let Phase::Ws(ws) = &mut self.phase else {
            let n = room.min(output.len());
            self.out.extend_from_slice(&output[..n]);
            return n;
        };
        let mut taken = 0;
        while taken < output.len() && self.out.len() - self.out_pos < bound {
            let rest = &output[taken..];
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let line = &rest[..end];
            taken += end;
            let unit = unit_of(line);
            let message = match ws.kind {
                WsKind::IrcBinary => Message::Binary(unit.to_vec().into()),
                WsKind::IrcText | WsKind::Chatd => {
                    Message::Text(String::from_utf8_lossy(unit).into_owned().into())
                }
            };
            let mut pipe = Pipe {
                input: &mut ws.raw_in,
                output: &mut self.out,
            };
            if ws.ctx.write(&mut pipe, message).is_err() {
                // Closing: what the session still says is not framed.
                return output.len();
            }
        }
        taken
    }

    /// A ping frame (liveness; the peer's pong counts as heard).
    pub fn ping(&mut self) {
        if let Phase::Ws(ws) = &mut self.phase {
            let mut pipe = Pipe {
                input: &mut ws.raw_in,
                output: &mut self.out,
            };
            let _ = ws.ctx.write(&mut pipe, Message::Ping(Vec::new().into()));
        }
    }

    /// A close frame, once (a WebSocket only).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if let Phase::Ws(ws) = &mut self.phase {
            let mut pipe = Pipe {
                input: &mut ws.raw_in,
                output: &mut self.out,
            };
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = ws.ctx.close(&mut pipe, Some(frame));
        }
    }

    /// Bytes for the transport.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// The transport took `n` bytes of [`Web::pending`].
    pub fn consumed(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > WEB_BUFFER {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }
}

/// A line of the session's codec without its `\n` or CRLF ending: one
/// WebSocket message's payload.
fn unit_of(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line)
}

/// One line of the session's codec (its `\n` or CRLF ending dropped) as
/// the server frame tungstenite would write for it: a text frame (a
/// binary one for `IrcBinary`), unmasked, unfragmented. The bytes are the
/// same for every member of a kind, so a room's ring holds them once.
pub fn frame_line(kind: WsKind, line: &[u8], out: &mut Vec<u8>) {
    let unit = unit_of(line);
    let lossy;
    let (opcode, payload) = match kind {
        WsKind::IrcBinary => (0x82, unit),
        WsKind::IrcText | WsKind::Chatd => match std::str::from_utf8(unit) {
            Ok(_) => (0x81, unit),
            Err(_) => {
                lossy = String::from_utf8_lossy(unit).into_owned();
                (0x81, lossy.as_bytes())
            }
        },
    };
    out.push(opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// The length of the server frame that starts `bytes` (as
/// [`frame_line`] writes them), cut to what `bytes` holds.
pub fn frame_len(bytes: &[u8]) -> usize {
    let len = |at: usize, n: usize| -> usize {
        let mut v = 0usize;
        for &b in bytes.get(at..at + n).unwrap_or(&[]) {
            v = (v << 8) | b as usize;
        }
        v
    };
    let whole = match bytes.get(1).map(|b| b & 0x7f) {
        None => bytes.len(),
        Some(126) => 4 + len(2, 2),
        Some(127) => 10 + len(2, 8),
        Some(n) => 2 + n as usize,
    };
    whole.min(bytes.len()).max(1)
}

/// How many bytes of a frame are still to come after the first `written`
/// bytes of `spans`, each made of whole frames (0: it ended between two).
pub fn frame_rest(spans: &[&[u8]], written: usize) -> usize {
    let mut at = 0;
    for span in spans {
        let mut i = 0;
        while i < span.len() {
            if at >= written {
                return 0;
            }
            let n = frame_len(&span[i..]);
            i += n;
            at += n;
            if at > written {
                return at - written;
            }
        }
    }
    0
}

/// One received message as the session's codec reads it: an IRC line
/// (CRLF added), or a frame of the chat port's protocol (its 10-byte
/// length header added).
fn push_unit(inbound: &mut Vec<u8>, kind: WsKind, unit: &[u8]) {
    match kind {
        WsKind::IrcText | WsKind::IrcBinary => {
            inbound.extend_from_slice(unit);
            inbound.extend_from_slice(b"\r\n");
        }
        WsKind::Chatd => {
            inbound.extend_from_slice(format!("{:<10}", unit.len()).as_bytes());
            inbound.extend_from_slice(unit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side of a WebSocket over two buffers.
    fn client() -> WebSocketContext {
        WebSocketContext::new(Role::Client, None)
    }

    fn send(c: &mut WebSocketContext, m: Message) -> Vec<u8> {
        let (mut i, mut o) = (Vec::new(), Vec::new());
        let mut pipe = Pipe {
            input: &mut i,
            output: &mut o,
        };
        c.write(&mut pipe, m).unwrap();
        c.flush(&mut pipe).unwrap();
        o
    }

    fn receive(c: &mut WebSocketContext, bytes: &mut Vec<u8>) -> Vec<Message> {
        let mut o = Vec::new();
        let mut got = Vec::new();
        while let Ok(m) = c.read(&mut Pipe {
            input: bytes,
            output: &mut o,
        }) {
            got.push(m);
        }
        got
    }

    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn upgraded(kind: WsKind, after_head: &[u8]) -> (Web, Fed) {
        let mut w = Web::default();
        let mut bytes = HEAD.to_vec();
        bytes.extend_from_slice(after_head);
        let (head, rest) = bytes.split_at(30);
        assert!(
            w.feed(head).request.is_none(),
            "half a head is not a request"
        );
        let fed = w.feed(rest);
        assert!(matches!(fed.request, Some(Ok(_))));
        let fed = w.upgrade(kind, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        let n = w.pending().len();
        w.consumed(n);
        (w, fed)
    }

    #[test]
    fn a_chatd_message_becomes_a_frame_and_an_event_line_a_message() {
        let mut c = client();
        let early = send(&mut c, Message::Text("{\"username\":\"Yan\"}".into()));
        let (mut w, fed) = upgraded(WsKind::Chatd, &early);
        assert!(fed.heard);
        let mut scratch = [0u8; 64];
        let n = w.drain_into(&mut scratch, 64);
        assert_eq!(&scratch[..n], b"18        {\"username\":\"Yan\"}");
        let out = b"{\"type\":\"join\"}\n{\"type\":\"message\"}\n";
        assert_eq!(w.take(out), out.len());
        let mut bytes = w.pending().to_vec();
        let got = receive(&mut c, &mut bytes);
        assert_eq!(
            got,
            vec![
                Message::Text("{\"type\":\"join\"}".into()),
                Message::Text("{\"type\":\"message\"}".into())
            ]
        );
    }

    #[test]
    fn irc_lines_lose_their_crlf_and_binary_stays_binary() {
        let mut c = client();
        let (mut w, _) = upgraded(WsKind::IrcBinary, b"");
        let fed = w.feed(&send(&mut c, Message::Binary(b"NICK yan".to_vec().into())));
        assert!(fed.heard);
        let mut scratch = [0u8; 64];
        let n = w.drain_into(&mut scratch, 64);
        assert_eq!(&scratch[..n], b"NICK yan\r\n");
        w.take(b":chatd 001 yan :Welcome\r\n");
        let mut bytes = w.pending().to_vec();
        assert_eq!(
            receive(&mut c, &mut bytes),
            vec![Message::Binary(b":chatd 001 yan :Welcome".to_vec().into())]
        );
    }

    #[test]
    fn an_over_long_message_or_garbage_breaks_the_socket_with_a_close_frame() {
        let mut c = client();
        let (mut w, _) = upgraded(WsKind::IrcText, b"");
        let big = "x".repeat(MAX_MESSAGE + 1);
        let fed = w.feed(&send(&mut c, Message::Text(big.into())));
        assert!(fed.error.is_some());
        let mut bytes = w.pending().to_vec();
        let got = receive(&mut c, &mut bytes);
        assert!(matches!(got.last(), Some(Message::Close(Some(f))) if f.code == CloseCode::Size));
        let (mut w, _) = upgraded(WsKind::IrcText, b"");
        // Unmasked frames from a client are a protocol error.
        assert!(w.feed(b"\x81\x02hi").error.is_some());
    }

    #[test]
    fn pings_are_answered_and_output_is_bounded() {
        let mut c = client();
        let (mut w, _) = upgraded(WsKind::Chatd, b"");
        let fed = w.feed(&send(&mut c, Message::Ping(b"p".to_vec().into())));
        assert!(fed.heard && !w.has_input());
        let mut bytes = w.pending().to_vec();
        assert_eq!(
            receive(&mut c, &mut bytes),
            vec![Message::Pong(b"p".to_vec().into())]
        );
        let n = w.pending().len();
        w.consumed(n);
        // Pings from a peer that never reads: pongs up to the bound, then
        // nothing more is read.
        let mut pings = Vec::new();
        while w.read_budget() > 0 {
            pings.clear();
            for _ in 0..100 {
                pings.extend(send(&mut c, Message::Ping(vec![b'p'; 125].into())));
            }
            w.feed(&pings);
            assert!(w.pending().len() < 2 * WEB_BUFFER, "{}", w.pending().len());
        }
        assert!(w.pending().len() >= WEB_BUFFER);
        let n = w.pending().len();
        w.consumed(n);
        assert!(w.read_budget() > 0, "read again once written");
        let line = format!("{}\n", "y".repeat(1000));
        let lots = line.repeat(200);
        let taken = w.take(lots.as_bytes());
        assert!(taken < lots.len() && taken % line.len() == 0, "{taken}");
        assert!(w.pending().len() <= WEB_BUFFER + line.len() + 16);
    }

    #[test]
    fn a_bad_head_is_answered_and_the_rest_ignored() {
        let mut w = Web::default();
        let fed = w.feed(b"BREW /pot HTCPCP/1.0\r\n\r\n");
        assert!(matches!(fed.request, Some(Err((400, _)))));
        assert!(w.feed(b"more").request.is_none());
        let mut w = Web::default();
        let huge = vec![b'a'; http::MAX_HEAD + 1];
        assert_eq!(w.read_budget(), http::MAX_HEAD + 1);
        assert!(matches!(w.feed(&huge).request, Some(Err((400 | 431, _)))));
    }

    #[test]
    fn a_ring_frame_is_the_frame_tungstenite_writes() {
        for kind in [WsKind::Chatd, WsKind::IrcText, WsKind::IrcBinary] {
            for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
                let unit = "é".repeat(n / 2) + &"x".repeat(n % 2);
                let (mut w, _) = upgraded(kind, b"");
                let ending = if kind == WsKind::Chatd { "\n" } else { "\r\n" };
                let line = format!("{unit}{ending}");
                // tungstenite's own framing, through the layer's writer.
                let mut want = Vec::new();
                let mut pipe = Pipe {
                    input: &mut Vec::new(),
                    output: &mut want,
                };
                let Phase::Ws(ws) = &mut w.phase else {
                    panic!("upgraded")
                };
                let message = match kind {
                    WsKind::IrcBinary => Message::Binary(unit.clone().into_bytes().into()),
                    _ => Message::Text(unit.clone().into()),
                };
                ws.ctx.write(&mut pipe, message).unwrap();
                let mut got = Vec::new();
                frame_line(kind, line.as_bytes(), &mut got);
                assert_eq!(got, want, "{kind:?} {n}");
                assert_eq!(frame_len(&got), got.len());
                assert_eq!(frame_rest(&[&got], 1), got.len() - 1);
            }
        }
        let mut lossy = Vec::new();
        frame_line(WsKind::Chatd, b"a\xffb\n", &mut lossy);
        assert_eq!(lossy, [0x81, 5, b'a', 0xef, 0xbf, 0xbd, b'b']);
    }

    #[test]
    fn the_rest_of_a_frame_cut_by_a_short_write_is_counted() {
        let mut a = Vec::new();
        frame_line(WsKind::Chatd, b"hello\n", &mut a); // 7 bytes
        frame_line(WsKind::Chatd, &[b'z'; 200], &mut a); // 4 + 200
        let mut b = Vec::new();
        frame_line(WsKind::Chatd, b"bye\n", &mut b); // 5 bytes
        let spans: [&[u8]; 2] = [&a, &b];
        assert_eq!(frame_rest(&spans, 0), 0);
        assert_eq!(frame_rest(&spans, 3), 4);
        assert_eq!(frame_rest(&spans, 7), 0);
        assert_eq!(frame_rest(&spans, 8), 203);
        assert_eq!(frame_rest(&spans, 211), 0);
        assert_eq!(frame_rest(&spans, 212), 4);
        assert_eq!(frame_rest(&spans, 216), 0);
    }
}
