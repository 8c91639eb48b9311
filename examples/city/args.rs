//! Command-line options of the `city` example (no parser dependency: the
//! grammar is five flags).

use std::fmt;

/// What the simulation runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of drivers.
    pub drivers: usize,
    /// Seed of every generator.
    pub seed: u64,
    /// Small sizes, for CI.
    pub quick: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            drivers: 1_000_000,
            seed: 42,
            quick: false,
        }
    }
}

/// A command line the example does not understand.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
usage: cargo run --release --example city -- [OPTIONS]

options:
  --drivers N   number of drivers (default 1000000; --quick: 20000)
  --seed S      seed of every generator (default 42)
  --quick       small sizes, for CI
  -h, --help    this message";

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, UsageError> {
    let v = v.ok_or_else(|| UsageError(format!("{flag} needs a value")))?;
    v.parse()
        .map_err(|_| UsageError(format!("{flag}: `{v}` is not a valid value")))
}

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, UsageError> {
    let mut o = Options::default();
    let mut drivers = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut next = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "--drivers" => {
                let n: usize = value(&flag, next())?;
                if n == 0 {
                    return Err(UsageError("--drivers must be at least 1".into()));
                }
                drivers = Some(n);
            }
            "--seed" => o.seed = value(&flag, next())?,
            "--quick" => o.quick = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(UsageError(format!("unknown option `{other}`"))),
        }
    }
    o.drivers = drivers.unwrap_or(if o.quick { 20_000 } else { o.drivers });
    Ok(Some(o))
}
