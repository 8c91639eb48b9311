use thiserror::Error;

/// Why a matching, assignment, batching or routing call was rejected.
///
/// Every variant carries the offending value and a reason. A call that
/// returns an error leaves every structure it was given unchanged.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MatchingError {
    /// A list that must hold at least one element is empty (stops, riders,
    /// orders, radius steps, …).
    #[error("`{what}` is empty: {reason}")]
    Empty {
        /// What is empty.
        what: &'static str,
        /// Why that is not allowed here.
        reason: &'static str,
    },
    /// A numeric parameter is outside its documented range (negative speed,
    /// NaN factor, `k = 0`, …).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the config struct or function.
        name: &'static str,
        /// The rejected value (converted to `f64`).
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A coordinate is not finite or outside the WGS-84 / Redis ranges.
    #[error("invalid coordinate #{index} ({x}, {y}): {reason}")]
    InvalidCoordinate {
        /// Position of the point in its list.
        index: usize,
        /// Longitude, or TSPLIB `x`.
        x: f64,
        /// Latitude, or TSPLIB `y`.
        y: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A distance / cost entry is unusable (NaN, negative, infinite or
    /// asymmetric where symmetry is required).
    #[error("invalid distance d({from}, {to}) = {value}: {reason}")]
    InvalidDistance {
        /// Row.
        from: usize,
        /// Column.
        to: usize,
        /// The rejected value.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Two sizes that must agree do not (matrix rows vs columns, data length
    /// vs dimension).
    #[error("size mismatch for `{what}`: expected {expected}, got {got}")]
    SizeMismatch {
        /// What was measured.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// The input is larger than the algorithm accepts (an exact solver over
    /// its limit, a batch over the maximum number of orders).
    #[error("`{what}` has {size} elements, more than the limit {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// The size given.
        size: usize,
        /// The largest size accepted.
        limit: usize,
    },
    /// A tour or stop sequence is not a valid permutation / route.
    #[error("invalid tour: {reason} (at element {at})")]
    InvalidTour {
        /// Position of the first offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An index into a list of stops, riders, drivers or orders is out of
    /// range.
    #[error("unknown {what} {id}")]
    UnknownId {
        /// What kind of id.
        what: &'static str,
        /// The id.
        id: u64,
    },
    /// A TSPLIB file could not be read.
    #[error("TSPLIB line {line}: {reason}: `{text}`")]
    Tsplib {
        /// 1-based line number (0 when the problem is the whole file).
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The offending text (truncated to 80 bytes).
        text: String,
    },
    /// An event arrived that the matching state machine cannot take in its
    /// current state (accept from a driver with no open offer, an event
    /// after the match has finished, an event from the past).
    #[error("event `{event}` rejected in state `{state}`: {reason}")]
    InvalidEvent {
        /// The event.
        event: &'static str,
        /// The state the machine is in.
        state: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The geo index rejected an operation (invalid coordinate or
    /// attribute, bad search parameters).
    #[error(transparent)]
    Geo(#[from] dispatchkit_geo_index::GeoError),
}

impl MatchingError {
    /// Shorthand for [`MatchingError::InvalidParameter`].
    pub(crate) fn param(name: &'static str, value: f64, reason: &'static str) -> Self {
        Self::InvalidParameter {
            name,
            value,
            reason,
        }
    }

    /// Shorthand for a TSPLIB error with the text truncated.
    pub(crate) fn tsplib(line: usize, reason: &'static str, text: &str) -> Self {
        let mut end = text.len().min(80);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self::Tsplib {
            line,
            reason,
            text: text[..end].to_string(),
        }
    }
}
