//! ISO 4217 currencies and their minor-unit digits.

use std::fmt;

use crate::PricingError;

/// An ISO 4217 currency: a three-letter code and the number of digits of its
/// minor unit (USD 2 → cents, JPY 0, BHD 3 → fils).
///
/// `Copy`, 4 bytes. Two currencies are equal when code and digits are.
///
/// ```
/// use dispatchkit_pricing::{Currency, PricingError};
///
/// assert_eq!(Currency::from_code("JPY")?.digits(), 0);
/// assert_eq!(Currency::BHD.digits(), 3);
/// assert_eq!(Currency::USD.code(), "USD");
/// assert!(Currency::from_code("XYZ").is_err());
/// # Ok::<(), PricingError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    digits: u8,
}

/// `(code, minor digits)` of the currencies [`Currency::from_code`] knows:
/// every currency of the reference metros plus the common 0- and 3-digit
/// ones.
const KNOWN: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GNF", 0),
    ("HKD", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("RWF", 0),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("ZAR", 2),
];

const fn cur(code: &[u8; 3], digits: u8) -> Currency {
    Currency {
        code: *code,
        digits,
    }
}

impl Currency {
    /// US dollar, 2 digits.
    pub const USD: Currency = cur(b"USD", 2);
    /// Euro, 2 digits.
    pub const EUR: Currency = cur(b"EUR", 2);
    /// Pound sterling, 2 digits.
    pub const GBP: Currency = cur(b"GBP", 2);
    /// Japanese yen, 0 digits.
    pub const JPY: Currency = cur(b"JPY", 0);
    /// Bahraini dinar, 3 digits.
    pub const BHD: Currency = cur(b"BHD", 3);
    /// Kuwaiti dinar, 3 digits.
    pub const KWD: Currency = cur(b"KWD", 3);
    /// Indian rupee, 2 digits.
    pub const INR: Currency = cur(b"INR", 2);
    /// Brazilian real, 2 digits.
    pub const BRL: Currency = cur(b"BRL", 2);

    /// Most minor digits a currency may have (`10^4` minor units per major
    /// unit; ISO 4217 uses at most 4, CLF).
    pub const MAX_DIGITS: u8 = 4;

    /// The known ISO 4217 currency with this code (exact, upper case).
    /// O(log n) over a table of 56 codes.
    ///
    /// # Errors
    /// [`PricingError::UnknownCurrency`] for a code not in the table (use
    /// [`Currency::new`] to define it).
    pub fn from_code(code: &str) -> Result<Self, PricingError> {
        KNOWN
            .binary_search_by(|(c, _)| c.cmp(&code))
            .map(|i| {
                let (c, d) = KNOWN[i];
                let b = c.as_bytes();
                cur(&[b[0], b[1], b[2]], d)
            })
            .map_err(|_| PricingError::UnknownCurrency {
                code: code.to_string(),
            })
    }

    /// A currency defined by its code and minor digits, for codes the table
    /// of [`Currency::from_code`] lacks.
    ///
    /// # Errors
    /// [`PricingError::InvalidCurrency`] when the code is not three ASCII
    /// upper-case letters, `digits > MAX_DIGITS`, or the code is known with
    /// other digits.
    pub fn new(code: &str, digits: u8) -> Result<Self, PricingError> {
        let bad = |reason| PricingError::InvalidCurrency {
            code: code.to_string(),
            reason,
        };
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_uppercase) {
            return Err(bad("a currency code is three upper-case ASCII letters"));
        }
        if digits > Self::MAX_DIGITS {
            return Err(bad("at most 4 minor digits"));
        }
        if let Ok(known) = Self::from_code(code)
            && known.digits != digits
        {
            return Err(bad("known ISO 4217 code with different minor digits"));
        }
        Ok(cur(&[b[0], b[1], b[2]], digits))
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Constructors only admit ASCII upper-case letters.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Digits of the minor unit.
    pub const fn digits(self) -> u8 {
        self.digits
    }

    /// Minor units per major unit: `10^digits`.
    pub const fn scale(self) -> i64 {
        10_i64.pow(self.digits as u32)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.code(), self.digits)
    }
}

impl std::str::FromStr for Currency {
    type Err = PricingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_code(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(KNOWN.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn digits_of_known_codes() {
        for (code, digits) in [("USD", 2), ("JPY", 0), ("BHD", 3), ("KWD", 3), ("EUR", 2)] {
            let c = Currency::from_code(code).unwrap();
            assert_eq!((c.code(), c.digits()), (code, digits));
        }
        assert_eq!(Currency::from_code("JPY").unwrap(), Currency::JPY);
        assert_eq!(Currency::BHD.scale(), 1000);
        assert_eq!(Currency::JPY.scale(), 1);
    }

    #[test]
    fn bad_codes_are_typed_errors() {
        assert_eq!(
            Currency::from_code("usd"),
            Err(PricingError::UnknownCurrency { code: "usd".into() })
        );
        assert!(matches!(
            Currency::new("US", 2),
            Err(PricingError::InvalidCurrency { .. })
        ));
        assert!(matches!(
            Currency::new("ABC", 5),
            Err(PricingError::InvalidCurrency { .. })
        ));
        assert!(matches!(
            Currency::new("JPY", 2),
            Err(PricingError::InvalidCurrency { .. })
        ));
        assert_eq!(Currency::new("CLF", 4).unwrap().scale(), 10_000);
    }
}
