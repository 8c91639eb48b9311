//! The ARC paper's traces committed in `cache/tests/data/` (see its
//! README), read for the cache benches.

use std::io::Read;

/// A trace's keys, one per request (runs `start count` expanded).
pub fn keys(name: &str) -> Vec<u64> {
    let path = format!("{}/cache/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("committed trace");
    let mut text = String::new();
    ruzstd::decoding::StreamingDecoder::new(&bytes[..])
        .expect("zstd frame")
        .read_to_string(&mut text)
        .expect("utf-8 trace");
    let mut keys = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let start: u64 = f.next().and_then(|s| s.parse().ok()).expect("start");
        let count: u64 = f.next().and_then(|s| s.parse().ok()).expect("count");
        keys.extend(start..start + count);
    }
    keys
}
