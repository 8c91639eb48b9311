//! The money ledger: every captured payment booked per currency, with the
//! parties' parts, so that for every currency
//! `paid = drivers + couriers + restaurants + platform + refunded`
//! holds exactly, in minor units.

use std::collections::BTreeMap;

use dispatchkit::pricing::{Capture, Currency, Money, PricingError};

/// What a capture paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A completed ride (the split's `dasher` part is the driver's).
    Ride,
    /// A late cancellation fee (split like a ride).
    Cancellation,
    /// A delivered order.
    Order,
}

/// Totals of one currency, in minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Book {
    pub currency: String,
    /// Minor units per major unit (100 for USD, 1 for JPY).
    pub minor_per_major: i64,
    pub rides: u64,
    pub cancellations: u64,
    pub orders: u64,
    pub refunds: u64,
    /// What riders and customers paid (captured).
    pub paid: i64,
    pub drivers: i64,
    pub couriers: i64,
    pub restaurants: i64,
    pub platform: i64,
    pub refunded: i64,
    /// Owed to restaurants and couriers beyond a capture (platform-funded
    /// promos); paid by the platform outside the captures.
    pub shortfall: i64,
}

impl Book {
    /// `paid − (drivers + couriers + restaurants + platform + refunded)`:
    /// zero when the book balances.
    pub fn imbalance(&self) -> i64 {
        self.paid
            - (self.drivers + self.couriers + self.restaurants + self.platform + self.refunded)
    }

    /// An amount of this book's currency for display.
    pub fn show(&self, minor: i64) -> String {
        match Currency::from_code(&self.currency) {
            Ok(c) => Money::new(minor, c).to_string(),
            Err(_) => format!("{} {minor}", self.currency),
        }
    }
}

/// Books by currency.
#[derive(Debug, Default)]
pub struct Ledger {
    books: BTreeMap<Currency, Book>,
}

impl Ledger {
    /// Books a capture after its refunds.
    pub fn book(&mut self, kind: Kind, c: &Capture) -> Result<(), PricingError> {
        let cur = c.captured().currency();
        let b = self.books.entry(cur).or_insert_with(|| Book {
            currency: cur.to_string(),
            minor_per_major: cur.scale(),
            ..Book::default()
        });
        let net = c.net();
        let refunded = c.refunded().total();
        b.paid = b
            .paid
            .checked_add(c.captured().minor())
            .ok_or(overflow(b.paid))?;
        b.refunded += refunded.minor();
        b.restaurants += net.restaurant.minor();
        b.platform += net.platform.minor();
        b.shortfall += c.shortfall().minor();
        match kind {
            Kind::Ride => {
                b.rides += 1;
                b.drivers += net.dasher.minor();
            }
            Kind::Cancellation => {
                b.cancellations += 1;
                b.drivers += net.dasher.minor();
            }
            Kind::Order => {
                b.orders += 1;
                b.couriers += net.dasher.minor();
            }
        }
        if !refunded.is_zero() {
            b.refunds += 1;
        }
        Ok(())
    }

    /// The books, by currency code.
    pub fn books(&self) -> Vec<Book> {
        self.books.values().cloned().collect()
    }
}

fn overflow(value: i64) -> PricingError {
    PricingError::Overflow {
        op: "ledger total",
        value,
    }
}
