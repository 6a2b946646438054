//! An ONNX file as the common exporters write it (skl2onnx, onnxmltools,
//! `torch.onnx.export`), made into a plan tract can run: the batch
//! dimension made symbolic, the probability tensor picked among the outputs,
//! a trailing `ZipMap` cut off, `ai.onnx.ml` `Scaler` supplied (tract lacks
//! it), and any other operator tract lacks named before anything runs.

use anyhow::{Context, Result, bail};
use tract_onnx::pb::{self, ModelProto, type_proto};
use tract_onnx::prelude::*;

use super::scaler;

/// `TensorProto.DataType` FLOAT and DOUBLE (onnx.proto).
const ONNX_FLOAT: i32 = 1;
const ONNX_DOUBLE: i32 = 11;

/// A loaded graph and what the server needs to know about it.
pub struct Graph {
    pub plan: TypedModel,
    /// Columns of the input, `[N, features]`.
    pub features: usize,
    /// The output answered with.
    pub output: String,
    /// Class labels a ZipMap carried, in column order.
    pub zipmap_labels: Option<Vec<String>>,
    /// `metadata_props` of the file (`class_names`, `feature_names`, ...).
    pub metadata: Vec<(String, String)>,
}

/// Loads `bytes` (an ONNX ModelProto). `output` names the output to answer
/// with; by default the one whose name says probabilities, else the first
/// floating-point one.
///
/// # Errors
/// Operators tract does not implement (named, with the exporter option
/// that avoids them where there is one), an input that is not one float
/// `[N, features]` tensor, no floating-point output, an unknown `output`.
pub fn load(bytes: &[u8], output: Option<&str>) -> Result<Graph> {
    let mut onnx = tract_onnx::onnx();
    scaler::register(&mut onnx.op_register);
    let mut proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .context("not an ONNX model (the file does not parse as a ModelProto)")?;
    let zipmap_labels = cut_zipmaps(&mut proto)?;
    let graph = proto.graph.as_ref().context("the ONNX file has no graph")?;
    let missing = missing_operators(graph, |op| onnx.op_register.0.contains_key(op));
    if !missing.is_empty() {
        bail!(
            "the model uses {} that the model server's ONNX runtime (tract) does not \
             implement: {}",
            if missing.len() == 1 {
                "an operator"
            } else {
                "operators"
            },
            missing.join("; ")
        );
    }
    let (input_name, features) = float_input(graph)?;
    let output = pick_output(graph, output)?;
    let metadata = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();

    let mut model = onnx
        .model_for_proto_model(&proto)
        .context("tract cannot read the graph")?;
    let batch = model.symbols.sym("N");
    model
        .set_input_fact(0, f32::fact([batch.to_dim(), features.to_dim()]).into())
        .with_context(|| format!("setting input {input_name:?} to float32 [N, {features}]"))?;
    let outlet = model
        .find_outlet_label(&output)
        .with_context(|| format!("output {output:?} is not in the graph"))?;
    model.select_output_outlets(&[outlet])?;
    let plan = model.into_optimized().map_err(|e| {
        let why = format!("{e:#}");
        let hint = if why.contains("String") {
            " (the graph computes string labels: fit the model on integer labels, e.g. \
             LabelEncoder's, and give the names with class_names)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "tract cannot plan the graph for float32 [N, {features}] input{hint}: {why}"
        )
    })?;
    Ok(Graph {
        plan,
        features,
        output,
        zipmap_labels,
        metadata,
    })
}

/// Replaces each graph output made by a `ZipMap` (a list of maps, which
/// tract cannot hold) with the ZipMap's input, the probability tensor it
/// was made from; returns the class labels it carried.
fn cut_zipmaps(proto: &mut ModelProto) -> Result<Option<Vec<String>>> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(None);
    };
    let mut labels = None;
    while let Some(i) = graph.node.iter().position(|n| n.op_type == "ZipMap") {
        let node = graph.node.remove(i);
        let (Some(from), Some(to)) = (node.input.first(), node.output.first()) else {
            bail!("a ZipMap without input or output");
        };
        for o in graph.output.iter_mut().filter(|o| &o.name == to) {
            o.name.clone_from(from);
            o.r#type = None;
        }
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        labels = match (attr("classlabels_strings"), attr("classlabels_int64s")) {
            (Some(s), _) => Some(
                s.strings
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect(),
            ),
            (None, Some(i)) => Some(i.ints.iter().map(i64::to_string).collect()),
            (None, None) => labels,
        };
    }
    Ok(labels)
}

