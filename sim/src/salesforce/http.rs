//! HTTP: names each request's endpoint, logs it, then answers it. Data calls pass the checks every
//! REST call meets on the platform, in its order: session, then API allowance, then the
//! resource. Also the OAuth token endpoint, the versions list and the `/_sim/` admin routes.

use super::errors::ApiError;
use super::{Fault, SfRow, Shared, State, soql, store, writes};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Content type of every JSON answer, as the platform sends it.
const JSON: &str = "application/json;charset=UTF-8";
/// Newest API version the simulated org serves.
const NEWEST_VERSION: u32 = 66;
/// Oldest API version still served.
const OLDEST_VERSION: u32 = 31;
/// The simulated org and integration user, in the 15-character form tokens embed.
const ORG_ID: &str = "00D5g000004SiMo";
const USER_ID: &str = "0055g000004SiMu";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// `vNN.N` from a data URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ApiVersion {
    major: u32,
    minor: u32,
}

impl ApiVersion {
    fn parse(segment: &str) -> Option<Self> {
        let (major, minor) = segment.strip_prefix('v')?.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(major) || !all_digits(minor) {
            return None;
        }
        let version = Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        };
        (version.minor == 0 && (OLDEST_VERSION..=NEWEST_VERSION).contains(&version.major))
            .then_some(version)
    }

    pub fn at_least(self, major: u32) -> bool {
        self.major >= major
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// Splits `/services/data/vNN.N/a/b/c` into its version (None when not a served version) and
/// its percent-decoded segments. None when the path is not under `/services/data/vNN.N`.
pub(crate) fn split_data_path(path: &str) -> Option<(Option<ApiVersion>, Vec<String>)> {
    let rest = path.strip_prefix("/services/data/")?;
    let mut segments = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false));
    let version = segments.next()?;
    Some((ApiVersion::parse(&version), segments.collect()))
}

/// What a request asks for.
#[derive(Debug)]
enum Route {
    Token,
    Versions,
    /// Under `/services/data/vNN.N/`; `version` is None for a version the org does not serve.
    Data {
        version: Option<ApiVersion>,
        resource: Resource,
    },
    Other,
}

