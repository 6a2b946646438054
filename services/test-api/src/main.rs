//! `GET /test_api` -> `{"message":"Hello <client ip>, you've reached <server ip>"}`.

use service_kit::ServeEnv;

fn main() -> std::process::ExitCode {
    service_kit::main("test-api", ServeEnv::from_env, |env| {
        Ok(test_api::service(env))
    })
}
