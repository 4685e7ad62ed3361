//! The web port's HTTP/1.1, pure: a request head parsed (httparse) within
//! [`MAX_HEAD`] bytes, what it asks for decided by [`route`] (a page, the
//! metrics, the health check, a WebSocket upgrade with its subprotocol, or
//! a refusal), and responses as bytes. One request per connection: every
//! response but the upgrade closes it, so nothing here keeps state between
//! requests and a client cannot pipeline work onto the loop.

/// The most bytes a request head may take (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 32;

/// What a WebSocket carries, by the subprotocol agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsKind {
    /// `text.ircv3.net` (or none offered, as Ergo does): an IRC line per
    /// text message.
    IrcText,
    /// `binary.ircv3.net`: an IRC line per binary message.
    IrcBinary,
    /// `chatd`: the chat port's protocol, a frame's payload per message
    /// and an event (JSON) per message back (docs/PROTOCOL.md §4).
    Chatd,
}

impl WsKind {
    /// The `Sec-WebSocket-Protocol` it answers with (none when the client
    /// offered none).
    pub fn token(self) -> &'static str {
        match self {
            WsKind::IrcText => "text.ircv3.net",
            WsKind::IrcBinary => "binary.ircv3.net",
            WsKind::Chatd => CHATD_SUBPROTOCOL,
        }
    }

    fn from_token(token: &str) -> Option<WsKind> {
        match token {
            "text.ircv3.net" => Some(WsKind::IrcText),
            "binary.ircv3.net" => Some(WsKind::IrcBinary),
            CHATD_SUBPROTOCOL => Some(WsKind::Chatd),
            _ => None,
        }
    }

    pub fn is_irc(self) -> bool {
        self != WsKind::Chatd
    }
}

/// The subprotocol of the web client (the chat port's protocol).
pub const CHATD_SUBPROTOCOL: &str = "chatd";

/// The parts of a request chatd looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub host: Option<String>,
    pub origin: Option<String>,
    /// `Upgrade: websocket` and `Connection: upgrade` both present.
    pub wants_websocket: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    /// `Sec-WebSocket-Protocol`'s tokens, in the client's order.
    pub protocols: Vec<String>,
    /// `X-Forwarded-For`'s first (client) address, as written.
    pub forwarded_for: Option<String>,
    /// The request has a body (Content-Length > 0 or Transfer-Encoding).
    pub has_body: bool,
}

/// What a buffer holds so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not yet a whole head: read more (unless it is [`MAX_HEAD`] already).
    Partial,
    /// A whole head, and how many bytes it took.
    Complete(Request, usize),
    /// Not HTTP/1.x, or too long, or too many headers: 400 or 431.
    Bad(u16, &'static str),
}

/// Parses the head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let done = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Head::Bad(431, "request head too large");
        }
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::Bad(431, "too many headers"),
        Err(_) => return Head::Bad(400, "not an HTTP/1.1 request"),
    };
    if done > MAX_HEAD {
        return Head::Bad(431, "request head too large");
    }
    let path = req.path.unwrap_or("/");
    let mut r = Request {
        method: req.method.unwrap_or("").to_string(),
        path: path.split(['?', '#']).next().unwrap_or("/").to_string(),
        ..Request::default()
    };
    let mut upgrade = false;
    let mut connection_upgrade = false;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            continue;
        };
        let value = value.trim();
        match h.name.to_ascii_lowercase().as_str() {
            "host" => r.host = Some(value.to_string()),
            "origin" => r.origin = Some(value.to_string()),
            "upgrade" => upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case("websocket")),
            "connection" => {
                connection_upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-key" => r.ws_key = Some(value.to_string()),
            "sec-websocket-version" => r.ws_version = Some(value.to_string()),
            "sec-websocket-protocol" => r.protocols.extend(tokens(value).map(str::to_string)),
            "x-forwarded-for" => {
                r.forwarded_for = tokens(value).next().map(str::to_string);
            }
            "content-length" => r.has_body |= value != "0",
            "transfer-encoding" => r.has_body = true,
            _ => {}
        }
    }
    r.wants_websocket = upgrade && connection_upgrade;
    Head::Complete(r, done)
}

fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// What the web port serves.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// `--web-origin`: the origins a browser page may open a WebSocket
    /// from; empty means the page's own (the request's Host).
    pub origins: Vec<String>,
    pub metrics: bool,
    pub healthz: bool,
    /// IRC over WebSocket is offered (not in cluster mode).
    pub irc: bool,
}

