//! `cargo xtask image verify`: an image's cosign signature and its SBOM and
//! provenance attestations checked with a public key, then the image
//! rebuilt from the commit its provenance names and compared byte for byte
//! (by digest): a reproducibility proof, not only a signature.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

use super::{cosign, provenance, signing};
use crate::publish::pull::Download;

/// What was checked.
pub struct Verified {
    pub repository: String,
    pub digest: String,
    /// The commit the provenance names.
    pub commit: String,
    pub profile: String,
    /// The predicate types of the attestations that verified.
    pub attestations: Vec<String>,
}

/// Splits `repo[:tag][@sha256:…]` into the repository and what to fetch.
pub fn split_reference(reference: &str) -> (String, String) {
    let r = crate::ground::names::split_image_reference(reference);
    let wanted = r.digest.or(r.tag).unwrap_or_else(|| "latest".to_string());
    (r.repository, wanted)
}

fn verify_der(key: &VerifyingKey, message: &[u8], der: &[u8], what: &str) -> Result<()> {
    let sig =
        Signature::from_der(der).with_context(|| format!("{what}: not a DER ECDSA signature"))?;
    key.verify(message, &sig)
        .map_err(|_| anyhow::anyhow!("{what}: the signature does not verify with this key"))
}

/// Checks `reference`'s signature and attestations with the PEM public key
/// in `key_file`.
///
/// # Errors
/// A missing or malformed artifact, a signature that does not verify, an
/// artifact about another digest, a missing SBOM or provenance.
pub fn signatures(reference: &str, key_file: &Path, insecure: bool) -> Result<Verified> {
    let pem = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read the public key {}", key_file.display()))?;
    let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
        anyhow::anyhow!(
            "{} is not a PEM ECDSA P-256 public key (\"-----BEGIN PUBLIC KEY-----\")",
            key_file.display()
        )
    })?;
    let (repository, wanted) = split_reference(reference);
    let registry = Download::open(&repository, insecure)?;
    let (_, digest) = registry.manifest(&wanted)?;

    check_signature(&registry, &key, &digest)?;
    let (seen, statement_of_build) = attestations(&registry, &key, &digest)?;
    if !seen.iter().any(|k| k == provenance::CYCLONEDX) {
        bail!("no signed SBOM attestation for {digest}");
    }
    let statement = statement_of_build.context("no signed provenance attestation")?;
    let params = &statement["predicate"]["buildDefinition"]["externalParameters"];
    Ok(Verified {
        repository,
        digest,
        commit: params["source"]["digest"]["gitCommit"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        profile: params["profile"].as_str().unwrap_or("dist").to_string(),
        attestations: seen,
    })
}

/// The image's cosign signature (`sha256-<digest>.sig`) verifies with
/// `key` and names `digest`.
fn check_signature(registry: &Download, key: &VerifyingKey, digest: &str) -> Result<()> {
    let (sig_manifest, _) = registry
        .manifest(&cosign::tag_for(digest, "sig"))
        .context("no signature: was the image released with `cargo xtask release`?")?;
    let m: Value = serde_json::from_slice(&sig_manifest)?;
    let layer = &m["layers"][0];
    let payload = registry.blob(layer["digest"].as_str().context("the .sig has no layer")?)?;
    let sig = BASE64
        .decode(
            layer["annotations"][cosign::SIGNATURE_ANNOTATION]
                .as_str()
                .context("the .sig layer carries no signature annotation")?,
        )
        .context("the signature annotation is not base64")?;
    verify_der(key, &payload, &sig, "image signature")?;
    let named: Value = serde_json::from_slice(&payload)?;
    if named["critical"]["image"]["docker-manifest-digest"] != digest {
        bail!("the signature is for another image than {digest}");
    }
    Ok(())
}

