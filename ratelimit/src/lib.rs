//! Exact, lock-free rate limiters for public APIs.
#![warn(missing_debug_implementations)]

mod algorithm;
mod decision;
mod direct;
mod error;
mod fixed_window;
mod gcra;
mod keyed;
mod quota;
mod sliding_counter;
mod sliding_log;
mod store;
mod time;

pub use algorithm::Algorithm;
pub use decision::Decision;
pub use direct::RateLimiter;
pub use error::RateLimitError;
pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub use keyed::{DefaultHasher, FailMode, KeyedConfig, KeyedRateLimiter};
pub use quota::{MAX_SPAN, Quota};
pub use sliding_counter::SlidingCounter;
pub use sliding_log::SlidingLog;
