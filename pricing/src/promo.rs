//! Promo codes: definitions, validation, stacking rules and per-user use
//! limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::hash::FastMap;
use crate::{Bps, Money, PricingError, Rounding};

/// A customer, for per-user promo limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserId(pub u64);

/// What a promo takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PromoKind {
    /// A percentage of the subtotal (order items, or a ride's trip fare),
    /// at most `cap` when given.
    PercentOff {
        /// The percentage, at most 100 %.
        off: Bps,
        /// Largest discount.
        cap: Option<Money>,
    },
    /// A fixed amount off the subtotal (never below zero).
    FixedOff {
        /// The amount.
        off: Money,
    },
    /// The delivery fee is waived (delivery orders only).
    FreeDelivery,
}

/// Whether a promo combines with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Stacking {
    /// Used alone only.
    #[default]
    Exclusive,
    /// Combines with other stackable promos (at most one of each kind).
    Stackable,
}

/// A promo code and its conditions.
///
/// Not serde-enabled: `expires_at` is an [`Instant`], which has no portable
/// serialised form; build promos from your own stored form with a clock
/// reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promo {
    /// The code customers type.
    pub code: String,
    /// What it takes off.
    pub kind: PromoKind,
    /// Least subtotal it applies to.
    pub min_subtotal: Option<Money>,
    /// From this instant on the promo is expired.
    pub expires_at: Option<Instant>,
    /// Most redemptions per user.
    pub per_user_limit: Option<u32>,
    /// Stacking rule.
    pub stacking: Stacking,
}

impl Promo {
    /// A promo of `kind`: no minimum, no expiry, no limit, exclusive.
    pub fn new(code: &str, kind: PromoKind) -> Self {
        Self {
            code: code.to_string(),
            kind,
            min_subtotal: None,
            expires_at: None,
            per_user_limit: None,
            stacking: Stacking::Exclusive,
        }
    }

    /// Checks the definition.
    ///
    /// # Errors
    /// [`PricingError::InvalidPromo`] for an empty code or a percentage
    /// above 100 %; [`PricingError::NegativeAmount`] for a negative cap,
    /// amount or minimum; [`PricingError::CurrencyMismatch`] when the
    /// amounts of one promo are in different currencies.
    pub fn validate(&self) -> Result<(), PricingError> {
        if self.code.is_empty() {
            return Err(PricingError::InvalidPromo {
                code: self.code.clone(),
                reason: "the code must not be empty",
            });
        }
        let mut amounts: Vec<(&str, Money)> = Vec::with_capacity(2);
        match self.kind {
            PromoKind::PercentOff { off, cap } => {
                if off > Bps::FULL {
                    return Err(PricingError::InvalidPromo {
                        code: self.code.clone(),
                        reason: "a percentage off cannot exceed 100%",
                    });
                }
                amounts.extend(cap.map(|c| ("promo cap", c)));
            }
            PromoKind::FixedOff { off } => amounts.push(("promo amount", off)),
            PromoKind::FreeDelivery => {}
        }
        amounts.extend(self.min_subtotal.map(|m| ("promo minimum subtotal", m)));
        for (what, m) in &amounts {
            m.non_negative(what)?;
            m.same_currency(amounts[0].1.currency())?;
        }
        Ok(())
    }

    fn kind_index(&self) -> usize {
        match self.kind {
            PromoKind::PercentOff { .. } => 0,
            PromoKind::FixedOff { .. } => 1,
            PromoKind::FreeDelivery => 2,
        }
    }
}

/// A combination of promos that passed the expiry, use-limit and stacking
/// checks of a [`PromoBook`] (or no promo). The minimum-subtotal check needs
/// the subtotal and happens when pricing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromoSelection {
    promos: Vec<Promo>,
}

