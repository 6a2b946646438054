//! An ONNX file as the common exporters write it (skl2onnx, onnxmltools,
//! `torch.onnx.export`), made into a plan tract can run: every input with
//! its declared type and shape (named variable dimensions as symbols), the
//! probability tensor picked among the outputs for Seldon v1,
//! a trailing `ZipMap` cut off, `ai.onnx.ml` `Scaler` supplied (tract lacks
//! it), and any other operator tract lacks named before anything runs.

use anyhow::{Context, Result, bail};
use inference_core::{Datatype, Dim, TensorSpec};
use tract_onnx::pb::{self, ModelProto, type_proto};
use tract_onnx::prelude::*;

use super::scaler;

/// `TensorProto.DataType` FLOAT, STRING, FLOAT16 and DOUBLE (onnx.proto).
const ONNX_FLOAT: i32 = 1;
const ONNX_STRING: i32 = 8;
const ONNX_FLOAT16: i32 = 10;
const ONNX_DOUBLE: i32 = 11;

/// An ONNX file as read, before any runtime plans it: what the server
/// serves it by, whichever runtime computes it.
pub struct Declaration {
    /// The file's ModelProto, its ZipMaps cut off (see `cut_zipmaps`).
    pub proto: ModelProto,
    /// The graph's inputs (initializers excluded), in its order.
    pub inputs: Vec<TensorSpec>,
    /// Per input, per axis: the symbol of a variable dimension (the
    /// graph's `dim_param`, or one of our own where it has none), so that
    /// two inputs that share `N` are checked to agree before a run.
    pub symbols: Vec<Vec<Option<String>>>,
    /// The outputs a runtime computes for the protocols, in the graph's
    /// order (string outputs, which no runtime hands back here, left out).
    pub outputs: Vec<String>,
    /// The output Seldon v1 answers with.
    pub answer: String,
    /// Class labels a ZipMap carried, in column order.
    pub zipmap_labels: Option<Vec<String>>,
    /// `metadata_props` of the file (`class_names`, `feature_names`, ...).
    pub metadata: Vec<(String, String)>,
}

/// A graph tract planned, and what the server needs to know about it.
pub struct Graph {
    pub plan: TypedModel,
    /// The file as read.
    pub declared: Declaration,
    /// The outputs tract computes, typed, in `declared.outputs`' order.
    pub outputs: Vec<TensorSpec>,
    /// Whether every input and output has one batch dimension first (the
    /// same symbol): such a graph may be run on a long batch in pieces.
    pub batched: bool,
}

/// Reads `bytes` (an ONNX ModelProto). `output` names the output Seldon v1
/// answers with; by default the one whose name says probabilities, else
/// the first floating-point one.
///
/// # Errors
/// Bytes that are not a ModelProto, an input of a type no protocol
/// carries (strings, complex numbers) or without a declared shape, no
/// output the protocols carry, an unknown `output`.
pub fn read(bytes: &[u8], output: Option<&str>) -> Result<Declaration> {
    let mut proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .context("not an ONNX model (the file does not parse as a ModelProto)")?;
    let zipmap_labels = cut_zipmaps(&mut proto)?;
    let graph = proto.graph.as_ref().context("the ONNX file has no graph")?;
    let declared = declared_inputs(graph)?;
    let answer = pick_output(graph, output)?;
    // String outputs (a classifier's labels) are what tract cannot hold.
    let outputs: Vec<String> = graph
        .output
        .iter()
        .filter(|o| elem_type(o) != Some(ONNX_STRING))
        .map(|o| o.name.clone())
        .collect();
    let metadata = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    let (inputs, symbols) = declared.into_iter().map(|d| (d.spec, d.symbols)).unzip();
    Ok(Declaration {
        proto,
        inputs,
        symbols,
        outputs,
        answer,
        zipmap_labels,
        metadata,
    })
}

