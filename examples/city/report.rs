//! The run's report: one serde structure (written to
//! `target/city/report.json`) and its printed form.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ledger::Book;

/// Latency samples of one library call, for p50 / p99.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    ns: Vec<u64>,
    total_ns: u128,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos();
        self.total_ns += ns;
        self.ns.push(ns as u64);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.total_ns += other.total_ns;
        self.ns.extend(other.ns);
    }

    /// The stage's row of the report.
    pub fn stage(&mut self, name: &str, unit: &str, per_call: u64) -> Stage {
        self.ns.sort_unstable();
        let q = |f: f64| {
            self.ns
                .get(((self.ns.len().max(1) - 1) as f64 * f) as usize)
                .copied()
                .unwrap_or(0)
        };
        let secs = self.total_ns as f64 / 1e9;
        let calls = self.ns.len() as u64;
        Stage {
            name: name.to_string(),
            calls,
            unit: unit.to_string(),
            items: calls * per_call,
            secs,
            items_per_sec: if secs > 0.0 {
                (calls * per_call) as f64 / secs
            } else {
                0.0
            },
            p50_ns: q(0.5),
            p99_ns: q(0.99),
        }
    }
}

/// One stage: the wall time spent inside one library call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub calls: u64,
    /// What `items` counts ("updates", "requests", …).
    pub unit: String,
    pub items: u64,
    /// Wall time inside the calls.
    pub secs: f64,
    pub items_per_sec: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// What was simulated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub seed: u64,
    pub drivers: u64,
    pub minutes: u32,
    pub rounds: u64,
    pub metro: String,
    pub quick: bool,
    /// Ride requests and delivery orders per second (before the crowd).
    pub rides_per_sec: f64,
    pub orders_per_sec: f64,
    pub crowd_rides_per_sec: f64,
    pub scaling: String,
    /// Where the driver index lived.
    #[serde(default)]
    pub backend: String,
}

