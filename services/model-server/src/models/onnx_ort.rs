//! ONNX Runtime as the model server's second runtime (`RUNTIME=onnxruntime`),
//! through the `ort` crate with its shared library loaded at run time
//! (`ORT_DYLIB_PATH`, else `libonnxruntime.so` beside the binary or on the
//! loader's path): the library the `onnxruntime` wheel on PyPI ships in
//! `onnxruntime/capi/`. ONNX Runtime's own kernels (MLAS, its tree
//! ensembles) are the speed floor the project measures against.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use inference_core::{Data, Datatype, Dim, Tensor, TensorSpec};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, TensorElementType, ValueType};
use prost::Message;

use super::onnx_graph::Declaration;
use crate::model::ModelError;

/// How ONNX Runtime runs a model.
#[derive(Clone, Debug, PartialEq)]
pub struct OrtSettings {
    /// The shared library (`libonnxruntime.so.1.x`); `None`:
    /// `libonnxruntime.so` beside the binary, else on the loader's path.
    pub library: Option<PathBuf>,
    /// Threads one run may use (ONNX Runtime's `intra_op_num_threads`).
    pub intra_op_threads: usize,
    /// Runs at once: one session each (a session runs one request at a
    /// time; Triton's instance count).
    pub instances: usize,
}

/// Whether this process was linked statically: no dynamic loader is
/// mapped into it (`/proc/self/maps` names `ld-linux…` in every
/// dynamically linked Linux process). Asked of the running process, not of
/// `cfg!(target_feature = "crt-static")`: the library crate may be
/// compiled with crt-static and linked into a dynamic binary (the xtask
/// shares one build of the dependencies between both binaries). Where
/// there is no `/proc` (not Linux), binaries are dynamic.
fn statically_linked() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .is_ok_and(|maps| !maps.contains("/ld-linux") && !maps.contains("/ld-musl"))
}

/// The process's ONNX Runtime environment: the library is loaded once, by
/// the first model that needs it, and kept (a second path is refused).
static ENVIRONMENT: OnceLock<Result<(Option<PathBuf>, ort::environment::Environment), String>> =
    OnceLock::new();

