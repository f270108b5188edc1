//! HTTP: the org's routes. Every API request is logged under its endpoint's name (the names
//! faults and latency target), then answered, a queued fault first. Data calls pass the checks
//! every REST call meets on the platform, in its order: session, then API allowance, then the
//! resource. Also the OAuth token endpoint, the versions list and the `/_sim/` admin routes.

use super::errors::ApiError;
use super::{Fault, SfRow, Shared, State, soql, store, writes};
use crate::server::RecordedRequest;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri, Path, Query, Request, State as AxumState};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{MethodRouter, any, get, patch, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tower::ServiceExt;

/// Content type of every JSON answer, as the platform sends it.
const JSON: &str = "application/json;charset=UTF-8";
/// Newest API version the simulated org serves.
const NEWEST_VERSION: u32 = 66;
/// Oldest API version still served.
const OLDEST_VERSION: u32 = 31;
/// The simulated org and integration user, in the 15-character form tokens embed.
const ORG_ID: &str = "00D5g000004SiMo";
const USER_ID: &str = "0055g000004SiMu";

/// The handlers' view of the org.
type Org = AxumState<Arc<Shared>>;

/// Query parameters as a map rather than a struct: a repeated parameter takes its last value,
/// where a struct would refuse the whole query.
type QueryParams = HashMap<String, String>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .merge(open_routes())
        .merge(data_routes())
        .merge(admin_routes())
        .fallback(not_found)
        .with_state(shared);
    // A path is made canonical before it is routed, so the rewrite wraps the whole router; the
    // outer router keeps the URI as sent, as `OriginalUri`, for the log.
    Router::new().fallback_service(api.map_request(canonical_data_path))
}

/// The token endpoint and the versions list: no session, no usage count.
fn open_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get_only(versions, not_found))
        .route("/services/data/", get_only(versions, not_found))
        .method_not_allowed_fallback(not_found)
}

/// `/services/data/vNN.N/...`. Whatever else is asked under a version, with any method, is a data
/// call too: it needs a session and costs an API call, then gets 404.
fn data_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            patch(upsert),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(create).delete(delete_collection),
        )
        .route("/services/data/{version}/composite", post(composite))
        .route(
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            patch(upsert_single),
        )
        // `describe` shares the record route: a PATCH or DELETE of `.../describe` is about a
        // record whose Id is "describe".
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get_only(describe, data_not_found)
                .patch(update_by_id)
                .delete(delete_one),
        )
        .route(
            "/services/data/{version}/query",
            get_only(query, data_not_found),
        )
        .route(
            "/services/data/{version}/query/{locator}",
            get_only(query_more, data_not_found),
        )
        .route(
            "/services/data/{version}/limits",
            get_only(limits, data_not_found),
        )
        .route("/services/data/{version}", any(data_not_found))
        .route("/services/data/{version}/{*rest}", any(data_not_found))
        .method_not_allowed_fallback(data_not_found)
}

/// `/_sim/...`: views and controls for the standalone demo. Not API calls: not logged.
fn admin_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_sim/records",
            get_only(admin_records, unknown_admin_route),
        )
        .route("/_sim/table", get_only(admin_table, unknown_admin_route))
        .route("/_sim/counts", get_only(admin_counts, unknown_admin_route))
        .route(
            "/_sim/record-errors",
            post(admin_inject_record_error).delete(admin_clear_record_errors),
        )
        .route("/_sim/fail-next", post(admin_fail_next))
        .route("/_sim/", any(unknown_admin_route))
        .route("/_sim/{*rest}", any(unknown_admin_route))
        .method_not_allowed_fallback(unknown_admin_route)
}

/// `get(handler)` without the HEAD axum adds to it: this org serves no HEAD, so HEAD gets
/// `refusal`, the route's answer to every method it lacks.
fn get_only<H, T, R, U>(handler: H, refusal: R) -> MethodRouter<Arc<Shared>>
where
    H: Handler<T, Arc<Shared>>,
    R: Handler<U, Arc<Shared>>,
    T: 'static,
    U: 'static,
{
    get(handler).head(refusal)
}

