//! ECDSA P-256 signing in the formats cosign verifies (RustCrypto's `p256`;
//! no crypto of our own): a key pair as PEM (PKCS#8 private key, SPKI
//! public key, the forms `cosign verify --key` reads), the "simple signing"
//! payload cosign signs for an image, and DSSE envelopes for attestations.
//!
//! Formats: cosign's `SIGNATURE_SPEC.md` (simple signing payload, the
//! `dev.cosignproject.cosign/signature` annotation) and DSSE v1's protocol
//! (`PAE`), https://github.com/secure-systems-lab/dsse/blob/master/protocol.md.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Serialize;

/// The environment variable that may hold the private key's PEM text.
pub const KEY_ENV: &str = "KMLOPS_SIGN_KEY";

/// A loaded private key. Its Debug output names the curve only, so that a
/// key never reaches a log.
pub struct Key(SigningKey);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(ECDSA P-256, redacted)")
    }
}

impl Key {
    /// Loads a PEM PKCS#8 ECDSA P-256 private key from `path`, or from
    /// `KMLOPS_SIGN_KEY` (the PEM text) when `path` is None.
    ///
    /// # Errors
    /// No key given, an unreadable file, or text that is not a PKCS#8 P-256
    /// key (the error says which form is expected, never the key's text).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (pem, from) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the signing key {}", p.display()))?,
                p.display().to_string(),
            ),
            None => match std::env::var(KEY_ENV) {
                Ok(v) if !v.trim().is_empty() => (v, KEY_ENV.to_string()),
                _ => bail!(
                    "no signing key: pass --sign-key FILE or set {KEY_ENV} to the key's PEM text \
                     (`cargo xtask release keygen` makes a pair)"
                ),
            },
        };
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(Key)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the signing key in {from} is not a PEM PKCS#8 ECDSA P-256 private key \
                 (\"-----BEGIN PRIVATE KEY-----\"); `cargo xtask release keygen` makes one"
                )
            })
    }

    /// A new random key: 32 bytes from the operating system's generator
    /// (rand's `OsRng`), drawn again in the rare case (about 2^-32) that
    /// they are not a scalar below the curve's order.
    ///
    /// # Errors
    /// The operating system's generator failing.
    pub fn generate() -> Result<Self> {
        use rand::TryRngCore as _;
        loop {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .context("the operating system's random number generator failed")?;
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Ok(Key(key));
            }
        }
    }

    /// The private key as PEM PKCS#8.
    pub fn private_pem(&self) -> Result<String> {
        Ok(self
            .0
            .to_pkcs8_pem(LineEnding::LF)
            .context("cannot encode the private key")?
            .to_string())
    }

    /// The public key as PEM SPKI (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> Result<String> {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .context("cannot encode the public key")
    }

    /// An ASN.1 DER ECDSA signature over SHA-256(`message`).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.0.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

/// cosign's simple signing payload for the image `repository@digest`.
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// DSSE's pre-authentication encoding: what is signed for `payload` of
/// `payload_type`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (JSON), as cosign stores attestations.
#[derive(Serialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the payload.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// Base64 of the DER signature over `pae(payload_type, payload)`.
    pub sig: String,
}

/// The in-toto payload type of attestations.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Signs `statement` (an in-toto Statement's JSON) into a DSSE envelope.
pub fn envelope(key: &Key, statement: &[u8]) -> Envelope {
    Envelope {
        payload_type: IN_TOTO.to_string(),
        payload: BASE64.encode(statement),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: BASE64.encode(key.sign(&pae(IN_TOTO, statement))),
        }],
    }
}

/// Base64, as the signature annotation carries it.
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn a_generated_pair_round_trips_and_verifies() -> Result<()> {
        let key = Key::generate()?;
        let pem = key.private_pem()?;
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("k.pem"), &pem)?;
        let again = Key::load(Some(&dir.path().join("k.pem")))?;
        let public = VerifyingKey::from_public_key_pem(&key.public_pem()?)?;
        let sig = Signature::from_der(&again.sign(b"payload"))?;
        assert!(public.verify(b"payload", &sig).is_ok());
        assert!(public.verify(b"payloaD", &sig).is_err());
        assert!(!format!("{again:?}").contains("BEGIN"));
        Ok(())
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_bad_key_is_named_without_its_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "not a key SECRET").expect("write");
        let err = Key::load(Some(&path)).expect_err("must fail").to_string();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}
