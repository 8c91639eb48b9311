use geo::Point;
use rand::distr::weighted::WeightedIndex;
use rand_distr::Distribution;

use super::{
    DriverChoice, UpdateConfig, UpdateStream, WorkloadError, check_positive_metres, cloud_point,
    rng,
};

/// A real metro area: the centre of one Gaussian cloud of drivers.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Metro {
    /// City name, as `--metro NAME` in the `city` example takes it.
    pub name: &'static str,
    /// Longitude of the centre, degrees.
    pub lon: f64,
    /// Latitude of the centre, degrees.
    pub lat: f64,
    /// Relative share of the fleet (a rough ride-hailing market size).
    pub weight: u32,
}

impl Metro {
    /// The centre as a `geo::Point` (`x` = longitude, `y` = latitude).
    pub fn centre(&self) -> Point<f64> {
        Point::new(self.lon, self.lat)
    }
}

const fn metro(name: &'static str, lat: f64, lon: f64, weight: u32) -> Metro {
    Metro {
        name,
        lon,
        lat,
        weight,
    }
}

/// The 20 metro areas of the reference workload (city-hall coordinates).
pub const METROS: [Metro; 20] = [
    metro("New York", 40.7128, -74.0060, 10),
    metro("Los Angeles", 34.0522, -118.2437, 7),
    metro("Chicago", 41.8781, -87.6298, 5),
    metro("San Francisco", 37.7749, -122.4194, 5),
    metro("Seattle", 47.6062, -122.3321, 3),
    metro("Toronto", 43.6532, -79.3832, 4),
    metro("Mexico City", 19.4326, -99.1332, 6),
    metro("Sao Paulo", -23.5505, -46.6333, 7),
    metro("Buenos Aires", -34.6037, -58.3816, 4),
    metro("London", 51.5074, -0.1278, 7),
    metro("Paris", 48.8566, 2.3522, 5),
    metro("Berlin", 52.5200, 13.4050, 3),
    metro("Istanbul", 41.0082, 28.9784, 5),
    metro("Cairo", 30.0444, 31.2357, 4),
    metro("Lagos", 6.5244, 3.3792, 4),
    metro("Mumbai", 19.0760, 72.8777, 7),
    metro("Delhi", 28.6139, 77.2090, 7),
    metro("Singapore", 1.3521, 103.8198, 3),
    metro("Tokyo", 35.6762, 139.6503, 6),
    metro("Sydney", -33.8688, 151.2093, 3),
];

/// Parameters of the metro fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MetroConfig {
    /// Number of drivers (default 1,000,000).
    pub drivers: usize,
    /// Standard deviation of each metro's cloud, metres (default 8,000).
    pub sigma_m: f64,
    /// Seed of the generator (default 42).
    pub seed: u64,
}

impl Default for MetroConfig {
    fn default() -> Self {
        Self {
            drivers: 1_000_000,
            sigma_m: 8_000.0,
            seed: 42,
        }
    }
}

impl MetroConfig {
    /// The most drivers a fleet may have (checked before anything is
    /// allocated): 100 million, 3.2 GB of drivers.
    pub const MAX_DRIVERS: usize = 100_000_000;

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`WorkloadError::InvalidParameter`] when `sigma_m` is not a finite
    /// number above zero or `drivers` is above [`MetroConfig::MAX_DRIVERS`].
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.drivers > Self::MAX_DRIVERS {
            return Err(WorkloadError::InvalidParameter {
                name: "drivers",
                value: self.drivers as f64,
                reason: "at most MetroConfig::MAX_DRIVERS (100,000,000) drivers",
            });
        }
        check_positive_metres("sigma_m", self.sigma_m).map(|_| ())
    }

    /// Index of the metro whose name equals `name`, ignoring ASCII case.
    pub fn metro_index(name: &str) -> Option<usize> {
        METROS
            .iter()
            .position(|m| m.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn metro_sampler() -> WeightedIndex<u32> {
        // The weights are constant, non-zero and few: construction cannot fail.
        WeightedIndex::new(METROS.iter().map(|m| m.weight))
            .expect("METROS weights are positive constants")
    }
}

/// One driver of the reference fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Driver {
    /// Driver id: `0..drivers`, dense.
    pub id: u64,
    /// Index into [`METROS`].
    pub metro: u8,
    /// Starting position.
    pub position: Point<f64>,
}

/// N drivers spread over the 20 [`METROS`].
#[derive(Debug, Clone)]
pub struct Fleet {
    config: MetroConfig,
    drivers: Vec<Driver>,
}

impl Fleet {
    /// Generates the fleet: each driver picks a metro with probability
    /// proportional to its [`Metro::weight`], then a point of that metro's
    /// Gaussian cloud. O(N); about 20 M drivers/s.
    ///
    /// # Errors
    /// [`WorkloadError::InvalidParameter`] for a bad `sigma_m`.
    pub fn generate(config: &MetroConfig) -> Result<Self, WorkloadError> {
        config.validate()?;
        let mut rng = rng(config.seed, 1);
        let pick = MetroConfig::metro_sampler();
        let drivers = (0..config.drivers as u64)
            .map(|id| {
                let m = pick.sample(&mut rng);
                Driver {
                    id,
                    metro: m as u8,
                    position: cloud_point(&mut rng, METROS[m].centre(), config.sigma_m),
                }
            })
            .collect();
        Ok(Self {
            config: *config,
            drivers,
        })
    }

    /// The configuration the fleet was generated from.
    pub fn config(&self) -> &MetroConfig {
        &self.config
    }

    /// All drivers, ordered by id.
    pub fn drivers(&self) -> &[Driver] {
        &self.drivers
    }

    /// Number of drivers in each metro, indexed like [`METROS`].
    pub fn per_metro(&self) -> [usize; METROS.len()] {
        let mut counts = [0; METROS.len()];
        for d in &self.drivers {
            counts[d.metro as usize] += 1;
        }
        counts
    }

    /// A location-update stream starting from this fleet's positions.
    ///
    /// # Errors
    /// [`WorkloadError`] when the configuration is invalid or the fleet is
    /// empty.
    pub fn update_stream(&self, config: &UpdateConfig) -> Result<UpdateStream, WorkloadError> {
        UpdateStream::new(self, config)
    }

    /// Shorthand for an update stream with uniform driver choice and `seed`.
    ///
    /// # Errors
    /// As [`Fleet::update_stream`].
    pub fn uniform_updates(&self, seed: u64) -> Result<UpdateStream, WorkloadError> {
        self.update_stream(&UpdateConfig {
            seed,
            choice: DriverChoice::Uniform,
            ..UpdateConfig::default()
        })
    }
}
