//! Every service's OpenAPI 3.1 document at `GET /openapi.json`: the
//! service's own paths (generated from its code with utoipa) merged with
//! what service-kit serves for all (probes, metrics, this document).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use crate::{errors, metrics, probes};

#[derive(OpenApi)]
#[openapi(
    paths(probes::live, probes::ready, metrics::serve, serve),
    components(schemas(probes::ProbeStatus, errors::Body<'static>)),
    tags((name = "probes", description = "Liveness, readiness and metrics, for every service"))
)]
struct Common;

/// `service`'s document with the common paths, titled and versioned, as JSON.
pub fn document(mut service: Document, name: &str, version: &str) -> Bytes {
    service.merge(Common::openapi());
    service.info.title = name.to_string();
    service.info.version = version.to_string();
    service.info.description = Some(format!(
        "{name}, served by kube-mlops' service-kit. Client mistakes get a 4xx with a body \
         that says what was wrong. Outside the operations below: a path not listed gets 404 \
         and a listed path called with another method 405, both with an ErrorBody. A request \
         that is not HTTP/1.1 the server can parse (a malformed request line or header, an \
         invalid Content-Length) gets a bare 400, and a head over {} KiB or with more than {} \
         fields a bare 431, with the connection closed: there is no request to answer in \
         JSON.",
        crate::server::MAX_HEAD_BYTES / 1024,
        crate::server::MAX_HEADERS,
    ));
    Bytes::from(service.to_json().unwrap_or_else(|_| "{}".into()))
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "probes", responses(
    (status = 200, description = "The OpenAPI 3.1 document of this service",
        body = Object, content_type = "application/json")))]
pub async fn serve(State(doc): State<Bytes>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc)
}
