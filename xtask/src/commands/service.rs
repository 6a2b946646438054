//! `cargo xtask service add NAME`: a new service crate of the workspace,
//! ready to deploy: a minimal axum service on `service-kit` (probes,
//! metrics, graceful shutdown, OpenAPI) under services/NAME (a member
//! through the workspace's `services/*`), declared in xtask.toml with a
//! smoke check, its manifests generated.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::adding;
use super::invocation::Invocation;
use crate::build::workspace;
use crate::ground::names;
use crate::ground::settings_edit::{self, Entry};

#[derive(Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: ServiceCommand,
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Create services/NAME (axum on service-kit, GET /hello), declare it in xtask.toml,
    /// generate its manifests
    Add {
        /// The crate's and the service's name: lowercase letters, digits and '-',
        /// starting with a letter
        name: String,
        /// Port it listens on locally (default: one above the highest configured)
        #[arg(long)]
        port: Option<u16>,
    },
}

const COMMENT: &str = "A service crate (services/<name>), added by `cargo xtask service add`.";

/// Names cargo refuses for packages, or that would shadow a crate.
const RESERVED: [&str; 6] = ["test", "std", "core", "alloc", "proc-macro", "self"];

impl ServiceArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let ServiceCommand::Add { name, port } = self.command;
        check_new_name(cx, &name)?;
        let Some(settings_file) = cx.config_source.clone() else {
            bail!(
                "there is no settings file to add the service to: create xtask.toml at the \
                 workspace root (the repository's one lists the defaults) or pass --config FILE"
            );
        };
        let port = adding::port(&cx.config.services.0, port, adding::free_here)?;
        let dir = cx.root.join("services").join(&name);
        if dir.exists() {
            bail!(
                "{} exists already: move it away, or pick another name",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&settings_file)
            .with_context(|| format!("cannot read {}", settings_file.display()))?;
        let entries = [
            ("package", Entry::Str(name.clone())),
            ("port", Entry::Int(i64::from(port))),
            (
                "smoke",
                Entry::Inline(vec![
                    ("path", Entry::Str("/hello".into())),
                    ("json", Entry::Str("message".into())),
                    ("contains", Entry::Str("Hello".into())),
                ]),
            ),
        ];
        let what = format!(
            "create {} (axum on service-kit, GET /hello), add [services.{name}] to {}, \
             regenerate the manifests",
            dir.display(),
            settings_file.display()
        );
        let done = cx.runner.effect(what, || {
            scaffold(&dir, &name)?;
            let edited = settings_edit::spell_out_defaults(&text)
                .and_then(|t| settings_edit::add_service(&t, &name, COMMENT, &entries));
            let committed = edited.and_then(|e| adding::commit(cx, &settings_file, &e, &[]));
            if committed.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            committed.map(|_| ())
        })?;
        if done.is_some() {
            println!("created {}", dir.display());
            println!(
                "added [services.{name}] to {} (port {port})",
                settings_file.display()
            );
            println!(
                "\nnext: cargo xtask deploy {name}        # build, start, smoke-test GET /hello on http://127.0.0.1:{port}\n      \
                 edit {}/src/main.rs, then deploy again",
                dir.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Refuses a name a new crate cannot have: not a DNS-1035 label, a
/// reserved one, a service's, a workspace package's, a preset's.
fn check_new_name(cx: &Invocation, name: &str) -> Result<()> {
    names::dns1123_label(name)
        .map_err(|why| anyhow::anyhow!("the service's name {name:?} {why}"))?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || RESERVED.contains(&name) {
        bail!("{name:?} cannot name a crate: start with a letter, and avoid {RESERVED:?}");
    }
    if cx.config.services.0.iter().any(|s| s.name == name) {
        bail!("there is already a service {name:?} in the settings; pick another name");
    }
    if let Some(p) = workspace::packages(cx)?
        .into_iter()
        .find(|p| p.name == name)
    {
        if p.bins.is_empty() {
            bail!("the workspace already has a library {name:?}; pick another name");
        }
        bail!(
            "the workspace already has a package {name:?}: declare it with \
             [services.{name}] in xtask.toml, or pick another name"
        );
    }
    adding::not_a_preset(name)
}

/// Writes the crate: Cargo.toml, src/main.rs, and a Dockerfile for
/// `--builder docker`.
fn scaffold(dir: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/main.rs", MAIN_RS),
        ("Dockerfile", DOCKERFILE),
    ];
    for (file, template) in files {
        let path = dir.join(file);
        std::fs::write(&path, template.replace("{name}", name))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
description = '{name}: GET /hello answers {"message": "Hello from {name}"}'
version.workspace = true
edition.workspace = true
license.workspace = true
publish = false

[dependencies]
axum.workspace = true
serde.workspace = true
service-kit.workspace = true
utoipa.workspace = true

[lints]
workspace = true
"#;

const MAIN_RS: &str = r#"//! {name}: `GET /hello` -> `{"message": "Hello from {name}"}`. service-kit
//! gives it what every kube-mlops service has: PORT and the other settings
//! from the environment, /healthz and /readyz, /metrics, /openapi.json,
//! request limits and a graceful shutdown.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use service_kit::{ServeEnv, Service};

/// The answer of `GET /hello`.
#[derive(Serialize, utoipa::ToSchema)]
struct Hello {
    message: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(hello), components(schemas(Hello)))]
struct ApiDoc;

/// Says hello.
#[utoipa::path(get, path = "/hello", responses((status = 200, body = Hello)))]
async fn hello() -> Json<Hello> {
    Json(Hello {
        message: "Hello from {name}".into(),
    })
}

fn main() -> std::process::ExitCode {
    service_kit::main("{name}", ServeEnv::from_env, |_env| {
        Ok(Service {
            name: "{name}",
            version: env!("CARGO_PKG_VERSION"),
            routes: Router::new().route("/hello", get(hello)),
            metrics: Box::new(|_| {}),
            openapi: <ApiDoc as utoipa::OpenApi>::openapi(),
            busy: None,
        })
    })
}
"#;

const DOCKERFILE: &str = r#"# {name} on an empty base, for `cargo xtask image build --builder docker {name}`,
# which stages rootfs/ (the static binary, and the non-root user 65532).
FROM scratch
COPY rootfs/ /
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/{name}"]
"#;
