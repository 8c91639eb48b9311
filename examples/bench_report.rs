//! Writes the performance report from criterion's results.
//!
//! ```text
//! cargo bench                                            # or one area: --bench geo
//! cargo run --release --example city                     # optional: the main job's figures
//! cargo run --release --example bench_report             # markdown on stdout
//! cargo run --release --example bench_report -- --write  # BENCHMARKS.md + README headline table
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
//! bench) are left out. Then the benches' side results
//! (`target/criterion/notes/*.txt`: hit ratios, memory, TSP gaps) and the
//! last city run's figures (`target/city/report.json`), under a header that
//! says when (the results' file times) and on what machine they ran.
//!
//! With `--write` the report goes to `BENCHMARKS.md` and the headline
//! table between the `<!-- headline -->` markers in `README.md` is
//! regenerated from the same results: no figure is copied by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Groups measured by result quality under a fixed time budget, not by
/// throughput.
const QUALITY_GROUPS: &[&str] = &["matching_tsp"];

#[derive(Debug, Clone)]
struct Row {
    function: String,
    param: String,
    ns: f64,
    elements: Option<f64>,
    /// When criterion wrote the estimate.
    modified: Option<SystemTime>,
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

/// A throughput ratio: two decimals below 10×, so 0.96× is not shown as 1.0×.
fn ratio(x: f64) -> String {
    if x < 0.01 {
        format!("{x:.4}×")
    } else if x < 10.0 {
        format!("{x:.2}×")
    } else {
        format!("{x:.0}×")
    }
}

fn time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}

/// The README's headline rows: (group, dispatchkit function, peer
/// function, parameter, what it measures).
const HEADLINE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "geo_update",
        "dispatchkit",
        "rstar",
        "1t",
        "location updates, 1M drivers",
    ),
    (
        "geo_update",
        "dispatchkit",
        "redis",
        "pipelined",
        "location updates vs Redis GEOADD",
    ),
    (
        "geo_search_5km_count10",
        "dispatchkit",
        "rstar",
        "1t",
        "5 km COUNT 10 searches",
    ),
    (
        "redis_geo_update",
        "dispatchkit_redis",
        "raw_geoadd",
        "1node",
        "location updates on one Redis vs raw GEOADD",
    ),
    (
        "redis_geo_update",
        "dispatchkit_redis",
        "raw_geoadd",
        "cluster3",
        "location updates on a 3-master Redis Cluster",
    ),
    (
        "redis_geo_search_5km_count10",
        "dispatchkit_redis",
        "raw_geosearch",
        "half_filtered",
        "5 km COUNT 10 available on Redis vs GEOSEARCH + filter",
    ),
    (
        "ratelimit_direct",
        "dispatchkit_gcra",
        "governor",
        "1t",
        "one GCRA limiter, 1 thread",
    ),
    (
        "ratelimit_direct",
        "dispatchkit_gcra",
        "governor",
        "2t",
        "one GCRA limiter, 2 threads",
    ),
    (
        "ratelimit_keyed_zipf",
        "dispatchkit_gcra",
        "governor",
        "2t",
        "keyed GCRA, Zipf keys, 2 threads",
    ),
    (
        "cache_get_only",
        "dispatchkit",
        "quick_cache",
        "1t",
        "cache reads, 1 thread",
    ),
    (
        "cache_get_only",
        "dispatchkit",
        "quick_cache",
        "2t",
        "cache reads, 2 threads",
    ),
    (
        "cache_zipf_90get",
        "dispatchkit",
        "quick_cache",
        "1t",
        "cache 90 % get, 1 thread",
    ),
    (
        "cache_zipf_90get",
        "dispatchkit",
        "quick_cache",
        "2t",
        "cache 90 % get, 2 threads",
    ),
    (
        "cache_get_or_load_async",
        "dispatchkit",
        "moka",
        "hit",
        "async cache hits (get_or_load_async vs get_with)",
    ),
    (
        "http_ratelimit_layer",
        "dispatchkit",
        "tower_governor",
        "1t",
        "axum requests through a rate-limit layer, in-process",
    ),
    (
        "pricing_surge_recompute",
        "dispatchkit",
        "naive",
        "1m_drivers",
        "surge recompute, 1M drivers",
    ),
    (
        "redis_limiter_check",
        "dispatchkit_gcra",
        "naive_incr_expire",
        "sequential",
        "a check on Redis vs INCR + EXPIRE",
    ),
    (
        "redis_limiter_check",
        "dispatchkit_gcra",
        "naive_incr_expire",
        "pipelined64",
        "checks on Redis, 64 per round trip",
    ),
    (
        "redis_policy_2rules",
        "dispatchkit_policy",
        "two_gcra_checks",
        "one_script",
        "2-rule policy on Redis vs two checks",
    ),
];

