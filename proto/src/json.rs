//! Serialization helpers that generated code calls (see `canonicalize_serde` in build.rs).

use serde::{Serialize, Serializer};

/// Prints floats as the proto3 JSON mapping requires: finite values as numbers, NaN and the
/// infinities as the strings "NaN", "Infinity" and "-Infinity" (serde_json alone prints `null`,
/// which a client cannot tell from an unset field).
pub struct Float<'a, T: ?Sized>(pub &'a T);

/// A float type, or a list of them, that [`Float`] can print.
pub trait CanonicalFloat {
    /// Serializes `self` canonically.
    fn serialize_canonical<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

impl CanonicalFloat for f64 {
    fn serialize_canonical<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match non_finite(*self) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_f64(*self),
        }
    }
}

impl CanonicalFloat for f32 {
    fn serialize_canonical<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match non_finite(f64::from(*self)) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_f32(*self),
        }
    }
}

impl<T: CanonicalFloat> CanonicalFloat for Vec<T> {
    fn serialize_canonical<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Float))
    }
}

impl<T: CanonicalFloat + ?Sized> Serialize for Float<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_canonical(s)
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    #[test]
    fn non_finite_values_are_strings() {
        let v = |x: f64| serde_json::to_string(&Float(&x)).unwrap();
        assert_eq!(v(1.5), "1.5");
        assert_eq!(v(f64::NAN), "\"NaN\"");
        assert_eq!(v(f64::INFINITY), "\"Infinity\"");
        assert_eq!(v(f64::NEG_INFINITY), "\"-Infinity\"");
        let list = vec![f32::NAN, 2.0];
        assert_eq!(serde_json::to_string(&Float(&list)).unwrap(), "[\"NaN\",2.0]");
    }
}
