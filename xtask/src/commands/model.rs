//! `cargo xtask model add NAME --onnx FILE`: a user's ONNX model as a
//! service of the model server, without editing code or YAML: the file is
//! loaded by the model server as it will be served, copied under
//! `models/`, given a contract.json, declared in xtask.toml (comments and
//! layout kept) and its manifests generated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::adding;
use super::invocation::Invocation;
use crate::build;
use crate::build::models::{Inspection, Signature};
use crate::ground::names;
use crate::ground::settings_edit::{self, Entry};

#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Add an ONNX model as a service: copy it under models/, check it loads, write its
    /// contract, declare it in xtask.toml, generate its manifests
    Add {
        /// The service's name (a DNS-1123 label: lowercase letters, digits, '-')
        name: String,
        /// The ONNX file: any graph tract runs (skl2onnx, onnxmltools, torch.onnx.export);
        /// one float32 [N, features] input gets a Seldon v1 contract, any other is
        /// smoke-tested over the Open Inference Protocol v2
        #[arg(long, value_name = "FILE")]
        onnx: PathBuf,
        /// A contract.json for its smoke test (default: one written from the model's input width)
        #[arg(long, value_name = "FILE")]
        contract: Option<PathBuf>,
        /// Names of the output columns, comma-separated (default: the file's)
        #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
        class_names: Option<Vec<String>>,
        /// Names of the input columns, comma-separated (default: the file's)
        #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
        feature_names: Option<Vec<String>>,
        /// The graph output to answer with (default: the probabilities, else the first float
        /// one); the settings' `output` key
        #[arg(long, value_name = "NAME")]
        graph_output: Option<String>,
        /// Port it listens on locally (default: one above the highest configured)
        #[arg(long)]
        port: Option<u16>,
        /// Do not deploy it as a SeldonDeployment with `deploy --seldon` (implied for a
        /// model Seldon v1 cannot feed: several inputs, or not [N, features])
        #[arg(long)]
        no_seldon: bool,
        /// What computes it: tract (built in) or onnxruntime (ONNX Runtime from its pinned
        /// wheel). Default: both load it and time a one-row run, and the faster is written
        /// down (ONNX Runtime when at least 1.5x and 0.05 ms a run faster)
        #[arg(long, value_parser = ["tract", "onnxruntime"])]
        runtime: Option<String>,
    },
}

