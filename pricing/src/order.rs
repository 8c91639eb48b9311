//! Delivery orders: subtotal, delivery fee by distance tier, service fee,
//! small-order fee, tax, promos and tip.

use std::collections::BTreeMap;
use std::fmt;

use crate::hash::FastMap;
use crate::rounding::mul_div_round;
use crate::{Bps, Capture, Currency, Money, Multiplier, PricingError, PromoSelection, Rounding};

/// One line of an order: `quantity × unit_price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LineItem {
    /// Price of one unit, `>= 0`.
    pub unit_price: Money,
    /// Units, `>= 1`.
    pub quantity: u32,
}

/// Delivery fee for distances up to `up_to_m` (inclusive) metres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DistanceTier {
    /// Upper bound of the tier, metres.
    pub up_to_m: u32,
    /// Fee, minor units.
    pub fee: i64,
}

/// Service fee: `rate × subtotal`, clamped to `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceFee {
    /// Percentage of the subtotal.
    pub rate: Bps,
    /// Least fee, minor units.
    pub min: i64,
    /// Largest fee, minor units.
    pub max: i64,
}

/// Small-order fee: `fee` when the subtotal is below `below`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SmallOrderFee {
    /// Subtotal threshold, minor units.
    pub below: i64,
    /// Fee, minor units.
    pub fee: i64,
}

/// Tax of one jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaxRule {
    /// Rate on the taxable amount.
    pub rate: Bps,
    /// Whether delivery, service and small-order fees are taxable (items
    /// always are; tips never).
    pub on_fees: bool,
}

/// What the dasher earns for a delivery, before the tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DasherPay {
    /// Flat pay per delivery, minor units.
    pub base: i64,
    /// Per kilometre, minor units.
    pub per_km: i64,
    /// Per minute, minor units.
    pub per_minute: i64,
}

/// Plain data of a [`DeliveryPricing`] (the serde form); every amount in
/// minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeliveryPricingSpec {
    /// Currency of every amount.
    pub currency: Currency,
    /// Delivery fee tiers, strictly ascending `up_to_m`; further than the
    /// last is out of range.
    pub tiers: Vec<DistanceTier>,
    /// Service fee.
    pub service_fee: ServiceFee,
    /// Small-order fee.
    pub small_order: SmallOrderFee,
    /// Tax by jurisdiction name.
    pub taxes: BTreeMap<String, TaxRule>,
    /// Platform commission on the subtotal, taken from the restaurant.
    pub commission: Bps,
    /// Dasher pay.
    pub dasher: DasherPay,
    /// Rounding of computed amounts (default half-even).
    #[cfg_attr(feature = "serde", serde(default))]
    pub rounding: Rounding,
}

/// A delivery order to price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRequest<'a> {
    /// The items.
    pub items: &'a [LineItem],
    /// Restaurant to customer, metres.
    pub distance_m: u32,
    /// Estimated dasher time, seconds (for dasher pay).
    pub duration_s: u32,
    /// Tax jurisdiction.
    pub jurisdiction: &'a str,
    /// Surge multiplier on the delivery fee.
    pub surge: Multiplier,
    /// Tip for the dasher, `>= 0`.
    pub tip: Money,
}

