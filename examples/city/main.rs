//! The main demonstration: a simulated stretch of platform time over the
//! reference workload, every dispatchkit module working together.
//!
//! ```text
//! cargo run --release --example city                 # 1M drivers
//! cargo run --release --example city -- --quick      # CI size
//! ```

mod args;
mod cache;
mod fleet;
mod geo;
mod matching;
mod pricing;
mod ratelimit;
mod report;

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
    println!(
        "dispatchkit city simulation: {} drivers, seed {}{}\n",
        opts.drivers,
        opts.seed,
        if opts.quick { " (quick)" } else { "" }
    );
    let t0 = std::time::Instant::now();
    let (fleet, mut updates, section) = fleet::run(opts)?;
    section.print();
    let (geo, section) = geo::run(opts, &fleet, &mut updates, t0)?;
    section.print();
    println!(
        "{} drivers online at the end of the simulated stretch",
        geo.index.live_len_at(geo.now)
    );
    matching::run(opts, &fleet, &geo, &mut updates)?.print();
    pricing::run(opts, &fleet, &mut updates, &geo)?.print();
    ratelimit::run(opts)?.print();
    cache::run(opts)?.print();
    Ok(())
}
