//! `cargo xtask render --target T --images FILE [-o|--output-dir DIR]`: a Kubernetes
//! target's manifests with prebuilt images pinned by digest, no cluster
//! needed (Skaffold's `render`): what a CD pipeline commits or applies
//! after `release` or `image push --file-output`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::args::TargetArg;
use super::invocation::Invocation;
use crate::release::hydrate;

#[derive(Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// The images, as `release` or `image push` wrote them with --file-output
    /// ({"builds":[{"imageName":…,"tag":"repository:tag@sha256:…"}]})
    #[arg(long, value_name = "FILE")]
    pub images: PathBuf,
    /// The Seldon resources (deploy/seldon: the SeldonDeployments) instead
    /// of the target's overlay; written as DIR/seldon.yaml with -o
    #[arg(long)]
    pub seldon: bool,
    /// Write DIR/<target>.yaml instead of printing
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

impl RenderArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let target = cx.target_for(name)?;
        let (overlay, file_name) = if self.seldon {
            (
                cx.config.kubernetes.manifests_dir.join("seldon"),
                "seldon".to_string(),
            )
        } else {
            let overlay = target.overlay(cx).with_context(|| {
                format!(
                    "the {} target applies no manifests; render one of the Kubernetes targets \
                     ({}), or --seldon",
                    name.as_str(),
                    crate::targets::clusters::names()
                )
            })?;
            (overlay, name.as_str().to_string())
        };
        let pins = hydrate::pins_from_file(&self.images)?;
        // Every image the services run must be pinned, as deploy --images
        // requires: an unpinned one would be pulled by its bare name.
        for spec in cx.all_services() {
            if !pins.iter().any(|p| p.name == spec.settings.image) {
                anyhow::bail!(
                    "{} pins no image named {} (service {}); render needs every service's image \
                     (the file of a release of some services pins only theirs: `cargo xtask \
                     deploy --target T --images {} SERVICE…` deploys those)",
                    self.images.display(),
                    spec.settings.image,
                    spec.name,
                    self.images.display()
                );
            }
        }
        let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
        let text = hydrate::render(cx, &overlay, &pins, scratch.path())?;
        match &self.output_dir {
            None => print!("{text}"),
            Some(dir) => {
                let file = dir.join(format!("{file_name}.yaml"));
                cx.runner.effect(format!("write {}", file.display()), || {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    std::fs::write(&file, &text)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    eprintln!("==> wrote {}", file.display());
                    Ok(())
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
