//! The test API's OpenAPI document, and schemathesis against it.

use service_kit::testing::{Result, Server, get, schemathesis};

#[test]
fn the_document_describes_every_route() -> Result {
    let s = Server::start(env!("CARGO_BIN_EXE_test-api"), &[])?;
    let (status, body) = get(&s.url("/openapi.json"))?;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .ok_or("no paths")?
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
            "/test_api"
        ]
    );
    assert_eq!(
        doc["paths"]["/test_api"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Greeting"
    );
    Ok(())
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() -> Result {
    let s = Server::start(env!("CARGO_BIN_EXE_test-api"), &[])?;
    if let Some(report) = schemathesis(&s, 50)? {
        panic!("schemathesis found problems:\n{report}");
    }
    Ok(())
}
