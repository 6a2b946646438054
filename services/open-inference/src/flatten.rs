//! A tensor's `data`, flat or nested to any depth, read straight into a
//! typed vector: no intermediate JSON tree, at most `max` elements.

use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

/// Nesting deeper than this is refused (numpy's 32 dimensions, with room).
pub const MAX_DEPTH: usize = 64;

/// One JSON scalar of `data`.
pub enum Leaf<'a> {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

/// Reads a (possibly nested) array into `out`, each scalar through `leaf`,
/// failing past `max` elements, past [`MAX_DEPTH`], or on a scalar `leaf`
/// refuses (its message says why).
pub struct Flatten<'v, T> {
    pub out: &'v mut Vec<T>,
    pub max: usize,
    pub leaf: fn(Leaf<'_>) -> Result<T, String>,
    pub depth: usize,
}

impl<T> Flatten<'_, T> {
    fn push<E: de::Error>(self, leaf: Leaf<'_>) -> Result<(), E> {
        if self.depth == 0 {
            return Err(E::custom("data must be an array (flat or nested)"));
        }
        if self.out.len() >= self.max {
            return Err(E::custom(format!(
                "data holds more than the {} element(s) its shape says",
                self.max
            )));
        }
        self.out.push((self.leaf)(leaf).map_err(E::custom)?);
        Ok(())
    }
}

impl<'de, T> DeserializeSeed<'de> for Flatten<'_, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for Flatten<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tensor elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "data is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let Flatten {
            out,
            max,
            leaf,
            depth,
        } = self;
        while seq
            .next_element_seed(Flatten {
                out: &mut *out,
                max,
                leaf,
                depth: depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Leaf::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(Leaf::U64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(Leaf::I64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(Leaf::F64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(Leaf::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("data holds null, which no datatype takes"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(
            "data holds an object, which no datatype takes",
        ))
    }
}