/// Operators of `graph` (and where known, how to export without them).
fn missing_operators(graph: &pb::GraphProto, known: impl Fn(&str) -> bool) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for node in &graph.node {
        if known(&node.op_type) {
            continue;
        }
        let domain = if node.domain.is_empty() {
            "ai.onnx"
        } else {
            &node.domain
        };
        let hint = match node.op_type.as_str() {
            "TreeEnsembleRegressor" | "TreeEnsemble" => {
                " (tree ensemble regressors: export the classifier, or a linear or \
                 neural model; skl2onnx and onnxmltools have no option to avoid it)"
            }
            "SVMClassifier" | "SVMRegressor" => {
                " (support vector machines: no exporter option avoids it; use a linear model \
                 or a tree ensemble classifier)"
            }
            "Imputer" => " (drop SimpleImputer from the pipeline and impute before calling)",
            "OneHotEncoder" | "LabelEncoder" | "DictVectorizer" | "StringNormalizer" => {
                " (encode categories before calling; the server takes numbers)"
            }
            _ => "",
        };
        let line = format!("{} ({domain}){hint}", node.op_type);
        if !missing.contains(&line) {
            missing.push(line);
        }
    }
    missing
}

/// The graph's one input that is not an initializer: float32 or float64
/// `[N, features]` with `features` fixed. Returns its name and width.
fn float_input(graph: &pb::GraphProto) -> Result<(String, usize)> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        bail!(
            "the model has {} inputs ({}); the model server feeds one float tensor [N, features] \
             (export the model with a single input, e.g. skl2onnx's to_onnx(model, X[:1]) on a \
             float array)",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        bail!("input {:?} is not a tensor", input.name);
    };
    if t.elem_type != ONNX_FLOAT && t.elem_type != ONNX_DOUBLE {
        bail!(
            "input {:?} holds {}, not floats: the model server sends float32 [N, features] \
             (export with a float input, e.g. skl2onnx's FloatTensorType)",
            input.name,
            elem_name(t.elem_type)
        );
    }
    if t.elem_type == ONNX_DOUBLE {
        bail!(
            "input {:?} is float64 (DoubleTensorType): the model server computes in float32; \
             export with FloatTensorType",
            input.name
        );
    }
    let dims = t
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    let width = match dims {
        [_, d] => match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(w)) if *w > 0 => {
                usize::try_from(*w).ok()
            }
            _ => None,
        },
        [] => bail!(
            "input {:?} has no declared shape; export it as [N, features] (e.g. skl2onnx's \
             FloatTensorType([None, 4]))",
            input.name
        ),
        _ => {
            bail!(
                "input {:?} has {} dimensions; the model server feeds [N, features] \
                 (flatten images or sequences before the model, or export a 2-D input)",
                input.name,
                dims.len()
            )
        }
    };
    let width = width.with_context(|| {
        format!(
            "input {:?} has no fixed number of features (its second dimension is symbolic): \
             export with the width fixed, e.g. FloatTensorType([None, 4])",
            input.name
        )
    })?;
    Ok((input.name.clone(), width))
}

/// The output to answer with: `wanted`, else one named like probabilities,
/// else the first floating-point one.
fn pick_output(graph: &pb::GraphProto, wanted: Option<&str>) -> Result<String> {
    let elem = |o: &pb::ValueInfoProto| {
        o.r#type
            .as_ref()
            .and_then(|t| t.value.as_ref())
            .map(|type_proto::Value::TensorType(t)| t.elem_type)
    };
    let list = || {
        graph
            .output
            .iter()
            .map(|o| match elem(o) {
                Some(e) => format!("{} ({})", o.name, elem_name(e)),
                None => o.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        return match graph.output.iter().find(|o| o.name == w) {
            Some(o) if elem(o).is_none_or(|e| e == ONNX_FLOAT || e == ONNX_DOUBLE) => {
                Ok(o.name.clone())
            }
            Some(_) => bail!(
                "output {w:?} is not a float tensor; the outputs are {}",
                list()
            ),
            None => bail!("the model has no output {w:?}; its outputs are {}", list()),
        };
    }
    // A ZipMap's input has no declared type here: it is the probabilities.
    let floats: Vec<&pb::ValueInfoProto> = graph
        .output
        .iter()
        .filter(|o| elem(o).is_none_or(|e| e == ONNX_FLOAT || e == ONNX_DOUBLE))
        .collect();
    floats
        .iter()
        .find(|o| o.name.to_ascii_lowercase().contains("prob"))
        .or(floats.first())
        .map(|o| o.name.clone())
        .with_context(|| {
            format!(
                "the model has no floating-point output to answer with; its outputs are {}",
                list()
            )
        })
}

/// `TensorProto.DataType` names (onnx.proto).
fn elem_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        _ => "another type",
    }
}
