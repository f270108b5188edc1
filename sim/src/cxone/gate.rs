//! What happens around every request, on every route of both APIs: logging, latency, scripted
//! faults, bearer-token checks and the error bodies, plus the small form-decoding helpers the
//! token endpoints share.

use super::Fault;
use super::shared::{Shared, lock};
use crate::server::RecordedRequest;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use std::sync::Arc;

/// An RFC 6749 error body.
#[derive(Serialize)]
pub struct OAuthError<'a> {
    pub error: &'a str,
    pub error_description: &'a str,
}

/// Logs the request, applies latency, then any due fault: `Some` is the fault's response.
/// Faults come before authentication, as a gateway's rate limiter would answer.
pub async fn admit(
    shared: &Shared,
    endpoint: &str,
    method: &Method,
    uri: &Uri,
    body: Option<String>,
) -> Option<Response> {
    shared.log.record(RecordedRequest {
        endpoint: endpoint.to_owned(),
        method: method.to_string(),
        uri: uri.to_string(),
        body,
    });
    let delay = lock(&shared.latency).get(endpoint).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    shared.take_fault(endpoint).map(fault_response)
}

fn fault_response(fault: Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = fault.body.unwrap_or_else(|| {
        // "Too Many Requests" -> "too_many_requests", "Service Unavailable" -> "service_unavailable".
        let reason = status.canonical_reason().unwrap_or("Injected fault");
        let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
        let description = if status == StatusCode::TOO_MANY_REQUESTS {
            "Rate limit exceeded"
        } else {
            reason
        };
        serde_json::to_value(OAuthError {
            error: &code,
            error_description: description,
        })
        .unwrap_or_default()
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(OAuthError {
            error,
            error_description: description,
        }),
    )
        .into_response()
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let (id, secret) = raw_basic_credentials(headers)?;
    Some((form_value(&id), form_value(&secret)))
}

/// `Authorization: Basic` decoded from base64 only, for callers that compare both forms.
pub fn raw_basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// One form-encoded value: `+` is a space, `%XX` a byte.
pub fn form_value(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The 401 answer, unless the request carries a live bearer token.
pub fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let description = match token {
        None => "A bearer token is required",
        Some(token) if lock(&shared.tokens).is_valid(token) => return None,
        // Unknown and expired tokens look the same to a client: both need a new token.
        Some(_) => "The access token expired",
    };
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
    let headers = response.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    // CXone names the error in `icStatusDescription` too; some clients read only that.
    headers.insert("icstatusdescription", HeaderValue::from_static(description));
    Some(response)
}

pub async fn unknown_route(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    log_other(&shared, &method, &uri);
    oauth_error(StatusCode::NOT_FOUND, "not_found", "No such endpoint")
}

pub async fn wrong_method(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    log_other(&shared, &method, &uri);
    oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
}

pub fn log_other(shared: &Shared, method: &Method, uri: &Uri) {
    shared.log.record(RecordedRequest {
        endpoint: "other".into(),
        method: method.to_string(),
        uri: uri.to_string(),
        body: None,
    });
}

/// The first value of `key`.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