/// Proof that [`PromoBook::redeem_at`] counted one use of each promo of a
/// selection for one user: what [`PromoBook::release`] takes to give the
/// uses back. It cannot be copied or made from a checked selection, and
/// release consumes it, so a use is given back at most once and only after
/// it was counted (a selection from [`PromoBook::check_at`] was never
/// counted; releasing it would let a user redeem a once-only promo again
/// and again).
///
/// It dereferences to its [`PromoSelection`] for pricing.
///
/// ```compile_fail
/// # use std::time::Instant;
/// # use dispatchkit_pricing::*;
/// # let book = PromoBook::new();
/// let checked = book.check_at(&[], UserId(1), Instant::now()).unwrap();
/// book.release(checked); // a checked selection is not a Redemption
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use = "release() a redemption whose purchase is cancelled, or keep it"]
pub struct Redemption {
    selection: PromoSelection,
    user: UserId,
    book: u64,
}

impl Redemption {
    /// The redeemed promos.
    pub fn selection(&self) -> &PromoSelection {
        &self.selection
    }

    /// Who redeemed them.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The selection, keeping the uses counted for good (the purchase went
    /// through).
    pub fn into_selection(self) -> PromoSelection {
        self.selection
    }
}

impl std::ops::Deref for Redemption {
    type Target = PromoSelection;

    fn deref(&self) -> &PromoSelection {
        &self.selection
    }
}

/// Ids of promo books, so a redemption is released only to its own book.
static NEXT_BOOK: AtomicU64 = AtomicU64::new(1);

/// Discounts a [`PromoSelection`] gives on one purchase (both `>= 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Discounts {
    /// Off the subtotal, at most the subtotal.
    pub subtotal: Money,
    /// Off the delivery fee, at most the fee.
    pub delivery: Money,
}

impl PromoSelection {
    /// No promo.
    pub fn none() -> Self {
        Self::default()
    }

    /// The promos, in the order they were given.
    pub fn promos(&self) -> &[Promo] {
        &self.promos
    }

    /// `true` without promos.
    pub fn is_empty(&self) -> bool {
        self.promos.is_empty()
    }

    /// Discounts on a purchase whose discountable subtotal is `subtotal`;
    /// `delivery_fee` is `None` for rides (no delivery to waive).
    pub(crate) fn discounts(
        &self,
        subtotal: Money,
        delivery_fee: Option<Money>,
        rounding: Rounding,
    ) -> Result<Discounts, PricingError> {
        let zero = Money::zero(subtotal.currency());
        let mut off = zero;
        let mut delivery = zero;
        for p in &self.promos {
            if let Some(min) = p.min_subtotal {
                min.same_currency(subtotal.currency())?;
                if subtotal.minor() < min.minor() {
                    return Err(PricingError::PromoMinimumNotMet {
                        code: p.code.clone(),
                        subtotal,
                        minimum: min,
                    });
                }
            }
            match p.kind {
                PromoKind::PercentOff { off: pct, cap } => {
                    let mut d = subtotal.mul_bps(pct, rounding)?;
                    if let Some(cap) = cap {
                        d = d.min(cap)?;
                    }
                    off = off.checked_add(d)?;
                }
                PromoKind::FixedOff { off: amount } => off = off.checked_add(amount)?,
                PromoKind::FreeDelivery => match delivery_fee {
                    Some(fee) => delivery = fee,
                    None => {
                        return Err(PricingError::PromoNotApplicable {
                            code: p.code.clone(),
                            reason: "free delivery applies to delivery orders only",
                        });
                    }
                },
            }
        }
        Ok(Discounts {
            subtotal: off.min(subtotal)?.max(zero)?,
            delivery,
        })
    }
}

/// All promo codes and how often each user redeemed each; `Send + Sync`.
///
/// [`PromoBook::check_at`] validates a combination without using it;
/// [`PromoBook::redeem_at`] validates and counts it atomically, so
/// concurrent redemptions never exceed a per-user limit.
///
/// Stacking rules: a code may appear once; an [`Stacking::Exclusive`]
/// promo is used alone; stackable promos combine, at most one of each
/// [`PromoKind`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use dispatchkit_pricing::{Bps, Currency, Money, PricingError, Promo, PromoBook, PromoKind, UserId};
///
/// let t0 = Instant::now();
/// let mut book = PromoBook::new();
/// let mut p = Promo::new("WELCOME", PromoKind::PercentOff { off: Bps::percent(20), cap: None });
/// p.per_user_limit = Some(1);
/// p.expires_at = Some(t0 + Duration::from_secs(3600));
/// book.insert(p)?;
///
/// let alice = UserId(1);
/// let first = book.redeem_at(&["WELCOME"], alice, t0)?;
/// assert!(matches!(book.redeem_at(&["WELCOME"], alice, t0), Err(PricingError::PromoUsageExceeded { .. })));
/// book.release(first)?; // the order was cancelled: the use is given back
/// let _kept = book.redeem_at(&["WELCOME"], alice, t0)?;
/// assert!(matches!(
///     book.check_at(&["WELCOME"], UserId(2), t0 + Duration::from_secs(7200)),
///     Err(PricingError::PromoExpired { .. })
/// ));
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Debug)]
pub struct PromoBook {
    promos: Vec<Promo>,
    by_code: FastMap<String, u32>,
    uses: Mutex<FastMap<(u32, UserId), u32>>,
    lock_waits: AtomicU64,
    id: u64,
}

