//! A CycloneDX 1.5 JSON SBOM per image, made with the `cyclonedx-bom`
//! library from what went into the image: every crate compiled into its
//! binary (`cargo tree` over normal edges without proc-macros, for the
//! target and the feature set the release builds; versions, licences and
//! the lockfile's SHA-256 checksums), and every file of the image (the
//! binary, passwd/group, the model) with its SHA-256.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use cyclonedx_bom::external_models::normalized_string::NormalizedString;
use cyclonedx_bom::external_models::uri::Purl;
use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{LicenseChoice, Licenses};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::tool::{Tool, Tools};
use xshell::cmd;

use crate::build::{self, cargo};
use crate::ground::context::Ctx;
use crate::ground::services::ServiceSpec;
use crate::image::oci;

/// A crate as `cargo tree` names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub license: Option<String>,
    /// A workspace crate (a path in `cargo tree`'s output).
    pub local: bool,
}

/// The crates compiled into each service package's binaries, as the
/// release builds them (`all`, every service of the settings, in one
/// resolution, as `build::selection`), keyed by package.
///
/// # Errors
/// `cargo tree` failing, or printing what cannot be parsed.
pub fn crates(cx: &Ctx, all: &[ServiceSpec]) -> Result<BTreeMap<String, BTreeSet<Crate>>> {
    let cargo = cargo();
    let triple = build::static_target().unwrap_or("all");
    let selected = build::selection(cx, all)?.package_args();
    let format = "{p}\t{l}";
    // --no-dedupe: with several roots, cargo tree prints a crate's subtree
    // only under the first root that reaches it; each SBOM needs its own.
    let out = cx.runner.run(
        cmd!(
            cx.sh,
            "{cargo} tree --no-dedupe --edges normal,no-proc-macro --target {triple} --prefix depth --format {format} {selected...}"
        ),
        "listing the crates in each binary",
    )?;
    parse_tree(&out.stdout)
}

/// `cargo tree --prefix depth --format "{p}\t{l}"` output → crates per root.
pub fn parse_tree(text: &str) -> Result<BTreeMap<String, BTreeSet<Crate>>> {
    let mut all: BTreeMap<String, BTreeSet<Crate>> = BTreeMap::new();
    let mut root: Option<String> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // A subtree printed before ends in " (*)".
        let line = line.trim_end().trim_end_matches(" (*)");
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let depth: usize = line[..digits]
            .parse()
            .with_context(|| format!("unexpected `cargo tree` line: {line}"))?;
        let rest = &line[digits..];
        let (package, license) = rest.split_once('\t').unwrap_or((rest, ""));
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            bail!("unexpected `cargo tree` line: {line}");
        };
        let krate = Crate {
            name: name.to_string(),
            version: version.trim_start_matches('v').to_string(),
            license: Some(license.trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
            local: package.contains(" (/"),
        };
        if depth == 0 {
            root = Some(krate.name.clone());
        }
        let Some(r) = &root else {
            bail!("`cargo tree` printed a dependency before its package: {line}");
        };
        all.entry(r.clone()).or_default().insert(krate);
    }
    Ok(all)
}

/// `Cargo.lock`'s SHA-256 checksums, by (name, version).
pub fn checksums(lockfile: &str) -> Result<BTreeMap<(String, String), String>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        version: String,
        checksum: Option<String>,
    }
    let lock: Lock = toml::from_str(lockfile).context("Cargo.lock is not TOML")?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|p| Some(((p.name, p.version), p.checksum?)))
        .collect())
}

/// What one image holds, for its SBOM.
pub struct Contents<'a> {
    /// The image (`host/account/name`) and its manifest digest.
    pub repository: &'a str,
    pub digest: &'a str,
    pub version: &'a str,
    /// Files of the image: path in the image and bytes.
    pub files: Vec<(String, Vec<u8>)>,
    /// Packages of its base (Debian's, PyPI's), as `image::base_packages`
    /// lists them.
    pub packages: Vec<crate::image::BasePackage>,
    pub crates: &'a BTreeSet<Crate>,
    pub checksums: &'a BTreeMap<(String, String), String>,
    /// RFC 3339: the commit's time, so that the SBOM is reproducible too.
    pub timestamp: &'a str,
}

