//! Hydrated manifests: every kustomize overlay under `deploy/overlays/`
//! rendered with the released images pinned by digest (kustomize's own
//! `images` transformer, as `kustomize edit set image` would write it), one
//! file per target: `<out>/manifests/<target>.yaml`, and the Seldon
//! resources (`deploy/seldon`) as `<out>/manifests/seldon.yaml`. The
//! transformer learns where a SeldonDeployment keeps its images from a
//! kustomize transformer configuration (`configurations:`).

use std::path::Path;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::ground::context::Ctx;

/// An image pinned by digest: containers using image `name` run
/// `repository@digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub repository: String,
    pub digest: String,
}

impl Pin {
    /// From a build-artifacts entry: `imageName` and `tag`
    /// (`repository[:tag]@sha256:…`).
    ///
    /// # Errors
    /// A tag without a digest.
    pub fn from_artifact(name: &str, tag: &str) -> anyhow::Result<Self> {
        let parts = crate::ground::names::split_image_reference(tag);
        let digest = parts.digest.as_deref().with_context(|| {
            format!("{name}: {tag:?} is not pinned by digest (repository:tag@sha256:…)")
        })?;
        let repository = parts.repository.as_str();
        // Both go into YAML and command lines: only what a reference can hold.
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            anyhow::bail!(
                "{name}: {digest:?} is not a digest (sha256: and 64 lower-case hex digits)"
            );
        }
        if repository.starts_with('[') {
            // The distribution reference grammar (and oci-spec's, which
            // pushes and pulls here) has no IPv6 literal.
            anyhow::bail!(
                "{name}: {repository:?} names its registry by an IPv6 address, which image \
                 references here cannot hold: name the registry by a host name (localhost, or \
                 one /etc/hosts maps to the address)"
            );
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
        if repository.is_empty() || !repository.chars().all(allowed) {
            anyhow::bail!(
                "{name}: {repository:?} is not an image repository (host[:port]/path, lower case)"
            );
        }
        Ok(Self {
            name: name.to_string(),
            repository: repository.to_string(),
            digest: digest.to_string(),
        })
    }
}

/// Reads a `--file-output` document (`{"builds":[{"imageName","tag"}]}`).
///
/// # Errors
/// An unreadable file, not that shape, or an entry not pinned by digest.
pub fn pins_from_file(file: &Path) -> Result<Vec<Pin>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let builds = doc["builds"].as_array().with_context(|| {
        format!(
            "{} has no \"builds\" list (the shape `--file-output` writes)",
            file.display()
        )
    })?;
    builds
        .iter()
        .map(|b| {
            let (Some(name), Some(tag)) = (b["imageName"].as_str(), b["tag"].as_str()) else {
                anyhow::bail!("{}: every build needs imageName and tag", file.display());
            };
            Pin::from_artifact(name, tag)
        })
        .collect()
}

/// A kustomize transformer configuration: the `images` transformer also
/// sets the containers of Seldon Core v1's SeldonDeployment
/// (`spec.predictors[].componentSpecs[].spec.containers[].image`).
pub const SELDON_IMAGES: &str = "images:\n- path: spec/predictors/componentSpecs/spec/containers/image\n  kind: SeldonDeployment\n";

/// The file `kustomization` names for `SELDON_IMAGES`.
const SELDON_IMAGES_FILE: &str = "seldon-images.yaml";

