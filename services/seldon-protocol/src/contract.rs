//! contract.json as Seldon defines it (`features` and `targets`, each with
//! name, dtype, ftype, range, values, repeat, shape): parsing with errors
//! that name the field, random request batches drawn the way
//! seldon-core-tester draws them, and checks of a response against the
//! targets, which Seldon's tester never makes.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, LogNormal, StandardNormal};
use serde::Deserialize;
use serde_json::Value;

use crate::array::{Array, Limits, Repr};
use crate::message::{DefaultData, SeldonMessage};

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub features: Vec<Feature>,
    #[serde(default)]
    pub targets: Vec<Feature>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    #[serde(default)]
    pub dtype: Option<Dtype>,
    pub ftype: Ftype,
    /// `[low, high]`; an end written "inf" (Seldon's notation, on either
    /// side) or "-inf" is open: open ranges draw from a normal or shifted
    /// lognormal distribution, as seldon-core-tester does.
    #[serde(default, deserialize_with = "range")]
    pub range: Option<[Bound; 2]>,
    /// The categories of a categorical feature.
    #[serde(default)]
    pub values: Option<Vec<Value>>,
    /// Expand into `repeat` columns named `name:0`, `name:1`, ...
    #[serde(default)]
    pub repeat: Option<usize>,
    /// Columns of one feature as a shape, e.g. `[3]` (default one column).
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    #[serde(rename = "FLOAT")]
    Float,
    #[serde(rename = "INT")]
    Int,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Ftype {
    Continuous,
    Categorical,
}

/// A range end: a number, or an open end (infinite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound(pub f64);

/// Reads `[low, high]`. seldon-core-tester writes an open end as "inf" on
/// either side (`["inf", 5]` is everything up to 5); "-inf" and "+inf" are
/// accepted too.
fn range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<[Bound; 2]>, D::Error> {
    let Some([lo, hi]) = Option::<[Value; 2]>::deserialize(d)? else {
        return Ok(None);
    };
    let end = |v: &Value, open: f64| match v {
        Value::Number(n) => n
            .as_f64()
            .map(Bound)
            .ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) if matches!(s.as_str(), "inf" | "+inf" | "-inf") => Ok(Bound(open)),
        other => Err(format!(
            "expected a number, \"inf\" or \"-inf\", got {other}"
        )),
    };
    Ok(Some([
        end(&lo, f64::NEG_INFINITY).map_err(serde::de::Error::custom)?,
        end(&hi, f64::INFINITY).map_err(serde::de::Error::custom)?,
    ]))
}

/// One column group after `repeat` is expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Whether the name came from `repeat` (models name such outputs freely).
    pub repeated: bool,
    pub width: usize,
    pub feature: Feature,
}

impl Contract {
    /// Parses and checks a contract; errors name the file's field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Contract = crate::message::from_json(text)?;
        if c.features.is_empty() {
            return Err("features: the contract has no features".into());
        }
        for (kind, list) in [("features", &c.features), ("targets", &c.targets)] {
            for (i, f) in list.iter().enumerate() {
                f.check()
                    .map_err(|e| format!("{kind}[{i}] ({}): {e}", f.name))?;
            }
        }
        Ok(c)
    }

    pub fn feature_columns(&self) -> Vec<Column> {
        unfold(&self.features)
    }

    pub fn target_columns(&self) -> Vec<Column> {
        unfold(&self.targets)
    }

    /// A request of `rows` random rows. `tensor` sends data.tensor (numeric
    /// features only) instead of data.ndarray.
    pub fn request(
        &self,
        rows: usize,
        tensor: bool,
        rng: &mut impl Rng,
    ) -> Result<SeldonMessage, String> {
        let columns = self.feature_columns();
        let width: usize = columns.iter().map(|c| c.width).sum();
        let mut cells = Vec::with_capacity(rows * width);
        for _ in 0..rows {
            for c in &columns {
                for _ in 0..c.width {
                    cells.push(c.feature.draw(rng));
                }
            }
        }
        if tensor && !cells.iter().all(Value::is_number) {
            return Err(
                "--tensor needs numeric features; this contract has categorical strings".into(),
            );
        }
        let repr = if tensor { Repr::Tensor } else { Repr::Ndarray };
        let array = Array::from_values(repr, vec![rows, width], &cells);
        Ok(SeldonMessage {
            data: Some(array.to_data(columns.into_iter().map(|c| c.name).collect::<Vec<_>>())),
            ..SeldonMessage::default()
        })
    }

    /// What is wrong with `response` to a request of `rows` rows sent as
    /// `repr`; empty when it satisfies the targets.
    pub fn check_response(&self, rows: usize, repr: Repr, response: &SeldonMessage) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(s) = &response.status
            && s.status == "FAILURE"
        {
            problems.push(format!(
                "status FAILURE {}: {} {}",
                s.code, s.reason, s.info
            ));
            return problems;
        }
        let Some(data) = &response.data else {
            problems.push("the response has no data".into());
            return problems;
        };
        let array = match Array::from_data(data, Limits::for_body(usize::MAX)) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("response {e}"));
                return problems;
            }
        };
        if array.repr != repr {
            problems.push(format!(
                "the request used {repr:?} but the response used {:?}",
                array.repr
            ));
        }
        if array.rows() != rows {
            problems.push(format!(
                "{} rows in the response for a batch of {rows}",
                array.rows()
            ));
        }
        let columns = self.target_columns();
        if columns.is_empty() {
            return problems;
        }
        let width: usize = columns.iter().map(|c| c.width).sum();
        if array.cols() != width {
            problems.push(format!(
                "{} outputs per row, but the targets expect {width} ({})",
                array.cols(),
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return problems;
        }
        if !data.names.is_empty() && data.names.len() != width {
            problems.push(format!("{} names for {width} outputs", data.names.len()));
        }
        let names = data.names.to_vec();
        let mut col = 0;
        for c in &columns {
            if let Some(name) = names.get(col)
                && !c.repeated
                && c.width == 1
                && *name != *c.name
            {
                problems.push(format!(
                    "output {col} is named {name:?}, the target is {:?}",
                    c.name
                ));
            }
            for k in 0..c.width {
                for r in 0..array.rows() {
                    let idx = r * width + col + k;
                    if let Some(cell) = array.element(idx).map(|e| e.to_value())
                        && let Err(e) = c.feature.admits(&cell)
                    {
                        problems.push(format!("row {r}, output {} ({}): {e}", col + k, c.name));
                    }
                }
            }
            col += c.width;
        }
        problems
    }
}

