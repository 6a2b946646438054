//! JSON the protocol passes through without reading it (`jsonData`,
//! `meta.tags`, `meta.requestPath`, ...), kept as the text that was sent.
//! A parsed `serde_json::Value` costs about a hundred bytes per object or
//! list in it, so a 1 MiB body of small objects took 200 MB; the text costs
//! what it weighs, and comes back byte for byte.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Any JSON value, as sent.
pub type RawJson = Box<RawValue>;

/// A JSON object, as sent (RFC 8259 §4: `{` members `}`). The default is
/// the empty object `{}` (held without allocating: most messages have no
/// `tags`, `routing` or `requestPath`).
#[derive(Debug, Clone, Default)]
pub struct RawObject(Option<Box<RawValue>>);

impl RawObject {
    /// The object's JSON text.
    pub fn get(&self) -> &str {
        self.0.as_deref().map_or("{}", RawValue::get)
    }

    /// Whether it has no member (`{}`, whitespace allowed).
    pub fn is_empty(&self) -> bool {
        self.inner().trim().is_empty()
    }

    /// Whether it has a member named `key` (escapes in the text decoded).
    /// Reads the text without allocating per member.
    pub fn has_key(&self, key: &str) -> bool {
        struct Finder<'k>(&'k str);
        impl<'de> Visitor<'de> for Finder<'_> {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
                let mut found = false;
                while let Some(eq) = map.next_key_seed(KeyIs(self.0))? {
                    found |= eq;
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(found)
            }
        }
        let mut de = serde_json::Deserializer::from_str(self.get());
        de::Deserializer::deserialize_map(&mut de, Finder(key)).unwrap_or(false)
    }

    /// This object with `key: value` added as its first member (the caller
    /// checks [`Self::has_key`] first: JSON objects should not repeat names).
    pub fn with_first(&self, key: &str, value: &str) -> Self {
        let member = format!(
            "{}:{}",
            serde_json::Value::from(key),
            serde_json::Value::from(value)
        );
        let text = if self.is_empty() {
            format!("{{{member}}}")
        } else {
            format!("{{{member},{}}}", self.inner())
        };
        // Both parts are valid JSON: the member is serde_json's, the rest
        // the members of a parsed object.
        match RawValue::from_string(text) {
            Ok(raw) => Self(Some(raw)),
            Err(_) => self.clone(),
        }
    }

    /// The text between the braces.
    fn inner(&self) -> &str {
        let t = self.get().trim();
        t.strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or("")
    }
}

impl PartialEq for RawObject {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().trim_start().starts_with('{') {
            Ok(Self(Some(raw)))
        } else {
            Err(de::Error::invalid_type(
                de::Unexpected::Other(kind(raw.get())),
                &"an object",
            ))
        }
    }
}

impl Serialize for RawObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(s),
            None => serde::ser::SerializeMap::end(s.serialize_map(Some(0))?),
        }
    }
}

/// What a JSON text is, for messages.
fn kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Deserializes a member name and says whether it equals the one sought.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> RawObject {
        serde_json::from_str(text).expect("an object")
    }

    #[test]
    fn kept_byte_for_byte() -> serde_json::Result<()> {
        let text = r#"{ "a" : [1.50, -0.0, {"":0}], "b":"\u00e9" }"#;
        assert_eq!(serde_json::to_string(&obj(text))?, text);
        Ok(())
    }

    #[test]
    fn only_objects() {
        let e = serde_json::from_str::<RawObject>("[1]").expect_err("a list");
        assert!(e.to_string().contains("expected an object"), "{e}");
    }

    #[test]
    fn keys_are_found_with_escapes_decoded() {
        let o = obj(r#"{"a":{"b":1},"c\u0064":2}"#);
        assert!(o.has_key("a"));
        assert!(o.has_key("cd"));
        assert!(!o.has_key("b"));
        assert!(!obj("{}").has_key(""));
    }

    #[test]
    fn a_first_member_is_added() -> serde_json::Result<()> {
        assert_eq!(obj(" { } ").with_first("u", "i:1").get(), r#"{"u":"i:1"}"#);
        let o = obj(r#"{"a":1}"#).with_first("u\"", "x");
        let v: serde_json::Value = serde_json::from_str(o.get())?;
        assert_eq!(v, serde_json::json!({"u\"": "x", "a": 1}));
        Ok(())
    }

    #[test]
    fn emptiness() {
        assert!(obj("{ \n}").is_empty());
        assert!(!obj(r#"{"":0}"#).is_empty());
        assert!(RawObject::default().is_empty());
    }
}