/// Reads `bytes` as `read` does and plans the graph with tract.
///
/// # Errors
/// What `read` refuses; operators tract does not implement (named, with
/// the exporter option that avoids them where there is one), a graph
/// tract cannot plan.
pub fn load(bytes: &[u8], output: Option<&str>) -> Result<Graph> {
    let declared = read(bytes, output)?;
    let model = analysed(&declared)?;
    let pairs = || declared.inputs.iter().zip(&declared.symbols);
    let plan = model.into_optimized().map_err(|e| {
        let why = format!("{e:#}");
        let hint = if why.contains("String") {
            " (the graph computes string labels: fit the model on integer labels, e.g. \
             LabelEncoder's, and give the names with class_names)"
        } else {
            ""
        };
        let inputs: Vec<String> = pairs().map(|(s, y)| shown(s, y)).collect();
        anyhow::anyhow!(
            "tract cannot plan the graph for its inputs {}{hint}: {why}",
            inputs.join(", ")
        )
    })?;
    let outputs = &declared.outputs;
    let mut specs = Vec::with_capacity(outputs.len());
    for (i, name) in outputs.iter().enumerate() {
        let fact = plan.output_fact(i)?;
        let datatype = datatype_of(fact.datum_type)
            .with_context(|| format!("output {name:?} holds {:?}", fact.datum_type))?;
        let shape = fact
            .shape
            .iter()
            .map(|d| match d.to_i64() {
                Ok(n) => usize::try_from(n).map_or(Dim::Any, Dim::Fixed),
                Err(_) => Dim::Any,
            })
            .collect();
        specs.push(TensorSpec {
            name: name.clone(),
            datatype,
            shape,
        });
    }
    let batched = batch_symbol(&declared.symbols).is_some_and(|b| {
        let sym = plan.symbols.sym(b).to_dim();
        (0..specs.len()).all(|i| {
            plan.output_fact(i)
                .is_ok_and(|f| f.shape.iter().next() == Some(&sym))
        })
    });
    Ok(Graph {
        plan,
        declared,
        outputs: specs,
        batched,
    })
}

/// The graph of `declared` as tract reads it, its inputs typed as
/// declared (variable dimensions as symbols) and its outputs those the
/// protocols carry.
///
/// # Errors
/// Operators tract does not implement (named, with the exporter option
/// that avoids them where there is one); a graph tract cannot read.
fn analysed(declared: &Declaration) -> Result<InferenceModel> {
    let mut onnx = tract_onnx::onnx();
    scaler::register(&mut onnx.op_register);
    let relabelled = relabel_binary_trees(&declared.proto);
    let proto = relabelled.as_ref().unwrap_or(&declared.proto);
    let graph = proto.graph.as_ref().context("the ONNX file has no graph")?;
    let missing = missing_operators(graph, |op| onnx.op_register.0.contains_key(op));
    if !missing.is_empty() {
        bail!(
            "the model uses {} that the model server's ONNX runtime (tract) does not \
             implement: {}; RUNTIME=onnxruntime (runtime = \"onnxruntime\" in xtask.toml) \
             runs every standard operator",
            if missing.len() == 1 {
                "an operator"
            } else {
                "operators"
            },
            missing.join("; ")
        );
    }
    let mut model = onnx
        .model_for_proto_model(proto)
        .context("tract cannot read the graph")?;
    for (i, (spec, symbols)) in declared.inputs.iter().zip(&declared.symbols).enumerate() {
        let shape: TVec<TDim> = spec
            .shape
            .iter()
            .zip(symbols)
            .map(|(dim, sym)| match (dim, sym) {
                (Dim::Fixed(n), _) => n.to_dim(),
                (Dim::Any, Some(s)) => model.symbols.sym(s).to_dim(),
                (Dim::Any, None) => model.symbols.new_with_prefix("d").to_dim(),
            })
            .collect();
        let fact = InferenceFact::dt_shape(datum_type(spec.datatype)?, shape);
        model
            .set_input_fact(i, fact)
            .with_context(|| format!("setting input {}", shown(spec, symbols)))?;
    }
    let outlets = declared
        .outputs
        .iter()
        .map(|o| {
            model
                .find_outlet_label(o)
                .with_context(|| format!("output {o:?} is not in the graph"))
        })
        .collect::<Result<Vec<_>>>()?;
    model.select_output_outlets(&outlets)?;
    Ok(model)
}

/// The graph of `declared` typed by tract, not optimised: every tensor's
/// shape in terms of the inputs' symbols, for bounding what another
/// runtime's run allocates (see `sizes::Bounds`).
///
/// # Errors
/// What `analysed` refuses; a graph tract cannot type.
#[cfg(feature = "onnxruntime")]
pub fn typed(declared: &Declaration) -> Result<TypedModel> {
    analysed(declared)?.into_typed()
}

/// The shape tract gives each output of `model` (a typed graph), a
/// dimension it cannot name as a number `Dim::Any`.
///
/// # Errors
/// An output without a fact (not a graph tract typed).
#[cfg(feature = "onnxruntime")]
pub fn output_shapes(model: &TypedModel) -> Result<Vec<Vec<Dim>>> {
    (0..model.outputs.len())
        .map(|i| {
            let fact = model.output_fact(i)?;
            Ok(fact
                .shape
                .iter()
                .map(|d| match d.to_i64() {
                    Ok(n) => usize::try_from(n).map_or(Dim::Any, Dim::Fixed),
                    Err(_) => Dim::Any,
                })
                .collect())
        })
        .collect()
}