fn rows_by_group(dir: &Path) -> BTreeMap<String, Vec<Row>> {
    let mut dirs = Vec::new();
    find(dir, &mut dirs);
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
        let modified = std::fs::metadata(d.join("estimates.json"))
            .and_then(|m| m.modified())
            .ok();
        groups.entry(s(&b["group_id"])).or_default().push(Row {
            function: s(&b["function_id"]),
            param: s(&b["value_str"]),
            ns,
            elements,
            modified,
        });
    }
    groups
}

/// `YYYY-MM-DD HH:MM` UTC of a file time (days-to-civil, Hinnant).
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // The first CPU's `name : value` fields.
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let brand = field("model name").unwrap_or_else(|| "unknown CPU".to_string());
    // A virtual machine may show only the vendor's brand ("AMD EPYC"): the
    // family and model tell the microarchitecture (25 / 17: Zen 4).
    let model = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{brand} (cpu family {f}, model {m})"),
        _ => brand,
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(String::new(), |kb| {
            format!(", {:.0} GB RAM", kb / 1_048_576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or(String::new(), |k| format!(", Linux {}", k.trim()));
    let rustc = first_line("rustc", &["--version"]).unwrap_or_default();
    let redis = first_line("redis-server", &["--version"])
        .and_then(|v| {
            v.split_whitespace()
                .find(|w| w.starts_with("v="))
                .map(str::to_string)
        })
        .map_or(String::from("no redis-server"), |v| {
            format!("redis-server {}", &v[2..])
        });
    format!("{model}, {cpus} logical CPUs{mem_gb}{kernel}; {rustc}; {redis}")
}

fn table(out: &mut String, group: &str, mut rows: Vec<Row>) {
    rows.sort_by(|a, b| {
        let dk = |r: &Row| !r.function.starts_with("dispatchkit");
        (dk(a), &a.function, &a.param).cmp(&(dk(b), &b.function, &b.param))
    });
    let _ = writeln!(out, "**{group}**\n");
    let _ = writeln!(
        out,
        "| implementation | param | time / iter | throughput | dispatchkit ÷ this |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.function.starts_with("dispatchkit"))
        .collect();
    for r in &rows {
        let reference = ours.iter().find(|o| o.param == r.param).or(ours.first());
        let ratio = match reference {
            Some(o) if !r.function.starts_with("dispatchkit") => ratio(o.per_sec() / r.per_sec()),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {ratio} |",
            r.function,
            r.param,
            time(r.ns),
            human(r.per_sec())
        );
    }
    let _ = writeln!(out);
}

/// The headline table (markdown), from the same rows.
fn headline(groups: &BTreeMap<String, Vec<Row>>) -> String {
    let mut out = String::from("| workload | dispatchkit | peer | ratio |\n|---|---:|---:|---:|\n");
    let find = |g: &str, f: &str, p: &str| {
        groups
            .get(g)
            .and_then(|rows| rows.iter().find(|r| r.function == f && r.param == p))
    };
    for &(g, ours, peer, param, what) in HEADLINE {
        // A peer measured at its own parameter (Redis: one client, a
        // pipeline; two scripts for one) is compared with dispatchkit's
        // row of the same parameter, else its 1-thread row.
        let any = |f: &str| {
            groups
                .get(g)
                .and_then(|rows| rows.iter().find(|r| r.function == f))
        };
        let Some(pr) = find(g, peer, param).or_else(|| any(peer)) else {
            continue;
        };
        let Some(o) = find(g, ours, param).or_else(|| find(g, ours, "1t")) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {what} (`{g}`) | {} ({}) | {} {} ({}) | {} |",
            human(o.per_sec()),
            o.param,
            peer,
            human(pr.per_sec()),
            pr.param,
            ratio(o.per_sec() / pr.per_sec())
        );
    }
    out
}

fn notes(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir.join("notes")) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "**{name} bench, printed beside the timings**\n\n```text\n{}\n```\n",
            text.trim_end()
        );
    }
}