impl Default for PromoBook {
    fn default() -> Self {
        Self {
            promos: Vec::new(),
            by_code: FastMap::default(),
            uses: Mutex::default(),
            lock_waits: AtomicU64::new(0),
            id: NEXT_BOOK.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl PromoBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a promo.
    ///
    /// # Errors
    /// As [`Promo::validate`]; [`PricingError::InvalidPromo`] for a code
    /// already in the book. The book is unchanged on error.
    pub fn insert(&mut self, promo: Promo) -> Result<(), PricingError> {
        promo.validate()?;
        if self.by_code.contains_key(&promo.code) {
            return Err(PricingError::InvalidPromo {
                code: promo.code,
                reason: "a promo with this code already exists",
            });
        }
        let idx = u32::try_from(self.promos.len()).map_err(|_| PricingError::InvalidPromo {
            code: promo.code.clone(),
            reason: "too many promos",
        })?;
        self.by_code.insert(promo.code.clone(), idx);
        self.promos.push(promo);
        Ok(())
    }

    /// The promo with `code`.
    pub fn get(&self, code: &str) -> Option<&Promo> {
        self.by_code.get(code).map(|&i| &self.promos[i as usize])
    }

    /// How often `user` redeemed `code`.
    pub fn uses(&self, code: &str, user: UserId) -> u32 {
        self.by_code
            .get(code)
            .and_then(|&i| self.lock().get(&(i, user)).copied())
            .unwrap_or(0)
    }

    /// Times a caller found the use-count lock taken and had to wait (a
    /// contention figure for stress tests and monitoring).
    pub fn lock_waits(&self) -> u64 {
        self.lock_waits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, FastMap<(u32, UserId), u32>> {
        match self.uses.try_lock() {
            Some(g) => g,
            None => {
                self.lock_waits.fetch_add(1, Ordering::Relaxed);
                self.uses.lock()
            }
        }
    }

    /// Validates `codes` for `user` at `now` without counting a use:
    /// existence, expiry, per-user limit and stacking. O(k) for k codes
    /// (k² for the stacking check, k is small).
    ///
    /// # Errors
    /// [`PricingError::UnknownPromo`], [`PricingError::PromoExpired`],
    /// [`PricingError::PromoUsageExceeded`],
    /// [`PricingError::PromoNotStackable`].
    pub fn check_at(
        &self,
        codes: &[&str],
        user: UserId,
        now: Instant,
    ) -> Result<PromoSelection, PricingError> {
        let idx = self.resolve(codes, now)?;
        let uses = self.lock();
        self.check_limits(&idx, user, &uses)?;
        drop(uses);
        Ok(self.selection(&idx))
    }

    /// [`PromoBook::check_at`] with `Instant::now()`.
    ///
    /// # Errors
    /// As [`PromoBook::check_at`].
    pub fn check(&self, codes: &[&str], user: UserId) -> Result<PromoSelection, PricingError> {
        self.check_at(codes, user, Instant::now())
    }

    /// Validates `codes` like [`PromoBook::check_at`] and counts one use of
    /// each for `user`, atomically: concurrent calls never exceed a limit.
    /// Nothing is counted on error. The [`Redemption`] is what
    /// [`PromoBook::release`] takes back if the purchase is cancelled.
    ///
    /// # Errors
    /// As [`PromoBook::check_at`].
    pub fn redeem_at(
        &self,
        codes: &[&str],
        user: UserId,
        now: Instant,
    ) -> Result<Redemption, PricingError> {
        let idx = self.resolve(codes, now)?;
        let mut uses = self.lock();
        self.check_limits(&idx, user, &uses)?;
        for &i in &idx {
            *uses.entry((i, user)).or_insert(0) += 1;
        }
        drop(uses);
        Ok(Redemption {
            selection: self.selection(&idx),
            user,
            book: self.id,
        })
    }

    /// [`PromoBook::redeem_at`] with `Instant::now()`.
    ///
    /// # Errors
    /// As [`PromoBook::redeem_at`].
    pub fn redeem(&self, codes: &[&str], user: UserId) -> Result<Redemption, PricingError> {
        self.redeem_at(codes, user, Instant::now())
    }

    /// Gives back the uses a [`Redemption`] counted (an order that was
    /// cancelled before capture), consuming it.
    ///
    /// # Errors
    /// [`PricingError::ForeignRedemption`] for a redemption made by another
    /// book; nothing changes.
    pub fn release(&self, redemption: Redemption) -> Result<(), PricingError> {
        if redemption.book != self.id {
            return Err(PricingError::ForeignRedemption {
                user: redemption.user.0,
            });
        }
        let mut uses = self.lock();
        for p in &redemption.selection.promos {
            if let Some(&i) = self.by_code.get(&p.code)
                && let Some(n) = uses.get_mut(&(i, redemption.user))
            {
                // Counted by the redemption, so never below zero.
                debug_assert!(*n > 0);
                *n = n.saturating_sub(1);
            }
        }
        Ok(())
    }

    fn resolve(&self, codes: &[&str], now: Instant) -> Result<Vec<u32>, PricingError> {
        let mut idx: Vec<u32> = Vec::with_capacity(codes.len());
        for &code in codes {
            let &i = self
                .by_code
                .get(code)
                .ok_or_else(|| PricingError::UnknownPromo {
                    code: code.to_string(),
                })?;
            let p = &self.promos[i as usize];
            if let Some(exp) = p.expires_at
                && now >= exp
            {
                return Err(PricingError::PromoExpired {
                    code: p.code.clone(),
                    expired_for: now - exp,
                });
            }
            for &j in &idx {
                let q = &self.promos[j as usize];
                let reason = if i == j {
                    Some("the same code is listed twice")
                } else if p.stacking == Stacking::Exclusive || q.stacking == Stacking::Exclusive {
                    Some("an exclusive promo cannot be combined")
                } else if p.kind_index() == q.kind_index() {
                    Some("at most one promo of each kind")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(PricingError::PromoNotStackable {
                        code: p.code.clone(),
                        other: q.code.clone(),
                        reason,
                    });
                }
            }
            idx.push(i);
        }
        Ok(idx)
    }

    fn check_limits(
        &self,
        idx: &[u32],
        user: UserId,
        uses: &FastMap<(u32, UserId), u32>,
    ) -> Result<(), PricingError> {
        for &i in idx {
            let p = &self.promos[i as usize];
            let n = uses.get(&(i, user)).copied().unwrap_or(0);
            if let Some(limit) = p.per_user_limit
                && n >= limit
            {
                return Err(PricingError::PromoUsageExceeded {
                    code: p.code.clone(),
                    user: user.0,
                    uses: n,
                    limit,
                });
            }
        }
        Ok(())
    }

    fn selection(&self, idx: &[u32]) -> PromoSelection {
        PromoSelection {
            promos: idx
                .iter()
                .map(|&i| self.promos[i as usize].clone())
                .collect(),
        }
    }

    /// Checks the book's invariants: every code maps to its promo, every
    /// promo is valid, no count exceeds its limit.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        assert_eq!(self.by_code.len(), self.promos.len());
        for (code, &i) in &self.by_code {
            assert_eq!(&self.promos[i as usize].code, code);
            assert!(self.promos[i as usize].validate().is_ok());
        }
        for (&(i, _), &n) in self.uses.lock().iter() {
            if let Some(limit) = self.promos[i as usize].per_user_limit {
                assert!(n <= limit, "uses {n} over limit {limit}");
            }
        }
    }
}

#[cfg(test)]
#[path = "promo_tests.rs"]
mod tests;
