//! Well-known types whose JSON form pbjson-types gets wrong.
//!
//! The proto3 JSON mapping prints a Timestamp as RFC 3339 in UTC with a `Z` and 0, 3, 6 or 9
//! fractional digits, and a FieldMask as one string of comma-separated lowerCamelCase paths.
//! pbjson-types prints `+00:00` and `{"paths": [...]}`, so these two are mapped here instead
//! (see `EXTERN` in build.rs). Their wire form is the standard one.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `google.protobuf.Timestamp`: a point in time, as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z; 0001-01-01 to 9999-12-31 in JSON.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fractions of a second, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl prost::Name for Timestamp {
    const NAME: &'static str = "Timestamp";
    const PACKAGE: &'static str = "google.protobuf";
}

/// The RFC 3339 range the JSON mapping allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Utc::now().into()
    }

    fn to_datetime(self) -> Result<DateTime<Utc>, String> {
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds) {
            return Err(format!("timestamp seconds {} out of range", self.seconds));
        }
        let nanos = u32::try_from(self.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .ok_or_else(|| format!("timestamp nanos {} out of range", self.nanos))?;
        DateTime::from_timestamp(self.seconds, nanos).ok_or_else(|| "timestamp out of range".into())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Ok(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Err(e) => f.write_str(&e),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = DateTime::parse_from_rfc3339(s).map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))?;
        let ts: Timestamp = t.with_timezone(&Utc).into();
        ts.to_datetime()?;
        Ok(ts)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.to_datetime().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// `google.protobuf.FieldMask`: a set of field paths such as `name` or `address.street_name`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct FieldMask {
    /// The paths, in proto (snake_case) form.
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}

impl prost::Name for FieldMask {
    const NAME: &'static str = "FieldMask";
    const PACKAGE: &'static str = "google.protobuf";
}

/// `display_name` -> `displayName`, segment by segment.
pub fn snake_to_camel(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `displayName` -> `display_name`.
pub fn camel_to_snake(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Serialize for FieldMask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let joined: Vec<String> = self.paths.iter().map(|p| snake_to_camel(p)).collect();
        s.serialize_str(&joined.join(","))
    }
}

impl<'de> Deserialize<'de> for FieldMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let paths = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.contains('_') {
                    // The mapping forbids snake_case here; reject rather than guess.
                    Err(D::Error::custom(format!("field mask path {p:?} must be lowerCamelCase in JSON")))
                } else {
                    Ok(camel_to_snake(p))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldMask { paths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_prints_z_and_minimal_fraction_digits() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00Z"),
            (1, 500_000_000, "1970-01-01T00:00:01.500Z"),
            (1, 1_000, "1970-01-01T00:00:01.000001Z"),
            (1, 1, "1970-01-01T00:00:01.000000001Z"),
            (-1, 0, "1969-12-31T23:59:59Z"),
        ];
        for (seconds, nanos, want) in cases {
            let t = Timestamp { seconds, nanos };
            assert_eq!(serde_json::to_value(t).unwrap(), want);
            let back: Timestamp = serde_json::from_value(want.into()).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn timestamp_accepts_offsets_and_rejects_garbage() {
        let t: Timestamp = serde_json::from_str("\"1970-01-01T01:00:00+01:00\"").unwrap();
        assert_eq!(t, Timestamp { seconds: 0, nanos: 0 });
        for bad in ["\"yesterday\"", "12", "\"1970-01-01\"", "\"10000-01-01T00:00:00Z\""] {
            assert!(serde_json::from_str::<Timestamp>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::to_value(Timestamp { seconds: 0, nanos: -1 }).is_err());
        assert!(serde_json::to_value(Timestamp { seconds: i64::MAX, nanos: 0 }).is_err());
    }

    #[test]
    fn field_mask_is_one_camel_case_string() {
        let m = FieldMask { paths: vec!["name".into(), "address.street_name".into()] };
        assert_eq!(serde_json::to_value(&m).unwrap(), "name,address.streetName");
        let back: FieldMask = serde_json::from_str("\"name,address.streetName\"").unwrap();
        assert_eq!(back, m);
        let empty: FieldMask = serde_json::from_str("\"\"").unwrap();
        assert!(empty.paths.is_empty());
        assert!(serde_json::from_str::<FieldMask>("\"street_name\"").is_err());
        assert!(serde_json::from_str::<FieldMask>("{\"paths\":[]}").is_err());
    }
}
