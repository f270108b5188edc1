//! The CXone dispositions API as the implementation guide describes it: a client-credentials
//! token endpoint and a page-numbered, `last_modified_date`-filtered list of snake_case records.
//!
//! # Structure
//! The simulator is split so that another API shape can be served from the same data later:
//! - `Store`: the dispositions themselves (JSON records in the guide's shape), with the
//!   timestamp rules every shape needs: edits get strictly increasing `last_modified_date`s.
//! - `Tokens`, `Faults` and per-endpoint latency: the behaviour around a request.
//! - `guide_api`: the router for the guide's shape (`/oauth/token`, `/api/v2/dispositions`).
//!   The real Admin API (password grant, discovery, skip/top paging, integer ids) would be a
//!   second router reading the same `Store`, projecting each record to its own field names;
//!   `Store` keeps a stable insertion number per record that such a shape can use as its id.
//! - `admin_api`: unauthenticated `/_sim/` routes for seeding and faults from outside the
//!   process (the demo binary), which the request log does not count.

use crate::server::{self, RecordedRequest, RequestLog};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The categories seeded codes cycle through, in order: exactly the values a fresh simulated
/// org's picklist allows, so that a seeded sync maps every category.
pub const CATEGORIES: [&str; 8] = crate::salesforce::DEFAULT_CATEGORIES;

/// The endpoints faults and latency can target; API requests are logged under these names
/// (anything else under `other`).
const ENDPOINTS: [&str; 3] = ["token", "list", "get"];

/// The one scope the list and get endpoints need; `disposition:edit` is also granted on request.
const VIEW_SCOPE: &str = "disposition:view";
const KNOWN_SCOPES: [&str; 2] = [VIEW_SCOPE, "disposition:edit"];

/// Most records `POST /_sim/seed` creates in one call, so a typo cannot stall the simulator.
const MAX_ADMIN_SEED: usize = 100_000;

/// How a list response wraps its records. The guide does not say, so clients must cope with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Envelope {
    /// `[{...}, ...]`
    BareArray,
    /// `{"dispositions": [...], "page": p, "pageSize": n, "totalRecords": t}`
    #[default]
    Object,
}

/// Credentials and knobs of one simulated tenant.
#[derive(Clone)]
pub struct CxoneConfig {
    pub client_id: String,
    pub client_secret: String,
    /// How long an access token stays valid; `expires_in` reports it in whole seconds.
    pub token_ttl: Duration,
    pub envelope: Envelope,
    /// Largest `pageSize` the list accepts; larger values get 400.
    pub max_page_size: u32,
}

impl Default for CxoneConfig {
    fn default() -> Self {
        CxoneConfig {
            client_id: "cx-client".into(),
            client_secret: "cx-secret".into(),
            token_ttl: Duration::from_secs(3600),
            envelope: Envelope::Object,
            max_page_size: 1000,
        }
    }
}

/// A scripted failure for one endpoint: after `skip` requests pass, the next `times` requests
/// get `status` (with `body`, or a default error body) and `Retry-After` when set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub status: u16,
    /// Seconds, sent as the `Retry-After` header.
    pub retry_after: Option<u64>,
    pub body: Option<Value>,
    /// Let this many requests to the endpoint pass first.
    pub skip: u32,
    /// Then fail this many.
    pub times: u32,
}

/// A running CXone simulator. Dropping it stops the server.
pub struct CxoneSim {
    shared: Arc<Shared>,
    running: server::Running,
}

