//! Side results a bench prints beside criterion's timings (hit ratios,
//! memory per entry, TSP gaps, assignment quality): each line is printed
//! and written to `target/criterion/notes/<bench>.txt` (started afresh by
//! the first line a run prints), which
//! `cargo run --release --example bench_report` puts in BENCHMARKS.md.
//! Nothing is written in criterion's `--test` / `--list` modes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);

fn path(bench: &str) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target
        .join("criterion")
        .join("notes")
        .join(format!("{bench}.txt"))
}

/// Prints `text` and records it in `bench`'s notes.
pub fn line(bench: &str, text: &str) {
    println!("{text}");
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let p = path(bench);
    if !STARTED.swap(true, Ordering::Relaxed) {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&p, "");
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&p) {
        let _ = writeln!(f, "{text}");
    }
}