impl Feature {
    fn check(&self) -> Result<(), String> {
        if self.repeat == Some(0) {
            return Err("repeat is 0: leave it out, or make it 1 or more".into());
        }
        if let Some(shape) = &self.shape
            && (shape.is_empty() || shape.contains(&0))
        {
            return Err(format!("shape {shape:?} has no elements"));
        }
        match self.ftype {
            Ftype::Continuous => {
                if self.dtype.is_none() {
                    return Err("dtype is required for a continuous feature: FLOAT or INT".into());
                }
                if let Some([Bound(lo), Bound(hi)]) = self.range
                    && lo >= hi
                {
                    return Err(format!(
                        "range [{lo}, {hi}] is empty: the first bound must be below the second"
                    ));
                }
            }
            Ftype::Categorical => {
                if self.values.as_ref().is_none_or(Vec::is_empty) {
                    return Err("values must list the categories of a categorical feature".into());
                }
            }
        }
        Ok(())
    }

    fn width(&self) -> usize {
        self.shape.as_ref().map_or(1, |s| s.iter().product())
    }

    fn draw(&self, rng: &mut impl Rng) -> Value {
        match self.ftype {
            Ftype::Categorical => self
                .values
                .as_deref()
                .and_then(|v| v.choose(rng))
                .cloned()
                .unwrap_or(Value::Null),
            Ftype::Continuous => {
                let [Bound(lo), Bound(hi)] = self
                    .range
                    .unwrap_or([Bound(f64::NEG_INFINITY), Bound(f64::INFINITY)]);
                let mut lognormal =
                    || LogNormal::new(0.0, 1.0).map_or(1.0, |d| d.sample(&mut *rng));
                let x = match (lo.is_finite(), hi.is_finite()) {
                    (true, true) => rng.random_range(lo..hi),
                    (true, false) => lo + lognormal(),
                    (false, true) => hi - lognormal(),
                    (false, false) => StandardNormal.sample(rng),
                };
                match self.dtype {
                    Some(Dtype::Int) => Value::from(x.round() as i64),
                    // Three decimals, as seldon-core-tester rounds.
                    _ => Value::from((x * 1000.0).round() / 1000.0),
                }
            }
        }
    }

