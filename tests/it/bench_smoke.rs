//! The benchmark's load generator in smoke mode against a real chatd: a few
//! clients, a few messages, everything delivered. Keeps benches/loadgen.rs
//! compiling and correct between benchmark runs.

#[path = "../../benches/loadgen.rs"]
mod loadgen;

use crate::support::*;
use loadgen::{Proto, Scenario, Target};

fn target(d: &Daemon) -> Target {
    Target::single(Proto::Chatd, d.addr, d.pid(), None)
}

#[test]
fn loadgen_smoke_flat_out() {
    let d = Daemon::start(&["--room", "bench0:10", "--room", "bench1:10"]);
    let sc = Scenario {
        name: "smoke".into(),
        rooms: 2,
        members: 3,
        msgs: 5,
        rate: None,
        payload: 40,
    };
    let r = loadgen::run(&target(&d), &sc).unwrap();
    assert_eq!(r.expected, 2 * 3 * 5 * 2);
    assert_eq!(r.received, r.expected, "lost {}", r.lost());
    assert!(r.deliveries_per_sec > 0.0);
    assert!(r.max_us >= r.p99_us && r.p99_us >= r.p50_us);
    assert!(r.rss_peak_kib > 0);
}

#[test]
fn loadgen_smoke_fixed_rate() {
    let d = Daemon::start(&["--room", "bench0:10"]);
    let sc = Scenario {
        name: "smoke-rate".into(),
        rooms: 1,
        members: 4,
        msgs: 5,
        rate: Some(200.0),
        payload: 60,
    };
    let r = loadgen::run(&target(&d), &sc).unwrap();
    assert_eq!(r.received, 4 * 5 * 3);
    // 20 messages at 200/s take about 0.1 s.
    assert!(r.secs >= 0.05, "{} s", r.secs);
}

#[test]
fn loadgen_smoke_over_tls_and_handshakes() {
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.server("bench");
    let (d, tls_addr) = crate::tls::tls_daemon(&cert, &key, &["--room", "bench0:10"]);
    let target = Target::single(Proto::Chatd, tls_addr, d.pid(), Some(pki.client_config()));
    let sc = Scenario {
        name: "smoke-tls".into(),
        rooms: 1,
        members: 3,
        msgs: 5,
        rate: None,
        payload: 40,
    };
    let r = loadgen::run(&target, &sc).unwrap();
    assert_eq!(r.received, r.expected, "lost {}", r.lost());
    assert_eq!(r.expected, 3 * 5 * 2);
    let (rate, _cpu) = loadgen::tls_handshakes(&target, 5).unwrap();
    assert!(rate > 0.0);
}