/// Wall-clock figures (they vary from run to run; everything else in the
/// report is determined by the options).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wall {
    pub total_secs: f64,
    pub setup_secs: f64,
    pub load_secs: f64,
    pub update_generation_secs: f64,
    pub update_apply_secs: f64,
    pub events_secs: f64,
    pub closing_secs: f64,
    pub output_secs: f64,
    pub updates_per_sec: f64,
    /// Limiter states held at the end: the keyed store drops full states
    /// as its randomly seeded shards fill, so this varies a little too.
    pub limiter_states: u64,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub drivers: u64,
    pub loaded: u64,
    pub location_updates: u64,
    pub stale_updates: u64,
    pub online_at_end: u64,
    pub available_at_end: u64,
    pub per_metro: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limiter {
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub denied_by: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    pub gets: u64,
    pub l1_hits: u64,
    pub l1_lookups: u64,
    pub l2_hits: u64,
    pub l2_lookups: u64,
    pub store_reads: u64,
    pub store_writes: u64,
    pub store_reads_avoided: u64,
    pub edits: u64,
    /// Simulated store time with the tiers, and without them (every GET
    /// and edit going to the store).
    pub store_secs: f64,
    pub store_secs_uncached: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rides {
    pub requests: u64,
    pub crowd_requests: u64,
    pub denied: u64,
    pub allowed: u64,
    pub assigned: u64,
    pub no_driver_in_range: u64,
    pub nobody_accepted: u64,
    pub open_at_end: u64,
    pub offers: u64,
    pub declines: u64,
    pub timeouts: u64,
    pub lost_races: u64,
    pub widened: u64,
    pub cancelled: u64,
    pub completed: u64,
    pub completed_in_stretch: u64,
    pub mean_pickup_eta_secs: f64,
    pub mean_time_to_accept_secs: f64,
    pub mean_trip_km: f64,
    pub promos_applied: u64,
    pub promos_refused: u64,
    /// Mean |final − quote| / quote over completed rides, percent.
    pub mean_quote_error_pct: f64,
    pub surged: u64,
    pub trace_fixes: u64,
    pub trace_fixes_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deliveries {
    pub orders: u64,
    pub denied: u64,
    pub allowed: u64,
    pub dispatched: u64,
    pub waiting_at_end: u64,
    pub batch_windows: u64,
    pub batches: u64,
    /// Batches of 1, 2 and 3 orders.
    pub batch_sizes: [u64; 3],
    pub assigned_batches: u64,
    pub unmatched_batches: u64,
    pub open_batches_at_end: u64,
    pub dasher_offers: u64,
    pub dasher_declines: u64,
    pub dasher_timeouts: u64,
    pub dasher_lost_races: u64,
    pub delivered: u64,
    pub cancelled_orders: u64,
    /// Orders of batches still offered when the stretch ended.
    pub unserved_at_end: u64,
    pub refunds_partial: u64,
    pub refunds_full: u64,
    pub promos_applied: u64,
    pub promos_refused: u64,
    /// Distance driven by the assigned batches (approach included) and by
    /// one dasher per order from the same starting points.
    pub batched_km: f64,
    pub solo_km: f64,
    pub mean_delivery_mins: f64,
    pub mean_offer_pay_usd_cents: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    pub minute: u32,
    pub available: u64,
    pub requests_in_window: u64,
    pub cells: u64,
    pub surging: u64,
    pub max_multiplier: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Surge {
    pub recomputes: Vec<Minute>,
    /// Cells per multiplier at the end ("1.50x", cells).
    pub distribution: Vec<(String, u64)>,
    /// The five hottest cells: cell, metro, ratio, demand, supply, multiplier.
    pub hottest: Vec<(String, String, f64, u32, u32, String)>,
    pub quotes_surged: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Map {
    pub path: String,
    pub metro: String,
    pub drivers_drawn: u64,
    pub density_cells: u64,
    pub surge_polygons: u64,
    pub routes: u64,
    pub route_lines: u64,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run: Run,
    pub wall: Wall,
    pub fleet: Fleet,
    pub limiter: Limiter,
    pub caches: Vec<Tier>,
    pub rides: Rides,
    pub deliveries: Deliveries,
    pub surge: Surge,
    pub ledger: Vec<Book>,
    pub map: Map,
}

impl Report {
    /// The printed form.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let r = &self.run;
        let _ = writeln!(
            s,
            "dispatchkit city simulation: {} drivers in 20 metros, {} simulated minute{} ({} rounds of 4 s), seed {}{}",
            group(r.drivers),
            r.minutes,
            if r.minutes == 1 { "" } else { "s" },
            r.rounds,
            r.seed,
            if r.quick { " (quick)" } else { "" }
        );
        let _ = writeln!(s, "{}", r.scaling);
        let _ = writeln!(s, "driver index: {}", r.backend);
        let w = &self.wall;
        let _ = writeln!(
            s,
            "wall time {:.1} s: setup {:.1} s (index load {:.2} s), location rounds {:.1} s (generate {:.1} + apply {:.1}), \
             events {:.1} s, closing the books {:.2} s, map + report {:.2} s",
            w.total_secs,
            w.setup_secs,
            w.load_secs,
            w.update_generation_secs + w.update_apply_secs,
            w.update_generation_secs,
            w.update_apply_secs,
            w.events_secs,
            w.closing_secs,
            w.output_secs
        );

        section(&mut s, "stages: wall time inside the library calls");
        let _ = writeln!(
            s,
            "  {:<40}{:>10} {:>9} {:>14} {:>10} {:>10}",
            "call", "calls", "secs", "throughput", "p50", "p99"
        );
        for st in &w.stages {
            let _ = writeln!(
                s,
                "  {:<40}{:>10} {:>9.3} {:>14} {:>10} {:>10}",
                st.name,
                group(st.calls),
                st.secs,
                format!("{} {}", rate(st.items_per_sec), st.unit),
                human_ns(st.p50_ns),
                human_ns(st.p99_ns)
            );
        }

        let _ = writeln!(
            s,
            "  (throughput = items / wall time inside the calls; for upsert_batch_at that time is summed over both update threads)"
        );

        let f = &self.fleet;
        section(&mut s, "drivers and location updates");
        metric(
            &mut s,
            "location updates (batch API, 2 threads)",
            format!(
                "{} in {:.1} s = {}/s ({} stale)",
                group(f.location_updates),
                w.update_apply_secs,
                rate(w.updates_per_sec),
                f.stale_updates
            ),
        );
        metric(
            &mut s,
            "update generation (workload rounds)",
            format!(
                "{} in {:.1} s = {}/s",
                group(f.location_updates),
                w.update_generation_secs,
                rate(f.location_updates as f64 / w.update_generation_secs.max(1e-9))
            ),
        );
        metric(
            &mut s,
            "online / available at the end",
            format!("{} / {}", group(f.online_at_end), group(f.available_at_end)),
        );
        let mut metros = f.per_metro.clone();
        metros.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for chunk in metros.chunks(5) {
            let cells: Vec<String> = chunk
                .iter()
                .map(|(m, n)| format!("{m} {}", group(*n)))
                .collect();
            let _ = writeln!(s, "    {}", cells.join(" · "));
        }

        let l = &self.limiter;
        section(
            &mut s,
            "rate limiting (per user AND per IP, one atomic check)",
        );
        metric(
            &mut s,
            "requests",
            format!(
                "{}: {} allowed, {} denied with 429 ({:.2} %)",
                group(l.requests),
                group(l.allowed),
                group(l.denied),
                pct(l.denied, l.requests)
            ),
        );
        for (rule, n) in &l.denied_by {
            metric(&mut s, &format!("  denied by {rule}"), group(*n));
        }
        metric(&mut s, "limiter states held", group(w.limiter_states));

        section(
            &mut s,
            "tiered caches (8 app instances, shared L2, slow store)",
        );
        for t in &self.caches {
            let _ = writeln!(s, "  {}", t.name);
            metric(
                &mut s,
                "  L1 hit ratio",
                format!(
                    "{:.1} % of {} GETs",
                    pct(t.l1_hits, t.l1_lookups),
                    group(t.l1_lookups)
                ),
            );
            metric(
                &mut s,
                "  L2 hit ratio",
                format!(
                    "{:.1} % of {} L1 misses",
                    pct(t.l2_hits, t.l2_lookups),
                    group(t.l2_lookups)
                ),
            );
            metric(
                &mut s,
                "  store reads / calls avoided",
                format!(
                    "{} / {} ({:.2} % of GETs)",
                    group(t.store_reads),
                    group(t.store_reads_avoided),
                    pct(t.store_reads_avoided, t.gets)
                ),
            );
            metric(
                &mut s,
                "  edits / store writes",
                format!("{} / {}", t.edits, t.store_writes),
            );
            metric(
                &mut s,
                "  simulated store time",
                format!(
                    "{:.0} s with the tiers vs {:.0} s without",
                    t.store_secs, t.store_secs_uncached
                ),
            );
        }

        let rd = &self.rides;
        section(&mut s, "rides");
        metric(
            &mut s,
            "requests",
            format!(
                "{} ({} from the stadium crowd); {} allowed",
                group(rd.requests),
                group(rd.crowd_requests),
                group(rd.allowed)
            ),
        );
        metric(
            &mut s,
            "match rate",
            format!(
                "{:.1} % of allowed: {} assigned, {} nobody accepted, {} no driver within 10 km, {} still matching at the end",
                pct(rd.assigned, rd.allowed),
                group(rd.assigned),
                rd.nobody_accepted,
                rd.no_driver_in_range,
                rd.open_at_end
            ),
        );
        metric(
            &mut s,
            "mean pickup ETA / time to accept",
            format!(
                "{:.0} s / {:.1} s ({} widened to 10 km)",
                rd.mean_pickup_eta_secs, rd.mean_time_to_accept_secs, rd.widened
            ),
        );
        metric(
            &mut s,
            "offers / declines / timeouts / lost",
            format!(
                "{} / {} / {} / {}",
                group(rd.offers),
                group(rd.declines),
                group(rd.timeouts),
                rd.lost_races
            ),
        );
        metric(
            &mut s,
            "trips",
            format!(
                "{} completed ({} within the stretch), {} cancelled late; mean {:.1} km",
                group(rd.completed),
                group(rd.completed_in_stretch),
                rd.cancelled,
                rd.mean_trip_km
            ),
        );
        metric(
            &mut s,
            "GPS traces",
            format!(
                "{} fixes, {} wild fixes dropped; final fare vs upfront quote {:.1} % apart on average",
                group(rd.trace_fixes),
                rd.trace_fixes_dropped,
                rd.mean_quote_error_pct
            ),
        );
        metric(
            &mut s,
            "surged quotes / promos",
            format!(
                "{} / {} applied, {} refused (per-user limit)",
                group(rd.surged),
                rd.promos_applied,
                rd.promos_refused
            ),
        );

        let d = &self.deliveries;
        section(&mut s, "deliveries");
        metric(
            &mut s,
            "orders",
            format!(
                "{}: {} allowed, {} dispatched in {} batch windows, {} waiting at the end",
                group(d.orders),
                group(d.allowed),
                group(d.dispatched),
                d.batch_windows,
                d.waiting_at_end
            ),
        );
        metric(
            &mut s,
            "batch sizes 1 / 2 / 3",
            format!(
                "{} / {} / {} ({} batches, mean {:.2} orders, {:.1} % of orders shared a dasher)",
                group(d.batch_sizes[0]),
                group(d.batch_sizes[1]),
                group(d.batch_sizes[2]),
                group(d.batches),
                d.dispatched as f64 / d.batches.max(1) as f64,
                pct(
                    d.dispatched - d.batch_sizes[0].min(d.dispatched),
                    d.dispatched
                )
            ),
        );
        metric(
            &mut s,
            "dasher matching",
            format!(
                "{} assigned, {} unmatched, {} open at the end; {} offers, {} declines, {} timeouts, {} lost",
                group(d.assigned_batches),
                d.unmatched_batches,
                d.open_batches_at_end,
                group(d.dasher_offers),
                group(d.dasher_declines),
                group(d.dasher_timeouts),
                d.dasher_lost_races
            ),
        );
        metric(
            &mut s,
            "km: batched vs one order per dasher",
            format!(
                "{:.0} km vs {:.0} km: {:.0} km saved ({:.1} %)",
                d.batched_km,
                d.solo_km,
                d.solo_km - d.batched_km,
                100.0 * (d.solo_km - d.batched_km) / d.solo_km.max(1e-9)
            ),
        );
        metric(
            &mut s,
            "delivered",
            format!(
                "{} (mean {:.1} min after ordering), {} cancelled unmatched; refunds {} partial, {} full",
                group(d.delivered),
                d.mean_delivery_mins,
                d.cancelled_orders,
                d.refunds_partial,
                d.refunds_full
            ),
        );
        metric(
            &mut s,
            "promos",
            format!("{} applied, {} refused", d.promos_applied, d.promos_refused),
        );

        let su = &self.surge;
        section(
            &mut s,
            "surge (H3 resolution 7, recomputed every simulated minute)",
        );
        for m in &su.recomputes {
            let _ = writeln!(
                s,
                "  minute {:>2}: {:>9} ride drivers available, {:>7} requests in the 5 min window, {:>6} cells, {:>4} surging, max {}",
                m.minute,
                group(m.available),
                group(m.requests_in_window),
                m.cells,
                m.surging,
                m.max_multiplier
            );
        }
        let _ = writeln!(
            s,
            "  distribution at the end: {}",
            su.distribution
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (cell, metro, ratio, demand, supply, m) in &su.hottest {
            let _ = writeln!(
                s,
                "    {cell}  {metro:<13} ratio {ratio:>6.2}  demand {demand:>5}  supply {supply:>4}  {m}"
            );
        }

        section(
            &mut s,
            "ledger (paid = drivers + couriers + restaurants + platform + refunded)",
        );
        for b in &self.ledger {
            let _ = writeln!(
                s,
                "  {}: {} rides, {} cancellations, {} orders; paid {} = drivers {} + couriers {} + restaurants {} + platform {} + refunded {}  [{}]",
                b.currency,
                b.rides,
                b.cancellations,
                b.orders,
                b.show(b.paid),
                b.show(b.drivers),
                b.show(b.couriers),
                b.show(b.restaurants),
                b.show(b.platform),
                b.show(b.refunded),
                if b.imbalance() == 0 {
                    "balanced".to_string()
                } else {
                    format!("OFF BY {}", b.show(b.imbalance()))
                }
            );
        }
        let balanced = self.ledger.iter().filter(|b| b.imbalance() == 0).count();
        metric(
            &mut s,
            "ledger",
            format!(
                "{balanced} of {} currencies balance to the minor unit",
                self.ledger.len()
            ),
        );

        let m = &self.map;
        section(&mut s, "map");
        let _ = writeln!(
            s,
            "  {}: {} — {} drivers in {} density cells, {} surge hexagons, {} routes",
            m.path,
            m.metro,
            group(m.drivers_drawn),
            m.density_cells,
            m.surge_polygons,
            m.routes
        );
        s
    }
}

fn section(s: &mut String, title: &str) {
    let _ = writeln!(s, "\n== {title} ==");
}

fn metric(s: &mut String, name: &str, value: String) {
    let _ = writeln!(s, "  {name:<40}{value}");
}

pub fn pct(a: u64, b: u64) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with an SI suffix ("12.3 M").
pub fn rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.1}")
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
