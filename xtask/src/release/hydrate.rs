//! Hydrated manifests: every kustomize overlay under `deploy/overlays/`
//! rendered with the released images pinned by digest (kustomize's own
//! `images` transformer, as `kustomize edit set image` would write it), one
//! file per target: `<out>/manifests/<target>.yaml`.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::cmd;

use super::Released;
use crate::ground::context::Ctx;

/// The kustomization that pins `released` on top of `overlay`.
pub fn kustomization(overlay: &Path, released: &[Released]) -> String {
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\nimages:\n",
        overlay.display()
    );
    for r in released {
        text.push_str(&format!(
            "- name: {}\n  newName: {}\n  digest: {}\n",
            r.image_name, r.repository, r.digest
        ));
    }
    text
}

/// The path from directory `from` to `to` (both absolute), with `..`.
fn relative(from: &Path, to: &Path) -> std::path::PathBuf {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// Renders every overlay with `released` pinned into `<out>/manifests/`.
///
/// # Errors
/// An unreadable overlay directory, `kubectl kustomize` failing.
pub fn write_all(cx: &Ctx, out: &Path, released: &[Released]) -> Result<()> {
    let overlays = cx.root.join("deploy/overlays");
    let manifests = out.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    // The pinning kustomizations, kept beside the output for inspection.
    let scratch = out.join("kustomize");
    let mut names: Vec<_> = std::fs::read_dir(&overlays)
        .with_context(|| format!("cannot read {}", overlays.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let dir = scratch.join(&name);
        std::fs::create_dir_all(&dir)?;
        // kustomize takes only relative roots.
        let overlay = relative(&dir.canonicalize()?, &overlays.join(&name).canonicalize()?);
        std::fs::write(
            dir.join("kustomization.yaml"),
            kustomization(&overlay, released),
        )?;
        let rendered = cx.runner.run(
            cmd!(
                cx.sh,
                "kubectl kustomize --load-restrictor=LoadRestrictionsNone {dir}"
            ),
            "rendering the hydrated manifests",
        )?;
        let file = manifests.join(format!("{name}.yaml"));
        std::fs::write(&file, &rendered.stdout)
            .with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("  ✓ {}", file.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_root() {
        assert_eq!(
            relative(
                Path::new("/t/release/v1/kustomize/gke"),
                Path::new("/w/deploy/overlays/gke")
            ),
            Path::new("../../../../../w/deploy/overlays/gke")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/c")),
            Path::new("../c")
        );
    }
}
