//! The history file's write rate (issue #25), through the loop's own side
//! of it (`History`: events kept, then one commit per pass of the loop)
//! with its sync thread checkpointing and fsyncing every second, as in
//! chatd: so what is counted is durable within about a second. For each
//! batch size (events per pass): events a second, the commit's time per
//! pass (what the loop waits, p50 and p99), and the file's size per
//! million events. Numbers go to stdout.
//!
//!     cargo bench --bench history -- [--events N] [--batch N[,N...]] [--keep N]
//!
//! `--keep` is each of the 10 rooms' length (default 1000, chatd's most).

use std::time::{Duration, Instant};

use chatd::daemon::history::{History, Kind, Stored};

/// A room length that keeps everything the size run writes.
const KEEP_ALL: usize = 1_000_000_000;

fn main() {
    let mut events: usize = 1_000_000;
    let mut batches: Vec<usize> = vec![1, 10, 100, 1000];
    let mut keep: usize = 1000;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => events = it.next().and_then(|v| v.parse().ok()).unwrap_or(events),
            "--keep" => keep = it.next().and_then(|v| v.parse().ok()).unwrap_or(keep),
            "--batch" => {
                if let Some(v) = it.next() {
                    batches = v.split(',').filter_map(|b| b.parse().ok()).collect();
                }
            }
            _ => {}
        }
    }
    println!(
        "history file (SQLite, WAL, synchronous=NORMAL, checkpoint + fsync every {} s by its thread):",
        chatd::daemon::history::SYNC_EVERY.as_secs()
    );
    println!(
        "  {:>14} {:>10} {:>12} {:>16} {:>16} {:>14} {:>18}",
        "events/commit",
        "events",
        "events/s",
        "commit p50 (µs)",
        "commit p99 (µs)",
        "WAL peak (MB)",
        "file per 1M (MB)"
    );
    for batch in batches {
        // One message per pass is the slowest case: a small batch is run
        // with fewer events.
        let n = events.min(batch * 20_000);
        run(n, batch, keep);
    }
}

fn run(events: usize, batch: usize, keep: usize) {
    let dir = std::env::temp_dir().join(format!(
        "chatd-history-bench-{}-{batch}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = History::open(&dir).unwrap();
    let wal = std::path::PathBuf::from(format!("{}-wal", h.path().display()));
    let mut wal_peak = 0u64;
    let mut waits: Vec<Duration> = Vec::with_capacity(events / batch + 1);
    let start = Instant::now();
    let mut written = 0;
    while written < events {
        let n = batch.min(events - written);
        for i in written..written + n {
            h.keep(Stored {
                seq: 0,
                room: format!("bench{}", i % 10),
                msgid: format!("{:x}-{i:08x}", std::process::id()),
                kind: Kind::Message,
                name: format!("u{}", i % 100),
                body: format!("mensagem número {i}, com o texto de uma conversa"),
                at_ms: 1_796_400_000_000 + i as i64,
                target: String::new(),
            });
        }
        let t = Instant::now();
        // Rooms keep `keep` (trimmed every 256 new events, as in chatd).
        h.commit(|_| keep).unwrap();
        waits.push(t.elapsed());
        if waits.len().is_multiple_of(64) {
            wal_peak = wal_peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        written += n;
    }
    let secs = start.elapsed().as_secs_f64();
    h.close(|_| keep).unwrap();
    waits.sort();
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    let untrimmed = untrimmed_size(events.min(200_000));
    println!(
        "  {:>14} {:>10} {:>12.0} {:>16.0} {:>16.0} {:>14.1} {:>18.1}",
        batch,
        events,
        events as f64 / secs,
        pct(0.5),
        pct(0.99),
        wal_peak as f64 / 1e6,
        untrimmed
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The file and its write-ahead log, in bytes.
fn file_size(path: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// MB per million events when nothing is trimmed (rooms long enough to
/// keep everything): `events` stored in batches of 1000. (The file above
/// stays at 10 rooms × 1000 events, as chatd trims it.)
fn untrimmed_size(events: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("chatd-history-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = History::open(&dir).unwrap();
    let path = h.path().to_path_buf();
    for i in 0..events {
        h.keep(Stored {
            seq: 0,
            room: format!("bench{}", i % 10),
            msgid: format!("s-{i:x}"),
            kind: Kind::Message,
            name: format!("u{}", i % 100),
            body: format!("mensagem número {i}, com o texto de uma conversa"),
            at_ms: 1_796_400_000_000 + i as i64,
            target: String::new(),
        });
        if i % 1000 == 999 {
            h.commit(|_| KEEP_ALL).unwrap();
        }
    }
    h.close(|_| KEEP_ALL).unwrap();
    let mb = file_size(&path) as f64 / 1e6 * 1_000_000.0 / events as f64;
    let _ = std::fs::remove_dir_all(&dir);
    mb
}