/// Validated delivery pricing of one market.
///
/// ```
/// use std::collections::BTreeMap;
/// use dispatchkit_pricing::*;
///
/// let usd = |m| Money::new(m, Currency::USD);
/// let pricing = DeliveryPricing::new(DeliveryPricingSpec {
///     currency: Currency::USD,
///     tiers: vec![DistanceTier { up_to_m: 3_000, fee: 199 }, DistanceTier { up_to_m: 10_000, fee: 399 }],
///     service_fee: ServiceFee { rate: Bps(1_000), min: 200, max: 500 },
///     small_order: SmallOrderFee { below: 1_000, fee: 250 },
///     taxes: BTreeMap::from([("wa".to_string(), TaxRule { rate: Bps(1_000), on_fees: false })]),
///     commission: Bps(2_000),
///     dasher: DasherPay { base: 300, per_km: 50, per_minute: 10 },
///     rounding: Rounding::HalfEven,
/// })?;
/// let items = [LineItem { unit_price: usd(1_250), quantity: 2 }];
/// let order = OrderRequest {
///     items: &items, distance_m: 4_000, duration_s: 900, jurisdiction: "wa",
///     surge: Multiplier::ONE, tip: usd(300),
/// };
/// let total = pricing.price(&order, &PromoSelection::none())?;
/// // 25.00 items + 3.99 delivery + 2.50 service + 2.50 tax + 3.00 tip
/// assert_eq!(total.total(), usd(3_699));
/// let capture = total.capture()?;
/// let s = capture.split();
/// assert_eq!(s.restaurant.checked_add(s.dasher)?.checked_add(s.platform)?, usd(3_699));
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "DeliveryPricingSpec", into = "DeliveryPricingSpec")
)]
pub struct DeliveryPricing {
    spec: DeliveryPricingSpec,
    taxes: FastMap<String, TaxRule>,
}

