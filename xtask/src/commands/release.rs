//! `cargo xtask release`: cut a signed, attested version (see `release`);
//! `release bump` sets the next version; `release keygen` makes a key pair.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::invocation::Invocation;
use crate::release::{self, bump, preflight, signing};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    pub command: Option<ReleaseCommand>,
    /// The version to release, MAJOR.MINOR.PATCH (must equal Cargo.toml's and be above the last v* tag)
    #[arg(long, value_name = "X.Y.Z")]
    pub version: Option<String>,
    /// Registry and account to push to, e.g. 127.0.0.1:5555/me (default: [registry] in xtask.toml)
    #[arg(long, value_name = "HOST/ACCOUNT", value_parser = crate::ground::names::registry_base)]
    pub registry: Option<String>,
    /// Use plain HTTP (a registry on loopback)
    #[arg(long)]
    pub insecure: bool,
    /// PEM PKCS#8 ECDSA P-256 private key (default: the PEM text in KMLOPS_SIGN_KEY); never printed
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// Write the result as JSON, Skaffold's build-artifacts shape extended with SBOM, provenance and signature references
    #[arg(long, value_name = "FILE")]
    pub file_output: Option<PathBuf>,
    /// Do not tag the commit vX.Y.Z
    #[arg(long)]
    pub no_tag: bool,
    /// Also tag the images `latest`
    #[arg(long)]
    pub latest: bool,
    /// Build once instead of twice (the provenance says the check was skipped)
    #[arg(long)]
    pub skip_reproducibility_check: bool,
    /// Services whose images to release (default: all)
    pub services: Vec<String>,
}

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Set the workspace version in Cargo.toml and Cargo.lock (layout kept)
    Bump {
        /// Which part goes up
        #[arg(value_enum, required_unless_present = "to")]
        part: Option<PartArg>,
        /// An exact version instead
        #[arg(long, value_name = "X.Y.Z", conflicts_with = "part")]
        to: Option<String>,
    },
    /// Write a signing key pair: KEY (private, mode 0600) and KEY.pub
    Keygen {
        /// Where the private key goes; the public key is written beside it with .pub
        #[arg(long, default_value = "kube-mlops.key")]
        key: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy)]
pub enum PartArg {
    Major,
    Minor,
    Patch,
}

impl ReleaseArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        match self.command {
            Some(ReleaseCommand::Bump { part, to }) => return bump_version(cx, part, to),
            Some(ReleaseCommand::Keygen { key }) => return keygen(cx, &key),
            None => {}
        }
        let Some(version) = self.version else {
            bail!(
                "say which version to release: `cargo xtask release --version X.Y.Z` \
                 (`cargo xtask release bump patch` sets the next one in Cargo.toml)"
            );
        };
        // Found out now, not after the images are pushed and signed.
        if let Some(parent) = self
            .file_output
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
        {
            // A dry run lists it with the preflight's findings.
            cx.runner.precondition(anyhow::anyhow!(
                "--file-output: directory {} does not exist; create it first",
                parent.display()
            ))?;
        }
        let opts = release::Options {
            version,
            registry: self.registry.unwrap_or_else(|| {
                let r = &cx.config.registry;
                format!("{}/{}", r.host, r.account)
            }),
            insecure: self.insecure,
            sign_key: self.sign_key,
            tag: !self.no_tag,
            latest: self.latest,
            reproducibility_check: !self.skip_reproducibility_check,
            services: cx.select(&self.services)?,
            setup: cx.image_setup(),
            manifests_dir: cx.config.kubernetes.manifests_dir.clone(),
        };
        let version = opts.version.to_string();
        let released = release::run(cx, &opts)?;
        if let Some(file) = &self.file_output {
            cx.runner.effect(format!("write {}", file.display()), || {
                std::fs::write(
                    file,
                    serde_json::to_vec_pretty(&release::file_output(&released))?,
                )
                .with_context(|| format!("cannot write {}", file.display()))
            })?;
        }
        if cx.json() {
            // The --file-output document, with the version.
            let mut doc = release::file_output(&released);
            doc["version"] = version.into();
            cx.emit(&doc);
            return Ok(ExitCode::SUCCESS);
        }
        for r in &released {
            println!("{}", r.tag);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn bump_version(cx: &Invocation, part: Option<PartArg>, to: Option<String>) -> Result<ExitCode> {
    let current = crate::ground::toml_files::workspace_version(&cx.root.join("Cargo.toml"))?;
    let next = match (to, part) {
        (Some(v), _) => preflight::parse_version(&v)?,
        (None, Some(p)) => bump::next(
            &current,
            match p {
                PartArg::Major => bump::Part::Major,
                PartArg::Minor => bump::Part::Minor,
                PartArg::Patch => bump::Part::Patch,
            },
        ),
        (None, None) => bail!("say which part goes up (major, minor, patch) or --to X.Y.Z"),
    };
    cx.runner.effect(
        format!("set the workspace version {current} → {next} in Cargo.toml and Cargo.lock"),
        || bump::set(&cx.root, &next),
    )?;
    println!("{next}");
    eprintln!(
        "==> add a `## [{next}] - YYYY-MM-DD` section to CHANGELOG.md, commit, then `cargo xtask release --version {next}`"
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(cx: &Invocation, key: &std::path::Path) -> Result<ExitCode> {
    let public = PathBuf::from(format!("{}.pub", key.display()));
    for p in [key, public.as_path()] {
        if p.exists() {
            bail!(
                "{} exists; keygen does not overwrite a key (move it away first)",
                p.display()
            );
        }
    }
    cx.runner.effect(
        format!(
            "write an ECDSA P-256 key pair: {} (mode 0600) and {}",
            key.display(),
            public.display()
        ),
        || {
            let pair = signing::Key::generate()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(key)
                .with_context(|| format!("cannot create {}", key.display()))?;
            std::io::Write::write_all(&mut file, pair.private_pem()?.as_bytes())?;
            std::fs::write(&public, pair.public_pem()?)
                .with_context(|| format!("cannot write {}", public.display()))?;
            Ok(())
        },
    )?;
    cx.runner.unless_dry_run(|| {
        eprintln!(
            "==> private key {} (keep it secret; CI can take it from {}), public key {} (for `cosign verify --key`)",
            key.display(),
            signing::KEY_ENV,
            public.display()
        );
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
