//! in-toto Statement v1 with an SLSA Provenance v1 predicate per image
//! (https://in-toto.io/Statement/v1, https://slsa.dev/spec/v1.0/provenance):
//! the source repository and commit, the toolchain, the builder, the build
//! command and profile, and the lockfile as a resolved dependency.

use serde_json::{Value, json};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";
/// Ours: what the build parameters below mean.
pub const BUILD_TYPE: &str = "https://github.com/kube-mlops/kube-mlops/blob/main/docs/releases.md";

/// What went into one image's build.
pub struct Build<'a> {
    /// `host/account/name`.
    pub repository: &'a str,
    /// `sha256:<hex>`.
    pub digest: &'a str,
    pub source: &'a str,
    pub commit: &'a str,
    pub version: &'a str,
    pub profile: &'a str,
    /// The command line that ran (`--sign-key`'s value masked).
    pub command: &'a str,
    /// The cargo invocation that built the binary (profile, target,
    /// features, packages).
    pub build_command: &'a str,
    /// `rustc -vV`.
    pub rustc: &'a str,
    /// `sha256:<hex>` of Cargo.lock.
    pub lockfile: &'a str,
    /// "passed", or why it was not checked.
    pub reproducibility: &'a str,
    /// RFC 3339.
    pub started: &'a str,
    pub finished: &'a str,
}

fn subject(repository: &str, digest: &str) -> Value {
    json!([{
        "name": repository,
        "digest": {"sha256": digest.trim_start_matches("sha256:")}
    }])
}

/// The provenance statement for `b`.
pub fn statement(b: &Build) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject(b.repository, b.digest),
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {"uri": format!("git+{}", b.source), "digest": {"gitCommit": b.commit}},
                    "version": b.version,
                    "profile": b.profile,
                    "command": b.command,
                    "buildCommand": b.build_command
                },
                "internalParameters": {
                    "rustc": b.rustc,
                    "reproducibilityCheck": b.reproducibility
                },
                "resolvedDependencies": [
                    {"uri": format!("git+{}", b.source), "digest": {"gitCommit": b.commit}},
                    {"name": "Cargo.lock", "digest": {"sha256": b.lockfile.trim_start_matches("sha256:")}}
                ]
            },
            "runDetails": {
                "builder": {"id": format!("https://github.com/kube-mlops/kube-mlops/xtask@v{}", env!("CARGO_PKG_VERSION"))},
                "metadata": {"startedOn": b.started, "finishedOn": b.finished}
            }
        }
    })
}

/// The SBOM statement: `bom` (CycloneDX JSON) as the predicate.
pub fn sbom_statement(repository: &str, digest: &str, bom: Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject(repository, digest),
        "predicateType": CYCLONEDX,
        "predicate": bom
    })
}
