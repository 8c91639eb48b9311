//! The main demonstration: one simulated stretch of platform time over the
//! reference workload, every dispatchkit module working together — live
//! driver locations, rate limits, tiered caches, ride matching, delivery
//! batching and routing, surge, fares and exact payment splits.
//!
//! ```text
//! cargo run --release --example city                         # 1M drivers, 5 minutes
//! cargo run --release --example city -- --quick              # CI size
//! cargo run --release --example city -- --metro Tokyo --seed 7
//! cargo run --release --example city -- --backend redis     # the index on Redis
//! ```
//!
//! It prints a report and writes `target/city/report.json` and
//! `target/city/map.svg`. `sim.rs` holds the timeline; one file per
//! concern: `fleet.rs` (drivers, location rounds), `index.rs` (the driver
//! index: in-process or Redis), `policy.rs` (rate
//! limits), `stores.rs` (tiered caches), `markets.rs` (prices), `surge.rs`,
//! `rides.rs`, `orders.rs`, `trace.rs` (GPS traces), `ledger.rs`,
//! `report.rs`, `map.rs`.

mod args;
mod fleet;
mod index;
mod ledger;
mod map;
mod markets;
mod offers;
mod orders;
mod policy;
mod report;
mod rides;
mod sim;
mod stores;
mod surge;
mod trace;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &args::Options) -> Result<(), Box<dyn std::error::Error>> {
    let out = sim::run(opts)?;
    print!("{}", out.report.text());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/city");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&out.report)?,
    )?;
    std::fs::write(dir.join("map.svg"), &out.svg)?;
    println!(
        "\nwrote {} and {}",
        dir.join("report.json").display(),
        dir.join("map.svg").display()
    );
    Ok(())
}
