use thiserror::Error;

/// Why a workload generator could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// A numeric parameter is out of its documented range.
    #[error("invalid workload parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the config struct.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A stream needs at least one driver / key and got none.
    #[error("`{name}` is empty: {reason}")]
    Empty {
        /// What is empty.
        name: &'static str,
        /// Why that is not allowed here.
        reason: &'static str,
    },
}