impl CxoneSim {
    /// Starts on a free loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(config: CxoneConfig) -> CxoneSim {
        CxoneSim::start_on(config, 0)
            .await
            .expect("bind the CXone simulator to a free loopback port")
    }

    /// Starts on `127.0.0.1:port` (0 = a free port).
    pub async fn start_on(config: CxoneConfig, port: u16) -> std::io::Result<CxoneSim> {
        let shared = Arc::new(Shared::new(config));
        let router = guide_api(shared.clone()).merge(admin_api(shared.clone()));
        let running = server::serve(router, port).await?;
        Ok(CxoneSim { shared, running })
    }

    /// Base URL: the token endpoint is `{url}/oauth/token`, the API `{url}/api/v2/...`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// API requests by endpoint: `token`, `list`, `get`, `other` (admin routes are not logged).
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// Adds `n` valid codes and returns their ids in list order. Codes are numbered across calls
    /// ("Code 001", "Code 002", ...), and ids derive from that number, so the same sequence of
    /// calls always yields the same ids. Their `last_modified_date`s are 1 ms apart, end no
    /// later than now and start after every date already in the store, so a delta sync sees
    /// them as new. When the store's newest date is too close to now for that, this waits
    /// (at most `n` ms) for the clock to catch up.
    pub fn seed(&self, n: usize) -> Vec<String> {
        loop {
            // Bound first so the store is unlocked while waiting.
            let attempt = self.shared.store().try_seed(n, now_ms());
            match attempt {
                Ok(ids) => return ids,
                Err(wait) => std::thread::sleep(wait),
            }
        }
    }

    /// Inserts or replaces the record with this `"id"`. A missing `last_modified_date` is set to
    /// a fresh time; a missing `created_date` keeps the replaced record's, or takes that time.
    ///
    /// # Panics
    /// If `record` is not an object with a string `"id"` (use [`CxoneSim::insert_raw`] for that).
    pub fn upsert(&self, record: Value) {
        if let Err(reason) = self.shared.store().upsert(record) {
            panic!("CxoneSim::upsert: {reason}");
        }
    }

    /// Sets `name` and bumps `last_modified_date`. Panics if `id` is unknown.
    pub fn rename(&self, id: &str, name: &str) {
        self.edit(id, "name", json!(name));
    }

    /// Sets `is_active` to false and bumps `last_modified_date`. Panics if `id` is unknown.
    pub fn deactivate(&self, id: &str) {
        self.edit(id, "is_active", json!(false));
    }

    /// Sets `is_active` to true and bumps `last_modified_date`. Panics if `id` is unknown.
    pub fn reactivate(&self, id: &str) {
        self.edit(id, "is_active", json!(true));
    }

    /// Sets `category` and bumps `last_modified_date`. Panics if `id` is unknown.
    pub fn set_category(&self, id: &str, category: &str) {
        self.edit(id, "category", json!(category));
    }

    /// Sets any field and bumps `last_modified_date`, except when the field *is*
    /// `last_modified_date`: then the given value stands, so tests can place a record in time.
    /// Panics if `id` is unknown.
    pub fn set_field(&self, id: &str, key: &str, value: Value) {
        self.edit(id, key, value);
    }

    /// Stores `raw` exactly as given and serves it verbatim: records without an id, with a bad
    /// date, or with wrong types. A raw record with a string `"id"` replaces the one with that id.
    pub fn insert_raw(&self, raw: Value) {
        self.shared.store().insert_raw(raw);
    }

    /// Deletes the record; false if there was none.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.store().remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        self.shared.store().get(id)
    }

    /// Every record, in list order.
    pub fn all(&self) -> Vec<Value> {
        self.shared.store().all()
    }

    /// Queues a fault for `endpoint` (`token`, `list` or `get`). Queued faults run one after
    /// another: the next one starts counting its `skip` once the previous one has failed its
    /// `times` requests.
    ///
    /// # Panics
    /// On an unknown endpoint or an invalid status code, which would otherwise never fire.
    pub fn inject(&self, endpoint: &str, fault: Fault) {
        if let Err(reason) = self.shared.inject(endpoint, fault) {
            panic!("CxoneSim::inject: {reason}");
        }
    }

    /// Delays every answer from `endpoint` (`token`, `list` or `get`) by `delay`; zero removes it.
    ///
    /// # Panics
    /// On an unknown endpoint.
    pub fn set_latency(&self, endpoint: &str, delay: Duration) {
        assert!(
            ENDPOINTS.contains(&endpoint),
            "CxoneSim::set_latency: unknown endpoint {endpoint:?}"
        );
        lock(&self.shared.latency).insert(endpoint.to_owned(), delay);
    }

    /// Every access token issued so far, expired ones included (in no particular order): tests
    /// look for them in what the client logged.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).expiry.keys().cloned().collect()
    }

    /// Expires every token issued so far: the next API call with one gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    pub fn set_envelope(&self, envelope: Envelope) {
        *lock(&self.shared.envelope) = envelope;
    }

    fn edit(&self, id: &str, key: &str, value: Value) {
        if !self.shared.store().edit(id, key, value) {
            panic!("CxoneSim: no disposition with id {id:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

/// Everything the routers and the handle share.
struct Shared {
    client_id: String,
    client_secret: String,
    token_ttl: Duration,
    max_page_size: u32,
    envelope: Mutex<Envelope>,
    store: Mutex<Store>,
    tokens: Mutex<Tokens>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    latency: Mutex<HashMap<String, Duration>>,
    log: RequestLog,
}

impl Shared {
    fn new(config: CxoneConfig) -> Shared {
        Shared {
            client_id: config.client_id,
            client_secret: config.client_secret,
            token_ttl: config.token_ttl,
            max_page_size: config.max_page_size,
            envelope: Mutex::new(config.envelope),
            store: Mutex::new(Store::default()),
            tokens: Mutex::new(Tokens::default()),
            faults: Mutex::new(HashMap::new()),
            latency: Mutex::new(HashMap::new()),
            log: RequestLog::default(),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn inject(&self, endpoint: &str, fault: Fault) -> Result<(), String> {
        if !ENDPOINTS.contains(&endpoint) {
            return Err(format!(
                "unknown endpoint {endpoint:?} (expected one of {ENDPOINTS:?})"
            ));
        }
        if StatusCode::from_u16(fault.status).is_err() {
            return Err(format!("invalid status {}", fault.status));
        }
        lock(&self.faults)
            .entry(endpoint.to_owned())
            .or_default()
            .push_back(fault);
        Ok(())
    }

    /// Counts one request against `endpoint`'s fault queue; returns the fault if it fails.
    fn take_fault(&self, endpoint: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let queue = faults.get_mut(endpoint)?;
        loop {
            let front = queue.front_mut()?;
            if front.times == 0 {
                queue.pop_front();
            } else if front.skip > 0 {
                front.skip -= 1;
                return None;
            } else {
                front.times -= 1;
                let fault = front.clone();
                if front.times == 0 {
                    queue.pop_front();
                }
                return Some(fault);
            }
        }
    }
}

/// A poisoned lock only means another test thread panicked mid-update; the data is still usable
/// for the assertions that follow, so carry on rather than cascade the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// One stored record plus its insertion number, which is stable across replacements.
struct Entry {
    seq: u64,
    record: Value,
}

/// The dispositions of one tenant, in the guide's record shape.
#[derive(Default)]
struct Store {
    entries: Vec<Entry>,
    next_seq: u64,
    /// How many codes `seed` has numbered so far.
    seeded: usize,
    /// The newest `last_modified_date` ever stored. Fresh times go after it, so every edit sorts
    /// after everything a client may already have seen, even after removals.
    newest: Option<DateTime<Utc>>,
}

impl Store {
    /// max(now, newest + 1 ms): strictly after every stored date, and never in the past.
    fn fresh_time(&mut self) -> DateTime<Utc> {
        let now = now_ms();
        let at = match self.newest {
            Some(newest) if newest + TimeDelta::milliseconds(1) > now => {
                newest + TimeDelta::milliseconds(1)
            }
            _ => now,
        };
        self.newest = Some(at);
        at
    }

    fn note_date(&mut self, date: Option<DateTime<Utc>>) {
        if let Some(date) = date {
            self.newest = Some(self.newest.map_or(date, |newest| newest.max(date)));
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.record.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Stores `record`, replacing the entry with the same string id (keeping its number).
    fn put(&mut self, record: Value) {
        self.note_date(modified_at(&record));
        let existing = record
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| self.position(id));
        match existing {
            Some(i) => self.entries[i].record = record,
            None => {
                self.entries.push(Entry {
                    seq: self.next_seq,
                    record,
                });
                self.next_seq += 1;
            }
        }
    }

    /// Seeds `n` codes ending at or before `now`, or says how long to wait until that is
    /// possible without going back past the newest stored date.
    fn try_seed(&mut self, n: usize, now: DateTime<Utc>) -> Result<Vec<String>, Duration> {
        let span = TimeDelta::milliseconds(n as i64);
        // The first date when the batch ends exactly at `now`.
        let mut first = now - span + TimeDelta::milliseconds(1);
        if let Some(newest) = self.newest
            && first <= newest
        {
            first = newest + TimeDelta::milliseconds(1);
            let last = first + span - TimeDelta::milliseconds(1);
            if n > 0 && last > now {
                return Err((last - now).to_std().unwrap_or_default());
            }
        }
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let number = self.seeded + i + 1;
            let id = seeded_id(number);
            let modified = first + TimeDelta::milliseconds(i as i64);
            self.put(json!({
                "id": id,
                "name": format!("Code {number:03}"),
                "description": format!("Seeded disposition code {number:03}"),
                "category": CATEGORIES[(number - 1) % CATEGORIES.len()],
                "is_active": true,
                "last_modified_date": timestamp(modified),
                "created_date": timestamp(modified - TimeDelta::days(30)),
            }));
            ids.push(id);
        }
        self.seeded += n;
        Ok(ids)
    }

    /// Returns the record's id.
    fn upsert(&mut self, mut record: Value) -> Result<String, &'static str> {
        let Some(id) = record.get("id").and_then(Value::as_str).map(str::to_owned) else {
            return Err("the record needs a string \"id\"");
        };
        let previous_created = self
            .position(&id)
            .and_then(|i| self.entries[i].record.get("created_date").cloned());
        let modified = match record.get("last_modified_date") {
            Some(date) => date.clone(),
            None => json!(timestamp(self.fresh_time())),
        };
        if record.get("created_date").is_none() {
            record["created_date"] = previous_created.unwrap_or_else(|| modified.clone());
        }
        record["last_modified_date"] = modified;
        self.put(record);
        Ok(id)
    }

    /// Sets `key` and bumps the timestamp (see `CxoneSim::set_field`); false if `id` is unknown.
    fn edit(&mut self, id: &str, key: &str, value: Value) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        // Records found by id are objects, so indexing by key inserts rather than panics.
        let modified = if key == "last_modified_date" {
            value
        } else {
            self.entries[i].record[key] = value;
            json!(timestamp(self.fresh_time()))
        };
        self.entries[i].record["last_modified_date"] = modified;
        self.note_date(modified_at(&self.entries[i].record));
        true
    }

    fn insert_raw(&mut self, raw: Value) {
        self.put(raw);
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        self.entries.remove(i);
        true
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.position(id).map(|i| self.entries[i].record.clone())
    }

    fn all(&self) -> Vec<Value> {
        self.modified_since(None)
    }

    /// Records modified at or after `since` (all when `None`), sorted by (date, id). Records whose
    /// date cannot be read are always included, last: the simulator cannot filter them, and a
    /// client has to cope with them either way.
    fn modified_since(&self, since: Option<DateTime<Utc>>) -> Vec<Value> {
        let mut keyed: Vec<_> = self
            .entries
            .iter()
            .map(|e| (modified_at(&e.record), e))
            .filter(|(date, _)| match (date, since) {
                (Some(date), Some(since)) => *date >= since,
                _ => true,
            })
            .collect();
        keyed.sort_by_cached_key(|(date, e)| (date.is_none(), *date, id_key(&e.record), e.seq));
        keyed.into_iter().map(|(_, e)| e.record.clone()).collect()
    }
}

/// The record's `last_modified_date`, if it is a readable RFC 3339 time.
fn modified_at(record: &Value) -> Option<DateTime<Utc>> {
    let text = record.get("last_modified_date")?.as_str()?;
    Some(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc))
}

/// The id as a sort key; raw records may have a non-string id or none.
fn id_key(record: &Value) -> String {
    match record.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A UUID-shaped (version 4) id derived from the seed number, so ids are deterministic but do
/// not sort in seed order: a client that orders by id instead of date would show it.
fn seeded_id(number: usize) -> String {
    // splitmix64: a fixed, well-mixed function of the number.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let high = mix(number as u64);
    let low = mix(high);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// RFC 3339 UTC with milliseconds and `Z`, e.g. `2024-03-15T14:32:00.123Z`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Issued access tokens and when each stops working.
#[derive(Default)]
struct Tokens {
    expiry: HashMap<String, Instant>,
}

impl Tokens {
    fn issue(&mut self, ttl: Duration) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.expiry.insert(token.clone(), Instant::now() + ttl);
        token
    }

    fn is_valid(&self, token: &str) -> bool {
        self.expiry
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    fn expire_all(&mut self) {
        let now = Instant::now();
        for expiry in self.expiry.values_mut() {
            *expiry = now;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The guide's API
// ---------------------------------------------------------------------------------------------

/// `POST /oauth/token`, `GET /api/v2/dispositions`, `GET /api/v2/dispositions/{id}`; anything
/// else is logged as `other` and answered 404 (or 405 for a known path with the wrong method).
fn guide_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v2/dispositions", get(list))
        .route("/api/v2/dispositions/{id}", get(get_one))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(shared)
}

/// Logs the request, applies latency, then any due fault: `Some` is the fault's response.
/// Faults come before authentication, as a gateway's rate limiter would answer.
async fn admit(
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
        json!({"error": code, "error_description": description})
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
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
    let client_ok = credentials
        .as_ref()
        .is_some_and(|(id, secret)| *id == shared.client_id && *secret == shared.client_secret);
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
    let access_token = lock(&shared.tokens).issue(shared.token_ttl);
    let mut response = axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": shared.token_ttl.as_secs(),
        "scope": granted.join(" "),
    }))
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

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
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
    Some((form_value(id), form_value(secret)))
}

/// One form-encoded value: `+` is a space, `%XX` a byte.
fn form_value(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The 401 answer, unless the request carries a live bearer token.
fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
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
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    Some(response)
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
    if let Some(refusal) = admit(&shared, "list", &method, &uri, None).await {
        return refusal;
    }
    if let Some(refusal) = unauthorized(&shared, &headers) {
        return refusal;
    }
    let invalid =
        |description: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description);
    let since = match param(&query, "last_modified_date") {
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
    let page = match param(&query, "page").map(str::parse::<u32>) {
        None => 1,
        Some(Ok(page)) if page >= 1 => page,
        Some(_) => return invalid("page must be a whole number of at least 1".into()),
    };
    let page_size = match param(&query, "pageSize").map(str::parse::<u32>) {
        None => 100,
        Some(Ok(size)) if (1..=shared.max_page_size).contains(&size) => size,
        Some(_) => {
            return invalid(format!(
                "pageSize must be a whole number from 1 to {}",
                shared.max_page_size
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
        Envelope::Object => json!({
            "dispositions": records,
            "page": page,
            "pageSize": page_size,
            "totalRecords": total,
        }),
    };
    axum::Json(body).into_response()
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
    let record = shared.store().get(&id);
    match record {
        Some(record) => axum::Json(record).into_response(),
        None => oauth_error(StatusCode::NOT_FOUND, "not_found", "Invalid dispositionId"),
    }
}

async fn unknown_route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    log_other(&shared, &method, &uri);
    oauth_error(StatusCode::NOT_FOUND, "not_found", "No such endpoint")
}

async fn wrong_method(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    log_other(&shared, &method, &uri);
    oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
}

fn log_other(shared: &Shared, method: &Method, uri: &Uri) {
    shared.log.record(RecordedRequest {
        endpoint: "other".into(),
        method: method.to_string(),
        uri: uri.to_string(),
        body: None,
    });
}

/// The first value of `key`.
fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Admin routes
// ---------------------------------------------------------------------------------------------

/// Unauthenticated `/_sim/` routes mirroring the handle's methods, for driving the simulator
/// from outside the process.
fn admin_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/seed", post(admin_seed))
        .route("/_sim/dispositions", get(admin_all).post(admin_upsert))
        .route("/_sim/dispositions/{id}/rename", post(admin_rename))
        .route("/_sim/dispositions/{id}/deactivate", post(admin_deactivate))
        .route("/_sim/dispositions/{id}/reactivate", post(admin_reactivate))
        .route("/_sim/counts", get(admin_counts))
        .route("/_sim/faults", post(admin_fault))
        .with_state(shared)
}

fn admin_error(status: StatusCode, description: String) -> Response {
    (status, axum::Json(json!({"error": description}))).into_response()
}

#[derive(Deserialize)]
struct SeedRequest {
    count: usize,
}

/// `{"count": n}` → `{"ids": [...]}`.
async fn admin_seed(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<SeedRequest>,
) -> Response {
    if request.count > MAX_ADMIN_SEED {
        return admin_error(
            StatusCode::BAD_REQUEST,
            format!("count must be at most {MAX_ADMIN_SEED}"),
        );
    }
    loop {
        let attempt = shared.store().try_seed(request.count, now_ms());
        match attempt {
            Ok(ids) => return axum::Json(json!({"ids": ids})).into_response(),
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}

async fn admin_all(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.store().all()).into_response()
}

/// One record; answers with it as stored.
async fn admin_upsert(
    State(shared): State<Arc<Shared>>,
    axum::Json(record): axum::Json<Value>,
) -> Response {
    let mut store = shared.store();
    match store.upsert(record) {
        Ok(id) => axum::Json(store.get(&id)).into_response(),
        Err(reason) => admin_error(StatusCode::BAD_REQUEST, reason.into()),
    }
}

#[derive(Deserialize)]
struct RenameRequest {
    name: String,
}

async fn admin_rename(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(request): axum::Json<RenameRequest>,
) -> Response {
    admin_edit(&shared, &id, "name", json!(request.name))
}

async fn admin_deactivate(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    admin_edit(&shared, &id, "is_active", json!(false))
}

async fn admin_reactivate(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    admin_edit(&shared, &id, "is_active", json!(true))
}

/// Applies the edit and answers with the updated record, or 404.
fn admin_edit(shared: &Shared, id: &str, key: &str, value: Value) -> Response {
    let mut store = shared.store();
    if store.edit(id, key, value) {
        axum::Json(store.get(id)).into_response()
    } else {
        admin_error(
            StatusCode::NOT_FOUND,
            format!("no disposition with id {id:?}"),
        )
    }
}

async fn admin_counts(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.log.counts()).into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    endpoint: String,
    #[serde(flatten)]
    fault: Fault,
}

/// `{"endpoint": "list", "status": 429, "retry_after": 60, "skip": 0, "times": 1}`.
async fn admin_fault(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<FaultRequest>,
) -> Response {
    if request.fault.times == 0 {
        return admin_error(StatusCode::BAD_REQUEST, "times must be at least 1".into());
    }
    match shared.inject(&request.endpoint, request.fault) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(reason) => admin_error(StatusCode::BAD_REQUEST, reason),
    }
}
