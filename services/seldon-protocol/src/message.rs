//! The JSON shapes of Seldon Core's v1 protocol (SeldonMessage and friends),
//! as the Python wrapper and the executor read and write them
//! (seldon-core/proto/prediction.proto; the wrapper's JSON path in
//! python/seldon_core/utils.py, v1.18).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::raw::{RawJson, RawObject};

/// A request or response. Exactly one of `data`, `binData`, `strData` or
/// `jsonData` carries the payload.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub struct SeldonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DefaultData>,
    /// Base64 bytes (line breaks and other whitespace are skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub str_data: Option<String>,
    /// Any JSON value, passed to the model as the text that was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub json_data: Option<RawJson>,
}

/// `data`: column names plus one array form. The arrays are kept as the
/// JSON text that was sent, so that no number changes on its way through.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(remote = "Self")]
pub struct DefaultData {
    /// Column names. Advisory, as in Seldon: their count need not match.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub names: Names,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<Tensor>,
    /// Nested JSON lists of numbers or strings (a number or string alone is
    /// a 0-dimensional array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub ndarray: Option<Box<RawValue>>,
    /// TensorFlow's TensorProto in JSON; recognised so that it can be refused clearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub tftensor: Option<RawJson>,
}

/// Column names: a list, Seldon's default names `t:0` .. `t:{n-1}` (written
/// out one at a time, so that a reply with half a million columns does not
/// hold half a million strings), or a request's list as the JSON text that
/// was sent (checked to be strings; a parsed string costs 24 bytes more
/// than its text, and names are advisory: most models never read them).
#[derive(Debug, Clone)]
pub enum Names {
    List(Vec<String>),
    Indexed(usize),
    Raw { json: RawJson, len: usize },
}

impl PartialEq for Names {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.to_vec() == other.to_vec()
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl From<Vec<String>> for Names {
    fn from(v: Vec<String>) -> Self {
        Self::List(v)
    }
}

impl Names {
    pub fn len(&self) -> usize {
        match self {
            Self::List(v) => v.len(),
            Self::Indexed(n) => *n,
            Self::Raw { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name `i` (a request's list is parsed for it: call [`Self::to_vec`]
    /// once to read many).
    pub fn get(&self, i: usize) -> Option<Cow<'_, str>> {
        match self {
            Self::List(v) => v.get(i).map(|s| Cow::Borrowed(s.as_str())),
            Self::Indexed(n) => (i < *n).then(|| Cow::Owned(format!("t:{i}"))),
            Self::Raw { .. } => self.to_vec().into_iter().nth(i).map(Cow::Owned),
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::List(v) => v.clone(),
            // Checked to be a list of strings when it was read.
            Self::Raw { json, .. } => serde_json::from_str(json.get()).unwrap_or_default(),
            Self::Indexed(_) => (0..self.len())
                .filter_map(|i| self.get(i).map(Cow::into_owned))
                .collect(),
        }
    }

    /// The length of the names as JSON text, at least.
    pub fn json_len(&self) -> usize {
        match self {
            Self::List(v) => v.iter().map(|n| n.len() + 3).sum(),
            Self::Indexed(n) => n * (5 + n.to_string().len()),
            Self::Raw { json, .. } => json.get().len(),
        }
    }
}

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Raw { json, .. } => json.serialize(s),
            _ => s.collect_seq((0..self.len()).filter_map(|i| self.get(i))),
        }
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = RawJson::deserialize(d)?;
        let len = count_strings(json.get()).map_err(serde::de::Error::custom)?;
        Ok(Self::Raw { json, len })
    }
}

/// How many strings the JSON list `text` holds; an error for anything else
/// (read without allocating per string).
fn count_strings(text: &str) -> Result<usize, serde_json::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<AString>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    /// A string, not kept.
    struct AString;
    impl<'de> Deserialize<'de> for AString {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = AString;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AString, E> {
                    Ok(AString)
                }
            }
            d.deserialize_str(V)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_seq(&mut de, Count)
}

/// `{"shape": [2, 2], "values": [0, 0, 1, 1]}`: row-major values. One
/// dimension may be `-1` (inferred, as numpy's reshape does).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(remote = "Self")]
pub struct Tensor {
    pub shape: Vec<i64>,
    /// The JSON list of numbers, as sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<f64>))]
    pub values: Box<RawValue>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(remote = "Self")]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub puid: Option<String>,
    /// Any members; echoed as sent.
    #[serde(default, skip_serializing_if = "RawObject::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: RawObject,
    #[serde(default, skip_serializing_if = "RawObject::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub routing: RawObject,
    /// Which predictive units (by name) handled the message, with their
    /// images: `{"<unit>": "<image>"}`.
    #[serde(default, skip_serializing_if = "RawObject::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request_path: RawObject,
    /// Custom metrics, echoed from the request as Seldon's wrapper does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// A custom metric (prediction.proto's `Metric`):
