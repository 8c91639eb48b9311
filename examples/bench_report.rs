//! Prints the README's performance table from criterion's results.
//!
//! ```text
//! cargo bench                                   # or one area: --bench geo
//! cargo run --release --example bench_report    # markdown on stdout
//! ```
//!
//! Reads every `target/criterion/**/new/benchmark.json` and its
//! `estimates.json`, and prints one table per group: each implementation
//! (dispatchkit and its peers) with its threads / parameter, the time per
//! iteration criterion prints (its slope estimate where the sampling gives
//! one, else the mean), the throughput, and how many times faster
//! dispatchkit is (the dispatchkit row with the same parameter, else the
//! group's first dispatchkit row). Groups that run for a fixed time budget and are
//! judged by quality (`matching_tsp`: gap to the optimum, printed by that
//! bench) are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Groups measured by result quality under a fixed time budget, not by
/// throughput.
const QUALITY_GROUPS: &[&str] = &["matching_tsp"];

#[derive(Debug)]
struct Row {
    function: String,
    param: String,
    ns: f64,
    elements: Option<f64>,
}

impl Row {
    fn per_sec(&self) -> f64 {
        self.elements.unwrap_or(1.0) / (self.ns / 1e9)
    }
}

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").exists() {
                out.push(p);
            } else {
                find(&p, out);
            }
        }
    }
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2} G/s", x / 1e9),
        x if x >= 1e6 => format!("{:.2} M/s", x / 1e6),
        x if x >= 1e3 => format!("{:.1} k/s", x / 1e3),
        x => format!("{x:.1} /s"),
    }
}

fn time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let mut dirs = Vec::new();
    find(&dir, &mut dirs);
    if dirs.is_empty() {
        eprintln!(
            "no criterion results under {}: run `cargo bench` first",
            dir.display()
        );
        std::process::exit(1);
    }
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for d in dirs {
        let (Some(b), Some(e)) = (
            read(&d.join("benchmark.json")),
            read(&d.join("estimates.json")),
        ) else {
            continue;
        };
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        // Criterion's headline estimate: the slope of time over iterations
        // under linear sampling, the mean under flat sampling.
        let Some(ns) = e["slope"]["point_estimate"]
            .as_f64()
            .or_else(|| e["mean"]["point_estimate"].as_f64())
        else {
            continue;
        };
        let elements = b["throughput"]["Elements"]
            .as_f64()
            .or_else(|| b["throughput"]["Bytes"].as_f64());
        groups.entry(s(&b["group_id"])).or_default().push(Row {
            function: s(&b["function_id"]),
            param: s(&b["value_str"]),
            ns,
            elements,
        });
    }
    for (group, mut rows) in groups {
        if QUALITY_GROUPS.contains(&group.as_str()) {
            continue;
        }
        rows.sort_by(|a, b| {
            let dk = |r: &Row| !r.function.starts_with("dispatchkit");
            (dk(a), &a.function, &a.param).cmp(&(dk(b), &b.function, &b.param))
        });
        println!("**{group}**\n");
        println!("| implementation | param | time / iter | throughput | dispatchkit ÷ this |");
        println!("|---|---|---:|---:|---:|");
        let ours: Vec<&Row> = rows
            .iter()
            .filter(|r| r.function.starts_with("dispatchkit"))
            .collect();
        for r in &rows {
            let reference = ours.iter().find(|o| o.param == r.param).or(ours.first());
            let ratio = match reference {
                Some(o) if !r.function.starts_with("dispatchkit") => {
                    format!("{:.1}×", o.per_sec() / r.per_sec())
                }
                _ => "—".into(),
            };
            println!(
                "| {} | {} | {} | {} | {ratio} |",
                r.function,
                r.param,
                time(r.ns),
                human(r.per_sec())
            );
        }
        println!();
    }
}