    /// Whether an output value satisfies this target.
    fn admits(&self, v: &Value) -> Result<(), String> {
        match self.ftype {
            Ftype::Categorical => {
                let values = self.values.as_deref().unwrap_or_default();
                let hit = values
                    .iter()
                    .any(|c| c == v || (c.as_f64().is_some() && c.as_f64() == v.as_f64()));
                if hit {
                    Ok(())
                } else {
                    Err(format!(
                        "{v} is not one of {}",
                        Value::from(values.to_vec())
                    ))
                }
            }
            Ftype::Continuous => {
                let x = v.as_f64().ok_or_else(|| format!("{v} is not a number"))?;
                if self.dtype == Some(Dtype::Int) && x.fract() != 0.0 {
                    return Err(format!("{x} is not an integer (dtype INT)"));
                }
                if let Some([Bound(lo), Bound(hi)]) = self.range {
                    // Allow float rounding at the edges of the range.
                    let eps = 1e-6;
                    if x < lo - eps || x > hi + eps {
                        return Err(format!("{x} is outside the range [{lo}, {hi}]"));
                    }
                }
                Ok(())
            }
        }
    }
}

fn unfold(list: &[Feature]) -> Vec<Column> {
    list.iter()
        .flat_map(|f| {
            let width = f.width();
            match f.repeat {
                Some(n) => (0..n)
                    .map(|i| Column {
                        name: format!("{}:{i}", f.name),
                        repeated: true,
                        width,
                        feature: f.clone(),
                    })
                    .collect(),
                None => vec![Column {
                    name: f.name.clone(),
                    repeated: false,
                    width,
                    feature: f.clone(),
                }],
            }
        })
        .collect()
}