impl PartialEq for DeliveryPricing {
    /// Equal specs price alike (the tax map is derived from the spec).
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl DeliveryPricing {
    /// Validates `spec`.
    ///
    /// # Errors
    /// [`PricingError::NegativeAmount`] naming a negative fee or pay;
    /// [`PricingError::InvalidConfig`] for no tiers, tiers not strictly
    /// ascending, `min > max`, or a rate above 100 %.
    pub fn new(spec: DeliveryPricingSpec) -> Result<Self, PricingError> {
        let neg = |what: &str, v: i64| {
            if v < 0 {
                Err(PricingError::negative(
                    what,
                    v,
                    "fees and pay cannot be negative",
                ))
            } else {
                Ok(())
            }
        };
        let cfg = |what, value, reason| PricingError::InvalidConfig {
            what,
            value,
            reason,
        };
        if spec.tiers.is_empty() {
            return Err(cfg("tiers", 0, "at least one delivery tier is needed"));
        }
        for (i, t) in spec.tiers.iter().enumerate() {
            neg("delivery tier fee", t.fee)?;
            if i > 0 && t.up_to_m <= spec.tiers[i - 1].up_to_m {
                return Err(cfg(
                    "tiers.up_to_m",
                    i64::from(t.up_to_m),
                    "tiers must be strictly ascending",
                ));
            }
        }
        let sf = spec.service_fee;
        neg("service fee min", sf.min)?;
        neg("service fee max", sf.max)?;
        if sf.min > sf.max {
            return Err(cfg("service_fee.min", sf.min, "must not exceed max"));
        }
        for (what, rate) in [
            ("service_fee.rate", sf.rate),
            ("commission", spec.commission),
        ] {
            if rate > Bps::FULL {
                return Err(cfg(what, i64::from(rate.0), "at most 10000 bps (100%)"));
            }
        }
        neg("small-order threshold", spec.small_order.below)?;
        neg("small-order fee", spec.small_order.fee)?;
        neg("dasher base pay", spec.dasher.base)?;
        neg("dasher per-km pay", spec.dasher.per_km)?;
        neg("dasher per-minute pay", spec.dasher.per_minute)?;
        for r in spec.taxes.values() {
            if r.rate > Bps::FULL {
                return Err(cfg(
                    "tax rate",
                    i64::from(r.rate.0),
                    "at most 10000 bps (100%)",
                ));
            }
        }
        let taxes = spec.taxes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Ok(Self { spec, taxes })
    }

    /// The configuration.
    pub fn spec(&self) -> &DeliveryPricingSpec {
        &self.spec
    }

    /// Currency of every amount.
    pub fn currency(&self) -> Currency {
        self.spec.currency
    }

    /// Prices `order` with `promos` (already checked by a
    /// [`PromoBook`](crate::PromoBook)). O(items), allocation-free.
    ///
    /// Amounts, each rounded once by the spec's rounding:
    /// `subtotal = Σ quantity × unit_price`;
    /// `discount` = promos on the subtotal (at most the subtotal);
    /// `delivery_fee = tier(distance) × surge`, waived by free delivery;
    /// `service_fee = clamp(subtotal × rate, min, max)`;
    /// `small_order_fee` when `subtotal < below`;
    /// `tax = rate × (subtotal − discount [+ fees after waiver])`;
    /// `total = subtotal − discount + fees + tax + tip`.
    /// For the split: `commission = subtotal × commission` (the restaurant
    /// is paid on the undiscounted subtotal: promos are platform-funded)
    /// and `dasher_pay = base + per_km × km + per_minute × min`.
    ///
    /// # Errors
    /// [`PricingError::InvalidOrder`] for no items or a zero quantity;
    /// [`PricingError::NegativeAmount`] for a negative unit price or tip;
    /// [`PricingError::CurrencyMismatch`];
    /// [`PricingError::UnknownJurisdiction`];
    /// [`PricingError::OutOfDeliveryRange`]; promo errors of
    /// [`PromoSelection`] (minimum subtotal); [`PricingError::Overflow`].
    pub fn price(
        &self,
        order: &OrderRequest<'_>,
        promos: &PromoSelection,
    ) -> Result<OrderTotal, PricingError> {
        let s = &self.spec;
        let cur = s.currency;
        let r = s.rounding;
        if order.items.is_empty() {
            return Err(PricingError::InvalidOrder {
                value: 0,
                reason: "an order needs at least one item",
            });
        }
        let mut subtotal = Money::zero(cur);
        for item in order.items {
            item.unit_price.same_currency(cur)?;
            item.unit_price.non_negative("unit_price")?;
            if item.quantity == 0 {
                return Err(PricingError::InvalidOrder {
                    value: 0,
                    reason: "item quantity must be at least 1",
                });
            }
            subtotal =
                subtotal.checked_add(item.unit_price.checked_mul(i64::from(item.quantity))?)?;
        }
        order.tip.same_currency(cur)?.non_negative("tip")?;
        let tax_rule = self.taxes.get(order.jurisdiction).ok_or_else(|| {
            PricingError::UnknownJurisdiction {
                jurisdiction: order.jurisdiction.to_string(),
            }
        })?;
        let tier = s
            .tiers
            .iter()
            .find(|t| order.distance_m <= t.up_to_m)
            .ok_or(PricingError::OutOfDeliveryRange {
                distance_m: order.distance_m,
                max_m: s.tiers[s.tiers.len() - 1].up_to_m,
            })?;
        let delivery_fee = Money::new(tier.fee, cur).mul_multiplier(order.surge, r)?;
        let service_fee = subtotal
            .mul_bps(s.service_fee.rate, r)?
            .max(Money::new(s.service_fee.min, cur))?
            .min(Money::new(s.service_fee.max, cur))?;
        let small_order_fee = if subtotal.minor() < s.small_order.below {
            s.small_order.fee
        } else {
            0
        };
        let d = promos.discounts(subtotal, Some(delivery_fee), r)?;
        let mut taxable = subtotal.checked_sub(d.subtotal)?;
        if tax_rule.on_fees {
            taxable = taxable
                .checked_add(delivery_fee.checked_sub(d.delivery)?)?
                .checked_add(service_fee)?
                .checked_add(Money::new(small_order_fee, cur))?;
        }
        let tax = taxable.mul_bps(tax_rule.rate, r)?;
        let total = Money::sum(
            cur,
            [
                subtotal,
                Money::new(-d.subtotal.minor(), cur),
                delivery_fee,
                Money::new(-d.delivery.minor(), cur),
                service_fee,
                Money::new(small_order_fee, cur),
                tax,
                order.tip,
            ],
        )?;
        let commission = subtotal.mul_bps(s.commission, r)?;
        let dp = s.dasher;
        let distance_pay = mul_div_round(dp.per_km, i64::from(order.distance_m), 1_000, r);
        let time_pay = mul_div_round(dp.per_minute, i64::from(order.duration_s), 60, r);
        let dasher_pay = match (distance_pay, time_pay) {
            (Some(a), Some(b)) => Money::sum(
                cur,
                [
                    Money::new(dp.base, cur),
                    Money::new(a, cur),
                    Money::new(b, cur),
                ],
            )?,
            _ => {
                return Err(PricingError::Overflow {
                    op: "dasher pay",
                    value: dp.per_km,
                });
            }
        };
        Ok(OrderTotal {
            currency: cur,
            subtotal: subtotal.minor(),
            discount: d.subtotal.minor(),
            delivery_fee: delivery_fee.minor(),
            delivery_discount: d.delivery.minor(),
            service_fee: service_fee.minor(),
            small_order_fee,
            tax: tax.minor(),
            tip: order.tip.minor(),
            total: total.minor(),
            commission: commission.minor(),
            dasher_pay: dasher_pay.minor(),
        })
    }
}

impl TryFrom<DeliveryPricingSpec> for DeliveryPricing {
    type Error = PricingError;

