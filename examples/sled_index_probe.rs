//! What sled alone costs for the per-mention index entries the store keeps (two dedup keys,
//! a mention pointer, a log entry), without mentiondesk around it: CPU, peak RSS and bytes on
//! disk for N mentions in transactions of 500, flushed after each, as `accept` does. `hash`
//! writes the keys hashed (17 bytes, as the store does), `full` as text (as before).
//!
//! Usage: cargo run --release --example sled_index_probe -- hash|full N DIR
//! (DIR is created and must not exist; figures in BENCHMARKS.md, "Memory").

use sha2::Digest;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

fn hashed(k: &str) -> Vec<u8> {
    let d = sha2::Sha256::digest(k.as_bytes());
    let mut v = vec![0xFF];
    v.extend_from_slice(&d[..16]);
    v
}

/// User + system CPU seconds of this process (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("linux");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split(' ').collect();
    let ticks: f64 = fields[12].parse::<f64>().unwrap() + fields[13].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (hash, n, dir) = match args.as_slice() {
        [_, mode, n, dir] if mode == "hash" || mode == "full" => {
            (mode == "hash", n.parse::<usize>().expect("N"), dir.clone())
        }
        _ => panic!("usage: sled_index_probe hash|full N DIR"),
    };
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(16 << 20)
        .flush_every_ms(Some(500))
        .open()
        .expect("open");
    let trees = (
        db.open_tree("seen").unwrap(),
        db.open_tree("mentions").unwrap(),
        db.open_tree("mention_log").unwrap(),
    );
    let key = |s: &str| {
        if hash {
            hashed(s)
        } else {
            s.as_bytes().to_vec()
        }
    };
    let started = std::time::Instant::now();
    for batch in 0..n / 500 {
        (&trees.0, &trees.1, &trees.2)
            .transaction(|(seen, mentions, log)| {
                for i in batch * 500..(batch + 1) * 500 {
                    let mention = key(&format!("bench\u{1f}{i}"));
                    seen.insert(key(&format!("item:bench\u{1f}{i}")), &[])?;
                    seen.insert(key(&format!("url:https://forum.example.com/t/{i}")), &[])?;
                    mentions.insert(mention.clone(), &[7u8; 21])?;
                    log.insert(&(i as u64).to_be_bytes(), mention)?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .expect("transaction");
        db.flush().expect("flush");
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    drop(trees);
    drop(db);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} n={n}: {wall:.1} s wall, {cpu:.1} CPU-s ({:.0} mentions per CPU-second), {hwm}, {} bytes per mention on disk",
        if hash { "hashed keys" } else { "full keys" },
        n as f64 / cpu,
        bytes / n as u64
    );
}