/// An embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Asset(Asset),
    Metrics,
    Health,
    /// 101: the WebSocket, carrying `kind`; `offered` is whether the client
    /// named a subprotocol (the answer names one only then).
    Upgrade {
        kind: WsKind,
        accept: String,
        offered: bool,
    },
    /// An error page: status, and why in words.
    Refuse(u16, String),
}

/// Decides what `req` gets from `site`, whose files are `assets`.
pub fn route(req: &Request, site: &Site, assets: &[Asset]) -> Answer {
    if req.wants_websocket {
        return upgrade(req, site);
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Answer::Refuse(405, format!("{} is not served here; use GET", req.method));
    }
    if req.has_body {
        return Answer::Refuse(400, "a GET request has no body".to_string());
    }
    match req.path.as_str() {
        "/metrics" if site.metrics => return Answer::Metrics,
        "/healthz" if site.healthz => return Answer::Health,
        _ => {}
    }
    match assets.iter().find(|a| a.path == req.path) {
        Some(a) => Answer::Asset(*a),
        None => Answer::Refuse(404, format!("nothing at {}", req.path)),
    }
}

fn upgrade(req: &Request, site: &Site) -> Answer {
    if req.method != "GET" {
        return Answer::Refuse(405, "a WebSocket opens with GET".to_string());
    }
    if req.ws_version.as_deref() != Some("13") {
        return Answer::Refuse(426, "WebSocket version 13 is required".to_string());
    }
    let Some(key) = req.ws_key.as_deref().filter(|k| k.len() == 24) else {
        return Answer::Refuse(400, "Sec-WebSocket-Key is missing or malformed".to_string());
    };
    if let Some(origin) = &req.origin
        && !origin_allowed(origin, req.host.as_deref(), &site.origins)
    {
        return Answer::Refuse(
            403,
            format!("origin {origin} may not open a WebSocket here"),
        );
    }
    let offered = !req.protocols.is_empty();
    let kind = if offered {
        let mut known = req.protocols.iter().filter_map(|t| WsKind::from_token(t));
        match known.find(|k| site.irc || !k.is_irc()) {
            Some(k) => k,
            None => {
                return Answer::Refuse(
                    400,
                    format!(
                        "no subprotocol offered is served here (chatd serves {}{})",
                        CHATD_SUBPROTOCOL,
                        if site.irc {
                            ", text.ircv3.net, binary.ircv3.net"
                        } else {
                            "; IRC is not offered in cluster mode"
                        }
                    ),
                );
            }
        }
    } else if site.irc {
        WsKind::IrcText
    } else {
        return Answer::Refuse(400, "name a subprotocol: chatd".to_string());
    };
    Answer::Upgrade {
        kind,
        accept: tungstenite::handshake::derive_accept_key(key.as_bytes()),
        offered,
    }
}

/// A browser's Origin is allowed when `--web-origin` lists it, or (none
/// listed) when it is the page's own: scheme://Host.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if !allowed.is_empty() {
        return allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(origin));
    }
    let Some(host) = host else {
        return false;
    };
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    own.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// A status's reason phrase.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The page's security headers: no framing, no sniffing, scripts and
/// connections to this origin only.
const PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'self'; connect-src 'self'; \
     img-src 'self' data:; frame-ancestors 'none'\r\n\
     X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// A whole response that closes the connection. `head_only` (HEAD) leaves
/// the body out but keeps its length.
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{PAGE_HEADERS}Connection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    if status == 426 {
        out.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// An error page: the status and why, in words, as plain text.
pub fn refusal(status: u16, why: &str, head_only: bool) -> Vec<u8> {
    let body = format!("{status} {}: {why}\n", reason(status));
    response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head_only,
    )
}

