//! The guide's API: `POST /oauth/token` (client credentials with the guide's scopes) and the
//! page-numbered, `last_modified_date`-filtered list of snake_case records, with their by-id
//! read. Served on the issuer origin, next to the Admin API's discovery and token endpoints.

use super::gate::{
    admit, basic_credentials, oauth_error, param, unauthorized, unknown_route, wrong_method,
};
use super::shared::{Shared, lock};
use super::{Envelope, page_served};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// The one scope the list and get endpoints need; `disposition:edit` is also granted on request.
const VIEW_SCOPE: &str = "disposition:view";
const KNOWN_SCOPES: [&str; 2] = [VIEW_SCOPE, "disposition:edit"];

/// The guide's token response.
#[derive(Serialize)]
struct GuideToken {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

/// The guide's list envelope ([`Envelope::Object`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GuidePage {
    dispositions: Vec<Value>,
    page: u32,
    page_size: u32,
    total_records: usize,
}

/// `POST /oauth/token`, `GET /api/v2/dispositions`, `GET /api/v2/dispositions/{id}`; anything
/// else is logged as `other` and answered 404 (or 405 for a known path with the wrong method).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v2/dispositions", get(list))
        .route("/api/v2/dispositions/{id}", get(get_one))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(shared)
}

async fn token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Some(fault) = admit(&shared, "token", &method, &uri, Some(redact_secret(&text))).await {
        return fault;
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded",
        );
    }
    // Decoded here rather than by the `Form` extractor: the raw body is logged and a fault
    // answers before the body is looked at, and a wrong content type gets the OAuth error above
    // rather than the extractor's 415.
    let form: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    // HTTP Basic (client_secret_basic) wins over body credentials (client_secret_post).
    let credentials = basic_credentials(&headers).or_else(|| {
        let id = param(&form, "client_id")?;
        let secret = param(&form, "client_secret")?;
        Some((id.to_owned(), secret.to_owned()))
    });
    let client_ok = credentials.as_ref().is_some_and(|(id, secret)| {
        *id == shared.config.client_id && *secret == shared.config.client_secret
    });
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    match param(&form, "grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only client_credentials is supported",
            );
        }
    }
    let requested: Vec<&str> = param(&form, "scope")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if !requested.contains(&VIEW_SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The scope must include disposition:view",
        );
    }
    // Grant the known scopes asked for and silently drop the rest, as OAuth servers may.
    let granted: Vec<&str> = KNOWN_SCOPES
        .into_iter()
        .filter(|s| requested.contains(s))
        .collect();
    let access_token = lock(&shared.tokens).issue(shared.config.token_ttl);
    let mut response = axum::Json(GuideToken {
        access_token,
        token_type: "Bearer",
        expires_in: shared.config.token_ttl.as_secs(),
        scope: granted.join(" "),
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The form body for the request log, with the client secret's value blanked.
fn redact_secret(form: &str) -> String {
    form.split('&')
        .map(|pair| {
            if pair.starts_with("client_secret=") {
                "client_secret=REDACTED"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn list(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    // Pairs rather than a struct: a repeated parameter takes its first value, where a struct
    // would refuse the whole query.
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    // In flight from arrival to answer, latency and faults included.
    let mut boarding = shared.flights.start();
    let response = answer_list(&shared, &method, &uri, &headers, &query).await;
    boarding.answered(response.status().as_u16());
    response
}

async fn answer_list(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Response {
    if let Some(refusal) = admit(shared, "list", method, uri, None).await {
        return refusal;
    }
    if let Some(refusal) = unauthorized(shared, headers) {
        return refusal;
    }
    let invalid =
        |description: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description);
    let since = match param(query, "last_modified_date") {
        None => None,
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(date) => Some(date.with_timezone(&Utc)),
            Err(_) => {
                return invalid(format!(
                    "last_modified_date must be an RFC 3339 time, got {text:?}"
                ));
            }
        },
    };
    let page = match param(query, "page").map(str::parse::<u32>) {
        None => 1,
        Some(Ok(page)) if page >= 1 => page,
        Some(_) => return invalid("page must be a whole number of at least 1".into()),
    };
    let page_size = match param(query, "pageSize").map(str::parse::<u32>) {
        None => 100,
        Some(Ok(size)) if (1..=shared.config.max_page_size).contains(&size) => size,
        Some(_) => {
            return invalid(format!(
                "pageSize must be a whole number from 1 to {}",
                shared.config.max_page_size
            ));
        }
    };
    let matching = shared.store().modified_since(since);
    let total = matching.len();
    let start = (page as usize - 1).saturating_mul(page_size as usize);
    let records: Vec<Value> = matching
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    let envelope = *lock(&shared.envelope);
    let body = match envelope {
        Envelope::BareArray => Value::Array(records),
        Envelope::Object => serde_json::to_value(GuidePage {
            dispositions: records,
            page,
            page_size,
            total_records: total,
        })
        .unwrap_or_default(),
    };
    let response = axum::Json(body).into_response();
    page_served(shared);
    response
}

async fn get_one(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = admit(&shared, "get", &method, &uri, None).await {
        return refusal;
    }
    if let Some(refusal) = unauthorized(&shared, &headers) {
        return refusal;
    }
    let record = shared.store().get_guide(&id);
    match record {
        Some(record) => axum::Json(record).into_response(),
        None => oauth_error(StatusCode::NOT_FOUND, "not_found", "Invalid dispositionId"),
    }
}
