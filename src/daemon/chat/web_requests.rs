//! The web port in the chat part: what a connection's request gets (core/
//! http.rs decides; this carries it out), the upgrade to a WebSocket with
//! a session of the protocol it carries, and the web layer's news (a
//! broken WebSocket, a ping heard). A page, the metrics and every refusal
//! are one response through the session's `Finish`, so they close like any
//! last line: sent, FIN, lingered, released.

use super::Chat;
use super::conn::Conn;
use super::web::Fed;
use crate::core::codec::Protocol;
use crate::core::http::{self, Answer, Request, WsKind};
use crate::core::hub::ConnId;
use crate::core::session::{Input, Session};
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// The web client, embedded: no CDN, no build step.
pub const ASSETS: &[http::Asset] = &[
    http::Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../web_assets/index.html"),
    },
    http::Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web_assets/app.js"),
    },
    http::Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web_assets/app.css"),
    },
];

impl Chat {
    /// What the web layer said after a read or a pull. True when the
    /// connection's input is done with for this pass.
    pub(super) fn web_news(&mut self, sh: &mut Shared, id: ConnId, fed: Fed) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return true;
        };
        if fed.heard {
            c.session.heard(sh.now);
        }
        if let Some(why) = fed.error {
            // The close frame (1002, or 1009 for a message too large) is
            // queued: it goes out before the FIN, like any last line.
            let who = self.describe(sh, id);
            self.id_log(sh, id, Level::Warn, format!("{why} from {who}; closing"));
            self.leave_room(sh, id, "closed after a WebSocket error");
            self.feed(sh, id, Input::Finish(None));
            return true;
        }
        match fed.request {
            None => false,
            Some(Err((status, why))) => {
                self.http_refuse(sh, id, status, why, false);
                true
            }
            Some(Ok(req)) => {
                self.web_request(sh, id, &req);
                true
            }
        }
    }

    fn web_request(&mut self, sh: &mut Shared, id: ConnId, req: &Request) {
        let site = http::Site {
            origins: sh.cfg.web_origin.clone(),
            metrics: !sh.cfg.no_metrics,
            healthz: !sh.cfg.no_healthz,
            irc: true,
        };
        let head_only = req.method == "HEAD";
        if let Some(seat) = self.conns.get(&id).map(|c| c.seat)
            && seat.limited
            && let Err(why) = sh.door.take_request(seat.key, sh.now)
        {
            return self.http_refuse(sh, id, 429, &why, head_only);
        }
        if let Some(c) = self.conns.get_mut(&id)
            && let Some(real) = forwarded(c, req, &sh.cfg.web_proxy)
        {
            c.peer = real;
        }
        match http::route(req, &site, ASSETS) {
            Answer::Asset(a) => {
                let page = http::response(200, a.content_type, a.body, head_only);
                self.http_answer(sh, id, &page);
            }
            Answer::Health => {
                let page = http::response(200, "text/plain; charset=utf-8", b"ok\n", head_only);
                self.http_answer(sh, id, &page);
            }
            Answer::Metrics => {
                let body = crate::daemon::metrics::render(sh, &self.census());
                let page = http::response(
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body.as_bytes(),
                    head_only,
                );
                self.http_answer(sh, id, &page);
            }
            Answer::Refuse(status, why) => self.http_refuse(sh, id, status, &why, head_only),
            Answer::Upgrade {
                kind,
                accept,
                offered,
            } => self.web_upgrade(sh, id, kind, &accept, offered),
        }
    }

    /// The 101, and a fresh session of the protocol the socket carries
    /// (its own handshake deadline, and WebSocket pings for liveness).
    fn web_upgrade(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        kind: WsKind,
        accept: &str,
        offered: bool,
    ) {
        let protocol = if kind.is_irc() {
            Protocol::Irc
        } else {
            Protocol::Prototype
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let switching = http::switching(accept, offered.then(|| kind.token()));
        c.session = Session::new(sh.now, sh.limits, protocol).with_pings(sh.now);
        if protocol == Protocol::Irc {
            c.irc = Some(Box::default());
        }
        let fed = c
            .web
            .as_mut()
            .expect("a web connection")
            .upgrade(kind, &switching);
        let peer = c.peer;
        sh.client_log(
            peer.ip(),
            Level::Info,
            format!("web: client {peer}: WebSocket ({})", kind.token()),
        );
        self.touch(sh, id);
        if !self.web_news(sh, id, fed) {
            self.mark_runnable(id);
        }
    }

    fn http_answer(&mut self, sh: &mut Shared, id: ConnId, response: &[u8]) {
        self.feed(sh, id, Input::Finish(Some(response)));
    }

    /// An error page (logged, counted as a refusal).
    pub(super) fn http_refuse(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        status: u16,
        why: &str,
        head_only: bool,
    ) {
        sh.counters.refusals += 1;
        let peer = self.peer_text(id);
        let level = Level::Info;
        self.id_log(sh, id, level, format!("web: {status} to {peer}: {why}"));
        self.http_answer(sh, id, &http::refusal(status, why, head_only));
    }

    /// Connections by what they speak, for the metrics.
    fn census(&self) -> crate::daemon::metrics::Census {
        let mut n = crate::daemon::metrics::Census::default();
        for c in self.conns.values() {
            let web = c.web.as_ref().map(|w| w.kind());
            match (web, c.session.protocol()) {
                (Some(None), _) => n.http += 1,
                (Some(Some(_)), Protocol::Irc) => n.websocket_irc += 1,
                (Some(Some(_)), Protocol::Prototype) => n.websocket_chatd += 1,
                (None, Protocol::Irc) => n.irc += 1,
                (None, Protocol::Prototype) => n.chatd += 1,
            }
        }
        n
    }
}

/// A proxy's `X-Forwarded-For`, believed only from a `--web-proxy`
/// address: the client's own address (port 0: the proxy's connection).
fn forwarded(
    c: &Conn,
    req: &Request,
    proxies: &[std::net::IpAddr],
) -> Option<std::net::SocketAddr> {
    if !proxies.contains(&c.peer.ip()) {
        return None;
    }
    let ip: std::net::IpAddr = req.forwarded_for.as_deref()?.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, 0))
}