/// The 101 that opens a WebSocket.
pub fn switching(accept: &str, subprotocol: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(p) = subprotocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Asset = Asset {
        path: "/",
        content_type: "text/html",
        body: b"<p>hi</p>",
    };

    fn site() -> Site {
        Site {
            origins: Vec::new(),
            metrics: true,
            healthz: true,
            irc: true,
        }
    }

    fn req(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Head::Complete(r, n) => {
                assert_eq!(n, text.len());
                r
            }
            other => panic!("{other:?}"),
        }
    }

    const WS: &str = "GET /ws HTTP/1.1\r\nHost: chat.example:8080\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n";

    #[test]
    fn a_head_arrives_in_pieces_and_is_bounded() {
        assert_eq!(parse(b"GET / HT"), Head::Partial);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(long.as_bytes()), Head::Bad(431, _)));
        let many: String = (0..40).map(|i| format!("X{i}: y\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(text.as_bytes()), Head::Bad(431, _)));
        assert!(matches!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Head::Bad(400, _)
        ));
    }

    #[test]
    fn pages_metrics_and_refusals() {
        let s = site();
        let get = |p: &str| route(&req(&format!("GET {p} HTTP/1.1\r\n\r\n")), &s, &[PAGE]);
        assert_eq!(get("/"), Answer::Asset(PAGE));
        assert_eq!(get("/?room=Teste"), Answer::Asset(PAGE));
        assert_eq!(get("/metrics"), Answer::Metrics);
        assert_eq!(get("/healthz"), Answer::Health);
        assert!(matches!(get("/etc/passwd"), Answer::Refuse(404, _)));
        let post = route(&req("POST / HTTP/1.1\r\n\r\n"), &s, &[PAGE]);
        assert!(matches!(post, Answer::Refuse(405, _)));
        let off = Site {
            metrics: false,
            healthz: false,
            ..site()
        };
        let r = req("GET /metrics HTTP/1.1\r\n\r\n");
        assert!(matches!(route(&r, &off, &[PAGE]), Answer::Refuse(404, _)));
    }

    #[test]
    fn an_upgrade_names_the_first_subprotocol_offered_that_is_served() {
        let s = site();
        let up = |extra: &str| route(&req(&format!("{WS}{extra}\r\n")), &s, &[]);
        // RFC 6455's own example key.
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string();
        assert_eq!(
            up(""),
            Answer::Upgrade {
                kind: WsKind::IrcText,
                accept: accept.clone(),
                offered: false
            }
        );
        let kind = |extra: &str| match up(extra) {
            Answer::Upgrade { kind, .. } => kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            kind("Sec-WebSocket-Protocol: binary.ircv3.net, text.ircv3.net\r\n"),
            WsKind::IrcBinary
        );
        assert_eq!(
            kind("Sec-WebSocket-Protocol: foo\r\nSec-WebSocket-Protocol: text.ircv3.net\r\n"),
            WsKind::IrcText
        );
        assert_eq!(kind("Sec-WebSocket-Protocol: chatd\r\n"), WsKind::Chatd);
        assert!(matches!(
            up("Sec-WebSocket-Protocol: mqtt\r\n"),
            Answer::Refuse(400, _)
        ));
        let cluster = Site {
            irc: false,
            ..site()
        };
        let r = req(&format!(
            "{WS}Sec-WebSocket-Protocol: text.ircv3.net\r\n\r\n"
        ));
        assert!(matches!(route(&r, &cluster, &[]), Answer::Refuse(400, _)));
        let old = WS.replace("Version: 13", "Version: 8");
        let r = req(&format!("{old}\r\n"));
        assert!(matches!(route(&r, &s, &[]), Answer::Refuse(426, _)));
    }

    #[test]
    fn a_browser_may_connect_only_from_an_allowed_origin() {
        assert!(origin_allowed(
            "http://chat.example:8080",
            Some("chat.example:8080"),
            &[]
        ));
        assert!(origin_allowed(
            "https://CHAT.example:8080",
            Some("chat.example:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            Some("chat.example:8080"),
            &[]
        ));
        assert!(!origin_allowed("http://chat.example:8080", None, &[]));
        let listed = vec!["https://chat.example".to_string()];
        assert!(origin_allowed(
            "https://chat.example",
            Some("10.0.0.1:80"),
            &listed
        ));
        assert!(!origin_allowed(
            "http://chat.example:8080",
            Some("chat.example:8080"),
            &listed
        ));
        let s = site();
        let r = req(&format!("{WS}Origin: http://evil.example\r\n\r\n"));
        assert!(matches!(route(&r, &s, &[]), Answer::Refuse(403, _)));
        let r = req(&format!("{WS}Origin: http://chat.example:8080\r\n\r\n"));
        assert!(matches!(route(&r, &s, &[]), Answer::Upgrade { .. }));
    }

    #[test]
    fn responses_close_and_say_their_length() {
        let r = String::from_utf8(refusal(404, "nothing at /x", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n404 Not Found: nothing at /x\n"));
        let head = response(200, "text/html", b"abc", true);
        assert!(
            String::from_utf8(head)
                .unwrap()
                .contains("Content-Length: 3\r\n")
        );
        let s = String::from_utf8(switching("abc", Some("chatd"))).unwrap();
        assert!(s.contains("Sec-WebSocket-Protocol: chatd\r\n"));
    }
}
