//! The model server's OpenAPI document, and schemathesis against it with
//! the identity and the iris model.

use service_kit::testing::{Result, Server, get, schemathesis};

#[test]
fn the_document_describes_every_route() -> Result {
    let s = Server::start(env!("CARGO_BIN_EXE_model-server"), &[("MODEL", "identity")])?;
    let (status, body) = get(&s.url("/openapi.json"))?;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    let mut routes: Vec<(&str, &str)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .map(move |m| (p.as_str(), m.as_str()))
        })
        .collect();
    routes.sort_unstable();
    assert_eq!(
        routes,
        [
            ("/api/v0.1/feedback", "post"),
            ("/api/v0.1/predictions", "post"),
            ("/api/v1.0/feedback", "post"),
            ("/api/v1.0/health/status", "get"),
            ("/api/v1.0/metadata", "get"),
            ("/api/v1.0/predictions", "post"),
            ("/health/ping", "get"),
            ("/health/status", "get"),
            ("/healthz", "get"),
            ("/metadata", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
            ("/predict", "get"),
            ("/predict", "post"),
            ("/readyz", "get"),
            ("/send-feedback", "get"),
            ("/send-feedback", "post"),
            ("/v2", "get"),
            ("/v2/health/live", "get"),
            ("/v2/health/ready", "get"),
            ("/v2/models/{model}", "get"),
            ("/v2/models/{model}/infer", "post"),
            ("/v2/models/{model}/ready", "get"),
            ("/v2/models/{model}/versions/{version}", "get"),
            ("/v2/models/{model}/versions/{version}/infer", "post"),
            ("/v2/models/{model}/versions/{version}/ready", "get"),
        ]
    );
    // Every documented route answers (none is a 404 or 405), the served
    // model's name and version in the path.
    for (path, method) in &routes {
        let path = path
            .replace("{model}", "identity")
            .replace("{version}", "1");
        let path = path.as_str();
        let code = match *method {
            "get" => get(&s.url(path))?.0,
            _ => service_kit::testing::post(&s.url(path), "application/json", b"{}")?.0,
        };
        assert!(code != 404 && code != 405, "{method} {path}: {code}");
    }
    let forms = &paths["/predict"]["post"]["requestBody"]["content"];
    for form in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        assert!(forms.get(form).is_some(), "{form} is not documented");
    }
    Ok(())
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() -> Result {
    for model in ["identity", "iris"] {
        let s = Server::start(env!("CARGO_BIN_EXE_model-server"), &[("MODEL", model)])?;
        if let Some(report) = schemathesis(&s, 60)? {
            panic!("schemathesis found problems with MODEL={model}:\n{report}");
        }
    }
    Ok(())
}
