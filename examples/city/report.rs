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
