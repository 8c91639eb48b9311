//! The 20 markets: currency, ride rate cards, delivery pricing (fees, tax,
//! commission, courier pay) and promo books, one set per metro of the
//! reference workload.

use std::collections::{BTreeMap, HashMap};

use dispatchkit::pricing::{
    Bps, Currency, DasherPay, DeliveryPricing, DeliveryPricingSpec, DistanceRate, DistanceTier,
    Money, PricingError, Promo, PromoBook, PromoKind, RateCard, RateCardSpec, Rounding, ServiceFee,
    SmallOrderFee, Stacking, TaxRule,
};
use dispatchkit::workload::METROS;

/// Currency of each metro (in `METROS` order) and its minor units per US
/// dollar, used to scale the USD price list (a rough exchange rate; price
/// levels are not modelled).
const MARKETS: [(&str, i64); 20] = [
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("USD", 100),
    ("CAD", 137),
    ("MXN", 1_700),
    ("BRL", 500),
    ("ARS", 90_000),
    ("GBP", 79),
    ("EUR", 92),
    ("EUR", 92),
    ("TRY", 3_200),
    ("EGP", 4_800),
    ("NGN", 150_000),
    ("INR", 8_300),
    ("INR", 8_300),
    ("SGD", 134),
    ("JPY", 150),
    ("AUD", 152),
];

/// Sales tax or VAT per metro, basis points, and whether it applies to
/// fees too.
const TAX_BPS: [(u32, bool); 20] = [
    (888, false),
    (950, false),
    (1_025, false),
    (863, false),
    (1_025, true),
    (1_300, true),
    (1_600, true),
    (900, true),
    (2_100, true),
    (2_000, true),
    (1_000, true),
    (1_900, true),
    (1_000, true),
    (1_400, true),
    (750, true),
    (500, true),
    (500, true),
    (900, true),
    (1_000, true),
    (1_000, true),
];

/// Drivers keep this share of the trip fare (take rate 25 %); booking
/// fees go to the platform.
pub const DRIVER_SHARE: Bps = Bps(7_500);

/// The promo a rider's profile may hold, and the ones of delivery orders.
pub const RIDE_PROMO: &str = "RIDE10";
pub const ORDER_PROMOS: [&str; 2] = ["SAVE15", "FREEDEL"];

/// USD cents → minor units of metro `m`'s currency, half-even.
pub fn local(m: usize, usd_cents: i64) -> Result<Money, PricingError> {
    let cur = Currency::from_code(MARKETS[m].0)?;
    Money::new(usd_cents, cur).mul_ratio(MARKETS[m].1, 100, Rounding::HalfEven)
}

/// Everything priced per metro.
pub struct Markets {
    /// Rate cards by metro, then product (economy, XL: the vehicle types
    /// 0 and 1 of `fleet.rs`).
    pub cards: Vec<[RateCard; 2]>,
    /// Delivery pricing by metro.
    pub delivery: Vec<DeliveryPricing>,
    /// One promo book per currency (promo amounts are money in a currency).
    pub promos: HashMap<Currency, PromoBook>,
}

impl Markets {
    pub fn new() -> Result<Self, PricingError> {
        let cards = (0..METROS.len())
            .map(|m| Ok([rate_card(m, 0)?, rate_card(m, 1)?]))
            .collect::<Result<_, PricingError>>()?;
        let delivery = (0..METROS.len()).map(delivery).collect::<Result<_, _>>()?;
        Ok(Self {
            cards,
            delivery,
            promos: promo_books()?,
        })
    }

    /// The promo book of `currency` (every market's currency has one).
    pub fn promos(&self, currency: Currency) -> &PromoBook {
        &self.promos[&currency]
    }
}

/// The rate card of `product` (0 economy, 1 XL) in metro `m`.
fn rate_card(m: usize, product: usize) -> Result<RateCard, PricingError> {
    // base, per km, per minute, minimum, booking, cancellation (USD cents).
    let (base, km, min, minimum, booking, cancel) = [
        (250, 95, 28, 800, 275, 500),
        (400, 160, 40, 1_200, 275, 700),
    ][product];
    let l = |c| local(m, c).map(|x| x.minor());
    RateCard::new(RateCardSpec {
        currency: Currency::from_code(MARKETS[m].0)?,
        base: l(base)?,
        distance: DistanceRate::PerKm(l(km)?),
        per_minute: l(min)?,
        minimum_fare: l(minimum)?,
        booking_fee: l(booking)?,
        cancellation_fee: l(cancel)?,
        rounding: Rounding::HalfEven,
    })
}

fn delivery(m: usize) -> Result<DeliveryPricing, PricingError> {
    let l = |c| local(m, c).map(|x| x.minor());
    let (tax, on_fees) = TAX_BPS[m];
    DeliveryPricing::new(DeliveryPricingSpec {
        currency: Currency::from_code(MARKETS[m].0)?,
        tiers: vec![
            DistanceTier {
                up_to_m: 2_000,
                fee: l(99)?,
            },
            DistanceTier {
                up_to_m: 5_000,
                fee: l(299)?,
            },
            // The workload's longest delivery is 10 km (plus rounding).
            DistanceTier {
                up_to_m: 10_500,
                fee: l(499)?,
            },
        ],
        service_fee: ServiceFee {
            rate: Bps(1_500),
            min: l(200)?,
            max: l(800)?,
        },
        small_order: SmallOrderFee {
            below: l(1_200)?,
            fee: l(250)?,
        },
        taxes: BTreeMap::from([(
            METROS[m].name.to_string(),
            TaxRule {
                rate: Bps(tax),
                on_fees,
            },
        )]),
        commission: Bps(2_000),
        dasher: DasherPay {
            base: l(300)?,
            per_km: l(60)?,
            per_minute: l(10)?,
        },
        rounding: Rounding::HalfEven,
    })
}

fn promo_books() -> Result<HashMap<Currency, PromoBook>, PricingError> {
    let mut books = HashMap::new();
    for (m, (code, _)) in MARKETS.iter().enumerate() {
        let cur = Currency::from_code(code)?;
        if books.contains_key(&cur) {
            continue;
        }
        let mut b = PromoBook::new();
        let mut ride = Promo::new(
            RIDE_PROMO,
            PromoKind::PercentOff {
                off: Bps::percent(10),
                cap: Some(local(m, 500)?),
            },
        );
        ride.per_user_limit = Some(2);
        b.insert(ride)?;
        let mut save = Promo::new(
            ORDER_PROMOS[0],
            PromoKind::PercentOff {
                off: Bps::percent(15),
                cap: Some(local(m, 600)?),
            },
        );
        save.min_subtotal = Some(local(m, 2_000)?);
        save.per_user_limit = Some(3);
        save.stacking = Stacking::Stackable;
        b.insert(save)?;
        let mut free = Promo::new(ORDER_PROMOS[1], PromoKind::FreeDelivery);
        free.per_user_limit = Some(5);
        free.stacking = Stacking::Stackable;
        b.insert(free)?;
        books.insert(cur, b);
    }
    Ok(books)
}