#[derive(Debug)]
enum Resource {
    Upsert {
        object: String,
        field: String,
    },
    CreateCollection,
    DeleteCollection,
    UpsertSingle {
        object: String,
        field: String,
        value: String,
    },
    UpdateById {
        object: String,
        id: String,
    },
    DeleteOne {
        object: String,
        id: String,
    },
    Composite,
    Query,
    QueryMore {
        locator: String,
    },
    Describe {
        object: String,
    },
    Limits,
    NotFound,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        if path == "/services/oauth2/token" {
            return if method == Method::POST {
                Route::Token
            } else {
                Route::Other
            };
        }
        if matches!(path, "/services/data" | "/services/data/") {
            return if method == Method::GET {
                Route::Versions
            } else {
                Route::Other
            };
        }
        let Some((version, segments)) = split_data_path(path) else {
            return Route::Other;
        };
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let owned = |s: &str| s.to_string();
        let resource = match (method.as_str(), s.as_slice()) {
            ("PATCH", ["composite", "sobjects", object, field]) => Resource::Upsert {
                object: owned(object),
                field: owned(field),
            },
            ("POST", ["composite", "sobjects"]) => Resource::CreateCollection,
            ("DELETE", ["composite", "sobjects"]) => Resource::DeleteCollection,
            ("POST", ["composite"]) => Resource::Composite,
            ("GET", ["sobjects", object, "describe"]) => Resource::Describe {
                object: owned(object),
            },
            ("PATCH", ["sobjects", object, field, value]) => Resource::UpsertSingle {
                object: owned(object),
                field: owned(field),
                value: owned(value),
            },
            ("PATCH", ["sobjects", object, id]) => Resource::UpdateById {
                object: owned(object),
                id: owned(id),
            },
            ("DELETE", ["sobjects", object, id]) => Resource::DeleteOne {
                object: owned(object),
                id: owned(id),
            },
            ("GET", ["query"]) => Resource::Query,
            ("GET", ["query", locator]) => Resource::QueryMore {
                locator: owned(locator),
            },
            ("GET", ["limits"]) => Resource::Limits,
            _ => Resource::NotFound,
        };
        Route::Data { version, resource }
    }

    /// The name the request log files this request under.
    fn endpoint(&self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::Versions => "versions",
            Route::Other => "other",
            Route::Data { resource, .. } => match resource {
                Resource::Upsert { .. } => "upsert",
                Resource::CreateCollection => "create",
                Resource::DeleteCollection | Resource::DeleteOne { .. } => "delete",
                Resource::UpsertSingle { .. } | Resource::UpdateById { .. } => "upsert_single",
                Resource::Composite => "composite",
                Resource::Query | Resource::QueryMore { .. } => "query",
                Resource::Describe { .. } => "describe",
                Resource::Limits => "limits",
                Resource::NotFound => "other",
            },
        }
    }
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return text_response(StatusCode::BAD_REQUEST, "could not read the request body");
    };
    if let Some(admin_path) = parts.uri.path().strip_prefix("/_sim/") {
        return admin(&shared, &parts.method, admin_path, &body);
    }
    let route = Route::parse(&parts.method, parts.uri.path());
    let endpoint = route.endpoint();
    shared.log.record(crate::server::RecordedRequest {
        endpoint: endpoint.to_string(),
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |pq| pq.to_string()),
        body: String::from_utf8(body.to_vec())
            .ok()
            .filter(|text| !text.is_empty())
            .map(|text| match route {
                Route::Token => redact_client_secret(&text),
                _ => text,
            }),
    });
    let (answer, delay) = {
        let mut state = shared.state();
        (
            respond(&mut state, &route, &parts, &body),
            state.latency.get(endpoint).copied(),
        )
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match answer {
        Some(response) => response,
        // Unwinding out of the handler ends the connection task, so the client sees the
        // connection close with no answer. `resume_unwind` skips the panic hook: no noise.
        None => std::panic::resume_unwind(Box::new("simulated connection reset")),
    }
}

/// The answer to a logged request; None = drop the connection.
fn respond(state: &mut State, route: &Route, parts: &Parts, body: &[u8]) -> Option<Response> {
    let is_data = matches!(route, Route::Data { .. });
    if let Some(fault) = state.take_fault(route.endpoint()) {
        let Fault::Respond { status, body } = fault else {
            return None;
        };
        let mut response = json_response(status, &body);
        if is_data {
            add_usage_header(&mut response, state);
        }
        return Some(response);
    }
    Some(match route {
        Route::Token => token(state, parts, body),
        Route::Versions => json_response(StatusCode::OK, &versions()),
        Route::Other => error_response(&ApiError::not_found()),
        Route::Data { version, resource } => {
            let mut response = data_call(state, parts, *version, resource, body);
            add_usage_header(&mut response, state);
            response
        }
    })
}

