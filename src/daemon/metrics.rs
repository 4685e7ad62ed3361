//! `/metrics` on the web port: what chatd counts, in the OpenMetrics text
//! format (prometheus-client's encoder), built afresh for each scrape from
//! the counters the loop keeps anyway. Nothing here is on a hot path.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::shared::Shared;

/// Connections by what they speak.
#[derive(Debug, Default, Clone, Copy)]
pub struct Census {
    pub chatd: i64,
    pub irc: i64,
    pub websocket_chatd: i64,
    pub websocket_irc: i64,
    /// Web connections still in their HTTP request.
    pub http: i64,
}

type Labels = Vec<(&'static str, &'static str)>;

fn gauge(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    r.register(name, help, g);
}

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    r.register(name, help, c);
}

/// The scrape's text.
pub fn render(sh: &Shared, census: &Census) -> String {
    let mut r = Registry::with_prefix("chatd");
    let by_protocol = Family::<Labels, Gauge>::default();
    for (protocol, n) in [
        ("chatd", census.chatd),
        ("irc", census.irc),
        ("websocket_chatd", census.websocket_chatd),
        ("websocket_irc", census.websocket_irc),
        ("http", census.http),
    ] {
        by_protocol
            .get_or_create(&vec![("protocol", protocol)])
            .set(n);
    }
    r.register(
        "connections",
        "Client connections open, by protocol",
        by_protocol,
    );
    gauge(&mut r, "rooms", "Rooms", sh.hub.room_count() as i64);
    gauge(
        &mut r,
        "members",
        "Members in rooms",
        sh.hub.member_count() as i64,
    );
    let c = &sh.counters;
    counter(
        &mut r,
        "messages",
        "Chat messages relayed",
        c.messages_relayed,
    );
    counter(
        &mut r,
        "deliveries",
        "Event lines queued for a recipient",
        c.deliveries,
    );
    counter(
        &mut r,
        "sent_bytes",
        "Bytes written to clients",
        c.bytes_out,
    );
    counter(
        &mut r,
        "writes",
        "Writes to clients that sent bytes (sent_bytes / writes: bytes per write)",
        c.writes,
    );
    counter(&mut r, "joins", "Joins", c.joins);
    counter(
        &mut r,
        "refusals",
        "Connections and requests refused",
        c.refusals,
    );
    let drops = Family::<Labels, Counter>::default();
    for (reason, n) in [
        ("slow_consumer", c.slow_consumer_drops),
        ("flood", c.flood_refusals),
        ("cluster_invalid", c.cluster_dropped),
        ("cluster_inbox_overflow", c.inbox_overflows),
        ("log_suppressed", sh.log.suppressed),
    ] {
        drops.get_or_create(&vec![("reason", reason)]).inc_by(n);
    }
    r.register(
        "drops",
        "What chatd dropped, by reason (a connection, a message, a log line)",
        drops,
    );
    counter(
        &mut r,
        "login_failures",
        "Failed logins (password or token)",
        sh.accounts.failures_total,
    );
    if let Some(h) = &sh.history {
        counter(
            &mut r,
            "history_writes",
            "Events stored in the history file",
            h.stored,
        );
        counter(
            &mut r,
            "history_write_failures",
            "History commits that failed (their events stay in memory only)",
            h.failures,
        );
    }
    if let Some(up) = c.cluster_up {
        gauge(
            &mut r,
            "cluster_link_up",
            "1 while the link to the cluster's Redis is up and synchronised",
            i64::from(up),
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
