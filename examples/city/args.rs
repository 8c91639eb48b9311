//! Command-line options of the `city` example (no parser dependency: the
//! grammar is six flags).

use std::fmt;

use dispatchkit::workload::{METROS, MetroConfig};

/// What the simulation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of drivers.
    pub drivers: usize,
    /// Simulated minutes of platform time (15 location rounds each).
    pub minutes: u32,
    /// Seed of every generator.
    pub seed: u64,
    /// Index into `METROS` of the metro drawn on the map (and where the
    /// stadium lets out).
    pub metro: usize,
    /// Small sizes, for CI.
    pub quick: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Where the driver index lives.
    pub backend: Backend,
}

/// Where the driver index lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The in-process `GeoIndex`.
    Memory,
    /// `RedisGeoIndex` on this URL, or on a server the example starts.
    Redis { url: Option<String> },
}

/// The metro drawn by default.
pub const DEFAULT_METRO: &str = "London";

impl Default for Options {
    fn default() -> Self {
        Self {
            drivers: 1_000_000,
            minutes: 5,
            seed: 42,
            metro: MetroConfig::metro_index(DEFAULT_METRO).unwrap_or(0),
            quick: false,
            progress: true,
            backend: Backend::Memory,
        }
    }
}

/// A command line the example does not understand.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
usage: cargo run --release --example city -- [OPTIONS]

options:
  --drivers N    number of drivers (default 1000000; --quick: 20000)
  --minutes M    simulated minutes, 1..=60 (default 5; --quick: 2)
  --seed S       seed of every generator (default 42)
  --metro NAME   the metro drawn on target/city/map.svg (default London);
                 one of the 20 metros of the reference workload, any case
  --quick        small sizes, for CI
  --backend B    where the driver index lives: memory (default) or redis
                 (a throwaway redis-server on a free port unless
                 --redis-url is given; default --drivers 100000)
  --redis-url U  the Redis server of --backend redis
  -h, --help     this message";

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, UsageError> {
    let v = v.ok_or_else(|| UsageError(format!("{flag} needs a value")))?;
    v.parse()
        .map_err(|_| UsageError(format!("{flag}: `{v}` is not a valid value")))
}

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, UsageError> {
    let mut o = Options::default();
    let (mut drivers, mut minutes) = (None, None);
    let (mut backend, mut url) = (None, None);
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
            "--minutes" => {
                let m: u32 = value(&flag, next())?;
                if !(1..=60).contains(&m) {
                    return Err(UsageError(format!("--minutes: {m} is not in 1..=60")));
                }
                minutes = Some(m);
            }
            "--seed" => o.seed = value(&flag, next())?,
            "--metro" => {
                let name: String = value(&flag, next())?;
                o.metro = MetroConfig::metro_index(&name).ok_or_else(|| {
                    let names: Vec<&str> = METROS.iter().map(|m| m.name).collect();
                    UsageError(format!(
                        "--metro: unknown metro `{name}` (one of: {})",
                        names.join(", ")
                    ))
                })?;
            }
            "--quick" => o.quick = true,
            "--backend" => {
                let b: String = value(&flag, next())?;
                backend = Some(match b.as_str() {
                    "memory" => Backend::Memory,
                    "redis" => Backend::Redis { url: None },
                    _ => {
                        return Err(UsageError(format!(
                            "--backend: `{b}` is not memory or redis"
                        )));
                    }
                });
            }
            "--redis-url" => url = Some(value::<String>(&flag, next())?),
            "-h" | "--help" => return Ok(None),
            other => return Err(UsageError(format!("unknown option `{other}`"))),
        }
    }
    o.backend = match (backend, url) {
        (Some(Backend::Redis { .. }), url) => Backend::Redis { url },
        (_, Some(_)) => {
            return Err(UsageError("--redis-url needs --backend redis".into()));
        }
        (b, None) => b.unwrap_or(Backend::Memory),
    };
    // One redis-server applies ~170k updates/s: the default fleet on Redis
    // is 100k drivers (1.5M updates per simulated minute).
    let default_drivers = match (&o.backend, o.quick) {
        (_, true) => 20_000,
        (Backend::Redis { .. }, false) => 100_000,
        (Backend::Memory, false) => o.drivers,
    };
    o.drivers = drivers.unwrap_or(default_drivers);
    o.minutes = minutes.unwrap_or(if o.quick { 2 } else { o.minutes });
    Ok(Some(o))
}