/// Session check, allowance check, usage count, then the resource itself.
fn data_call(
    state: &mut State,
    parts: &Parts,
    version: Option<ApiVersion>,
    resource: &Resource,
    body: &[u8],
) -> Response {
    if !session_is_valid(state, parts) {
        let mut response = error_response(&ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        return response;
    }
    if state.api_used >= state.api_max {
        return error_response(&ApiError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    state.api_used += 1;
    resource_call(state, parts, version, resource, body)
        .unwrap_or_else(|error| error_response(&error))
}

fn resource_call(
    state: &mut State,
    parts: &Parts,
    version: Option<ApiVersion>,
    resource: &Resource,
    body: &[u8],
) -> Result<Response, ApiError> {
    let version = version.ok_or_else(ApiError::not_found)?;
    let params = query_params(parts.uri.query());
    Ok(match resource {
        Resource::Upsert { object, field } => {
            require_json(parts)?;
            json_response(
                StatusCode::OK,
                &writes::upsert_collection(state, version, object, field, body)?,
            )
        }
        Resource::CreateCollection => {
            require_json(parts)?;
            json_response(StatusCode::OK, &writes::create_collection(state, body)?)
        }
        Resource::DeleteCollection => {
            json_response(StatusCode::OK, &writes::delete_collection(state, &params)?)
        }
        Resource::UpsertSingle {
            object,
            field,
            value,
        } => {
            require_json(parts)?;
            let (status, answer) = writes::upsert_single(
                state,
                version,
                object,
                field,
                value,
                &writes::parse_json(body)?,
            )?;
            optional_json_response(status, answer)
        }
        Resource::UpdateById { object, id } => {
            require_json(parts)?;
            writes::update_by_id(state, object, id, &writes::parse_json(body)?)?;
            optional_json_response(StatusCode::NO_CONTENT, None)
        }
        Resource::DeleteOne { object, id } => {
            writes::delete_one(state, object, id)?;
            optional_json_response(StatusCode::NO_CONTENT, None)
        }
        Resource::Composite => {
            require_json(parts)?;
            json_response(StatusCode::OK, &writes::composite(state, body)?)
        }
        Resource::Query => json_response(
            StatusCode::OK,
            &soql::query(state, version, params.get("q").map(String::as_str))?,
        ),
        Resource::QueryMore { locator } => {
            json_response(StatusCode::OK, &soql::query_more(state, version, locator)?)
        }
        Resource::Describe { object } => json_response(StatusCode::OK, &describe(state, object)?),
        Resource::Limits => json_response(StatusCode::OK, &limits(state)),
        Resource::NotFound => return Err(ApiError::not_found()),
    })
}

/// `Authorization: Bearer <token>` (the platform also takes the older `OAuth <token>`) naming a
/// token this org issued and has not expired.
fn session_is_valid(state: &mut State, parts: &Parts) -> bool {
    let Some(token) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth")
        })
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    let Some(issued) = state.tokens.get(token) else {
        return false;
    };
    if state
        .config
        .token_ttl
        .is_some_and(|ttl| issued.elapsed() >= ttl)
    {
        state.tokens.remove(token);
        return false;
    }
    true
}

/// A body of a JSON write must be declared as JSON; an absent Content-Type is read as JSON.
fn require_json(parts: &Parts) -> Result<(), ApiError> {
    match parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default())
    {
        Some(content_type)
            if !content_type
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json") =>
        {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!(
                    "Content-Type header specified in HTTP request is not supported: {content_type}"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// `POST /services/oauth2/token` with the client-credentials grant.
fn token(state: &mut State, parts: &Parts, body: &[u8]) -> Response {
    let oauth_error = |error: &str, description: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": error, "error_description": description}),
        )
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The grant works only on the org's My Domain, never on the shared login hosts.
    if ["login.salesforce.com", "test.salesforce.com"]
        .iter()
        .any(|shared_host| host.starts_with(shared_host))
    {
        return oauth_error("invalid_grant", "request not supported on this domain");
    }
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        parse_form(&String::from_utf8_lossy(body))
    } else {
        HashMap::new()
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let (client_id, client_secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => basic_credentials(parts).unwrap_or_default(),
    };
    if client_id != state.config.client_id || client_secret != state.config.client_secret {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let random = || uuid::Uuid::new_v4().simple().to_string();
    let access_token = format!("{ORG_ID}!AQ{}{}{}", random(), random(), random());
    let signature_bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect();
    state
        .tokens
        .insert(access_token.clone(), std::time::Instant::now());
    state.issued_tokens.push(access_token.clone());
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "signature": BASE64.encode(signature_bytes),
            "scope": "api",
            "instance_url": state.url,
            "id": format!("{}/id/{}/{}", state.url, store::long_id(ORG_ID), store::long_id(USER_ID)),
            "token_type": "Bearer",
            "issued_at": Utc::now().timestamp_millis().to_string(),
        }),
    )
}

/// A token request body as the log keeps it: the client secret's value is replaced, so a log
/// printed by a failing test never shows it.
fn redact_client_secret(form: &str) -> String {
    form.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if percent_decode(key, true) == "client_secret" => {
                format!("{key}=<redacted>")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `client_id:client_secret` from `Authorization: Basic ...`.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The versions list: the one data URL that needs no session and counts no usage.
fn versions() -> Value {
    const SEASONS: [&str; 3] = ["Winter", "Spring", "Summer"];
    // v62.0 was Winter '25; each release since adds one version, three a year.
    let entries: Vec<Value> = (OLDEST_VERSION..=NEWEST_VERSION)
        .map(|major| {
            let releases_since = i64::from(major) - 62;
            let season = SEASONS[releases_since.rem_euclid(3) as usize];
            let year = 25 + releases_since.div_euclid(3);
            json!({"label": format!("{season} '{year:02}"), "url": format!("/services/data/v{major}.0"), "version": format!("{major}.0")})
        })
        .collect();
    Value::Array(entries)
}

fn describe(state: &State, object: &str) -> Result<Value, ApiError> {
    if !state.is_object(object) {
        return Err(ApiError::not_found());
    }
    let name = &state.config.object;
    let label = name.trim_end_matches("__c").replace('_', " ");
    Ok(json!({
        "name": name,
        "label": label,
        "labelPlural": format!("{label}s"),
        "keyPrefix": &store::RECORD_ID_PREFIX[..3],
        "custom": true,
        "createable": true,
        "updateable": true,
        "deletable": true,
        "queryable": true,
        "fields": state.schema.iter().map(|f| f.describe()).collect::<Vec<_>>(),
    }))
}

fn limits(state: &State) -> Value {
    json!({"DailyApiRequests": {"Max": state.api_max, "Remaining": state.api_max.saturating_sub(state.api_used)}})
}

fn add_usage_header(response: &mut Response, state: &State) {
    let usage = format!("api-usage={}/{}", state.api_used, state.api_max);
    response.headers_mut().insert(
        "sforce-limit-info",
        HeaderValue::from_str(&usage).expect("digits and '/' are a valid header"),
    );
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    optional_json_response(status, Some(body.clone()))
}

/// A JSON answer, or an empty one (204) when `body` is None.
fn optional_json_response(status: StatusCode, body: Option<Value>) -> Response {
    let mut response = Response::new(body.map_or_else(Body::empty, |b| Body::from(b.to_string())));
    *response.status_mut() = status;
    if response.status() != StatusCode::NO_CONTENT {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    }
    response
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.status, &error.body())
}

fn text_response(status: StatusCode, text: impl Into<String>) -> Response {
    let mut response = Response::new(Body::from(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    query.map(parse_form).unwrap_or_default()
}

/// `a=1&b=2` with `+` as space and `%XX` escapes; later duplicates win.
fn parse_form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ----- admin routes -----

#[derive(Deserialize)]
struct RecordErrorRequest {
    external_id: String,
    code: String,
    message: String,
    times: Option<u32>,
}

#[derive(Deserialize)]
struct FailNextRequest {
    endpoint: String,
    status: u16,
    body: Value,
    times: u32,
}

/// `/_sim/...`: controls and views for the standalone demo.
fn admin(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Response {
    match (method.as_str(), path) {
        ("GET", "records") => {
            let rows: Vec<Value> = shared
                .state()
                .sorted_rows()
                .iter()
                .map(store::row_json)
                .collect();
            json_response(StatusCode::OK, &Value::Array(rows))
        }
        ("GET", "table") => {
            let state = shared.state();
            text_response(
                StatusCode::OK,
                render_table(&state.sorted_rows(), &state.config.external_id_field),
            )
        }
        ("GET", "counts") => json_response(StatusCode::OK, &json!(shared.log.counts())),
        ("POST", "record-errors") => match serde_json::from_slice::<RecordErrorRequest>(body) {
            Ok(r) => {
                shared
                    .state()
                    .inject_record_error(&r.external_id, &r.code, &r.message, r.times);
                optional_json_response(StatusCode::NO_CONTENT, None)
            }
            Err(e) => text_response(
                StatusCode::BAD_REQUEST,
                format!("expected {{external_id, code, message, times?}}: {e}"),
            ),
        },
        ("DELETE", "record-errors") => {
            shared.state().record_errors.clear();
            optional_json_response(StatusCode::NO_CONTENT, None)
        }
        ("POST", "fail-next") => match serde_json::from_slice::<FailNextRequest>(body) {
            Ok(r) => match StatusCode::from_u16(r.status) {
                Ok(status) => {
                    shared.state().push_fault(
                        &r.endpoint,
                        Fault::Respond {
                            status,
                            body: r.body,
                        },
                        r.times,
                    );
                    optional_json_response(StatusCode::NO_CONTENT, None)
                }
                Err(_) => text_response(
                    StatusCode::BAD_REQUEST,
                    format!("{} is not an HTTP status", r.status),
                ),
            },
            Err(e) => text_response(
                StatusCode::BAD_REQUEST,
                format!("expected {{endpoint, status, body, times}}: {e}"),
            ),
        },
        _ => text_response(StatusCode::NOT_FOUND, "unknown admin route"),
    }
}

/// The rows as a padded plain-text table, one line per row.
fn render_table(rows: &[SfRow], external_id_field: &str) -> String {
    let text = |row: &SfRow, field: &str| match row.fields.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        _ => String::new(),
    };
    let header = [
        "External Id",
        "Name",
        "Category",
        "Active",
        "Archived",
        "NeedsReview",
        "LastModifiedCXone",
    ];
    let fields = [
        external_id_field,
        "Name",
        "Category__c",
        "IsActive__c",
        "ArchivedDate__c",
        "NeedsReview__c",
        "LastModifiedCXone__c",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    lines.extend(
        rows.iter()
            .map(|row| fields.iter().map(|f| text(row, f)).collect()),
    );
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_release_calendar() {
        let list = versions();
        let label = |v: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|e| e["version"] == v)
                .unwrap()["label"]
                .clone()
        };
        assert_eq!(label("62.0"), "Winter '25");
        assert_eq!(label("58.0"), "Summer '23");
        assert_eq!(label("31.0"), "Summer '14");
    }

    #[test]
    fn data_paths_are_split_and_decoded() {
        let (version, segments) =
            split_data_path("/services/data/v62.0/sobjects/Disposition__c/Ext__c/a%2Fb").unwrap();
        assert_eq!(version.map(|v| v.to_string()).as_deref(), Some("v62.0"));
        assert_eq!(segments, ["sobjects", "Disposition__c", "Ext__c", "a/b"]);
        assert_eq!(
            split_data_path("/services/data/v99.0/limits").unwrap().0,
            None
        );
        assert_eq!(
            split_data_path("/services/data/62.0/limits").unwrap().0,
            None
        );
        assert!(split_data_path("/services/apexrest/x").is_none());
    }

    #[test]
    fn logged_token_requests_hide_the_secret() {
        let logged = redact_client_secret(
            "grant_type=client_credentials&client_id=id&client_secret=s3cr%2Bt",
        );
        assert_eq!(
            logged,
            "grant_type=client_credentials&client_id=id&client_secret=<redacted>"
        );
    }

    #[test]
    fn forms_decode_plus_and_escapes() {
        let form = parse_form("grant_type=client_credentials&client_secret=a%2Bb+c&x");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_secret"], "a+b c");
        assert_eq!(form["x"], "");
    }
}
