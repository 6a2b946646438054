//! What `model add` and `service add` share: the new settings checked by
//! loading them before they replace the file, and the manifests written
//! with them, Ctrl-C deferred so that the two land together.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::invocation::Invocation;
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
pub fn commit(
    cx: &Invocation,
    settings_file: &Path,
    edited: &str,
    created: &[PathBuf],
) -> Result<Loaded> {
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
            // The reason names the file the user has, not our scratch copy.
            let why = format!("{e:#}").replace(
                &tmp.display().to_string(),
                &format!("{} (as it would be)", settings_file.display()),
            );
            anyhow::bail!("the settings with the addition do not load; nothing was changed: {why}");
        }
    };
    let specs = services::all(&loaded.config.services, &cx.root);
    let files = manifests::generate(&super::invocation::manifests_of(&loaded.config), &specs);
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

/// Whether nothing listens on `port` on this machine (loopback or any
/// address), for `port`'s choice.
pub fn free_here(port: u16) -> bool {
    crate::ground::net::port_free("0.0.0.0", port).is_ok()
        && crate::ground::net::port_free("127.0.0.1", port).is_ok()
}

/// Refuses the name of a built-in preset (`test-api`, `model-server`,
/// `iris-model`): a table of that name starts from the preset, so an
/// added service of that name would not be what was added.
///
/// # Errors
/// The name is a preset's.
pub fn not_a_preset(name: &str) -> Result<()> {
    if crate::ground::service_settings::preset_ports()
        .iter()
        .any(|(preset, _)| preset == name)
    {
        anyhow::bail!(
            "{name:?} is the name of a built-in preset (an empty [services.{name}] table \
             deploys it): pick another name"
        );
    }
    Ok(())
}

/// The port for a new service: `requested`, else the first above the
/// highest configured that `free` says is free on this machine; never one
/// a service has, nor a preset's that the settings do not configure (the
/// iris preset's 5002: enabling it later would collide).
///
/// # Errors
/// Port 0, a port taken, no free port above the highest.
pub fn port(
    services: &[crate::ground::settings::ServiceSettings],
    requested: Option<u16>,
    free: impl Fn(u16) -> bool,
) -> Result<u16> {
    let taken = |p: u16| -> Option<String> {
        if let Some(s) = services.iter().find(|s| s.port == p) {
            return Some(format!("services.{}'s", s.name));
        }
        crate::ground::service_settings::preset_ports()
            .into_iter()
            .find(|(name, port)| *port == p && !services.iter().any(|s| &s.name == name))
            .map(|(name, _)| format!("the {name} preset's (its `[services.{name}]` table)"))
    };
    let port = match requested {
        Some(0) => anyhow::bail!("--port must be 1-65535"),
        Some(p) => p,
        None => {
            let highest = services.iter().map(|s| s.port).max().unwrap_or(5000);
            (highest.saturating_add(1)..=u16::MAX)
                .find(|p| taken(*p).is_none() && free(*p))
                .context("no free port above the highest configured one: pass --port")?
        }
    };
    if let Some(whose) = taken(port) {
        anyhow::bail!("port {port} is {whose}; pass another --port");
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_port_skips_the_configured_and_the_presets_not_configured() -> Result<()> {
        let quick_start = crate::ground::settings::Config::default();
        // 5000 and 5001 are configured, 5002 is the iris preset's.
        assert_eq!(port(&quick_start.services.0, None, |_| true)?, 5003);
        let e = port(&quick_start.services.0, Some(5002), |_| true).expect_err("the preset's");
        assert!(format!("{e}").contains("the iris-model preset's"), "{e}");
        let e = port(&quick_start.services.0, Some(5001), |_| true).expect_err("taken");
        assert!(format!("{e}").contains("services.model-server's"), "{e}");
        // With iris configured elsewhere, its preset port is free again.
        let moved = crate::ground::settings::parse(
            "[services.test-api]\n[services.iris-model]\nport = 6000\n",
        )?;
        assert_eq!(port(&moved.services.0, None, |_| true)?, 6001);
        // Something listens on 6001 here: the next one.
        assert_eq!(port(&moved.services.0, None, |p| p != 6001)?, 6002);
        assert_eq!(port(&moved.services.0, Some(5002), |_| true)?, 5002);
        Ok(())
    }
}
