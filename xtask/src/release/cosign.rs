//! Signatures and attestations stored the way cosign stores them, so that
//! `cosign verify --key` and `cosign verify-attestation --key` accept them:
//! beside image `repo@sha256:<hex>`, the tag `sha256-<hex>.sig` holds an OCI
//! manifest whose layer is the simple signing payload (annotation
//! `dev.cosignproject.cosign/signature`: the base64 DER signature), and
//! `sha256-<hex>.att` one whose layers are DSSE envelopes, one per
//! attestation (annotation `predicateType`). Source: cosign's
//! `specs/SIGNATURE_SPEC.md` and `specs/ATTESTATION_SPEC.md`.

use anyhow::Result;
use serde_json::json;

use super::signing::{self, Key};
use crate::image::oci;
use crate::publish::push::{OCI_MANIFEST, Upload};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// `sha256:<hex>` → `sha256-<hex>.<suffix>`.
pub fn tag_for(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

/// One layer of a signature or attestation manifest.
pub struct Layer {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub annotations: serde_json::Value,
}

/// The config and manifest of an artifact holding `layers` (cosign's shape:
/// an image config whose rootfs lists the layers).
pub fn artifact(layers: &[Layer]) -> Result<(Vec<u8>, Vec<u8>)> {
    let diff_ids: Vec<String> = layers.iter().map(|l| oci::sha256(&l.bytes)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": oci::sha256(&config)
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type,
            "size": l.bytes.len(),
            "digest": oci::sha256(&l.bytes),
            "annotations": l.annotations
        })).collect::<Vec<_>>()
    }))?;
    Ok((config, manifest))
}

/// The signature layer for image `repository@digest`.
pub fn signature_layer(key: &Key, repository: &str, digest: &str) -> Layer {
    let payload = signing::simple_signing_payload(repository, digest);
    let sig = signing::base64(&key.sign(&payload));
    Layer {
        media_type: SIMPLE_SIGNING,
        bytes: payload,
        annotations: json!({ SIGNATURE_ANNOTATION: sig }),
    }
}

/// An attestation layer: `statement` (in-toto JSON) signed into a DSSE
/// envelope.
pub fn attestation_layer(key: &Key, statement: &[u8], predicate_type: &str) -> Result<Layer> {
    Ok(Layer {
        media_type: DSSE,
        bytes: serde_json::to_vec(&signing::envelope(key, statement))?,
        annotations: json!({ "predicateType": predicate_type }),
    })
}

/// Uploads `layers` as the artifact tagged `tag`; returns its digest.
pub fn push(upload: &Upload, tag: &str, layers: &[Layer]) -> Result<String> {
    let (config, manifest) = artifact(layers)?;
    for l in layers {
        upload.blob(&l.bytes)?;
    }
    upload.blob(&config)?;
    upload.manifest(tag, &manifest, OCI_MANIFEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_manifests_have_cosigns_shape() -> Result<()> {
        assert_eq!(tag_for("sha256:ab12", "sig"), "sha256-ab12.sig");
        let key = Key::generate()?;
        let layer = signature_layer(&key, "r/x", "sha256:ab12");
        let (config, manifest) = artifact(&[layer])?;
        let m: serde_json::Value = serde_json::from_slice(&manifest)?;
        assert_eq!(m["layers"][0]["mediaType"], SIMPLE_SIGNING);
        assert!(m["layers"][0]["annotations"][SIGNATURE_ANNOTATION].is_string());
        assert_eq!(m["config"]["digest"], oci::sha256(&config));
        let payload: serde_json::Value =
            serde_json::from_slice(&signing::simple_signing_payload("r/x", "sha256:ab12"))?;
        assert_eq!(
            payload["critical"]["image"]["docker-manifest-digest"],
            "sha256:ab12"
        );
        Ok(())
    }
}
