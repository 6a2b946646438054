//! The JSON shapes of Seldon Core's v1 protocol (SeldonMessage and friends),
//! as the Python wrapper and the executor read and write them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request or response. Exactly one of `data`, `binData`, `strData` or
/// `jsonData` carries the payload.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeldonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DefaultData>,
    /// Base64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub str_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_data: Option<Value>,
}

/// `data`: column names plus one array form.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct DefaultData {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<Tensor>,
    /// Nested JSON arrays of numbers or strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndarray: Option<Value>,
    /// TensorFlow's TensorProto in JSON; recognised so that it can be refused clearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftensor: Option<Value>,
}

/// `{"shape": [2, 2], "values": [0, 0, 1, 1]}`: row-major values.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub puid: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub routing: Map<String, Value>,
    /// Which predictive unit (by name) answered, with its image.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub request_path: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Value>,
}

/// `{"code": 400, "info": "...", "reason": "...", "status": "FAILURE"}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
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
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
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

/// Parses JSON into `T`, naming the path of the offending field on error
/// (`data.tensor.values[2]: invalid type: string "a", expected f64`).
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_payload_round_trips() -> Result<(), String> {
        let text = r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;
        let m: SeldonMessage = from_json(text)?;
        let d = m.data.clone().ok_or("no data")?;
        assert_eq!(d.names, ["a", "b"]);
        assert_eq!(
            d.tensor,
            Some(Tensor {
                shape: vec![2, 2],
                values: vec![0.0, 0.0, 1.0, 1.0]
            })
        );
        let back = serde_json::to_string(&m).map_err(|e| e.to_string())?;
        assert_eq!(
            back,
            r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0.0,0.0,1.0,1.0]}}}"#
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_json::<SeldonMessage>(r#"{"data":{"tensor":{"shape":[2],"values":[1,"x"]}}}"#)
            .expect_err("string in a tensor");
        assert!(e.starts_with("data.tensor.values[1]"), "{e}");
    }

    #[test]
    fn camel_case_fields() -> Result<(), String> {
        let m: SeldonMessage = from_json(
            r#"{"strData":"hi","meta":{"puid":"p1","tags":{"k":"v"},"requestPath":{"a":"b"}}}"#,
        )?;
        assert_eq!(m.str_data.as_deref(), Some("hi"));
        let meta = m.meta.ok_or("no meta")?;
        assert_eq!(meta.puid.as_deref(), Some("p1"));
        assert_eq!(meta.tags["k"], "v");
        assert_eq!(meta.request_path["a"], "b");
        Ok(())
    }
}