fn environment(library: Option<&PathBuf>) -> Result<&'static ort::environment::Environment> {
    // A static glibc binary cannot load a shared library that needs the C
    // and C++ runtimes: it would crash in the loader, not fail.
    if statically_linked() {
        anyhow::bail!(
            "RUNTIME=onnxruntime needs a dynamically linked model server (ONNX Runtime's library \
             needs the C and C++ runtimes), and this one is statically linked (crt-static); build \
             it without `-C target-feature=+crt-static` (`cargo xtask` does for a service with \
             runtime = \"onnxruntime\"), or serve with RUNTIME=tract"
        );
    }
    let loaded = ENVIRONMENT.get_or_init(|| {
        let path = library
            .cloned()
            .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
        let cannot = |why: &dyn std::fmt::Display| {
            format!(
                "RUNTIME=onnxruntime cannot load ONNX Runtime's library: {why}. Set \
                 ORT_DYLIB_PATH to libonnxruntime.so.1.32.0 (the onnxruntime wheel ships it in \
                 onnxruntime/capi/: pip install onnxruntime==1.32.0), or serve with RUNTIME=tract"
            )
        };
        // The loader's own message ("dlopen failed") does not say why.
        if library.is_some() && !path.is_file() {
            return Err(cannot(&format!(
                "ORT_DYLIB_PATH={} is not a file",
                path.display()
            )));
        }
        ort::init_from(&path)
            .map_err(|e| cannot(&e))?
            .with_name("model-server")
            .with_telemetry(false)
            .build()
            .map(|env| (library.cloned(), env))
            .map_err(|e| format!("ONNX Runtime does not start: {e}"))
    });
    match loaded {
        Ok((first, env)) if first.as_ref() == library || library.is_none() => Ok(env),
        Ok((first, _)) => anyhow::bail!(
            "ONNX Runtime was loaded from {first:?} already; a process loads one library \
             (asked for {library:?})"
        ),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// A graph's sessions, one per instance.
pub struct Sessions {
    sessions: Vec<Mutex<Session>>,
    /// The outputs to hand back, in the declared order.
    outputs: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
}

/// What ONNX Runtime made of a declared graph.
pub struct Loaded {
    pub sessions: Sessions,
    /// The outputs it computes, typed.
    pub outputs: Vec<TensorSpec>,
    /// Whether every input and output has the same batch symbol first.
    pub batched: bool,
}

/// Creates `settings.instances` sessions of `declared` (its ZipMaps cut,
/// so every output is a tensor).
///
/// # Errors
/// The library does not load; ONNX Runtime refuses the graph (an
/// operator it lacks, a malformed graph), saying why; an output it
/// computes as something no protocol carries (strings, maps).
pub fn load(declared: &Declaration, settings: &OrtSettings) -> Result<Loaded> {
    let env = environment(settings.library.as_ref())?;
    let bytes = declared.proto.encode_to_vec();
    let mut sessions = Vec::with_capacity(settings.instances.max(1));
    for _ in 0..settings.instances.max(1) {
        let cannot =
            |e: &dyn std::fmt::Display| anyhow::anyhow!("ONNX Runtime cannot load the graph: {e}");
        let mut builder = Session::builder(env).map_err(|e| cannot(&e))?;
        // Each option by itself: ort's builder errors are too large to
        // chain through closures.
        builder = builder
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| cannot(&e))?;
        builder = builder
            .with_intra_threads(settings.intra_op_threads.max(1))
            .map_err(|e| cannot(&e))?;
        builder = builder.with_inter_threads(1).map_err(|e| cannot(&e))?;
        // Idle threads that spin take the CPU other instances need.
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| cannot(&e))?;
        // A request ONNX Runtime cannot compute is answered with its
        // reason (a 400); its own log would print it again, unformatted.
        builder = builder
            .with_log_level(ort::logging::LogLevel::Fatal)
            .map_err(|e| cannot(&e))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| cannot(&e))?;
        sessions.push(session);
    }
    let first = sessions.first().context("no session")?;
    let mut outputs = Vec::with_capacity(declared.outputs.len());
    let mut output_batch = Vec::new();
    for name in &declared.outputs {
        let outlet = first
            .outputs()
            .iter()
            .find(|o| o.name() == name)
            .with_context(|| format!("ONNX Runtime computes no output {name:?}"))?;
        let ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } = outlet.dtype()
        else {
            anyhow::bail!(
                "output {name:?} is a {}, which no protocol carries",
                outlet.dtype()
            );
        };
        let datatype = datatype_of(*ty)
            .with_context(|| format!("output {name:?} holds {ty:?}, which no protocol carries"))?;
        output_batch.push(dimension_symbols.first().filter(|s| !s.is_empty()).cloned());
        outputs.push(TensorSpec {
            name: name.clone(),
            datatype,
            shape: shape
                .iter()
                .map(|&n| usize::try_from(n).map_or(Dim::Any, Dim::Fixed))
                .collect(),
        });
    }
    let batched = super::onnx_graph::batch_symbol(&declared.symbols)
        .is_some_and(|b| output_batch.iter().all(|s| s.as_deref() == Some(b)));
    Ok(Loaded {
        sessions: Sessions {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            outputs: declared.outputs.clone(),
            next: std::sync::atomic::AtomicUsize::new(0),
        },
        outputs,
        batched,
    })
}

impl Sessions {
    /// Runs `inputs` (checked, in the declared order, named as declared)
    /// on a free session, or waits for the next in turn.
    ///
    /// # Errors
    /// `BadInput` for what ONNX Runtime calls an invalid argument (an
    /// index out of a table's range, shapes a node cannot combine),
    /// `Internal` for anything else it reports.
    pub fn run(&self, model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        let values = inputs
            .into_iter()
            .map(|t| {
                let name = t.name().to_string();
                to_ort(t).map(|v| (name, v))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut session = self.acquire();
        let outputs = session.run(values).map_err(|e| {
            let why = e.message().to_string();
            match e.code() {
                ort::error::ErrorCode::InvalidArgument => ModelError::BadInput(format!(
                    "the {model} model cannot compute this input: {why}"
                )),
                _ => ModelError::Internal(why),
            }
        })?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs.get(name).ok_or_else(|| {
                    ModelError::Internal(format!("ONNX Runtime gave no output {name:?}"))
                })?;
                from_ort(name, value)
            })
            .collect()
    }