/// The symbol every input has as its first dimension, when they share one
/// (a batch dimension a runtime may split or join along).
pub fn batch_symbol(symbols: &[Vec<Option<String>>]) -> Option<&str> {
    let first = symbols.first()?.first()?.as_deref()?;
    symbols
        .iter()
        .all(|s| s.first().and_then(Option::as_deref) == Some(first))
        .then_some(first)
}

/// An input as `name datatype [dims]`, a symbol where a dimension varies.
pub fn shown(spec: &TensorSpec, symbols: &[Option<String>]) -> String {
    let dims: Vec<String> = spec
        .shape_i64()
        .iter()
        .zip(symbols)
        .map(|(n, s)| s.clone().unwrap_or_else(|| n.to_string()))
        .collect();
    format!("{} {} [{}]", spec.name, spec.datatype, dims.join(", "))
}

/// An input as the graph declares it.
struct Declared {
    spec: TensorSpec,
    /// Per axis, the symbol of a variable dimension.
    symbols: Vec<Option<String>>,
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

/// The positions in the graph of the binary `TreeEnsembleClassifier`s tract
/// mislabels: two class labels, every leaf weight on class 0 (what
/// tract-onnx 0.23 calls the binary result layout).
fn binary_tree_classifiers(proto: &ModelProto) -> Vec<usize> {
    let Some(graph) = proto.graph.as_ref() else {
        return Vec::new();
    };
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
            let classes = attr("classlabels_int64s")
                .map(|a| a.ints.len())
                .or_else(|| attr("classlabels_strings").map(|a| a.strings.len()));
            n.op_type == "TreeEnsembleClassifier"
                && classes == Some(2)
                && n.output.first().is_some_and(|o| !o.is_empty())
                && attr("class_ids").is_some_and(|a| a.ints.iter().all(|&c| c == 0))
        })
        .map(|(i, _)| i)
        .collect()
}

