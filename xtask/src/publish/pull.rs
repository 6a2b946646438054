//! Reading from a registry through the OCI distribution API: manifests as
//! raw bytes with their digest, and blobs, with the same credentials a push
//! uses (never printed).

use anyhow::{Context, Result};
use oci_client::{Client, Reference, RegistryOperation};

use super::push::{OCI_MANIFEST, Session};
use crate::image::oci;

/// What a read of a pinned image accepts: OCI's index and manifest,
/// Docker's manifest list and schema 2 manifest.
const MANIFEST_TYPES: &[&str] = &[
    oci::OCI_INDEX,
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The platforms of `manifest` (an index's entries, or a single image's
/// config read with `config`), as `os/architecture[/variant]`.
///
/// # Errors
/// Not JSON, neither an index nor an image manifest, a config without
/// `os` and `architecture`.
pub fn platforms_of(
    manifest: &[u8],
    config: impl FnOnce(&str) -> Result<Vec<u8>>,
) -> Result<Vec<String>> {
    let doc: serde_json::Value =
        serde_json::from_slice(manifest).context("the manifest is not JSON")?;
    let named = |p: &serde_json::Value| -> Option<String> {
        let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
        Some(match p["variant"].as_str() {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    };
    if let Some(entries) = doc["manifests"].as_array() {
        return Ok(entries
            .iter()
            .filter_map(|m| named(&m["platform"]))
            .collect());
    }
    let digest = doc["config"]["digest"]
        .as_str()
        .context("the manifest is neither an image index nor an image manifest")?;
    let config: serde_json::Value =
        serde_json::from_slice(&config(digest)?).context("the image config is not JSON")?;
    Ok(vec![named(&config).context(
        "the image config names no os and architecture",
    )?])
}

/// An authenticated read session with one repository.
pub struct Download {
    rt: tokio::runtime::Runtime,
    client: Client,
    repository: String,
    registry: String,
    auth: oci_client::secrets::RegistryAuth,
}

impl Download {
    /// Authenticates for reading `repository` (`host/account/name`).
    ///
    /// # Errors
    /// A malformed repository, a registry that does not answer or refuses.
    pub fn open(repository: &str, insecure: bool) -> Result<Self> {
        let Session {
            rt,
            client,
            registry,
            auth,
            ..
        } = Session::open(repository, insecure, RegistryOperation::Pull)?;
        Ok(Self {
            rt,
            client,
            repository: repository.to_string(),
            registry,
            auth,
        })
    }

    /// As `open`, for reads by digest only: those are checked against the
    /// digest, so a registry that serves plain HTTP (one on loopback) is
    /// read over it without `--insecure`.
    ///
    /// # Errors
    /// As `open`.
    pub fn open_for_digests(repository: &str) -> Result<Self> {
        match Self::open(repository, false) {
            Err(e) if e.downcast_ref::<super::push::PlainHttp>().is_some() => {
                Self::open(repository, true)
            }
            other => other,
        }
    }

    /// The manifest under `tag` (or `sha256:…`), as bytes, and its digest.
    ///
    /// # Errors
    /// No such manifest, or bytes that do not hash to a requested digest.
    pub fn manifest(&self, tag_or_digest: &str) -> Result<(Vec<u8>, String)> {
        let sep = if tag_or_digest.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let reference: Reference = format!("{}{sep}{tag_or_digest}", self.repository)
            .parse()
            .with_context(|| {
                format!(
                    "{}{sep}{tag_or_digest} is not a valid reference",
                    self.repository
                )
            })?;
        let (bytes, _) = self
            .rt
            .block_on(
                self.client
                    .pull_manifest_raw(&reference, &self.auth, &[OCI_MANIFEST]),
            )
            .with_context(|| {
                format!(
                    "cannot read {}{sep}{tag_or_digest} from {}",
                    self.repository, self.registry
                )
            })?;
        let digest = oci::sha256(&bytes);
        if tag_or_digest.starts_with("sha256:") && digest != tag_or_digest {
            anyhow::bail!(
                "{} served a manifest whose digest is {digest}, not {tag_or_digest}",
                self.registry
            );
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The platforms (`os/architecture[/variant]`, as OCI's image index
    /// names them) of the image `digest` pins: each entry's of an index
    /// (OCI's, or Docker's manifest list), the config's `os` and
    /// `architecture` of a single image.
    ///
    /// # Errors
    /// No such manifest or config, bytes that do not hash to their digest,
    /// a manifest that is neither shape.
    pub fn platforms(&self, digest: &str) -> Result<Vec<String>> {
        let reference: Reference = format!("{}@{digest}", self.repository)
            .parse()
            .with_context(|| format!("{}@{digest} is not a valid reference", self.repository))?;
        let (bytes, _) = self
            .rt
            .block_on(
                self.client
                    .pull_manifest_raw(&reference, &self.auth, MANIFEST_TYPES),
            )
            .with_context(|| {
                format!(
                    "cannot read {}@{digest} from {}",
                    self.repository, self.registry
                )
            })?;
        if oci::sha256(&bytes) != digest {
            anyhow::bail!(
                "{} served a manifest for {digest} with other bytes",
                self.registry
            );
        }
        platforms_of(&bytes, |config| self.blob(config))
    }

    /// The blob `digest`, checked against it.
    ///
    /// # Errors
    /// No such blob, or bytes that do not hash to `digest`.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let reference: Reference = format!("{}@{digest}", self.repository).parse()?;
        let mut out = Vec::new();
        self.rt
            .block_on(self.client.pull_blob(&reference, digest, &mut out))
            .with_context(|| format!("cannot read blob {digest} from {}", self.registry))?;
        if oci::sha256(&out) != digest {
            anyhow::bail!("{} served blob {digest} with other bytes", self.registry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::platforms_of;

    #[test]
    fn platforms_come_from_an_index_or_the_image_config() -> anyhow::Result<()> {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[
              {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
              {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"digest":"sha256:c"}]}"#;
        let unread = |_: &str| -> anyhow::Result<Vec<u8>> { anyhow::bail!("not read") };
        assert_eq!(
            platforms_of(index, unread)?,
            ["linux/amd64", "linux/arm64/v8"]
        );

        let manifest = br#"{"schemaVersion":2,"config":{"digest":"sha256:cfg"},"layers":[]}"#;
        let config = |digest: &str| -> anyhow::Result<Vec<u8>> {
            assert_eq!(digest, "sha256:cfg");
            Ok(br#"{"os":"linux","architecture":"arm64","variant":"v8"}"#.to_vec())
        };
        assert_eq!(platforms_of(manifest, config)?, ["linux/arm64/v8"]);

        let err = platforms_of(br#"{"schemaVersion":2}"#, unread)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the manifest is neither an image index nor an image manifest")
        );
        let no_arch = |_: &str| Ok(br#"{"os":"linux"}"#.to_vec());
        assert!(platforms_of(manifest, no_arch).is_err());
        Ok(())
    }
}
