//! Serves one model over Seldon Core's v1 prediction protocol.

use std::process::ExitCode;

use service_kit::logging;

fn main() -> ExitCode {
    logging::init();
    let lookup = |k: &str| std::env::var(k).ok();
    let result = model_server::serve_env(lookup).and_then(|env| {
        let service = model_server::service(&env, lookup)?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(service_kit::run(service, env))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "model-server failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
