//! How the service binaries are linked: statically (crt-static) on Linux,
//! with the dependencies compiled once for every binary. Cargo applies
//! rustflags to every crate, so a static build and a dynamic one would
//! compile everything twice; `cargo rustc` per binary gives the flag to
//! the final crate alone, but resolves each package's features apart, and
//! the shared dependencies then compile once per package. Instead one
//! `cargo build` (features unified) runs with the xtask itself as
//! `RUSTC_WORKSPACE_WRAPPER`, which cargo calls for workspace members
//! only: it adds `-C target-feature=+crt-static` to binary crates, unless
//! the invocation carries `DYNAMIC_MARKER` (the model server that loads
//! ONNX Runtime, built with `cargo rustc … -- --cfg kmlops_dynamic_link`,
//! which also gives its binary unit a file of its own).

use std::ffi::OsString;
use std::process::ExitCode;

/// Set on cargo by the xtask so that its own binary, called as the
/// wrapper, knows to act as one.
pub const WRAPPER_ENV: &str = "KMLOPS_RUSTC_WRAPPER";

/// The extra `cargo rustc` arguments that ask for a dynamic link.
pub const DYNAMIC_MARKER: [&str; 2] = ["--cfg", "kmlops_dynamic_link"];

/// When this process was started by cargo as the rustc wrapper: runs
/// rustc (`args[0]`) with `args[1..]`, crt-static added for a binary
/// crate without the marker; its exit status. None otherwise.
pub fn as_wrapper() -> Option<ExitCode> {
    std::env::var_os(WRAPPER_ENV)?;
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next()?;
    let mut args: Vec<OsString> = args.collect();
    if wants_static(&args) {
        args.extend(["-C".into(), "target-feature=+crt-static".into()]);
    }
    let status = std::process::Command::new(rustc).args(&args).status();
    Some(match status {
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: the rustc wrapper cannot run rustc: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Whether rustc `args` build a binary crate, and only that, and do not
/// ask for a dynamic link. (Cargo also asks rustc what the target supports,
/// naming every crate type at once: crt-static there would deny the
/// target proc-macros.)
fn wants_static(args: &[OsString]) -> bool {
    let pairs = || args.windows(2);
    let types: Vec<&OsString> = pairs()
        .filter(|w| w[0] == "--crate-type")
        .map(|w| &w[1])
        .collect();
    let bin = types.len() == 1 && types[0] == "bin";
    let dynamic = pairs().any(|w| w[0] == DYNAMIC_MARKER[0] && w[1] == DYNAMIC_MARKER[1]);
    bin && !dynamic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn binaries_are_static_unless_marked_and_libraries_untouched() {
        assert!(wants_static(&args(&[
            "--crate-name",
            "test_api",
            "--crate-type",
            "bin"
        ])));
        assert!(!wants_static(&args(&[
            "--crate-type",
            "bin",
            "--cfg",
            "kmlops_dynamic_link"
        ])));
        assert!(!wants_static(&args(&["--crate-type", "lib"])));
        // Cargo's question of what the target supports.
        assert!(!wants_static(&args(&[
            "-",
            "--crate-type",
            "bin",
            "--crate-type",
            "proc-macro"
        ])));
    }
}