/// `{"key": "mycounter", "type": "COUNTER", "value": 1, "tags": {...}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(remote = "Self")]
pub struct Metric {
    pub key: String,
    #[serde(rename = "type", default)]
    pub kind: MetricType,
    /// The value as sent.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub value: serde_json::Number,
    #[serde(default, skip_serializing_if = "RawObject::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: RawObject,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetricType {
    #[default]
    Counter,
    Gauge,
    Timer,
}

/// `{"code": 400, "info": "...", "reason": "...", "status": "FAILURE"}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(remote = "Self")]
pub struct Status {
    pub code: i32,
    #[serde(default)]
    pub info: String,
    #[serde(default)]
    pub reason: String,
    pub status: String,
}

impl Status {
    pub fn failure(code: u16, reason: &str, info: impl Into<String>) -> Self {
        Self {
            code: i32::from(code),
            info: info.into(),
            reason: reason.into(),
            status: "FAILURE".into(),
        }
    }
}

/// `send-feedback`: the request, the response it got, a reward, the truth.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(remote = "Self")]
pub struct Feedback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<SeldonMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<SeldonMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<SeldonMessage>,
}

/// Objects only: serde's derive would also read a struct from a JSON list
/// of its fields in order (`[null, {"ndarray": [1]}]` as a message), which
/// no Seldon client means. Each type derives with `remote = "Self"` and is
/// read through `deserialize_map`, which refuses anything but an object.
macro_rules! objects_only {
    ($($t:ident: $what:literal),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V)
            }
        }

        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $t::serialize(self, s)
            }
        }
    )*};
}

objects_only!(
    SeldonMessage: "a SeldonMessage object ({\"data\": ...}, {\"jsonData\": ...}, ...)",
    DefaultData: "a `data` object ({\"names\": [...], \"tensor\" or \"ndarray\": ...})",
    Tensor: "a `tensor` object ({\"shape\": [...], \"values\": [...]})",
    Meta: "a `meta` object",
    Metric: "a metric object ({\"key\": ..., \"type\": ..., \"value\": ...})",
    Status: "a `status` object",
    Feedback: "a Feedback object ({\"request\": ..., \"reward\": ...})"
);

/// Parses JSON into `T`, naming the path of the offending field on error
/// (`data.tensor.shape[0]: invalid type: string "a", expected i64`).
/// Anything but whitespace after the value is an error, as in Python's
/// `json.loads`; so is a number beyond an f64's range anywhere in the text
/// (`crate::range`).
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A typed field (a shape, a reward, a metric's value) refuses an
        // overflowing number itself: say it as everywhere else.
        if e.inner().to_string().starts_with("number out of range")
            && let Err(why) = crate::range::check(text)
        {
            return why;
        }
        let path = e.path().to_string();
        let inner = explain(text, e.into_inner());
        // `?` is serde_path_to_error's "somewhere unknown": say nothing.
        if path.is_empty() || path == "." || path == "?" {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| explain(text, e))?;
    crate::range::check(text)?;
    Ok(value)
}

/// serde_json's error, with what a client most likely meant where its
/// wording would puzzle one.
fn explain(text: &str, e: serde_json::Error) -> String {
    let at = offset(text, e.line(), e.column());
    let here = at.map_or("", |i| text.get(i.saturating_sub(1)..).unwrap_or(""));
    let non_finite = ["NaN", "Infinity", "-Infinity"]
        .iter()
        .any(|w| here.starts_with(w) || here.get(1..).is_some_and(|h| h.starts_with(w)));
    if non_finite && e.is_syntax() {
        return format!(
            "{e}: NaN and Infinity are not JSON (RFC 8259 §6); send finite numbers \
             (Python's json.dumps writes them unless given allow_nan=False)"
        );
    }
    if e.is_eof() && text.trim().is_empty() {
        return "the message is empty".into();
    }
    e.to_string()
}