/// Data paths are read segment by segment: empty segments (a doubled or trailing `/`) are
/// skipped and escapes decoded, so `/services/data/v62.0//limits/` is the limits resource. The
/// router matches the path as written, so this rewrites a data path to that canonical form
/// first, each segment encoded again so that an escaped `/` stays inside its segment.
fn canonical_data_path(mut request: Request) -> Request {
    let Some(segments) = data_segments(request.uri().path()) else {
        return request;
    };
    let mut path_and_query = String::from("/services/data");
    for segment in &segments {
        path_and_query.push('/');
        path_and_query.extend(utf8_percent_encode(segment, NON_ALPHANUMERIC));
    }
    if let Some(query) = request.uri().query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .expect("escaped segments and a query that parsed before make a valid path"),
    );
    *request.uri_mut() = Uri::from_parts(parts).expect("only the path changed");
    request
}

/// The decoded, non-empty segments of a path under `/services/data/`, version first. None when
/// the path names nothing there.
fn data_segments(path: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = path
        .strip_prefix("/services/data/")?
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    (!segments.is_empty()).then_some(segments)
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

    /// The version a data route names, or the platform's 404 for one it does not serve.
    fn served(segment: &str) -> Result<Self, ApiError> {
        Self::parse(segment).ok_or_else(ApiError::not_found)
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
/// its percent-decoded segments, as a Composite subrequest's URL names its resource. None when
/// the path is not under `/services/data/vNN.N`.
pub(crate) fn split_data_path(path: &str) -> Option<(Option<ApiVersion>, Vec<String>)> {
    let mut segments = data_segments(path)?.into_iter();
    let version = segments.next()?;
    Some((ApiVersion::parse(&version), segments.collect()))
}

/// A request as the org reads it: the body whole, and the URI as the client sent it.
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Received {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(sent)) => sent.clone(),
            None => parts.uri,
        };
        let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|_| {
            text_response(StatusCode::BAD_REQUEST, "could not read the request body")
        })?;
        Ok(Self {
            method: parts.method,
            uri,
            headers: parts.headers,
            body,
        })
    }
}

impl Received {
    /// A call outside the data API: the token endpoint, the versions list, unknown paths.
    async fn open(
        self,
        shared: &Shared,
        endpoint: &str,
        answer: impl FnOnce(&mut State, &Received) -> Response,
    ) -> Response {
        self.answer(shared, endpoint, false, answer).await
    }

    /// A data call: session, allowance and usage count, then `resource`. Every answer, a
    /// fault's too, carries the usage header.
    async fn data(
        self,
        shared: &Shared,
        endpoint: &str,
        resource: impl FnOnce(&mut State, &Received) -> Result<Response, ApiError>,
    ) -> Response {
        self.answer(shared, endpoint, true, |state, request| {
            data_call(state, request, resource)
        })
        .await
    }