    fn try_from(spec: DeliveryPricingSpec) -> Result<Self, PricingError> {
        Self::new(spec)
    }
}

impl From<DeliveryPricing> for DeliveryPricingSpec {
    fn from(p: DeliveryPricing) -> Self {
        p.spec
    }
}

/// A priced delivery order: the customer's receipt and what the split
/// needs. `Copy`; the receipt lines sum exactly to the total.
///
/// Deserialising checks the same invariants (no negative part, the lines
/// sum to the total, discounts and commission within what they reduce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "OrderTotalData")
)]
pub struct OrderTotal {
    currency: Currency,
    subtotal: i64,
    discount: i64,
    delivery_fee: i64,
    delivery_discount: i64,
    service_fee: i64,
    small_order_fee: i64,
    tax: i64,
    tip: i64,
    total: i64,
    commission: i64,
    dasher_pay: i64,
}

/// The serialised form of an [`OrderTotal`], checked on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(rename = "OrderTotal", deny_unknown_fields)]
struct OrderTotalData {
    currency: Currency,
    subtotal: i64,
    discount: i64,
    delivery_fee: i64,
    delivery_discount: i64,
    service_fee: i64,
    small_order_fee: i64,
    tax: i64,
    tip: i64,
    total: i64,
    commission: i64,
    dasher_pay: i64,
}

#[cfg(feature = "serde")]
impl TryFrom<OrderTotalData> for OrderTotal {
    type Error = PricingError;
    fn try_from(d: OrderTotalData) -> Result<Self, PricingError> {
        let t = OrderTotal {
            currency: d.currency,
            subtotal: d.subtotal,
            discount: d.discount,
            delivery_fee: d.delivery_fee,
            delivery_discount: d.delivery_discount,
            service_fee: d.service_fee,
            small_order_fee: d.small_order_fee,
            tax: d.tax,
            tip: d.tip,
            total: d.total,
            commission: d.commission,
            dasher_pay: d.dasher_pay,
        };
        t.check()?;
        Ok(t)
    }
}

impl OrderTotal {
    fn money(&self, m: i64) -> Money {
        Money::new(m, self.currency)
    }

    /// What the customer pays.
    pub fn total(&self) -> Money {
        self.money(self.total)
    }

    /// Items before discounts.
    pub fn subtotal(&self) -> Money {
        self.money(self.subtotal)
    }

    /// Promo discount on the items (`>= 0`).
    pub fn discount(&self) -> Money {
        self.money(self.discount)
    }

    /// Delivery fee before a free-delivery promo.
    pub fn delivery_fee(&self) -> Money {
        self.money(self.delivery_fee)
    }

    /// Delivery fee waived by promo (`>= 0`).
    pub fn delivery_discount(&self) -> Money {
        self.money(self.delivery_discount)
    }

    /// Service fee.
    pub fn service_fee(&self) -> Money {
        self.money(self.service_fee)
    }