/// The array form of a request built by [`Contract::request`].
pub fn repr_of(data: &DefaultData) -> Repr {
    if data.tensor.is_some() {
        Repr::Tensor
    } else {
        Repr::Ndarray
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    const TUTORIAL: &str = r#"{
        "features": [
            {"name": "x1", "dtype": "FLOAT", "ftype": "continuous", "range": [4, 8]},
            {"name": "x2", "dtype": "FLOAT", "ftype": "continuous", "range": [2, 5]},
            {"name": "x3", "dtype": "FLOAT", "ftype": "continuous", "range": [1, 10]},
            {"name": "x4", "dtype": "FLOAT", "ftype": "continuous", "range": [0, 3]}
        ],
        "targets": [{"name": "class", "dtype": "FLOAT", "ftype": "continuous", "range": [0, 1], "repeat": 3}]
    }"#;

    fn err(text: &str) -> String {
        Contract::parse(text).expect_err("should be refused")
    }

    #[test]
    fn broken_contracts_name_the_field() {
        assert!(err("{").contains("EOF"), "{}", err("{"));
        let e = err(r#"{"features":[{"name":"a","dtype":"DOUBLE","ftype":"continuous"}]}"#);
        assert!(
            e.starts_with("features[0].dtype: unknown variant `DOUBLE`"),
            "{e}"
        );
        let e = err(
            r#"{"features":[{"name":"a","dtype":"FLOAT","ftype":"continuous","range":[5,1]}]}"#,
        );
        assert_eq!(
            e,
            "features[0] (a): range [5, 1] is empty: the first bound must be below the second"
        );
        let e = err(r#"{"features":[{"name":"a","dtype":"INT","ftype":"continuous","repeat":0}]}"#);
        assert!(e.starts_with("features[0] (a): repeat is 0"), "{e}");
        let e = err(r#"{"features":[{"name":"a","ftype":"categorical"}]}"#);
        assert!(e.contains("values must list"), "{e}");
        let e = err(r#"{"features":[]}"#);
        assert!(e.contains("no features"), "{e}");
        let e = err(
            r#"{"features":[{"name":"a","dtype":"FLOAT","ftype":"continuous","rnage":[0,1]}]}"#,
        );
        assert!(e.contains("rnage"), "{e}");
        let e = err(
            r#"{"features":[{"name":"a","dtype":"FLOAT","ftype":"continuous","range":[0,"x"]}]}"#,
        );
        assert!(e.contains("features[0].range"), "{e}");
    }

    #[test]
    fn requests_stay_inside_the_ranges() -> Result<(), String> {
        let c = Contract::parse(TUTORIAL)?;
        let mut rng = StdRng::seed_from_u64(7);
        let m = c.request(50, false, &mut rng)?;
        let data = m.data.ok_or("no data")?;
        assert_eq!(data.names.to_vec(), ["x1", "x2", "x3", "x4"]);
        let a = Array::from_data(&data, Limits::for_body(1 << 20)).map_err(|e| e.to_string())?;
        assert_eq!(a.shape(), [50, 4]);
        assert!(a.is_numeric());
        let ranges = [(4.0, 8.0), (2.0, 5.0), (1.0, 10.0), (0.0, 3.0)];
        for i in 0..a.len() {
            let x = a.number(i).ok_or("not a number")?;
            let (lo, hi) = ranges[i % 4];
            assert!((lo..=hi).contains(&x), "{x} outside [{lo},{hi}]");
            assert_eq!((x * 1000.0).round() / 1000.0, x, "3 decimals");
        }
        let t = c.request(2, true, &mut rng)?.data.ok_or("no data")?;
        assert_eq!(t.tensor.map(|t| t.shape), Some(vec![2, 4]));
        Ok(())
    }

    #[test]
    fn seldons_open_range_notation() -> Result<(), String> {
        // seldon-core-tester writes "inf" for an open end on either side.
        let c = Contract::parse(
            r#"{"features":[
                {"name":"below","dtype":"FLOAT","ftype":"continuous","range":["inf",-10]},
                {"name":"any","dtype":"FLOAT","ftype":"continuous","range":["inf","inf"]}
            ]}"#,
        )?;
        assert_eq!(
            c.features[0].range,
            Some([Bound(f64::NEG_INFINITY), Bound(-10.0)])
        );
        let m = c.request(20, true, &mut StdRng::seed_from_u64(3))?;
        let a = Array::from_data(&m.data.ok_or("no data")?, Limits::for_body(1 << 20))
            .map_err(|e| e.to_string())?;
        for r in 0..20 {
            assert!(a.number(r * 2).is_some_and(|x| x < -10.0));
        }
        Ok(())
    }

    #[test]
    fn open_ranges_int_and_categorical() -> Result<(), String> {
        let c = Contract::parse(
            r#"{"features":[
                {"name":"lo","dtype":"FLOAT","ftype":"continuous","range":[10,"inf"]},
                {"name":"hi","dtype":"FLOAT","ftype":"continuous","range":["-inf",-10]},
                {"name":"n","dtype":"INT","ftype":"continuous","range":[0,5]},
                {"name":"c","ftype":"categorical","values":["red","green"]}
            ]}"#,
        )?;
        let m = c.request(20, false, &mut StdRng::seed_from_u64(1))?;
        let nd = m.data.and_then(|d| d.ndarray).ok_or("no ndarray")?;
        let nd: Value = serde_json::from_str(nd.get()).map_err(|e| e.to_string())?;
        for row in nd.as_array().ok_or("rows")? {
            assert!(row[0].as_f64().is_some_and(|x| x > 10.0), "{row}");
            assert!(row[1].as_f64().is_some_and(|x| x < -10.0), "{row}");
            assert!(row[2].is_i64(), "{row}");
            assert!(row[3] == "red" || row[3] == "green", "{row}");
        }
        assert!(
            c.request(1, true, &mut StdRng::seed_from_u64(1)).is_err(),
            "strings cannot be a tensor"
        );
        Ok(())
    }

    fn response(v: Value) -> SeldonMessage {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn responses_are_checked_against_the_targets() -> Result<(), String> {
        let c = Contract::parse(TUTORIAL)?;
        let good = response(json!({"data":{"names":["setosa","versicolor","virginica"],
            "ndarray":[[0.9,0.05,0.05],[0.1,0.2,0.7]]}}));
        assert_eq!(
            c.check_response(2, Repr::Ndarray, &good),
            Vec::<String>::new()
        );

        let p = c.check_response(3, Repr::Ndarray, &good);
        assert_eq!(p, ["2 rows in the response for a batch of 3"]);
        let p = c.check_response(2, Repr::Tensor, &good);
        assert!(p[0].contains("the request used Tensor"), "{p:?}");

        let out_of_range = response(json!({"data":{"ndarray":[[1.5,0,0]]}}));
        let p = c.check_response(1, Repr::Ndarray, &out_of_range);
        assert_eq!(
            p,
            ["row 0, output 0 (class:0): 1.5 is outside the range [0, 1]"]
        );

        let too_few = response(json!({"data":{"ndarray":[[1,0]]}}));
        let p = c.check_response(1, Repr::Ndarray, &too_few);
        assert!(
            p[0].starts_with("2 outputs per row, but the targets expect 3"),
            "{p:?}"
        );

        let failure = response(
            json!({"status":{"code":400,"info":"bad","reason":"MICROSERVICE_BAD_DATA","status":"FAILURE"}}),
        );
        assert!(c.check_response(1, Repr::Ndarray, &failure)[0].contains("FAILURE 400"));
        Ok(())
    }

    #[test]
    fn plain_target_names_must_match() -> Result<(), String> {
        let c = Contract::parse(
            r#"{"features":[{"name":"a","dtype":"FLOAT","ftype":"continuous"}],
                "targets":[{"name":"score","dtype":"FLOAT","ftype":"continuous"}]}"#,
        )?;
        let r = response(json!({"data":{"names":["t:0"],"ndarray":[[0.3]]}}));
        assert_eq!(
            c.check_response(1, Repr::Ndarray, &r),
            ["output 0 is named \"t:0\", the target is \"score\""]
        );
        Ok(())
    }
}
