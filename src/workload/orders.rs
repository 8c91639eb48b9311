use std::time::Duration;

use geo::{Destination, Haversine, Point};
use rand::RngExt;
use rand::distr::weighted::WeightedIndex;
use rand_distr::{Distribution, Exp, StandardNormal};

use super::{
    METROS, MetroConfig, WorkloadError, WorkloadRng, check_positive_metres, cloud_point, normalise,
    rng,
};

/// Parameters of an [`OrderStream`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OrderConfig {
    /// Seed (default 11).
    pub seed: u64,
    /// Mean arrival rate over all metros, orders per second (default 231.5:
    /// the seed's 20 M orders/day).
    pub orders_per_sec: f64,
    /// Restaurants per metro, each a fixed point of the metro's cloud
    /// (default 500).
    pub restaurants_per_metro: u32,
    /// σ of the restaurant-to-customer distance, metres (default 2,500).
    pub delivery_sigma_m: f64,
    /// Longest restaurant-to-customer distance, metres (default 10,000).
    pub max_delivery_m: f64,
    /// Shortest preparation time (default 5 min).
    pub min_prep: Duration,
    /// Longest preparation time (default 25 min).
    pub max_prep: Duration,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            seed: 11,
            orders_per_sec: 20_000_000.0 / 86_400.0,
            restaurants_per_metro: 500,
            delivery_sigma_m: 2_500.0,
            max_delivery_m: 10_000.0,
            min_prep: Duration::from_secs(5 * 60),
            max_prep: Duration::from_secs(25 * 60),
        }
    }
}

/// A delivery order of the reference workload.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeliveryOrder {
    /// Order id, from 0 in arrival order.
    pub id: u64,
    /// Index into [`METROS`].
    pub metro: u8,
    /// Restaurant id, unique over all metros
    /// (`metro × restaurants_per_metro + i`).
    pub restaurant: u32,
    /// Where the food is picked up.
    pub pickup: Point<f64>,
    /// Where it is delivered.
    pub dropoff: Point<f64>,
    /// Number of items, 1..=5.
    pub items: u8,
    /// When the order was placed, from the start of the stream.
    pub placed_at: Duration,
    /// When the food is ready for pickup (`placed_at` + preparation time).
    pub ready_at: Duration,
}

/// An endless stream of delivery orders in arrival order (a Poisson process
/// at `orders_per_sec`).
#[derive(Debug, Clone)]
pub struct OrderStream {
    rng: WorkloadRng,
    config: OrderConfig,
    pick: WeightedIndex<u32>,
    restaurants: Vec<Point<f64>>,
    gap: Exp<f64>,
    clock: f64,
    next_id: u64,
    pending: Option<DeliveryOrder>,
}

impl OrderStream {
    /// An order stream over the metro clouds of `metros` (its `drivers` is
    /// ignored).
    ///
    /// # Errors
    /// [`WorkloadError::InvalidParameter`] for a non-positive or non-finite
    /// rate or distance, or `min_prep > max_prep`;
    /// [`WorkloadError::Empty`] for zero restaurants per metro.
    pub fn new(metros: &MetroConfig, config: &OrderConfig) -> Result<Self, WorkloadError> {
        metros.validate()?;
        let rate = check_positive_metres("orders_per_sec", config.orders_per_sec)?;
        check_positive_metres("delivery_sigma_m", config.delivery_sigma_m)?;
        check_positive_metres("max_delivery_m", config.max_delivery_m)?;
        if config.restaurants_per_metro == 0 {
            return Err(WorkloadError::Empty {
                name: "restaurants_per_metro",
                reason: "orders need at least one restaurant per metro",
            });
        }
        if config.min_prep > config.max_prep {
            return Err(WorkloadError::InvalidParameter {
                name: "min_prep",
                value: config.min_prep.as_secs_f64(),
                reason: "must not exceed max_prep",
            });
        }
        let mut rng = rng(config.seed, 5);
        let restaurants = METROS
            .iter()
            .flat_map(|m| (0..config.restaurants_per_metro).map(move |_| m.centre()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|centre| cloud_point(&mut rng, centre, metros.sigma_m))
            .collect();
        let gap = Exp::new(rate).map_err(|_| WorkloadError::InvalidParameter {
            name: "orders_per_sec",
            value: rate,
            reason: "rejected by the exponential sampler",
        })?;
        Ok(Self {
            rng,
            config: *config,
            pick: MetroConfig::metro_sampler(),
            restaurants,
            gap,
            clock: 0.0,
            next_id: 0,
            pending: None,
        })
    }

    /// Position of restaurant `id`, if it exists.
    pub fn restaurant(&self, id: u32) -> Option<Point<f64>> {
        self.restaurants.get(id as usize).copied()
    }

    /// The next order.
    pub fn next_order(&mut self) -> DeliveryOrder {
        match self.pending.take() {
            Some(o) => o,
            None => self.generate(),
        }
    }

    fn generate(&mut self) -> DeliveryOrder {
        let c = &self.config;
        self.clock += self.gap.sample(&mut self.rng);
        let metro = self.pick.sample(&mut self.rng);
        let restaurant = metro as u32 * c.restaurants_per_metro
            + self.rng.random_range(0..c.restaurants_per_metro);
        let pickup = self.restaurants[restaurant as usize];
        let spread: f64 = StandardNormal.sample(&mut self.rng);
        let distance = (spread.abs() * c.delivery_sigma_m)
            .clamp(100.0_f64.min(c.max_delivery_m), c.max_delivery_m);
        let bearing = self.rng.random_range(0.0..360.0);
        let d = Haversine.destination(pickup, bearing, distance);
        let prep = self
            .rng
            .random_range(c.min_prep.as_secs_f64()..=c.max_prep.as_secs_f64());
        let placed_at = Duration::from_secs_f64(self.clock);
        let order = DeliveryOrder {
            id: self.next_id,
            metro: metro as u8,
            restaurant,
            pickup,
            dropoff: normalise(d.x(), d.y()),
            items: self.rng.random_range(1..=5),
            placed_at,
            ready_at: placed_at + Duration::from_secs_f64(prep),
        };
        self.next_id += 1;
        order
    }

    /// Every order placed before `until` (from the start of the stream) that
    /// has not been taken yet.
    pub fn until(&mut self, until: Duration) -> Vec<DeliveryOrder> {
        let mut out = Vec::new();
        loop {
            let o = self.next_order();
            if o.placed_at >= until {
                self.pending = Some(o);
                return out;
            }
            out.push(o);
        }
    }
}

impl Iterator for OrderStream {
    type Item = DeliveryOrder;

    fn next(&mut self) -> Option<DeliveryOrder> {
        Some(self.next_order())
    }
}
