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

/// A driver record: `version:updated:lon_q:lat_q:attrs:ttl:custom:tile`.
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

impl Rec {
    pub fn parse(text: &[u8]) -> Result<Rec, GeoError> {
        let bad = || malformed(format_args!("record `{}`", String::from_utf8_lossy(text)));
        let s = std::str::from_utf8(text).map_err(|_| bad())?;
        let mut it = s.split(':');
        let mut next =
            || -> Result<u64, GeoError> { it.next().and_then(|f| f.parse().ok()).ok_or_else(bad) };
        let rec = Rec {
            ver: next()?,
            upd: next()?,
            lon_q: u32::try_from(next()?).map_err(|_| bad())?,
            lat_q: u32::try_from(next()?).map_err(|_| bad())?,
            attrs: u32::try_from(next()?)
                .ok()
                .filter(|&a| a < 1 << crate::attrs::ATTR_BITS)
                .ok_or_else(bad)?,
            ttl: next()?,
            custom: next()? == 1,
            tile: u32::try_from(next()?).map_err(|_| bad())?,
        };
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(rec)
    }

    pub fn text(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}:{}",
            self.ver,
            self.upd,
            self.lon_q,
            self.lat_q,
            self.attrs,
            self.ttl,
            u8::from(self.custom),
            self.tile
        )
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

    /// The driver's previous tile (third place), if it had one.
    pub fn old_tile(&self) -> Result<Option<u32>, GeoError> {
        let b = bytes(self.item(2)?)?;
        if b.is_empty() {
            return Ok(None);
        }
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| malformed("a tile that is not a number"))
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
            ttl: 30_000,
            custom: true,
            tile: 0x0123_4567,
        };
        assert_eq!(Rec::parse(r.text().as_bytes()).unwrap(), r);
        for bad in [
            "",
            "1:2",
            "1:2:3:4:5:6:1:7:8",
            "a:2:3:4:5:6:1:7",
            "1:2:3:4:8388608:6:1:7",
            "1:2:4294967296:4:5:6:1:7",
        ] {
            assert!(
                matches!(
                    Rec::parse(bad.as_bytes()),
                    Err(GeoError::Unavailable { .. })
                ),
                "{bad}"
            );
        }
    }
}
