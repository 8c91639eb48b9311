//! Reference models written plainly: each keeps the log of its grants
//! `(effective time, cost)` and decides from the algorithm's definition by
//! scanning it. O(log length) per decision, no cleverness.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gcra,
    Fixed,
    Log,
    Counter,
}

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub kind: Kind,
    pub limit: u64,
    pub burst: u64,
    /// Window length (ns).
    pub w: u64,
    /// GCRA emission interval (ns).
    pub t: u64,
    pub log: Vec<(u64, u64)>,
    pub seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Out {
    pub allowed: bool,
    pub remaining: u64,
    /// Effective time of a successful retry (denials; not for Counter).
    pub retry_at: Option<u64>,
    pub t_eff: u64,
}

impl Model {
    pub fn new(kind: Kind, limit: u32, burst: u32, w: u64) -> Self {
        Self {
            kind,
            limit: u64::from(limit),
            burst: u64::from(burst),
            w,
            t: w.div_ceil(u64::from(limit)).max(1),
            log: Vec::new(),
            seen: 0,
        }
    }

    pub fn capacity(&self) -> u64 {
        if self.kind == Kind::Gcra {
            self.burst
        } else {
            self.limit
        }
    }

    /// Units granted at times in `lo..=hi`.
    fn sum(&self, f: impl Fn(u64) -> bool) -> u64 {
        self.log
            .iter()
            .filter(|&&(g, _)| f(g))
            .map(|&(_, c)| c)
            .sum()
    }

    fn fits(&self, t: u64, c: u64) -> bool {
        match self.kind {
            Kind::Gcra => {
                // For every grant j: (S_j + c − burst)·T ≤ t − g_j.
                c <= self.burst
                    && (0..self.log.len()).all(|j| {
                        let s: u64 = self.log[j..].iter().map(|&(_, c)| c).sum();
                        (s as i128 + c as i128 - self.burst as i128) * self.t as i128
                            <= t as i128 - self.log[j].0 as i128
                    })
            }
            Kind::Fixed => self.sum(|g| g / self.w == t / self.w) + c <= self.limit,
            Kind::Log => self.sum(|g| g + self.w > t) + c <= self.limit,
            Kind::Counter => {
                let k = t / self.w;
                let e = t - k * self.w;
                let curr = self.sum(|g| g / self.w == k);
                let prev = if k == 0 {
                    0
                } else {
                    self.sum(|g| g / self.w == k - 1)
                };
                u128::from(prev) * u128::from(self.w - e)
                    + u128::from(curr + c) * u128::from(self.w)
                    <= u128::from(self.limit) * u128::from(self.w)
            }
        }
    }

    pub fn remaining(&self, t: u64) -> u64 {
        (0..=self.capacity())
            .rev()
            .find(|&r| r == 0 || self.fits(t, r))
            .unwrap_or(0)
    }

    fn retry_at(&self, t: u64, c: u64) -> Option<u64> {
        match self.kind {
            Kind::Gcra => Some(
                (0..self.log.len())
                    .map(|j| {
                        let s: u64 = self.log[j..].iter().map(|&(_, c)| c).sum();
                        (self.log[j].0 as i128
                            + (s as i128 + c as i128 - self.burst as i128) * self.t as i128)
                            .max(0) as u64
                    })
                    .max()
                    .unwrap_or(t)
                    .max(t),
            ),
            Kind::Fixed => Some((t / self.w + 1) * self.w),
            Kind::Log => {
                let mut live: Vec<(u64, u64)> = self
                    .log
                    .iter()
                    .copied()
                    .filter(|&(g, _)| g + self.w > t)
                    .collect();
                live.sort();
                let mut used: u64 = live.iter().map(|&(_, c)| c).sum();
                let mut at = t;
                for (g, cc) in live {
                    if used + c <= self.limit {
                        break;
                    }
                    used -= cc;
                    at = g + self.w;
                }
                Some(at)
            }
            Kind::Counter => None,
        }
    }

    /// Checks `c` at `now`; charges when `consume` and it fits.
    pub fn check(&mut self, now: u64, c: u64, consume: bool) -> Out {
        let t = now.max(self.seen);
        if consume {
            self.seen = t;
        }
        let allowed = self.fits(t, c);
        if allowed && consume {
            self.log.push((t, c));
        }
        Out {
            allowed,
            remaining: self.remaining(t),
            retry_at: if allowed { None } else { self.retry_at(t, c) },
            t_eff: t,
        }
    }
}

/// The central property: no window of the rule's length holds more than the
/// rule allows. `log` is the implementation's grants `(effective time, cost)`
/// in order.
pub(crate) fn assert_never_over_grants(m: &Model, log: &[(u64, u64)]) {
    for (i, &(gi, _)) in log.iter().enumerate() {
        match m.kind {
            Kind::Gcra => {
                // Closed window [g_i, g_k]: ≤ burst + ⌊(g_k − g_i)/T⌋.
                let mut s = 0;
                for &(gk, ck) in &log[i..] {
                    s += ck;
                    assert!(
                        s <= m.burst + (gk - gi) / m.t,
                        "GCRA over-granted in [{gi}, {gk}]: {s}"
                    );
                }
            }
            Kind::Fixed => {
                let s: u64 = log
                    .iter()
                    .filter(|&&(g, _)| g / m.w == gi / m.w)
                    .map(|&(_, c)| c)
                    .sum();
                assert!(s <= m.limit, "fixed window {} over-granted: {s}", gi / m.w);
            }
            Kind::Log => {
                let s: u64 = log
                    .iter()
                    .filter(|&&(g, _)| g <= gi && g + m.w > gi)
                    .map(|&(_, c)| c)
                    .sum();
                assert!(
                    s <= m.limit,
                    "sliding log over-granted in ({}, {gi}]: {s}",
                    gi.saturating_sub(m.w)
                );
            }
            Kind::Counter => {
                let aligned: u64 = log
                    .iter()
                    .filter(|&&(g, _)| g / m.w == gi / m.w)
                    .map(|&(_, c)| c)
                    .sum();
                assert!(
                    aligned <= m.limit,
                    "sliding counter aligned window over-granted: {aligned}"
                );
                let sliding: u64 = log
                    .iter()
                    .filter(|&&(g, _)| g <= gi && g + m.w > gi)
                    .map(|&(_, c)| c)
                    .sum();
                assert!(
                    sliding < 2 * m.limit,
                    "sliding counter beyond its bound: {sliding}"
                );
            }
        }
    }
}
