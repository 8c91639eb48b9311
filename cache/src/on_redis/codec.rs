//! How keys and values become bytes on Redis.

use crate::CacheError;

/// Encodes keys and values for the Redis tier. The default, [`Postcard`],
/// is serde to a compact binary form; implement it for another format
/// (JSON for values other programs read, a schema'd format, …).
pub trait Codec<T>: Send + Sync {
    /// Appends `value`'s bytes to `out`.
    ///
    /// # Errors
    /// [`CacheError::Codec`] when the value cannot be encoded.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CacheError>;

    /// The value of `bytes`.
    ///
    /// # Errors
    /// [`CacheError::Codec`] when the bytes are not a value of `T` (a
    /// writer with another schema, a corrupted entry).
    fn decode(&self, bytes: &[u8]) -> Result<T, CacheError>;
}

/// serde through `postcard`: varint integers, no field names, no padding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CacheError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| CacheError::Codec {
            reason: e.to_string(),
        })?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, CacheError> {
        postcard::from_bytes(bytes).map_err(|e| CacheError::Codec {
            reason: e.to_string(),
        })
    }
}
