//! What `model add` and `service add` share: the new settings checked by
//! loading them before they replace the file, and the manifests written
//! with them, Ctrl-C deferred so that the two land together.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ground::context::Ctx;
use crate::ground::interrupt;
use crate::ground::services;
use crate::ground::settings::Loaded;
use crate::manifests::{self, Difference};

/// Replaces `settings_file` with `edited` once it loads, after writing the
/// manifests it generates; on failure removes `created` (files this
/// command wrote) and leaves the settings as they were.
///
/// # Errors
/// Settings that do not load (the reason, named by key and line), files
/// that cannot be written.
pub fn commit(cx: &Ctx, settings_file: &Path, edited: &str, created: &[PathBuf]) -> Result<Loaded> {
    let undo = || {
        for f in created {
            let _ = std::fs::remove_file(f);
        }
    };
    let tmp = settings_file.with_extension("toml.new");
    let loaded = std::fs::write(&tmp, edited)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| Loaded::load(Some(&tmp), &cx.root));
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            undo();
            return Err(
                e.context("the settings with the addition do not load; nothing was changed")
            );
        }
    };
    let specs = services::all(&loaded.config, &cx.root);
    let files = manifests::generate(&loaded.config, &specs);
    let dir = loaded.config.kubernetes.manifests_dir.clone();
    let written = interrupt::critical(|| -> Result<Vec<Difference>> {
        let changes = manifests::write(&dir, &files)?;
        std::fs::rename(&tmp, settings_file)
            .with_context(|| format!("cannot write {}", settings_file.display()))?;
        Ok(changes)
    })?;
    for d in written {
        match d {
            Difference::Missing(p) => println!("created {}", dir.join(p).display()),
            Difference::Changed(p, _) => println!("updated {}", dir.join(p).display()),
            Difference::Extra(p) => println!("removed {}", dir.join(p).display()),
        }
    }
    Ok(loaded)
}

/// The port for a new service: `requested`, else one above the highest
/// configured; never one a service has.
///
/// # Errors
/// Port 0, a port taken, no port above the highest.
pub fn port(cx: &Ctx, requested: Option<u16>) -> Result<u16> {
    let taken = |p: u16| cx.config.services.0.iter().find(|s| s.port == p);
    let port = match requested {
        Some(0) => anyhow::bail!("--port must be 1-65535"),
        Some(p) => p,
        None => {
            let highest = cx
                .config
                .services
                .0
                .iter()
                .map(|s| s.port)
                .max()
                .unwrap_or(5000);
            highest
                .checked_add(1)
                .context("no port above the highest configured one: pass --port")?
        }
    };
    if let Some(other) = taken(port) {
        anyhow::bail!(
            "port {port} is services.{}'s; pass another --port",
            other.name
        );
    }
    Ok(port)
}