    /// A session no other run holds, else the next in turn (waiting).
    fn acquire(&self) -> std::sync::MutexGuard<'_, Session> {
        for s in &self.sessions {
            if let Ok(guard) = s.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.sessions.len();
        // A run that panicked holds no state a next run could trip on.
        self.sessions[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A tensor as ONNX Runtime takes it (its elements moved, not copied).
fn to_ort(t: Tensor) -> Result<DynValue, ModelError> {
    use ort::value::Tensor as T;
    let (name, shape, data) = t.into_parts();
    let fail = |e: ort::Error| ModelError::Internal(format!("input {name:?}: {e}"));
    let value = match data {
        Data::Bool(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Uint8(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Uint16(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Uint32(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Uint64(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Int8(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Int16(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Int32(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Int64(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Fp16(v) => T::from_array((
            shape,
            v.into_iter().map(half::f16::from_bits).collect::<Vec<_>>(),
        ))
        .map(T::into_dyn),
        Data::Fp32(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Fp64(v) => T::from_array((shape, v)).map(T::into_dyn),
        Data::Bytes(_) | Data::Opaque(_) => {
            return Err(ModelError::BadInput(format!(
                "input {name:?}: the ONNX runtime computes on numbers and booleans, not BYTES"
            )));
        }
    };
    value.map_err(fail)
}

/// ONNX Runtime's output `value` as the output `name`.
fn from_ort(name: &str, value: &DynValue) -> Result<Tensor, ModelError> {
    let fail = |e: ort::Error| ModelError::Internal(format!("output {name:?}: {e}"));
    fn take<T: ort::value::PrimitiveTensorElementType + Copy>(
        v: &DynValue,
    ) -> ort::Result<(Vec<usize>, Vec<T>)> {
        let (shape, data) = v.try_extract_tensor::<T>()?;
        let shape = shape
            .iter()
            .map(|&n| usize::try_from(n).unwrap_or(0))
            .collect();
        Ok((shape, data.to_vec()))
    }
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(ModelError::Internal(format!(
                "output {name:?} is a {other}, which no protocol carries"
            )));
        }
    };
    let (shape, data) = match ty {
        TensorElementType::Bool => take::<bool>(value).map(|(s, v)| (s, Data::Bool(v))),
        TensorElementType::Uint8 => take::<u8>(value).map(|(s, v)| (s, Data::Uint8(v))),
        TensorElementType::Uint16 => take::<u16>(value).map(|(s, v)| (s, Data::Uint16(v))),
        TensorElementType::Uint32 => take::<u32>(value).map(|(s, v)| (s, Data::Uint32(v))),
        TensorElementType::Uint64 => take::<u64>(value).map(|(s, v)| (s, Data::Uint64(v))),
        TensorElementType::Int8 => take::<i8>(value).map(|(s, v)| (s, Data::Int8(v))),
        TensorElementType::Int16 => take::<i16>(value).map(|(s, v)| (s, Data::Int16(v))),
        TensorElementType::Int32 => take::<i32>(value).map(|(s, v)| (s, Data::Int32(v))),
        TensorElementType::Int64 => take::<i64>(value).map(|(s, v)| (s, Data::Int64(v))),
        TensorElementType::Float16 => take::<half::f16>(value).map(|(s, v)| {
            (
                s,
                Data::Fp16(v.into_iter().map(half::f16::to_bits).collect()),
            )
        }),
        TensorElementType::Float32 => take::<f32>(value).map(|(s, v)| (s, Data::Fp32(v))),
        TensorElementType::Float64 => take::<f64>(value).map(|(s, v)| (s, Data::Fp64(v))),
        other => {
            return Err(ModelError::Internal(format!(
                "output {name:?} holds {other:?}, which no protocol carries"
            )));
        }
    }
    .map_err(fail)?;
    Tensor::new(name, shape, data).map_err(|e| ModelError::Internal(e.to_string()))
}

/// The protocol's datatype for an ONNX Runtime element type.
fn datatype_of(t: TensorElementType) -> Option<Datatype> {
    Some(match t {
        TensorElementType::Bool => Datatype::Bool,
        TensorElementType::Uint8 => Datatype::Uint8,
        TensorElementType::Uint16 => Datatype::Uint16,
        TensorElementType::Uint32 => Datatype::Uint32,
        TensorElementType::Uint64 => Datatype::Uint64,
        TensorElementType::Int8 => Datatype::Int8,
        TensorElementType::Int16 => Datatype::Int16,
        TensorElementType::Int32 => Datatype::Int32,
        TensorElementType::Int64 => Datatype::Int64,
        TensorElementType::Float16 => Datatype::Fp16,
        TensorElementType::Float32 => Datatype::Fp32,
        TensorElementType::Float64 => Datatype::Fp64,
        _ => return None,
    })
}
