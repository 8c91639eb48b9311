//! `Deserialize` through a check, for structs with public fields: the
//! crates of dispatchkit use it so that JSON cannot build a value their
//! checks would reject (ARCHITECTURE.md, "Validation has one path").

/// Declares the private twin a struct deserialises through, and the
/// `TryFrom` that runs the struct's check on it.
///
/// ```ignore
/// #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize),
///            serde(try_from = "ride_config_serde::Unchecked"))]
/// pub struct RideConfig { pub candidates: usize, /* … */ }
///
/// dispatchkit_geo_index::deserialize_checked!(
///     ride_config_serde, RideConfig { candidates: usize, /* … */ },
///     RideConfig::validate, MatchingError
/// );
/// ```
///
/// The twin lists the fields again (with their `serde` attributes); a field
/// missing from it, or one too many, is a compile error in the generated
/// `TryFrom`, so the two cannot drift apart. Expands to nothing without the
/// calling crate's `serde` feature.
#[doc(hidden)]
#[macro_export]
macro_rules! deserialize_checked {
    (
        $module:ident, $ty:ident {
            $( $(#[$attr:meta])* $field:ident : $fty:ty ),* $(,)?
        },
        $check:path, $err:ty
    ) => {
        #[cfg(feature = "serde")]
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            /// The wire form of the struct, before its check.
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            pub(super) struct Unchecked {
                $( $(#[$attr])* $field: $fty, )*
            }

            impl TryFrom<Unchecked> for super::$ty {
                type Error = $err;

                fn try_from(u: Unchecked) -> Result<Self, $err> {
                    let v = super::$ty { $( $field: u.$field, )* };
                    $check(&v)?;
                    Ok(v)
                }
            }
        }
    };
}