impl ModelArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let ModelCommand::Add {
            name,
            onnx,
            contract,
            class_names,
            feature_names,
            graph_output: output,
            port,
            no_seldon,
            runtime,
        } = self.command;
        check_new_name(cx, &name)?;
        let Some(settings_file) = cx.config_source.clone() else {
            bail!(
                "there is no settings file to add the model to: create xtask.toml at the \
                 workspace root (the repository's one lists the defaults) or pass --config FILE"
            );
        };
        let onnx = std::fs::canonicalize(&onnx)
            .with_context(|| format!("cannot read --onnx {}", onnx.display()))?;
        let port = adding::port(&cx.config.services.0, port, adding::free_here)?;

        // Load it as the model server will, before anything is written.
        let Some(server) = build::model_server(cx)? else {
            cx.runner.step(format!(
                "load {} with model-server inspect, copy it to models/{name}.onnx, write its \
                 contract, add [services.{name}] to {}, regenerate the manifests",
                onnx.display(),
                settings_file.display()
            ));
            return Ok(ExitCode::SUCCESS);
        };
        let (found, runtime_note) = on_runtime(cx, &server, &onnx, output.as_deref(), runtime)
            .with_context(|| format!("--onnx {}", onnx.display()))?;
        fits(&found, class_names.as_deref(), feature_names.as_deref())?;
        let shape = shape_of(&found);
        eprintln!("  ✓ {} loads: {shape}", onnx.display());
        let tabular = found.features > 0;
        let contract_text = contract_for(&found, contract.as_deref(), feature_names.as_deref())?;
        let base = settings_file.parent().unwrap_or(Path::new("."));
        let model_rel = format!("models/{name}.onnx");
        let contract_rel = format!("models/{name}.contract.json");
        let (model_file, contract_file) = (base.join(&model_rel), base.join(&contract_rel));
        let contract_file = contract_text.as_ref().map(|text| (contract_file, text));
        let created = write_model_files(&onnx, &model_file, contract_file.clone())?;

        let entries = Table {
            model_path: model_rel,
            port,
            contract: contract_text.is_some().then_some(contract_rel),
            class_names,
            feature_names,
            output,
            runtime: found.runtime.clone(),
            // Seldon's executor carries v1 to this model; one v1 cannot
            // feed is served over the Open Inference Protocol only, so not
            // by Seldon.
            seldon: !no_seldon && tabular,
        }
        .entries();
        let comment = format!(
            "{} ({shape}), added by `cargo xtask model add`; {runtime_note}.",
            onnx.file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        );
        add_table(cx, &settings_file, &name, &comment, &entries, &created)?;
        report(
            &settings_file,
            &name,
            port,
            &model_file,
            contract_file.as_ref().map(|(f, _)| f.as_path()),
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// The new service's table in `xtask.toml`.
struct Table {
    model_path: String,
    port: u16,
    contract: Option<String>,
    class_names: Option<Vec<String>>,
    feature_names: Option<Vec<String>>,
    output: Option<String>,
    runtime: String,
    seldon: bool,
}

impl Table {
    /// Its keys in the order they are written, the defaults left out.
    fn entries(self) -> Vec<(&'static str, Entry)> {
        let mut entries = vec![
            ("model", Entry::Str("onnx".into())),
            ("model_path", Entry::Str(self.model_path)),
            ("port", Entry::Int(i64::from(self.port))),
        ];
        if let Some(c) = self.contract {
            entries.push(("contract", Entry::Str(c)));
        }
        for (key, names) in [
            ("class_names", self.class_names),
            ("feature_names", self.feature_names),
        ] {
            if let Some(n) = names {
                entries.push((key, Entry::List(n)));
            }
        }
        if let Some(o) = self.output {
            entries.push(("output", Entry::Str(o)));
        }
        entries.push(("runtime", Entry::Str(self.runtime)));
        if !self.seldon {
            entries.push(("seldon", Entry::Bool(false)));
        }
        entries
    }
}

/// Adds `[services.<name>]` with `entries` and `comment` to
/// `settings_file` (its comments and layout kept, the defaults spelled
/// out), then regenerates the manifests; on a failure the `created` files
/// are removed again (`adding::commit`).
fn add_table(
    cx: &Invocation,
    settings_file: &Path,
    name: &str,
    comment: &str,
    entries: &[(&str, Entry)],
    created: &[PathBuf],
) -> Result<()> {
    let text = std::fs::read_to_string(settings_file)
        .with_context(|| format!("cannot read {}", settings_file.display()))?;
    let edited = settings_edit::spell_out_defaults(&text)
        .and_then(|t| settings_edit::add_service(&t, name, comment, entries))?;
    adding::commit(cx, settings_file, &edited, created).map(|_| ())
}

/// The model's contract: `given` checked against it, else one derived
/// from a tabular model ([N, features]); none for any other graph, which
/// is smoke-tested over the Open Inference Protocol.
///
/// # Errors
/// `given` for a model that is not tabular, or that does not fit it.
fn contract_for(
    found: &Inspection,
    given: Option<&Path>,
    feature_names: Option<&[String]>,
) -> Result<Option<String>> {
    let tabular = found.features > 0;
    match given {
        Some(_) if !tabular => bail!(
            "--contract describes a Seldon v1 model with one [N, features] input; this one \
             takes {} (its smoke test is an Open Inference Protocol inference instead)",
            Signature::show(&found.signature.inputs)
        ),
        Some(path) => Ok(Some(given_contract(path, found.features, found.outputs)?)),
        None if tabular => Ok(Some(derived_contract(found, feature_names))),
        None => Ok(None),
    }
}

/// Refuses a name a new model cannot have: not a DNS-1035 label, a
/// service's already, a preset's.
fn check_new_name(cx: &Invocation, name: &str) -> Result<()> {
    names::dns1123_label(name).map_err(|why| anyhow::anyhow!("the model's name {name:?} {why}"))?;
    if cx.config.services.0.iter().any(|s| s.name == name) {
        bail!("there is already a service {name:?} in the settings; pick another name");
    }
    adding::not_a_preset(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("the model's name {name:?} must start with a letter (a Kubernetes Service name)");
    }
    Ok(())
}

/// What the model takes and gives, said in one line: a tabular model's
/// columns (and class names), else every input and output.
fn shape_of(found: &Inspection) -> String {
    if found.features > 0 {
        format!(
            "float32 [N, {}] in, {} column(s) out{}",
            found.features,
            found.outputs,
            found
                .class_names
                .as_ref()
                .map(|c| format!(" ({})", c.join(", ")))
                .unwrap_or_default()
        )
    } else {
        format!(
            "{} in; {} out",
            Signature::show(&found.signature.inputs),
            Signature::show(&found.signature.outputs)
        )
    }
}

/// Copies `onnx` to `model_file` and writes the contract (file, text),
/// refusing to replace either; returns the files this created, for
/// `adding::commit` to remove when the settings cannot be written.
fn write_model_files(
    onnx: &Path,
    model_file: &Path,
    contract: Option<(PathBuf, &String)>,
) -> Result<Vec<PathBuf>> {
    if let Some(models) = model_file.parent() {
        std::fs::create_dir_all(models)
            .with_context(|| format!("cannot create {}", models.display()))?;
    }
    let mut created = Vec::new();
    if !model_file.exists() {
        created.push(model_file.to_path_buf());
    }
    if let Some((file, _)) = &contract
        && !file.exists()
    {
        created.push(file.clone());
    }
    copy_new(onnx, model_file)?;
    if let Some((file, text)) = &contract {
        write_new(file, text)?;
    }
    Ok(created)
}

/// What `model add` did, and the commands that serve the model next.
fn report(settings_file: &Path, name: &str, port: u16, model_file: &Path, contract: Option<&Path>) {
    println!(
        "added [services.{name}] to {} (port {port})",
        settings_file.display()
    );
    println!("copied the model to {}", model_file.display());
    match contract {
        Some(file) => println!("wrote its contract to {}", file.display()),
        None => println!(
            "its smoke test: POST zeros of every input to \
             http://127.0.0.1:{port}/v2/models/{name}/infer (Open Inference Protocol); \
             `deploy --seldon` leaves it out (seldon = false): Seldon v1 cannot feed it"
        ),
    }
    println!(
        "\nnext: cargo xtask deploy {name}            # on this machine: http://127.0.0.1:{port}\n      \
         cargo xtask deploy --target kind {name}\n      \
         cargo xtask deploy --seldon --target minikube"
    );
}

/// How much faster ONNX Runtime must be for `model add` to pick it: 1.5
/// times, and by 0.05 ms a run (about the server's own cost of a request).
/// It brings a C runtime base and a 35 MB library into the image; on small
/// graphs (microseconds either way) that buys nothing a client would see,
/// and noise would decide.
const ONNXRUNTIME_MARGIN: f64 = 1.5;
const ONNXRUNTIME_SAVING_SECS: f64 = 50e-6;

/// `onnx` inspected on `asked`, or on both runtimes with the faster kept
/// (`ONNXRUNTIME_MARGIN`, `ONNXRUNTIME_SAVING_SECS`); the inspection, whose `runtime` is the choice,
/// and a note saying why it was chosen.
fn on_runtime(
    cx: &Invocation,
    static_server: &Path,
    onnx: &Path,
    output: Option<&str>,
    asked: Option<String>,
) -> Result<(Inspection, String)> {
    let ms = |i: &Inspection| i.seconds_per_run * 1e3;
    let tract = || build::models::inspect(cx, static_server, onnx, output, &[]);
    let onnxruntime = || -> Result<Inspection> {
        let (server, library) =
            build::onnxruntime_model_server(cx)?.context("a dry run builds nothing")?;
        let env = [
            ("RUNTIME".to_string(), "onnxruntime".to_string()),
            ("ORT_DYLIB_PATH".to_string(), library.display().to_string()),
        ];
        build::models::inspect(cx, &server, onnx, output, &env)
    };
    match asked.as_deref() {
        Some("tract") => {
            // The server's reason names its own setting (RUNTIME=…); here
            // the choice is this command's flag.
            let found = tract().context(
                "tract was asked for (--runtime tract); leave --runtime out to use the runtime \
                 that can serve it, or give --runtime onnxruntime",
            )?;
            let note = format!("runtime tract as asked ({:.3} ms a run)", ms(&found));
            return Ok((found, note));
        }
        Some(_) => {
            let found = onnxruntime()?;
            let note = format!("runtime onnxruntime as asked ({:.3} ms a run)", ms(&found));
            return Ok((found, note));
        }
        None => {}
    }
    pick(tract(), onnxruntime())
}

/// The runtime `model add` writes down when both were tried: ONNX Runtime
/// where it is `ONNXRUNTIME_MARGIN` times and `ONNXRUNTIME_SAVING_SECS`
/// faster, else tract; the one that loads the model where only one does;
/// with the note the settings' comment gets.
///
/// # Errors
/// Neither loads it: both reasons.
fn pick(
    tract: Result<Inspection>,
    onnxruntime: Result<Inspection>,
) -> Result<(Inspection, String)> {
    let ms = |i: &Inspection| i.seconds_per_run * 1e3;
    match (tract, onnxruntime) {
        (Ok(t), Ok(o)) => {
            let measured = format!(
                "one row: tract {:.3} ms, onnxruntime {:.3} ms a run",
                ms(&t),
                ms(&o)
            );
            eprintln!("  ✓ measured on {measured}");
            let faster = o.seconds_per_run * ONNXRUNTIME_MARGIN < t.seconds_per_run
                && t.seconds_per_run - o.seconds_per_run >= ONNXRUNTIME_SAVING_SECS;
            Ok(if faster {
                (o, format!("runtime onnxruntime, measured ({measured})"))
            } else {
                (t, format!("runtime tract, measured ({measured})"))
            })
        }
        (Ok(t), Err(e)) => {
            eprintln!(
                "  ! ONNX Runtime cannot serve it, tract can: {}",
                reason(&e)
            );
            let note = format!(
                "runtime tract (ONNX Runtime cannot load it; {:.3} ms a run)",
                ms(&t)
            );
            Ok((t, note))
        }
        (Err(e), Ok(o)) => {
            eprintln!(
                "  ! tract cannot serve it, ONNX Runtime can: {}",
                reason(&e)
            );
            let note = format!(
                "runtime onnxruntime (tract cannot load it; {:.3} ms a run)",
                ms(&o)
            );
            Ok((o, note))
        }
        (Err(t), Err(o)) => {
            bail!(
                "neither runtime can serve it; tract: {}; ONNX Runtime: {}",
                reason(&t),
                reason(&o)
            )
        }
    }
}

/// What `models::inspect` says, without its "the model server cannot
/// serve it: " (said once by the caller).
fn reason(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.trim_start_matches("the model server cannot serve it: ")
        .to_string()
}

/// The names given fit the model.
fn fits(
    found: &Inspection,
    class_names: Option<&[String]>,
    feature_names: Option<&[String]>,
) -> Result<()> {
    if let Some(c) = class_names
        && c.len() != found.outputs
    {
        bail!(
            "--class-names has {} names, but the model answers {} columns",
            c.len(),
            found.outputs
        );
    }
    if let Some(f) = feature_names
        && f.len() != found.features
    {
        bail!(
            "--feature-names has {} names, but the model takes {} features",
            f.len(),
            found.features
        );
    }
    Ok(())
}

/// A contract.json given with --contract, checked to parse and to describe
/// `features` inputs.
fn given_contract(path: &Path, features: usize, answers: usize) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --contract {}", path.display()))?;
    let contract = seldon_protocol::contract::Contract::parse(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid --contract {}", path.display()))?;
    let (inputs, outputs) = build::models::widths(&contract);
    if inputs != features {
        bail!(
            "--contract {} describes {inputs} features, but the model takes {features}",
            path.display()
        );
    }
    if outputs != 0 && outputs != answers {
        bail!(
            "--contract {} expects {outputs} outputs, but the model answers {answers} columns",
            path.display()
        );
    }
    Ok(text)
}

/// A contract.json from what the model takes: each input a continuous
/// float in [0, 1], named as the model (or --feature-names) names them; the
/// outputs as targets in [0, 1] when they are class probabilities.
fn derived_contract(found: &Inspection, feature_names: Option<&[String]>) -> String {
    let names: Vec<String> = feature_names
        .map(<[String]>::to_vec)
        .or_else(|| found.feature_names.clone())
        .unwrap_or_else(|| (0..found.features).map(|i| format!("f{i}")).collect());
    let features: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"name": n, "dtype": "FLOAT", "ftype": "continuous", "range": [0, 1]}))
        .collect();
    let text = serde_json::json!({ "features": features });
    serde_json::to_string_pretty(&text).unwrap_or_default() + "\n"
}

/// Copies `from` to `to` unless `to` exists with other contents.
fn copy_new(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_new(to, &bytes)
}

/// Writes `to` unless it exists with other contents (never overwrites a
/// user's file).
fn write_new(to: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    match std::fs::read(to) {
        Ok(existing) if existing == bytes.as_ref() => Ok(()),
        Ok(_) => bail!(
            "{} exists with other contents: move it away, or pick another name",
            to.display()
        ),
        Err(_) => {
            std::fs::write(to, bytes).with_context(|| format!("cannot write {}", to.display()))
        }
    }
}
