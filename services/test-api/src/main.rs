//! `GET /test_api` -> `{"message":"Hello <client ip>, you've reached <server ip>"}`.

use std::process::ExitCode;

use service_kit::{ServeEnv, logging};

fn main() -> ExitCode {
    logging::init();
    let result = ServeEnv::from_env().and_then(|env| {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(service_kit::run(test_api::service(&env), env))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "test-api failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