/// The attestations (`sha256-<digest>.att`): each verifies with `key` and
/// is about `digest`; their predicate types, and the provenance statement.
fn attestations(
    registry: &Download,
    key: &VerifyingKey,
    digest: &str,
) -> Result<(Vec<String>, Option<Value>)> {
    let (att_manifest, _) = registry
        .manifest(&cosign::tag_for(digest, "att"))
        .context("no attestations")?;
    let m: Value = serde_json::from_slice(&att_manifest)?;
    let mut seen = Vec::new();
    let mut statement_of_build = None;
    for layer in m["layers"].as_array().context("the .att has no layers")? {
        let envelope: Value = serde_json::from_slice(
            &registry.blob(layer["digest"].as_str().context("a layer without digest")?)?,
        )?;
        let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
        let statement = BASE64
            .decode(
                envelope["payload"]
                    .as_str()
                    .context("an envelope without payload")?,
            )
            .context("the envelope's payload is not base64")?;
        let sig = BASE64
            .decode(
                envelope["signatures"][0]["sig"]
                    .as_str()
                    .context("an envelope without signature")?,
            )
            .context("the envelope's signature is not base64")?;
        verify_der(
            key,
            &signing::pae(payload_type, &statement),
            &sig,
            "attestation",
        )?;
        let statement: Value = serde_json::from_slice(&statement)?;
        let subject = format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap_or_default()
        );
        if subject != digest {
            bail!("an attestation is about {subject}, not {digest}");
        }
        let kind = statement["predicateType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if kind == provenance::SLSA_PROVENANCE {
            statement_of_build = Some(statement);
        }
        seen.push(kind);
    }
    Ok((seen, statement_of_build))
}

/// Rebuilds `v`'s image from the commit its provenance names, in a git
/// worktree of this repository, with this xtask (`image build` in the
/// profile the provenance names, in `<target>/reproducibility`); returns
/// the rebuilt digest.
///
/// # Errors
/// The commit not in this repository, the build failing, no image of that
/// name in the commit's settings.
pub fn rebuild(cx: &crate::ground::context::Ctx, v: &Verified) -> Result<Option<String>> {
    use xshell::cmd;
    let commit = &v.commit;
    if commit.is_empty() {
        bail!("the provenance names no commit");
    }
    let object = format!("{commit}^{{commit}}");
    let exists = cx.runner.probe(
        cmd!(cx.sh, "git cat-file -e {object}"),
        "finding the released commit",
        std::time::Duration::from_secs(20),
    )?;
    if !exists.success {
        bail!(
            "commit {commit} is not in this repository: `git fetch` it (or the tag), then verify again"
        );
    }
    let image = v
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(&v.repository)
        .to_string();
    let target = crate::build::target_dir(cx);
    let dir = target.join(format!("verify-{}", &commit[..commit.len().min(12)]));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = cx.runner.probe(
        cmd!(cx.sh, "git worktree prune"),
        "pruning old worktrees",
        std::time::Duration::from_secs(20),
    );
    cx.runner.run(
        cmd!(cx.sh, "git worktree add --detach {dir} {commit}"),
        "checking out the released commit",
    )?;
    let result = (|| {
        let exe = std::env::current_exe().context("cannot find this xtask's binary")?;
        let config = dir.join("xtask.toml");
        let output = dir.join("rebuilt.json");
        let profile = &v.profile;
        let second = target.join("reproducibility");
        cx.runner.run(
            cmd!(
                cx.sh,
                "{exe} --config {config} --progress=never image build --profile {profile} --file-output {output}"
            )
            .env("CARGO_TARGET_DIR", &second)
            .env_remove("XTASK_CONFIG"),
            "rebuilding the image from the released commit",
        )?;
        cx.runner.unless_dry_run(|| {
            let pins = super::hydrate::pins_from_file(&output)?;
            pins.into_iter()
                .find(|p| p.name == image)
                .map(|p| p.digest)
                .with_context(|| format!("commit {commit} builds no image named {image}"))
        })
    })();
    let _ = cx.runner.run(
        cmd!(cx.sh, "git worktree remove --force {dir}"),
        "removing the worktree",
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_what_to_fetch() {
        let s = |r: &str| split_reference(r);
        assert_eq!(s("h:5000/a/x:v1"), ("h:5000/a/x".into(), "v1".into()));
        assert_eq!(
            s("h:5000/a/x@sha256:ab"),
            ("h:5000/a/x".into(), "sha256:ab".into())
        );
        assert_eq!(
            s("h:5000/a/x:v1@sha256:ab"),
            ("h:5000/a/x".into(), "sha256:ab".into())
        );
        assert_eq!(s("h:5000/a/x"), ("h:5000/a/x".into(), "latest".into()));
    }
}
