//! The printed report: one section per stage.

/// Formats `n / secs` with an SI suffix ("12.3 M/s").
pub fn rate(n: usize, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-9);
    if r >= 1e9 {
        format!("{:.2} G/s", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.1} /s")
    }
}

/// One stage's lines of the report.
#[derive(Debug)]
pub struct Section {
    title: &'static str,
    lines: Vec<String>,
}

impl Section {
    pub fn new(title: &'static str) -> Self {
        Self {
            title,
            lines: Vec::new(),
        }
    }

    pub fn line(&mut self, l: String) {
        self.lines.push(l);
    }

    pub fn metric(&mut self, name: &str, value: String) {
        self.lines.push(format!("  {name:<34}{value}"));
    }

    pub fn print(&self) {
        println!("== {} ==", self.title);
        for l in &self.lines {
            println!("{l}");
        }
        println!();
    }
}

/// Latency samples of one operation, for p50 / p99.
#[derive(Debug, Default)]
pub struct Latencies {
    ns: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, d: std::time::Duration) {
        self.ns.push(d.as_nanos() as u64);
    }

    /// "p50 1.2 µs, p99 3.4 µs".
    pub fn summary(&mut self) -> String {
        if self.ns.is_empty() {
            return "n/a".into();
        }
        self.ns.sort_unstable();
        let q = |f: f64| self.ns[((self.ns.len() - 1) as f64 * f) as usize];
        format!("p50 {}, p99 {}", human_ns(q(0.5)), human_ns(q(0.99)))
    }
}

fn human_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}
