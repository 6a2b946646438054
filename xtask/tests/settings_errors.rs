//! Settings that cannot work are refused before anything is deployed, each
//! error naming the key, the line and the file: unknown packages, missing
//! or unloadable model files, names and contracts that do not fit the model.

mod support;

use std::path::Path;

use support::{Fakes, Result, text};

const EXPORTERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/model-server/tests/exporters"
);

/// `xtask build` with `settings` (after `files` are copied beside them);
/// its stderr, which must say it failed.
fn refused(settings: &str, files: &[(&str, &str)]) -> Result<String> {
    let f = Fakes::new(&[])?;
    for (from, to) in files {
        let to = f.dir.path().join(to);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(Path::new(EXPORTERS).join(from), to)?;
    }
    std::fs::write(f.dir.path().join("xtask.toml"), settings)?;
    let path = format!(
        "{}:{}",
        f.dir.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, _) = f.xtask(&["build"], &[("PATH", &path)])?;
    assert!(!out.status.success(), "accepted: {settings}");
    Ok(text(&out.stderr))
}

/// Settings, files copied beside them (fixture, destination), and what
/// the error must say.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn each_kind_of_bad_service_is_named_with_key_line_and_file() -> Result {
    let model = |extra: &str| {
        format!(
            "# settings\n\n[services.wine]\nmodel = \"onnx\"\nmodel_path = \"m/wine.onnx\"\nport = 6000\n{extra}"
        )
    };
    let wine = [("wine-forest.onnx", "m/wine.onnx")];
    let cases: Vec<Case> = vec![
        (
            "[services.api]\nport = 6000\n".into(),
            vec![],
            vec![
                "services.api.package = \"api\"",
                "xtask.toml:1)",
                "no such package in the workspace",
                "test-api",
            ],
        ),
        (
            "[services.api]\npackage = \"test-api\"\nbin = \"nope\"\nport = 6000\n".into(),
            vec![],
            vec![
                "services.api.bin",
                "xtask.toml:1)",
                "has no binary \"nope\"; its binaries: test-api",
            ],
        ),
        (
            model(""),
            vec![],
            vec![
                "services.wine.model_path = \"m/wine.onnx\"",
                "xtask.toml:3)",
                "no such file",
            ],
        ),
        (
            model(""),
            vec![("svr.onnx", "m/wine.onnx")],
            vec![
                "services.wine.model_path",
                "xtask.toml:3)",
                "SVMRegressor (ai.onnx.ml)",
            ],
        ),
        (
            model("feature_names = [\"a\", \"b\"]\n"),
            wine.to_vec(),
            vec![
                "services.wine.feature_names",
                "xtask.toml:3)",
                "has 2 names, but the model takes 13 features",
            ],
        ),
        (
            model("class_names = [\"a\"]\n"),
            wine.to_vec(),
            vec![
                "services.wine.class_names",
                "has 1 names, but the model answers 3 columns",
            ],
        ),
        (
            model("contract = \"m/iris.json\"\n"),
            vec![("wine-forest.onnx", "m/wine.onnx")],
            vec!["services.wine.contract = \"m/iris.json\"", "no such file"],
        ),
    ];
    for (settings, files, says) in cases {
        let stderr = refused(&settings, &files)?;
        for s in says {
            assert!(stderr.contains(s), "{settings}\n--- lacks {s:?}:\n{stderr}");
        }
    }
    Ok(())
}

#[test]
fn a_contract_for_another_width_is_refused() -> Result {
    let f = Fakes::new(&[])?;
    std::fs::create_dir_all(f.dir.path().join("m"))?;
    std::fs::copy(
        Path::new(EXPORTERS).join("wine-forest.onnx"),
        f.dir.path().join("m/wine.onnx"),
    )?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/model-server/contract.json"),
        f.dir.path().join("m/iris.json"),
    )?;
    std::fs::write(
        f.dir.path().join("xtask.toml"),
        "[services.wine]\nmodel = \"onnx\"\nmodel_path = \"m/wine.onnx\"\nport = 6000\ncontract = \"m/iris.json\"\n",
    )?;
    let path = format!(
        "{}:{}",
        f.dir.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, _) = f.xtask(&["build"], &[("PATH", &path)])?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("services.wine.contract"), "{stderr}");
    assert!(
        stderr.contains("describes 4 features, but the model takes 13"),
        "{stderr}"
    );
    Ok(())
}

/// `model add` and `service add` refuse a preset's name up front (a table
/// of that name starts from the preset), before building anything.
#[test]
fn a_presets_name_is_refused_before_anything_is_built() -> Result {
    let f = Fakes::new(&[])?;
    std::fs::write(f.dir.path().join("xtask.toml"), "[services.test-api]\n")?;
    let onnx = format!("{EXPORTERS}/wine-pipeline.onnx");
    for args in [
        &["model", "add", "iris-model", "--onnx", &onnx][..],
        &["service", "add", "iris-model"],
    ] {
        let (out, _) = f.xtask(args, &[])?;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is the name of a built-in preset"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("cargo build") && !stderr.contains("cargo rustc"),
            "nothing is built: {stderr}"
        );
    }
    Ok(())
}
