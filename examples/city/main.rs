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
    let (_fleet, _updates, section) = fleet::run(opts)?;
    section.print();
    cache::run(opts)?.print();
    Ok(())
}