    /// Logs the request under `endpoint`, answers it (with the endpoint's queued fault, if any),
    /// then waits out the endpoint's latency: the request is processed first, so a client that
    /// times out has still changed the org.
    async fn answer(
        self,
        shared: &Shared,
        endpoint: &str,
        is_data: bool,
        answer: impl FnOnce(&mut State, &Received) -> Response,
    ) -> Response {
        shared.log.record(self.recorded(endpoint));
        let (answer, delay) = {
            let mut state = shared.state();
            let answer = match state.take_fault(endpoint) {
                Some(Fault::Reset) => None,
                Some(Fault::Respond { status, body }) => Some(json_response(status, &body)),
                None => Some(answer(&mut state, &self)),
            };
            let answer = answer.map(|mut response| {
                if is_data {
                    add_usage_header(&mut response, &state);
                }
                response
            });
            (answer, state.latency.get(endpoint).copied())
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

    /// The log's copy of the request. Token requests keep their body with the client secret's
    /// value replaced, so a log printed by a failing test never shows it.
    fn recorded(&self, endpoint: &str) -> RecordedRequest {
        let body = String::from_utf8(self.body.to_vec())
            .ok()
            .filter(|text| !text.is_empty())
            .map(|text| match endpoint {
                "token" => redact_client_secret(&text),
                _ => text,
            });
        RecordedRequest {
            endpoint: endpoint.to_string(),
            method: self.method.to_string(),
            uri: self
                .uri
                .path_and_query()
                .map_or_else(|| self.uri.path().to_string(), ToString::to_string),
            body,
        }
    }

    /// A body of a JSON write must be declared as JSON; an absent Content-Type is read as JSON.
    fn require_json(&self) -> Result<(), ApiError> {
        match self
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
}

/// Session check, allowance check, usage count, then the resource itself.
fn data_call(
    state: &mut State,
    request: &Received,
    resource: impl FnOnce(&mut State, &Received) -> Result<Response, ApiError>,
) -> Response {
    if !session_is_valid(state, &request.headers) {
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
    resource(state, request).unwrap_or_else(|error| error_response(&error))
}

/// `Authorization: Bearer <token>` (the platform also takes the older `OAuth <token>`) naming a
/// token this org issued and has not expired.
fn session_is_valid(state: &mut State, headers: &HeaderMap) -> bool {
    let Some(token) = headers
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

// ----- handlers: each names the endpoint its requests are logged under -----

async fn token(AxumState(shared): Org, request: Received) -> Response {
    request.open(&shared, "token", issue_token).await
}

async fn versions(AxumState(shared): Org, request: Received) -> Response {
    request
        .open(&shared, "versions", |_, _| {
            json_response(StatusCode::OK, &versions_list())
        })
        .await
}

/// Anything outside the data API that no route serves.
async fn not_found(AxumState(shared): Org, request: Received) -> Response {
    request
        .open(&shared, "other", |_, _| {
            error_response(&ApiError::not_found())
        })
        .await
}

/// Anything under a data version that no route serves.
async fn data_not_found(AxumState(shared): Org, request: Received) -> Response {
    request
        .data(&shared, "other", |_, _| Err(ApiError::not_found()))
        .await
}

async fn upsert(
    AxumState(shared): Org,
    Path((version, object, field)): Path<(String, String, String)>,
    request: Received,
) -> Response {
    request
        .data(&shared, "upsert", |state, request| {
            let version = ApiVersion::served(&version)?;
            request.require_json()?;
            let results =
                writes::upsert_collection(state, version, &object, &field, &request.body)?;
            Ok(json_response(StatusCode::OK, &results))
        })
        .await
}

async fn create(
    AxumState(shared): Org,
    Path(version): Path<String>,
    request: Received,
) -> Response {
    request
        .data(&shared, "create", |state, request| {
            ApiVersion::served(&version)?;
            request.require_json()?;
            let results = writes::create_collection(state, &request.body)?;
            Ok(json_response(StatusCode::OK, &results))
        })
        .await
}

async fn delete_collection(
    AxumState(shared): Org,
    Path(version): Path<String>,
    Query(params): Query<QueryParams>,
    request: Received,
) -> Response {
    request
        .data(&shared, "delete", |state, _| {
            ApiVersion::served(&version)?;
            let results = writes::delete_collection(state, &params)?;
            Ok(json_response(StatusCode::OK, &results))
        })
        .await
}

async fn upsert_single(
    AxumState(shared): Org,
    Path((version, object, field, value)): Path<(String, String, String, String)>,
    request: Received,
) -> Response {
    request
        .data(&shared, "upsert_single", |state, request| {
            let version = ApiVersion::served(&version)?;
            request.require_json()?;
            let body = writes::parse_json(&request.body)?;
            let (status, answer) =
                writes::upsert_single(state, version, &object, &field, &value, &body)?;
            Ok(optional_json_response(status, answer))
        })
        .await
}

async fn update_by_id(
    AxumState(shared): Org,
    Path((version, object, id)): Path<(String, String, String)>,
    request: Received,
) -> Response {
    request
        .data(&shared, "upsert_single", |state, request| {
            ApiVersion::served(&version)?;
            request.require_json()?;
            writes::update_by_id(state, &object, &id, &writes::parse_json(&request.body)?)?;
            Ok(optional_json_response(StatusCode::NO_CONTENT, None))
        })
        .await
}

async fn delete_one(
    AxumState(shared): Org,
    Path((version, object, id)): Path<(String, String, String)>,
    request: Received,
) -> Response {
    request
        .data(&shared, "delete", |state, _| {
            ApiVersion::served(&version)?;
            writes::delete_one(state, &object, &id)?;
            Ok(optional_json_response(StatusCode::NO_CONTENT, None))
        })
        .await
}

async fn composite(
    AxumState(shared): Org,
    Path(version): Path<String>,
    request: Received,
) -> Response {
    request
        .data(&shared, "composite", |state, request| {
            ApiVersion::served(&version)?;
            request.require_json()?;
            let results = writes::composite(state, &request.body)?;
            Ok(json_response(StatusCode::OK, &results))
        })
        .await
}

/// GET on the record route: `describe` is the one resource there.
async fn describe(
    AxumState(shared): Org,
    Path((version, object, resource)): Path<(String, String, String)>,
    request: Received,
) -> Response {
    if resource != "describe" {
        return data_not_found(AxumState(shared), request).await;
    }
    request
        .data(&shared, "describe", |state, _| {
            ApiVersion::served(&version)?;
            Ok(json_response(
                StatusCode::OK,
                &describe_object(state, &object)?,
            ))
        })
        .await
}

async fn query(
    AxumState(shared): Org,
    Path(version): Path<String>,
    Query(params): Query<QueryParams>,
    request: Received,
) -> Response {
    request
        .data(&shared, "query", |state, _| {
            let version = ApiVersion::served(&version)?;
            let page = soql::query(state, version, params.get("q").map(String::as_str))?;
            Ok(json_response(StatusCode::OK, &page))
        })
        .await
}

async fn query_more(
    AxumState(shared): Org,
    Path((version, locator)): Path<(String, String)>,
    request: Received,
) -> Response {
    request
        .data(&shared, "query", |state, _| {
            let version = ApiVersion::served(&version)?;
            let page = soql::query_more(state, version, &locator)?;
            Ok(json_response(StatusCode::OK, &page))
        })
        .await
}

async fn limits(
    AxumState(shared): Org,
    Path(version): Path<String>,
    request: Received,
) -> Response {
    request
        .data(&shared, "limits", |state, _| {
            ApiVersion::served(&version)?;
            Ok(json_response(StatusCode::OK, &limits_body(state)))
        })
        .await
}

// ----- answers -----

/// `POST /services/oauth2/token` with the client-credentials grant.
fn issue_token(state: &mut State, request: &Received) -> Response {
    let oauth_error = |error: &str, description: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": error, "error_description": description}),
        )
    };
    let host = request
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
    let is_form = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        token_form(&request.body)
    } else {
        HashMap::new()
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let (client_id, client_secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => basic_credentials(&request.headers).unwrap_or_default(),
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

/// The token request's form; a repeated field takes its last value. Decoded here rather than by
/// the `Form` extractor: the raw body is logged and a fault answers before the body is looked
/// at, and a body of another type is read as an empty form, not refused.
fn token_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(String::from_utf8_lossy(body).as_bytes())
        .into_owned()
        .collect()
}

/// A token request body as the log keeps it: the client secret's value is replaced, so a log
/// printed by a failing test never shows it.
fn redact_client_secret(form: &str) -> String {
    form.split('&')
        .map(|pair| match pair.split_once('=') {
            // `key` is one form-encoded name, so it parses as a single pair.
            Some((key, _))
                if form_urlencoded::parse(key.as_bytes())
                    .any(|(name, _)| name == "client_secret") =>
            {
                format!("{key}=<redacted>")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `client_id:client_secret` from `Authorization: Basic ...`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The versions list: the one data URL that needs no session and counts no usage.
fn versions_list() -> Value {
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

fn describe_object(state: &State, object: &str) -> Result<Value, ApiError> {
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

fn limits_body(state: &State) -> Value {
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

async fn admin_records(AxumState(shared): Org) -> Response {
    let rows: Vec<Value> = shared
        .state()
        .sorted_rows()
        .iter()
        .map(store::row_json)
        .collect();
    json_response(StatusCode::OK, &Value::Array(rows))
}

async fn admin_table(AxumState(shared): Org) -> Response {
    let state = shared.state();
    text_response(
        StatusCode::OK,
        render_table(&state.sorted_rows(), &state.config.external_id_field),
    )
}

async fn admin_counts(AxumState(shared): Org) -> Response {
    json_response(StatusCode::OK, &json!(shared.log.counts()))
}

/// `{external_id, code, message, times?}`, read whatever the content type says.
async fn admin_inject_record_error(AxumState(shared): Org, request: Received) -> Response {
    match serde_json::from_slice::<RecordErrorRequest>(&request.body) {
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
    }
}

async fn admin_clear_record_errors(AxumState(shared): Org) -> Response {
    shared.state().record_errors.clear();
    optional_json_response(StatusCode::NO_CONTENT, None)
}

/// `{endpoint, status, body, times}`, read whatever the content type says.
async fn admin_fail_next(AxumState(shared): Org, request: Received) -> Response {
    let r = match serde_json::from_slice::<FailNextRequest>(&request.body) {
        Ok(r) => r,
        Err(e) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("expected {{endpoint, status, body, times}}: {e}"),
            );
        }
    };
    match StatusCode::from_u16(r.status) {
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
    }
}

async fn unknown_admin_route() -> Response {
    text_response(StatusCode::NOT_FOUND, "unknown admin route")
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
        let list = versions_list();
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
        let form = token_form(b"grant_type=client_credentials&client_secret=a%2Bb+c&x");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_secret"], "a+b c");
        assert_eq!(form["x"], "");
    }
}
