//! Reading from a registry through the OCI distribution API: manifests as
//! raw bytes with their digest, and blobs, with the same credentials a push
//! uses (never printed).

use anyhow::{Context, Result};
use oci_client::{Client, Reference, RegistryOperation};

use super::push::{OCI_MANIFEST, Session};
use crate::image::oci;

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