/// The byte offset of serde_json's 1-based line and column.
fn offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    Some(start + column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_payload_round_trips() -> Result<(), String> {
        let text = r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;
        let m: SeldonMessage = from_json(text)?;
        let d = m.data.clone().ok_or("no data")?;
        assert_eq!(d.names.to_vec(), ["a", "b"]);
        let t = d.tensor.ok_or("no tensor")?;
        assert_eq!((t.shape, t.values.get()), (vec![2, 2], "[0,0,1,1]"));
        let back = serde_json::to_string(&m).map_err(|e| e.to_string())?;
        assert_eq!(back, text);
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_json::<SeldonMessage>(r#"{"data":{"tensor":{"shape":[2,"x"],"values":[1]}}}"#)
            .expect_err("string in a shape");
        assert!(e.starts_with("data.tensor.shape[1]"), "{e}");
    }

    #[test]
    fn data_after_the_message_is_refused() {
        let e = from_json::<SeldonMessage>(r#"{"strData":"a"} {"strData":"b"}"#)
            .expect_err("two values");
        assert!(e.contains("trailing characters"), "{e}");
        assert!(from_json::<SeldonMessage>("{\"strData\":\"a\"}\n ").is_ok());
    }

    #[test]
    fn messages_are_objects_not_lists() {
        let e =
            from_json::<SeldonMessage>(r#"[null, null, {"ndarray": [1]}]"#).expect_err("a list");
        assert!(e.contains("expected a SeldonMessage object"), "{e}");
        let e = from_json::<SeldonMessage>(r#"{"data": []}"#).expect_err("a list");
        assert!(e.contains("expected a `data` object"), "{e}");
        let e = from_json::<Feedback>(r#"{"truth": [null, null]}"#).expect_err("a list");
        assert!(e.starts_with("truth: invalid type: sequence"), "{e}");
    }

    #[test]
    fn non_finite_numbers_are_explained() {
        for text in [
            r#"{"data":{"ndarray":[NaN]}}"#,
            r#"{"data":{"ndarray":[1, Infinity]}}"#,
            "{\"data\":\n{\"ndarray\":[-Infinity]}}",
        ] {
            let e = from_json::<SeldonMessage>(text).expect_err("not JSON");
            assert!(e.contains("NaN and Infinity are not JSON"), "{text}: {e}");
        }
        let e = from_json::<SeldonMessage>(r#"{"data":{"ndarray":[nul]}}"#).expect_err("typo");
        assert!(!e.contains("NaN"), "{e}");
    }

    #[test]
    fn overflowing_numbers_in_typed_fields_are_named_as_everywhere() {
        for (text, want) in [
            (
                r#"{"meta":{"metrics":[{"key":"k","type":"COUNTER","value":1e400}]}}"#,
                "meta.metrics[0].value: 1e400 is beyond the range of a 64-bit float",
            ),
            (
                r#"{"data":{"tensor":{"shape":[1e400],"values":[]}}}"#,
                "data.tensor.shape[0]: 1e400 is beyond",
            ),
        ] {
            let e = from_json::<SeldonMessage>(text).expect_err("out of range");
            assert!(e.starts_with(want), "{text}: {e}");
        }
        let e = from_json::<Feedback>(r#"{"reward":-1e999}"#).expect_err("out of range");
        assert!(e.starts_with("reward: -1e999 is beyond"), "{e}");
    }

    #[test]
    fn unknown_places_are_not_shown_as_a_question_mark() {
        let e = from_json::<SeldonMessage>("{{{").expect_err("not JSON");
        assert!(!e.starts_with('?'), "{e}");
        assert_eq!(
            from_json::<SeldonMessage>("  ").expect_err("empty"),
            "the message is empty"
        );
    }

    #[test]
    fn request_names_are_kept_as_sent_and_checked() -> Result<(), String> {
        let d: DefaultData = from_json(r#"{"names": ["a", "b\u0063"], "ndarray": [[1, 2]]}"#)?;
        assert_eq!(d.names.len(), 2);
        assert_eq!(d.names.to_vec(), ["a", "bc"]);
        assert_eq!(d.names.get(1).as_deref(), Some("bc"));
        let back = serde_json::to_string(&d).map_err(|e| e.to_string())?;
        assert!(back.starts_with(r#"{"names":["a", "b\u0063"]"#), "{back}");
        let e = from_json::<DefaultData>(r#"{"names": ["a", 1]}"#).expect_err("a number");
        assert!(e.contains("expected a string"), "{e}");
        Ok(())
    }

    #[test]
    fn default_names_are_written_lazily() -> Result<(), String> {
        let n = Names::Indexed(3);
        assert_eq!(
            serde_json::to_string(&n).map_err(|e| e.to_string())?,
            r#"["t:0","t:1","t:2"]"#
        );
        assert_eq!(n.get(2).as_deref(), Some("t:2"));
        assert_eq!(n.get(3), None);
        Ok(())
    }

    #[test]
    fn camel_case_fields() -> Result<(), String> {
        let m: SeldonMessage = from_json(
            r#"{"strData":"hi","meta":{"puid":"p1","tags":{"k":"v"},"requestPath":{"a":"b"}}}"#,
        )?;
        assert_eq!(m.str_data.as_deref(), Some("hi"));
        let meta = m.meta.ok_or("no meta")?;
        assert_eq!(meta.puid.as_deref(), Some("p1"));
        assert_eq!(meta.tags.get(), r#"{"k":"v"}"#);
        assert!(meta.request_path.has_key("a"));
        Ok(())
    }
}