/// `proto` with each binary `TreeEnsembleClassifier` made right for tract:
///
/// - its label taken as ONNX Runtime takes it (`tree_ensemble_aggregator.h`,
///   `_set_score_binary`): the second class where the raw score (leaves
///   summed, plus the base value) is above 0.5 when every leaf weight is
///   at least 0, above 0 otherwise. Under a `LOGISTIC` or no transform
///   that is the probability of the second class above the threshold's
///   image (`Gather`, `Greater`, `Cast`, then a `Gather` of the class
///   labels); under another transform the class of the larger
///   probability (`ArgMax`). tract-onnx 0.23 takes the argmax before it
///   lays the scores out as `[1 - p, p]`, so its own label is the other
///   class;
/// - a single base value (how skl2onnx and onnxmltools write a binary
///   gradient boosting's prior) padded to one per class, `[b, 0]`, which
///   tract requires and which adds `b` to the raw score as ONNX Runtime
///   does.
///
/// The tensors it adds get names the graph does not use. `None` for a
/// graph without such a classifier (nothing to change).
fn relabel_binary_trees(proto: &ModelProto) -> Option<ModelProto> {
    let positions = binary_tree_classifiers(proto);
    if positions.is_empty() {
        return None;
    }
    let mut proto = proto.clone();
    let graph = proto.graph.as_mut()?;
    let mut used: std::collections::HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().chain(&n.output))
        .chain(graph.initializer.iter().map(|t| &t.name))
        .chain(graph.input.iter().chain(&graph.output).map(|v| &v.name))
        .cloned()
        .collect();
    let mut fresh = |base: String| {
        let mut name = base.clone();
        let mut n = 1;
        while used.contains(&name) {
            n += 1;
            name = format!("{base}.{n}");
        }
        used.insert(name.clone());
        name
    };
    // From the last, so that inserting after a node keeps the earlier
    // positions.
    for &i in positions.iter().rev() {
        let node = &mut graph.node[i];
        let label = node.output[0].clone();
        if node.output.len() < 2 || node.output[1].is_empty() {
            node.output.resize(2, String::new());
            node.output[1] = fresh(format!("{label}.probabilities"));
        }
        let probabilities = node.output[1].clone();
        node.output[0] = fresh(format!("{label}.by_tract"));
        for base in node
            .attribute
            .iter_mut()
            .filter(|a| a.name == "base_values")
        {
            if base.floats.len() == 1 {
                base.floats.push(0.0);
            }
        }
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name).cloned();
        let all_positive = attr("class_weights").is_none_or(|a| a.floats.iter().all(|w| *w >= 0.0));
        let raw_threshold: f32 = if all_positive { 0.5 } else { 0.0 };
        let threshold = match attr("post_transform").map(|a| a.s) {
            None => Some(raw_threshold),
            Some(t) if t.as_slice() == b"NONE" => Some(raw_threshold),
            Some(t) if t.as_slice() == b"LOGISTIC" => Some(1.0 / (1.0 + (-raw_threshold).exp())),
            Some(_) => None,
        };
        let classes_name = fresh(format!("{label}.classes"));
        let classes = match (attr("classlabels_int64s"), attr("classlabels_strings")) {
            (Some(ints), _) => pb::TensorProto {
                dims: vec![2],
                data_type: pb::tensor_proto::DataType::Int64 as i32,
                int64_data: ints.ints,
                name: classes_name.clone(),
                ..Default::default()
            },
            (None, strings) => pb::TensorProto {
                dims: vec![2],
                data_type: pb::tensor_proto::DataType::String as i32,
                string_data: strings.map(|a| a.strings).unwrap_or_default(),
                name: classes_name.clone(),
                ..Default::default()
            },
        };
        graph.initializer.push(classes);
        let int = |name: &str, i: i64| pb::AttributeProto {
            name: name.to_string(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i,
            ..Default::default()
        };
        let op = |op_type: &str, input: Vec<String>, output: &str, attribute| pb::NodeProto {
            input,
            output: vec![output.to_string()],
            name: output.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        };
        let index = fresh(format!("{label}.class_index"));
        let mut added = Vec::new();
        match threshold {
            Some(threshold) => {
                let second = fresh(format!("{label}.second_column"));
                let column = fresh(format!("{label}.second_probability"));
                let bound = fresh(format!("{label}.threshold"));
                let above = fresh(format!("{label}.above"));
                graph.initializer.push(pb::TensorProto {
                    data_type: pb::tensor_proto::DataType::Int64 as i32,
                    int64_data: vec![1],
                    name: second.clone(),
                    ..Default::default()
                });
                graph.initializer.push(pb::TensorProto {
                    data_type: pb::tensor_proto::DataType::Float as i32,
                    float_data: vec![threshold],
                    name: bound.clone(),
                    ..Default::default()
                });
                added.push(op(
                    "Gather",
                    vec![probabilities, second],
                    &column,
                    vec![int("axis", 1)],
                ));
                added.push(op("Greater", vec![column, bound], &above, vec![]));
                added.push(op(
                    "Cast",
                    vec![above],
                    &index,
                    vec![int("to", pb::tensor_proto::DataType::Int64 as i64)],
                ));
            }
            None => added.push(op(
                "ArgMax",
                vec![probabilities],
                &index,
                vec![int("axis", 1), int("keepdims", 0)],
            )),
        }
        added.push(op(
            "Gather",
            vec![classes_name, index],
            &label,
            vec![int("axis", 0)],
        ));
        for (k, n) in added.into_iter().enumerate() {
            graph.node.insert(i + 1 + k, n);
        }
    }
    Some(proto)
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

/// The graph's inputs that are not initializers, each with its datatype
/// and shape: a `dim_value` is fixed, a `dim_param` (or a dimension with
/// neither) variable.
fn declared_inputs(graph: &pb::GraphProto) -> Result<Vec<Declared>> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut declared = Vec::new();
    for input in graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
    {
        let Some(type_proto::Value::TensorType(t)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            bail!("input {:?} is not a tensor", input.name);
        };
        let datatype = onnx_datatype(t.elem_type).with_context(|| {
            format!(
                "input {:?} holds {}, which the model server cannot feed (it takes booleans, \
                 integers and floats)",
                input.name,
                elem_name(t.elem_type)
            )
        })?;
        let Some(shape) = t.shape.as_ref() else {
            bail!(
                "input {:?} has no declared shape; export it with one (e.g. skl2onnx's \
                 FloatTensorType([None, 4]), torch.onnx.export's dynamic_axes)",
                input.name
            );
        };
        let mut dims = Vec::with_capacity(shape.dim.len());
        let mut symbols = Vec::with_capacity(shape.dim.len());
        for (axis, d) in shape.dim.iter().enumerate() {
            use pb::tensor_shape_proto::dimension::Value;
            match &d.value {
                Some(Value::DimValue(n)) if *n >= 0 => {
                    dims.push(Dim::Fixed(usize::try_from(*n)?));
                    symbols.push(None);
                }
                Some(Value::DimParam(p)) if !p.trim().is_empty() => {
                    dims.push(Dim::Any);
                    symbols.push(Some(p.clone()));
                }
                // No name: a symbol of its own, shared with nothing.
                _ => {
                    dims.push(Dim::Any);
                    symbols.push(Some(format!("{}:{axis}", input.name)));
                }
            }
        }
        declared.push(Declared {
            spec: TensorSpec {
                name: input.name.clone(),
                datatype,
                shape: dims,
            },
            symbols,
        });
    }
    if declared.is_empty() {
        bail!("the graph has no inputs to feed");
    }
    Ok(declared)
}

