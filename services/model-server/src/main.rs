//! Serves one model over Seldon Core's v1 prediction protocol.
//!
//! `model-server inspect FILE.onnx [OUTPUT]` loads an ONNX file as the
//! server would (on `RUNTIME`) and prints what it takes and gives, and how
//! long a one-row run takes, as one JSON line (what `cargo xtask model
//! add` reads), or why it cannot be served.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("inspect") {
        return inspect(&args[1..]);
    }
    let lookup = |k: &str| std::env::var(k).ok();
    service_kit::main(
        "model-server",
        || model_server::serve_env(lookup),
        |env| model_server::service(env, lookup),
    )
}

fn inspect(args: &[String]) -> std::process::ExitCode {
    let (Some(path), output) = (args.first(), args.get(1)) else {
        eprintln!("usage: model-server inspect FILE.onnx [OUTPUT]");
        return std::process::ExitCode::from(2);
    };
    // RUNTIME (and ORT_DYLIB_PATH…) pick the runtime, as when serving.
    let lookup = |k: &str| std::env::var(k).ok();
    let runtime = match model_server::models::Runtime::from_env(&lookup) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match model_server::models::inspect(
        std::path::Path::new(path),
        output.map(String::as_str),
        runtime,
    ) {
        Ok(i) => {
            println!("{}", serde_json::to_string(&i).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
