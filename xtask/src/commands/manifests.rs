//! `cargo xtask manifests [--check]`: deploy/'s generated manifests, from
//! the services' settings.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::invocation::Invocation;
use crate::manifests::{self, Difference};

#[derive(Args)]
pub struct ManifestsArgs {
    /// Change nothing; fail, showing the diff, if a committed manifest is not what the
    /// settings generate
    #[arg(long)]
    pub check: bool,
}

impl ManifestsArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let specs = cx.all_services();
        let m = cx.manifests();
        let files = manifests::generate(&m, &specs);
        let dir = &m.dir;
        if self.check {
            let differences = manifests::differences(dir, &files)?;
            if differences.is_empty() {
                println!(
                    "{} is what the settings generate ({} files)",
                    dir.display(),
                    files.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for d in &differences {
                eprintln!("{d}");
            }
            bail!(
                "{} generated manifest(s) are not what the settings make: run `cargo xtask \
                 manifests` and commit the result (hand edits belong in the overlays)",
                differences.len()
            );
        }
        let what = format!(
            "write the generated manifests ({} files) in {} from the settings",
            files.len(),
            dir.display()
        );
        let changed = cx.runner.effect(what, || manifests::write(dir, &files))?;
        if let Some(changed) = changed {
            for d in &changed {
                match d {
                    Difference::Missing(p) => println!("created {}", dir.join(p).display()),
                    Difference::Changed(p, _) => println!("updated {}", dir.join(p).display()),
                    Difference::Extra(p) => println!("removed {}", dir.join(p).display()),
                }
            }
            if changed.is_empty() {
                println!("{} is up to date ({} files)", dir.display(), files.len());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
