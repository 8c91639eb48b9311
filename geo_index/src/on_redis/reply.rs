//! The scripts' replies: directory op results and driver records.

use redis::Value;

use crate::{GeoError, LonLat};

/// A reply that is not what the scripts return (a different script under
/// the same keys, a corrupted record).
pub(super) fn malformed(what: impl std::fmt::Display) -> GeoError {
    GeoError::Unavailable {
        part: "reply".into(),
        reason: format!("unexpected reply from Redis: {what}"),
    }
}

/// A driver record, 41 bytes little-endian: `<u64 version, u64 updated
/// (Unix ms), u32 lon_q, u32 lat_q, u32 attrs, u64 ttl (ms), u8
/// custom-ttl, u32 tile>` (the scripts' `<I8I8I4I4I4I8I1I4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rec {
    pub ver: u64,
    pub upd: u64,
    pub lon_q: u32,
    pub lat_q: u32,
    pub attrs: u32,
    pub ttl: u64,
    pub custom: bool,
    pub tile: u32,
}

const REC_LEN: usize = 41;

impl Rec {
    pub fn parse(b: &[u8]) -> Result<Rec, GeoError> {
        let bad = || malformed(format_args!("a record of {} bytes: {b:02x?}", b.len()));
        if b.len() != REC_LEN {
            return Err(bad());
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let rec = Rec {
            ver: u64_at(0),
            upd: u64_at(8),
            lon_q: u32_at(16),
            lat_q: u32_at(20),
            attrs: u32_at(24),
            ttl: u64_at(28),
            custom: b[36] == 1,
            tile: u32_at(37),
        };
        if rec.attrs >= 1 << crate::attrs::ATTR_BITS || b[36] > 1 {
            return Err(bad());
        }
        Ok(rec)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(REC_LEN);
        b.extend_from_slice(&self.ver.to_le_bytes());
        b.extend_from_slice(&self.upd.to_le_bytes());
        b.extend_from_slice(&self.lon_q.to_le_bytes());
        b.extend_from_slice(&self.lat_q.to_le_bytes());
        b.extend_from_slice(&self.attrs.to_le_bytes());
        b.extend_from_slice(&self.ttl.to_le_bytes());
        b.push(u8::from(self.custom));
        b.extend_from_slice(&self.tile.to_le_bytes());
        b
    }

    pub fn pos(&self) -> LonLat {
        LonLat::from_raw(self.lon_q, self.lat_q)
    }

    pub fn live(&self, now_ms: u64) -> bool {
        now_ms < self.upd.saturating_add(self.ttl)
    }
}

/// One directory op's result: a code and what follows it.
#[derive(Debug)]
pub(super) struct Reply {
    pub code: i64,
    items: Vec<Value>,
}

pub(super) fn int(v: &Value) -> Result<i64, GeoError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("a non-numeric field")),
        other => Err(malformed(format_args!("{other:?} where a number belongs"))),
    }
}

pub(super) fn bytes(v: &Value) -> Result<&[u8], GeoError> {
    match v {
        Value::BulkString(b) => Ok(b),
        other => Err(malformed(format_args!("{other:?} where a string belongs"))),
    }
}

pub(super) fn array(v: Value) -> Result<Vec<Value>, GeoError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(malformed(format_args!("{other:?} where an array belongs"))),
    }
}

impl Reply {
    /// The op results of one directory call.
    pub fn ops(v: Option<Value>) -> Result<Vec<Reply>, GeoError> {
        let v = v.ok_or_else(|| malformed("no reply"))?;
        array(v)?
            .into_iter()
            .map(|op| {
                let items = array(op)?;
                let code = int(items
                    .first()
                    .ok_or_else(|| malformed("an empty op result"))?)?;
                Ok(Reply { code, items })
            })
            .collect()
    }

    fn item(&self, i: usize) -> Result<&Value, GeoError> {
        self.items
            .get(i)
            .ok_or_else(|| malformed("a short op result"))
    }

    /// The record in second place.
    pub fn record(&self) -> Result<Rec, GeoError> {
        Rec::parse(bytes(self.item(1)?)?)
    }

    /// The number at `i`.
    pub fn int(&self, i: usize) -> Result<u64, GeoError> {
        u64::try_from(int(self.item(i)?)?).map_err(|_| malformed("a negative version"))
    }

    /// The driver's previous tile (third place), if it had one (-1: none).
    pub fn old_tile(&self) -> Result<Option<u32>, GeoError> {
        let t = int(self.item(2)?)?;
        if t < 0 {
            return Ok(None);
        }
        u32::try_from(t)
            .map(Some)
            .map_err(|_| malformed("a tile out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let r = Rec {
            ver: 17,
            upd: 1_800_000_000_123,
            lon_q: u32::MAX,
            lat_q: 0,
            attrs: (1 << crate::attrs::ATTR_BITS) - 1,
            ttl: 1 << 40,
            custom: true,
            tile: 0x0123_4567,
        };
        assert_eq!(Rec::parse(&r.bytes()).unwrap(), r);
        let mut bad_attrs = r.bytes();
        bad_attrs[26] = 0x80;
        let mut bad_flag = r.bytes();
        bad_flag[36] = 2;
        for bad in [Vec::new(), vec![0; 40], vec![0; 42], bad_attrs, bad_flag] {
            assert!(
                matches!(Rec::parse(&bad), Err(GeoError::Unavailable { .. })),
                "{bad:?}"
            );
        }
    }
}
