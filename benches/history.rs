//! The history file's write rate (issue #25): how many events a second
//! the store takes in batches (one transaction per pass of the loop,
//! checkpointed about once a second of traffic), and its size per million.
//! Numbers go to stdout.
//!
//!     cargo bench --bench history -- [--events N] [--batch N]

use std::time::Instant;

use chatd::daemon::history::{HistoryStore, Kind, Stored};

fn main() {
    let mut events: usize = 1_000_000;
    let mut batch: usize = 1000;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => events = it.next().and_then(|v| v.parse().ok()).unwrap_or(events),
            "--batch" => batch = it.next().and_then(|v| v.parse().ok()).unwrap_or(batch),
            _ => {}
        }
    }
    let dir = std::env::temp_dir().join(format!("chatd-history-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = HistoryStore::open(&dir).unwrap();
    let start = Instant::now();
    let mut written = 0;
    let mut batches = 0;
    while written < events {
        let n = batch.min(events - written);
        let b: Vec<Stored> = (written..written + n)
            .map(|i| Stored {
                seq: 0,
                room: format!("bench{}", i % 10),
                msgid: format!("{i:x}"),
                kind: Kind::Message,
                name: format!("u{}", i % 100),
                body: format!("mensagem número {i}, com o texto de uma conversa"),
                at_ms: 1_796_400_000_000 + i as i64,
            })
            .collect();
        h.append(&b).unwrap();
        written += n;
        batches += 1;
        if batches % 100 == 0 {
            h.checkpoint().unwrap();
        }
    }
    h.checkpoint().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let path = h.path().to_path_buf();
    drop(h);
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    println!("history store (SQLite, WAL, synchronous=NORMAL), batches of {batch}:");
    println!("  events written      {events}");
    println!("  events/s            {:.0}", events as f64 / secs);
    println!(
        "  file per 1M events  {:.1} MB",
        size as f64 / 1e6 * 1_000_000.0 / events as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
