//! Stage 1: the reference workload.

use std::time::Instant;

use dispatchkit::workload::{Fleet, METROS, MetroConfig, UpdateStream, ZipfKeys};

use crate::args::Options;
use crate::report::{Section, rate};

/// Generates the metro fleet and measures the generators' own rates.
pub fn run(opts: &Options) -> Result<(Fleet, UpdateStream, Section), Box<dyn std::error::Error>> {
    let cfg = MetroConfig {
        drivers: opts.drivers,
        seed: opts.seed,
        ..MetroConfig::default()
    };
    let t = Instant::now();
    let fleet = Fleet::generate(&cfg)?;
    let gen_secs = t.elapsed().as_secs_f64();

    let mut updates = fleet.uniform_updates(opts.seed)?;
    let n_updates = opts.drivers.min(1_000_000);
    let t = Instant::now();
    let batch = updates.batch(n_updates);
    let update_secs = t.elapsed().as_secs_f64();
    debug_assert_eq!(batch.len(), n_updates);

    let n_keys = 1_000_000;
    let t = Instant::now();
    let keys = ZipfKeys::new(100_000, 1.0, opts.seed)?.take_vec(n_keys);
    let key_secs = t.elapsed().as_secs_f64();
    debug_assert_eq!(keys.len(), n_keys);

    let mut s = Section::new("workload");
    s.line(format!(
        "{} drivers in {} metros (sigma {:.0} km), generated in {:.0} ms",
        cfg.drivers,
        METROS.len(),
        cfg.sigma_m / 1000.0,
        gen_secs * 1e3
    ));
    let per_metro = fleet.per_metro();
    let mut order: Vec<usize> = (0..METROS.len()).collect();
    order.sort_by_key(|&m| std::cmp::Reverse(per_metro[m]));
    for chunk in order.chunks(4) {
        let cells: Vec<String> = chunk
            .iter()
            .map(|&m| format!("{:<14}{:>8}", METROS[m].name, per_metro[m]))
            .collect();
        s.line(format!("  {}", cells.join("   ")));
    }
    s.metric("location updates generated/s", rate(n_updates, update_secs));
    s.metric("zipf keys generated/s", rate(n_keys, key_secs));
    Ok((fleet, updates, s))
}