fn sha256_hashes(hex: &str) -> Hashes {
    Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(hex.to_string()),
    }])
}

/// A UUID (RFC 4122 layout, version 5 bits) derived from the image digest:
/// the same image always gets the same serial number.
fn serial(digest: &str) -> Result<UrnUuid> {
    let hex: Vec<char> = digest.trim_start_matches("sha256:").chars().collect();
    if hex.len() < 32 {
        bail!("{digest} is not a sha256 digest");
    }
    let mut h: String = hex[..32].iter().collect();
    h.replace_range(12..13, "5");
    let variant = u8::from_str_radix(&h[16..17], 16)? & 0x3 | 0x8;
    h.replace_range(16..17, &format!("{variant:x}"));
    UrnUuid::new(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
    .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The image's components: the crates compiled into its binary (from
/// crates.io, then the workspace's), its base's packages, and its files.
fn components(c: &Contents) -> Vec<Component> {
    let mut components = Vec::new();
    for k in c.crates.iter().filter(|k| !k.local) {
        let mut comp = Component::new(
            Classification::Library,
            &k.name,
            &k.version,
            Some(format!("pkg:cargo/{}@{}", k.name, k.version)),
        );
        comp.purl = Purl::new("cargo", &k.name, &k.version).ok();
        if let Some(sum) = c.checksums.get(&(k.name.clone(), k.version.clone())) {
            comp.hashes = Some(sha256_hashes(sum));
        }
        // Old manifests write "MIT/Apache-2.0"; SPDX says OR.
        comp.licenses = k
            .license
            .as_ref()
            .map(|l| Licenses(vec![LicenseChoice::expression(&l.replace('/', " OR "))]));
        components.push(comp);
    }
    for k in c.crates.iter().filter(|k| k.local) {
        let mut comp = Component::new(
            Classification::Library,
            &k.name,
            &k.version,
            Some(format!("workspace:{}@{}", k.name, k.version)),
        );
        comp.description = Some(NormalizedString::new("a crate of this workspace"));
        components.push(comp);
    }
    for p in &c.packages {
        let mut comp = Component::new(Classification::Library, p.name, p.version, Some(p.purl()));
        comp.purl = p.purl().parse::<Purl>().ok();
        comp.hashes = Some(sha256_hashes(p.sha256));
        comp.description = Some(NormalizedString::new(&format!(
            "in the image's base; SHA-256 of the {} it came from",
            p.archive
        )));
        components.push(comp);
    }
    for (path, bytes) in &c.files {
        let kind = if path.ends_with(".onnx") {
            Classification::MachineLearningModel
        } else {
            Classification::File
        };
        let mut comp = Component::new(
            kind,
            &format!("/{path}"),
            c.version,
            Some(format!("file:/{path}")),
        );
        comp.hashes = Some(sha256_hashes(
            oci::sha256(bytes).trim_start_matches("sha256:"),
        ));
        components.push(comp);
    }
    components
}

/// The CycloneDX 1.5 document for one image, as JSON.
///
/// # Errors
/// A bad digest, or the library refusing to write the document.
pub fn document(c: &Contents) -> Result<serde_json::Value> {
    let components = components(c);
    let mut image = Component::new(
        Classification::Container,
        c.repository,
        c.version,
        Some(format!("{}@{}", c.repository, c.digest)),
    );
    image.hashes = Some(sha256_hashes(c.digest.trim_start_matches("sha256:")));
    let bom = Bom {
        serial_number: Some(serial(c.digest)?),
        metadata: Some(Metadata {
            timestamp: cyclonedx_bom::external_models::date_time::DateTime::try_from(
                c.timestamp.to_string(),
            )
            .ok(),
            tools: Some(Tools::List(vec![Tool {
                vendor: Some(NormalizedString::new("kube-mlops")),
                name: Some(NormalizedString::new("cargo xtask release")),
                version: Some(NormalizedString::new(env!("CARGO_PKG_VERSION"))),
                hashes: None,
                external_references: None,
            }])),
            component: Some(image),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        spec_version: SpecVersion::V1_5,
        ..Bom::default()
    };
    let mut out = Vec::new();
    bom.output_as_json_v1_5(&mut out)
        .map_err(|e| anyhow::anyhow!("cannot write the SBOM: {e}"))?;
    Ok(serde_json::from_slice(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_tree_lines_are_grouped_by_root() -> Result<()> {
        let text = "0test-api v0.1.0 (/w/services/test-api)\t\n1axum v0.8.4\tMIT\n2serde v1.0.219\tMIT OR Apache-2.0\n0model-server v0.1.0 (/w/services/model-server)\t\n1serde v1.0.219\tMIT OR Apache-2.0 (*)\n";
        let all = parse_tree(text)?;
        let test_api: Vec<&str> = all["test-api"].iter().map(|c| c.name.as_str()).collect();
        assert_eq!(test_api, ["axum", "serde", "test-api"]);
        assert!(
            all["test-api"]
                .iter()
                .any(|c| c.local && c.name == "test-api")
        );
        assert_eq!(all["model-server"].len(), 2);
        assert!(parse_tree("x v1\n").is_err());
        Ok(())
    }

    #[test]
    fn serial_numbers_are_uuids_from_the_digest() -> Result<()> {
        let s = serial("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")?;
        assert_eq!(s.0, "urn:uuid:01234567-89ab-5def-8123-456789abcdef");
        Ok(())
    }

    #[test]
    fn a_model_file_is_listed_with_its_sha256() -> Result<()> {
        use sha2::Digest;
        let model = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../services/model-server/models/iris.onnx"
        ))?;
        let expected: String = sha2::Sha256::digest(&model)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let crates = BTreeSet::new();
        let checksums = BTreeMap::new();
        let digest = format!("sha256:{}", "c".repeat(64));
        let doc = document(&Contents {
            repository: "reg.example/acct/wine",
            digest: &digest,
            version: "1.2.3",
            files: vec![
                ("models/wine.onnx".into(), model),
                (
                    "etc/passwd".into(),
                    b"nonroot:x:65532:65532::/:/sbin/nologin\n".to_vec(),
                ),
            ],
            packages: vec![crate::image::BasePackage {
                ecosystem: "deb",
                name: "libc6",
                version: "2.36-9+deb12u14",
                arch: "amd64",
                archive: ".deb",
                sha256: "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf",
            }],
            crates: &crates,
            checksums: &checksums,
            timestamp: "2026-12-01T00:00:00Z",
        })?;
        let components = doc["components"].as_array().context("no components")?;
        let model = components
            .iter()
            .find(|c| c["name"] == "/models/wine.onnx")
            .context("no model component")?;
        assert_eq!(model["type"], "machine-learning-model");
        assert_eq!(model["hashes"][0]["alg"], "SHA-256");
        assert_eq!(model["hashes"][0]["content"], expected.as_str());
        let passwd = components
            .iter()
            .find(|c| c["name"] == "/etc/passwd")
            .context("no passwd component")?;
        assert_eq!(passwd["type"], "file");
        let libc = components
            .iter()
            .find(|c| c["name"] == "libc6")
            .context("no libc6 component")?;
        assert_eq!(
            libc["purl"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64"
        );
        assert_eq!(libc["version"], "2.36-9+deb12u14");
        assert_eq!(
            libc["hashes"][0]["content"],
            "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf"
        );
        Ok(())
    }
}
