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

    /// The ISO 4217 currency with this code (exact, upper case), with its
    /// minor digits from the `iso_currency` crate's copy of the ISO list
    /// (every active code, funds included).
    ///
    /// # Errors
    /// [`PricingError::UnknownCurrency`] for a code ISO 4217 does not list,
    /// or one without a minor unit (gold, SDRs, testing codes): use
    /// [`Currency::new`] to define it.
    pub fn from_code(code: &str) -> Result<Self, PricingError> {
        let unknown = || PricingError::UnknownCurrency {
            code: code.to_string(),
        };
        let iso = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        let digits = iso
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .filter(|&d| d <= Self::MAX_DIGITS)
            .ok_or_else(unknown)?;
        let b = code.as_bytes();
        Ok(cur(&[b[0], b[1], b[2]], digits))
    }

    /// A currency defined by its code and minor digits, for codes ISO 4217
    /// lacks (a loyalty currency, a test code). It serialises as
    /// `"CODE:digits"`, so it reads back as itself.
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

impl Currency {
    /// Whether this is the ISO 4217 currency of its code (else one defined
    /// with [`Currency::new`]).
    pub fn is_iso(&self) -> bool {
        Self::from_code(self.code()).is_ok_and(|c| c == *self)
    }
}

/// The wire form: the code for an ISO currency (`"USD"`), `"CODE:digits"`
/// for one defined with [`Currency::new`] (`"PTS:0"`).
#[cfg(feature = "serde")]
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_iso() {
            s.serialize_str(self.code())
        } else {
            s.collect_str(&format_args!("{}:{}", self.code(), self.digits))
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let parsed = match text.split_once(':') {
            None => Self::from_code(&text),
            Some((code, digits)) => match digits.parse::<u8>() {
                Ok(d) => Self::new(code, d),
                Err(_) => Err(PricingError::InvalidCurrency {
                    code: text.to_string(),
                    reason: "expected CODE or CODE:digits",
                }),
            },
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_are_the_iso_currencies() {
        for c in [
            Currency::USD,
            Currency::EUR,
            Currency::GBP,
            Currency::JPY,
            Currency::BHD,
            Currency::KWD,
            Currency::INR,
            Currency::BRL,
        ] {
            assert_eq!(Currency::from_code(c.code()), Ok(c));
            assert!(c.is_iso());
        }
        // Funds and 4-digit units come from the ISO list; gold has no
        // minor unit.
        assert_eq!(Currency::from_code("CLF").unwrap().digits(), 4);
        assert!(Currency::from_code("XAU").is_err());
        assert!(!Currency::new("PTS", 0).unwrap().is_iso());
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