/// The protocol's datatype for an ONNX element type (onnx.proto's
/// `TensorProto.DataType`), when it has one.
fn onnx_datatype(t: i32) -> Option<Datatype> {
    Some(match t {
        1 => Datatype::Fp32,
        2 => Datatype::Uint8,
        3 => Datatype::Int8,
        4 => Datatype::Uint16,
        5 => Datatype::Int16,
        6 => Datatype::Int32,
        7 => Datatype::Int64,
        9 => Datatype::Bool,
        10 => Datatype::Fp16,
        11 => Datatype::Fp64,
        12 => Datatype::Uint32,
        13 => Datatype::Uint64,
        _ => return None,
    })
}

/// tract's element type for a datatype.
fn datum_type(d: Datatype) -> Result<DatumType> {
    Ok(match d {
        Datatype::Bool => DatumType::Bool,
        Datatype::Uint8 => DatumType::U8,
        Datatype::Uint16 => DatumType::U16,
        Datatype::Uint32 => DatumType::U32,
        Datatype::Uint64 => DatumType::U64,
        Datatype::Int8 => DatumType::I8,
        Datatype::Int16 => DatumType::I16,
        Datatype::Int32 => DatumType::I32,
        Datatype::Int64 => DatumType::I64,
        Datatype::Fp16 => DatumType::F16,
        Datatype::Fp32 => DatumType::F32,
        Datatype::Fp64 => DatumType::F64,
        Datatype::Bytes => bail!("tract computes on numbers, not BYTES"),
    })
}

/// The datatype of a tract element type, when the protocols carry it.
pub fn datatype_of(t: DatumType) -> Option<Datatype> {
    Some(match t {
        DatumType::Bool => Datatype::Bool,
        DatumType::U8 => Datatype::Uint8,
        DatumType::U16 => Datatype::Uint16,
        DatumType::U32 => Datatype::Uint32,
        DatumType::U64 => Datatype::Uint64,
        DatumType::I8 => Datatype::Int8,
        DatumType::I16 => Datatype::Int16,
        DatumType::I32 => Datatype::Int32,
        // tract's symbolic integers: what ONNX declares as int64 (an
        // ArgMax's labels may be planned as such).
        DatumType::I64 | DatumType::TDim => Datatype::Int64,
        DatumType::F16 => Datatype::Fp16,
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        _ => return None,
    })
}

/// An output's element type, when it declares one.
fn elem_type(o: &pb::ValueInfoProto) -> Option<i32> {
    o.r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|type_proto::Value::TensorType(t)| t.elem_type)
}

/// The output to answer with: `wanted`, else one named like probabilities,
/// else the first floating-point one.
fn pick_output(graph: &pb::GraphProto, wanted: Option<&str>) -> Result<String> {
    let elem = elem_type;
    let float = |o: &&pb::ValueInfoProto| {
        elem(o).is_none_or(|e| e == ONNX_FLOAT || e == ONNX_DOUBLE || e == ONNX_FLOAT16)
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
            Some(o) if float(&o) => Ok(o.name.clone()),
            Some(_) => bail!(
                "output {w:?} is not a float tensor; the outputs are {}",
                list()
            ),
            None => bail!("the model has no output {w:?}; its outputs are {}", list()),
        };
    }
    // A ZipMap's input has no declared type here: it is the probabilities.
    let floats: Vec<&pb::ValueInfoProto> = graph.output.iter().filter(float).collect();
    // Without a floating-point output, v1 answers with the first one it can
    // carry (integers, booleans); v2 answers with every output anyway.
    floats
        .iter()
        .find(|o| o.name.to_ascii_lowercase().contains("prob"))
        .or(floats.first())
        .copied()
        .or_else(|| graph.output.iter().find(|o| elem(o) != Some(ONNX_STRING)))
        .map(|o| o.name.clone())
        .with_context(|| {
            format!(
                "the model has no output the server can answer with (strings are not \
                 carried); its outputs are {}",
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
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        _ => "another type",
    }
}