    /// Small-order fee.
    pub fn small_order_fee(&self) -> Money {
        self.money(self.small_order_fee)
    }

    /// Tax.
    pub fn tax(&self) -> Money {
        self.money(self.tax)
    }

    /// Tip.
    pub fn tip(&self) -> Money {
        self.money(self.tip)
    }

    /// Platform commission on the subtotal.
    pub fn commission(&self) -> Money {
        self.money(self.commission)
    }

    /// What the restaurant is owed: subtotal − commission.
    pub fn restaurant_due(&self) -> Money {
        self.money(self.subtotal - self.commission)
    }

    /// Dasher pay before the tip.
    pub fn dasher_pay(&self) -> Money {
        self.money(self.dasher_pay)
    }

    /// The receipt: `(label, amount)` for every non-zero line (items
    /// always), in order; the amounts sum to [`OrderTotal::total`].
    pub fn lines(&self) -> impl Iterator<Item = (&'static str, Money)> + '_ {
        [
            ("items", self.subtotal),
            ("promo", -self.discount),
            ("delivery fee", self.delivery_fee),
            ("free delivery", -self.delivery_discount),
            ("service fee", self.service_fee),
            ("small-order fee", self.small_order_fee),
            ("tax", self.tax),
            ("tip", self.tip),
        ]
        .into_iter()
        .filter(|&(l, m)| m != 0 || l == "items")
        .map(|(l, m)| (l, self.money(m)))
    }

    /// Captures the whole total and splits it (see [`Capture::new`]).
    ///
    /// # Errors
    /// As [`Capture::new`].
    pub fn capture(&self) -> Result<Capture, PricingError> {
        self.capture_amount(self.total())
    }

    /// Captures `amount` (e.g. less than the total after an adjustment)
    /// and splits it.
    ///
    /// # Errors
    /// As [`Capture::new`].
    pub fn capture_amount(&self, amount: Money) -> Result<Capture, PricingError> {
        Capture::new(amount, self.restaurant_due(), self.dasher_pay(), self.tip())
    }

    /// Checks the invariants (what deserialising checks).
    ///
    /// # Errors
    /// [`PricingError::InvalidRecord`] naming the broken one.
    pub(crate) fn check(&self) -> Result<(), PricingError> {
        let bad = |reason| {
            Err(PricingError::InvalidRecord {
                what: "order total",
                reason,
            })
        };
        let parts = [
            self.subtotal,
            self.discount,
            self.delivery_fee,
            self.delivery_discount,
            self.service_fee,
            self.small_order_fee,
            self.tax,
            self.tip,
            self.total,
            self.commission,
            self.dasher_pay,
        ];
        if parts.iter().any(|&v| v < 0) {
            return bad("no part of an order total is negative");
        }
        if self.discount > self.subtotal
            || self.delivery_discount > self.delivery_fee
            || self.commission > self.subtotal
        {
            return bad("discounts and commission cannot exceed what they reduce");
        }
        // Non-negative parts: the differences cannot overflow.
        let lines = [
            self.subtotal - self.discount,
            self.delivery_fee - self.delivery_discount,
            self.service_fee,
            self.small_order_fee,
            self.tax,
            self.tip,
        ];
        let sum = lines.iter().try_fold(0_i64, |a, &v| a.checked_add(v));
        if sum != Some(self.total) {
            return bad("the lines must sum to the total");
        }
        Ok(())
    }

    /// Checks the invariants; panics with the broken one.
    /// For tests (public so that integration tests can call it).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        let sum: i64 = self.lines().map(|(_, m)| m.minor()).sum();
        assert_eq!(sum, self.total, "the receipt lines sum to the total");
    }
}

impl fmt::Display for OrderTotal {
    /// A plain-text receipt.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (l, m) in self.lines() {
            writeln!(f, "  {l:<26}{:>14}", m.to_string())?;
        }
        write!(f, "  {:<26}{:>14}", "total", self.total().to_string())
    }
}
