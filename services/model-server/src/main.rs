//! Serves one model over Seldon Core's v1 prediction protocol.

fn main() -> std::process::ExitCode {
    let lookup = |k: &str| std::env::var(k).ok();
    service_kit::main(
        "model-server",
        || model_server::serve_env(lookup),
        |env| model_server::service(env, lookup),
    )
}