/// The kustomization that pins `released` on top of `overlay` (with
/// `SELDON_IMAGES` beside it as `seldon-images.yaml`).
pub fn kustomization(overlay: &Path, released: &[Pin]) -> String {
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\nconfigurations:\n- {SELDON_IMAGES_FILE}\nimages:\n",
        overlay.display()
    );
    for r in released {
        text.push_str(&format!(
            "- name: {}\n  newName: {}\n  digest: {}\n",
            r.name, r.repository, r.digest
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

/// `overlay` rendered with `pins`; `scratch` holds the pinning
/// kustomization.
///
/// # Errors
/// `kubectl kustomize` failing.
pub fn render(cx: &Ctx, overlay: &Path, pins: &[Pin], scratch: &Path) -> Result<String> {
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // kustomize takes only relative roots.
    let from = scratch.canonicalize()?;
    let to = overlay
        .canonicalize()
        .with_context(|| format!("no overlay {}", overlay.display()))?;
    std::fs::write(
        scratch.join("kustomization.yaml"),
        kustomization(&relative(&from, &to), pins),
    )?;
    std::fs::write(scratch.join(SELDON_IMAGES_FILE), SELDON_IMAGES)?;
    let rendered = cx.runner.run(
        cmd!(
            cx.sh,
            "kubectl kustomize --load-restrictor=LoadRestrictionsNone {scratch}"
        ),
        "rendering the manifests with the images pinned",
    )?;
    Ok(pull_pinned(&rendered.stdout))
}

/// `rendered` with `imagePullPolicy: Never` turned into `IfNotPresent` for
/// the containers whose image is pinned by digest, as the engine does on
/// deploy: the minikube and kind overlays say `Never` for images loaded
/// into the node by tag, but a pinned image comes from its registry, and
/// with `Never` the kubelet answers `ErrImageNeverPull`. kustomize writes
/// keys sorted, so a container's `imagePullPolicy` follows its `image`
/// at the same column.
pub fn pull_pinned(rendered: &str) -> String {
    let column = |line: &str| line.len() - line.trim_start_matches([' ', '-']).len();
    let mut out = String::with_capacity(rendered.len());
    let mut pinned_at: Option<usize> = None;
    for line in rendered.split_inclusive('\n') {
        let key = line.trim_start_matches([' ', '-']);
        if pinned_at == Some(column(line)) && key.trim_end() == "imagePullPolicy: Never" {
            out.push_str(&line.replace("Never", "IfNotPresent"));
        } else {
            out.push_str(line);
        }
        pinned_at = (key.starts_with("image: ") && key.contains("@sha256:")).then(|| column(line));
    }
    out
}

/// Renders every overlay under `<manifests_dir>/overlays` with `pins` into
/// `<out>/manifests/<overlay>.yaml`, and `<manifests_dir>/seldon` (when
/// there) into `<out>/manifests/seldon.yaml`.
///
/// # Errors
/// An unreadable overlay directory, `kubectl kustomize` failing.
pub fn write_all(cx: &Ctx, manifests_dir: &Path, out: &Path, pins: &[Pin]) -> Result<()> {
    let overlays = manifests_dir.join("overlays");
    let manifests = out.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let mut names: Vec<_> = std::fs::read_dir(&overlays)
        .with_context(|| format!("cannot read {}", overlays.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut sources: Vec<(String, std::path::PathBuf)> = names
        .into_iter()
        .map(|n| (n.clone(), overlays.join(n)))
        .collect();
    let seldon = manifests_dir.join("seldon");
    if seldon.join("kustomization.yaml").exists() {
        sources.push(("seldon".to_string(), seldon));
    }
    // The pinning kustomizations name this machine's paths: not part of
    // the release.
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    for (name, source) in sources {
        let text = render(cx, &source, pins, &scratch.path().join(&name))?;
        let file = manifests.join(format!("{name}.yaml"));
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("  ✓ {}", file.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pinned_images_are_pulled_where_the_overlay_said_never() {
        let rendered = "      containers:\n      - env: []\n        image: r/a@sha256:00\n        imagePullPolicy: Never\n        name: a\n      - image: b:1\n        imagePullPolicy: Never\n      - image: r/c@sha256:11\n        imagePullPolicy: Always\n";
        let out = super::pull_pinned(rendered);
        assert_eq!(
            out,
            rendered.replacen("imagePullPolicy: Never", "imagePullPolicy: IfNotPresent", 1)
        );
    }

    use super::*;

    #[test]
    fn artifacts_become_pins() -> Result<()> {
        let ab = format!("sha256:{}", "ab".repeat(32));
        let pin = Pin::from_artifact(
            "test-api",
            &format!("127.0.0.1:5555/me/test-api:v1.0.0@{ab}"),
        )?;
        assert_eq!(pin.repository, "127.0.0.1:5555/me/test-api");
        assert_eq!(pin.digest, ab);
        let d = "a".repeat(64);
        let bare = Pin::from_artifact("x", &format!("127.0.0.1:5555/me/x@sha256:{d}"))?;
        assert_eq!(bare.repository, "127.0.0.1:5555/me/x");
        assert!(Pin::from_artifact("x", "r/x:1").is_err());
        assert!(Pin::from_artifact("x", "r/x@sha256:1234").is_err());
        assert!(Pin::from_artifact("x", &format!("r/x@sha256:{}", "A".repeat(64))).is_err());
        let injected = format!("r/x@sha256:{d}\n- name: y\n  newName: evil");
        assert!(Pin::from_artifact("x", &injected).is_err());
        assert!(Pin::from_artifact("x", &format!("r/x y@sha256:{d}")).is_err());
        Ok(())
    }

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
