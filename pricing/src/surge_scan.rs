//! The surge engine's supply scan: available drivers located in H3
//! cells by one or more threads, each with its own counts ([`Pass`]),
//! merged by the engine.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, TrySendError};
use std::time::Instant;

use h3o::CellIndex;
use parking_lot::Mutex;

use crate::SupplySource;
use crate::hash::FastMap;
use crate::locator::{BLOCK, Cursor, Located, Locator, NO_SLOT};

/// Drivers handed to a worker thread at a time (sequential sources).
const CHUNK: usize = 8_192;
/// Sources smaller than this are scanned on the calling thread only (a
/// worker's start-up and hand-off cost more than they save).
const PARALLEL_MIN: usize = 131_072;

/// Per-thread result of locating drivers.
pub(crate) struct Pass {
    pub(crate) by_slot: Vec<u32>,
    pub(crate) extra: FastMap<CellIndex, u32>,
    pub(crate) learner: Locator,
    pub(crate) skipped: usize,
    pub(crate) fast: usize,
}

impl Pass {
    fn new(loc: &Locator) -> Self {
        Self {
            by_slot: vec![0; loc.slots()],
            extra: FastMap::default(),
            learner: loc.learner(),
            skipped: 0,
            fast: 0,
        }
    }

    #[inline]
    fn add<'a>(&mut self, loc: &'a Locator, cur: &mut Cursor<'a>, lon: f64, lat: f64) {
        if !(lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0) {
            self.skipped += 1;
            return;
        }
        match loc.locate(cur, &mut self.learner, lon, lat) {
            Some(Located::Slot(s)) => {
                self.by_slot[s as usize] += 1;
                self.fast += 1;
            }
            Some(Located::Cell(c)) => *self.extra.entry(c).or_insert(0) += 1,
            None => self.skipped += 1,
        }
    }

    /// Locates `pts` in blocks: the interior sub-buckets of a block are
    /// resolved together ([`Locator::interior_block`]), the rest one by one.
    fn add_all(&mut self, loc: &Locator, pts: &[[f64; 2]]) {
        let mut cur = Cursor::default();
        let mut valid = [[0.0; 2]; BLOCK];
        let mut slots = [NO_SLOT; BLOCK];
        for block in pts.chunks(BLOCK) {
            let mut n = 0;
            for &[lon, lat] in block {
                if lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0 {
                    valid[n] = [lon, lat];
                    n += 1;
                } else {
                    self.skipped += 1;
                }
            }
            loc.interior_block(&valid[..n], &mut slots);
            for (&[lon, lat], &s) in valid[..n].iter().zip(&slots[..n]) {
                if s == NO_SLOT {
                    self.add(loc, &mut cur, lon, lat);
                } else {
                    self.by_slot[s as usize] += 1;
                    self.fast += 1;
                }
            }
        }
    }
}

/// Counts the drivers of `supply` per cell with up to `threads` threads
/// (one for sources smaller than `PARALLEL_MIN`). A source in several
/// parts ([`SupplySource::parts`]) is scanned by threads that claim its
/// parts in turn, each walking and locating its own; a sequential one is
/// walked by the calling thread, which hands chunks to the others.
pub(crate) fn scan<S: SupplySource + Sync + ?Sized>(
    loc: &Locator,
    supply: &S,
    now: Instant,
    threads: usize,
) -> Vec<Pass> {
    let threads = if supply.size_hint() < PARALLEL_MIN {
        1
    } else {
        threads.max(1)
    };
    let parts = supply.parts().max(1);
    if threads == 1 || parts > 1 {
        scan_parts(loc, supply, now, threads.min(parts), parts)
    } else {
        scan_streamed(loc, supply, now, threads)
    }
}

/// `threads` threads (the calling one and `threads − 1` workers) claim the
/// source's parts from a shared counter until none is left: the walk is
/// split as well as the locating, and a thread that draws dense parts
/// simply claims fewer.
fn scan_parts<S: SupplySource + Sync + ?Sized>(
    loc: &Locator,
    supply: &S,
    now: Instant,
    threads: usize,
    parts: usize,
) -> Vec<Pass> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut pass = Pass::new(loc);
        let mut buf: Vec<[f64; 2]> = Vec::with_capacity(BLOCK);
        loop {
            let part = next.fetch_add(1, Relaxed);
            if part >= parts {
                break;
            }
            supply.for_each_supply_in(part, now, &mut |lon, lat| {
                buf.push([lon, lat]);
                if buf.len() == BLOCK {
                    pass.add_all(loc, &buf);
                    buf.clear();
                }
            });
        }
        pass.add_all(loc, &buf);
        pass
    };
    if threads <= 1 {
        return vec![work()];
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut passes = vec![work()];
        for w in workers {
            match w.join() {
                Ok(p) => passes.push(p),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        passes
    })
}

/// A sequential source with `threads` threads: the calling thread walks
/// the source and hands chunks of positions to `threads − 1` workers over
/// a bounded channel; when every worker is busy it locates the chunk
/// itself, so nothing ever blocks on a slow or failed worker.
fn scan_streamed<S: SupplySource + ?Sized>(
    loc: &Locator,
    supply: &S,
    now: Instant,
    threads: usize,
) -> Vec<Pass> {
    let (tx, rx) = mpsc::sync_channel::<Vec<[f64; 2]>>(2 * threads);
    let (back_tx, back_rx) = mpsc::channel::<Vec<[f64; 2]>>();
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                let (rx, back_tx) = (&rx, back_tx.clone());
                s.spawn(move || {
                    let mut pass = Pass::new(loc);
                    loop {
                        let next = rx.lock().recv();
                        let Ok(mut buf) = next else { break };
                        pass.add_all(loc, &buf);
                        buf.clear();
                        // The receiver lives until the scope ends.
                        let _ = back_tx.send(buf);
                    }
                    pass
                })
            })
            .collect();
        let mut mine = Pass::new(loc);
        let mut buf: Vec<[f64; 2]> = Vec::with_capacity(CHUNK);
        supply.for_each_supply(now, &mut |lon, lat| {
            buf.push([lon, lat]);
            if buf.len() == CHUNK {
                let fresh = back_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                let full = std::mem::replace(&mut buf, fresh);
                if let Err(TrySendError::Full(mut b) | TrySendError::Disconnected(mut b)) =
                    tx.try_send(full)
                {
                    mine.add_all(loc, &b);
                    b.clear();
                    buf = b;
                }
            }
        });
        mine.add_all(loc, &buf);
        drop(tx);
        // Help drain what the workers have not taken yet, so the join only
        // waits for the chunks already in their hands.
        loop {
            let next = rx.lock().try_recv();
            let Ok(b) = next else { break };
            mine.add_all(loc, &b);
        }
        let mut passes = vec![mine];
        for w in workers {
            match w.join() {
                Ok(p) => passes.push(p),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        passes
    })
}