fn city(path: &Path, out: &mut String) {
    let Some(r) = read(path) else { return };
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let when = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_or(String::new(), |t| format!(", {} UTC", utc(t)));
    let _ = writeln!(
        out,
        "## The main job\n\nThe last `cargo run --release --example city` on this machine{when} \
         (seed {}, {} drivers, {} simulated minutes{}): **{:.1} s wall**, {} location updates \
         at {} through the batch API, {} ride requests and {} delivery orders through the \
         limiter, caches, matching, pricing and settlement. Every figure of the run is in \
         `target/city/report.json`.\n",
        r["run"]["seed"],
        r["run"]["drivers"],
        r["run"]["minutes"],
        if r["run"]["quick"].as_bool() == Some(true) {
            ", `--quick`"
        } else {
            ""
        },
        f(&r["wall"]["total_secs"]),
        r["fleet"]["location_updates"],
        human(f(&r["wall"]["updates_per_sec"])),
        r["rides"]["requests"],
        r["deliveries"]["orders"],
    );
}

const START: &str =
    "<!-- headline: generated by `cargo run --release --example bench_report -- --write` -->";
const END: &str = "<!-- /headline -->";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let write = args.iter().any(|a| a == "--write");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let groups = rows_by_group(&dir);
    if groups.is_empty() {
        eprintln!(
            "no criterion results under {}: run `cargo bench` first",
            dir.display()
        );
        std::process::exit(1);
    }
    let times: Vec<SystemTime> = groups
        .values()
        .flatten()
        .filter_map(|r| r.modified)
        .collect();
    let span = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => format!("{} – {} UTC", utc(*a), utc(*b)),
        _ => "unknown time".into(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# dispatchkit benchmarks\n\n\
         Generated by `cargo run --release --example bench_report -- --write` from criterion's \
         results; do not edit by hand.\n\n\
         - **When**: {span} (the results' file times).\n\
         - **Machine**: {}.\n\
         - **How**: `cargo bench` (every group puts dispatchkit beside the peer a user would \
         pick instead, in the same run); `dispatchkit ÷ this` is how many times dispatchkit's \
         throughput (same parameter) exceeds the peer's, below 1.0× the peer is faster. \
         \"2t\" rows are two threads started together (total operations over wall time). \
         The workloads come from `dispatchkit::workload`: 1M drivers in 20 metros (geo, \
         matching, pricing), Zipf(1.0) keys (ratelimit over 100k keys, cache over 1M keys \
         with capacity 100k).\n\n\
         ## Headline\n\n{}\n## Every group\n",
        machine(),
        headline(&groups)
    );
    for (group, rows) in groups.clone() {
        if QUALITY_GROUPS.contains(&group.as_str()) {
            continue;
        }
        table(&mut out, &group, rows);
    }
    let _ = writeln!(out, "## Side results\n");
    notes(&dir, &mut out);
    city(&dir.join("../city/report.json"), &mut out);
    if !write {
        print!("{out}");
        return;
    }
    if let Err(e) = std::fs::write("BENCHMARKS.md", &out) {
        eprintln!("cannot write BENCHMARKS.md: {e}");
        std::process::exit(1);
    }
    let readme = std::fs::read_to_string("README.md").unwrap_or_default();
    match (readme.find(START), readme.find(END)) {
        (Some(a), Some(b)) if a < b => {
            let new = format!(
                "{}{START}\n\n{}\nMeasured {span} on {}; every group: [BENCHMARKS.md](BENCHMARKS.md).\n\n{}",
                &readme[..a],
                headline(&groups),
                machine(),
                &readme[b..]
            );
            if let Err(e) = std::fs::write("README.md", new) {
                eprintln!("cannot write README.md: {e}");
                std::process::exit(1);
            }
        }
        _ => eprintln!("README.md has no headline markers; only BENCHMARKS.md written"),
    }
    println!("wrote BENCHMARKS.md and the README headline table");
}
