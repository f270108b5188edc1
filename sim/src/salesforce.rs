//! A Salesforce org on 127.0.0.1, holding one custom object (`Disposition__c` by default), that
//! answers the REST API the way the real platform does: OAuth client credentials, sObject
//! Collections upsert by external ID, single-record upsert, Composite, SOQL query with paging,
//! describe, limits and deletes, with `Sforce-Limit-Info` usage accounting, session expiry and
//! fault injection.
//!
//! Tests drive it through [`SalesforceSim`]: seed rows, inject failures, then assert on the rows
//! and on the [`RequestLog`]. The same server runs in the `disposition-sim` binary, where the
//! `/_sim/` admin routes (no auth, not API calls, not logged) offer the same controls over HTTP.
//!
//! Where the platform's behaviour is undocumented (the error for a body without `records`, for
//! more than 200 records, for a record without `attributes.type`), the simulator picks the
//! strictest plausible answer: a 400 for the whole request.

mod errors;
mod http;
mod schema;
mod soql;
mod store;
mod writes;

pub use schema::{
    DEFAULT_CATEGORIES, FieldSpec, FieldType, default_schema, format_datetime,
    schema_with_external_id,
};

use crate::network::Network;
use crate::server::{self, RequestLog};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use errors::RecordError;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use store::Store;

/// How the simulated org is set up.
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    pub client_id: String,
    pub client_secret: String,
    /// API name of the one custom object the org holds.
    pub object: String,
    /// API name of the object's external ID field.
    pub external_id_field: String,
    /// Daily API allowance reported in `Sforce-Limit-Info`.
    pub api_limit: u64,
    /// Records per query page (at most 2000, as on the platform).
    pub query_page_size: usize,
    /// Lifetime of access tokens; `None` = valid until [`SalesforceSim::expire_tokens`].
    pub token_ttl: Option<Duration>,
    /// A broken server: every query page says more follow, at the same `nextRecordsUrl`.
    pub endless_query: bool,
    /// A broken server: collection results come back in reverse order.
    pub reversed_results: bool,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            client_id: "sf-client".into(),
            client_secret: "sf-secret".into(),
            object: "Disposition__c".into(),
            external_id_field: schema::DEFAULT_EXTERNAL_ID_FIELD.into(),
            api_limit: 100_000,
            query_page_size: 2000,
            token_ttl: None,
            endless_query: false,
            reversed_results: false,
        }
    }
}

/// One row of the custom object. `fields` holds every non-system field (unset ones as null,
/// unset checkboxes as false); datetimes are strings in the API's output form
/// (`2024-05-20T20:49:32.000+0000`). `SystemModstamp` equals `last_modified_date`.
#[derive(Clone, Debug, PartialEq)]
pub struct SfRow {
    pub id: String,
    pub fields: Map<String, Value>,
    pub created_date: DateTime<Utc>,
    pub last_modified_date: DateTime<Utc>,
}

/// A running simulated org. Dropping it stops the server.
pub struct SalesforceSim {
    shared: Arc<Shared>,
    network: Network,
    server: server::Running,
}

/// What the HTTP handlers and the test handle share.
pub(crate) struct Shared {
    state: Mutex<State>,
    log: RequestLog,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not take the whole simulator down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A canned answer queued by `fail_next` / `reset_next`.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    Respond {
        status: StatusCode,
        body: Value,
    },
    /// Close the connection without answering.
    Reset,
}

/// A per-record error queued by `inject_record_error`.
struct InjectedError {
    error: RecordError,
    /// `None` = until cleared.
    remaining: Option<u32>,
}

/// Everything the org knows. Handlers lock it once per request and never across an await.
pub(crate) struct State {
    config: SalesforceConfig,
    /// The server's URL, returned as `instance_url`.
    url: String,
    schema: Vec<FieldSpec>,
    store: Store,
    /// Access tokens not revoked by `expire_tokens`, with when each was issued.
    tokens: HashMap<String, Instant>,
    /// Every access token issued, expired or not, in order.
    issued_tokens: Vec<String>,
    api_used: u64,
    api_max: u64,
    faults: HashMap<String, VecDeque<(Fault, u32)>>,
    latency: HashMap<String, Duration>,
    record_errors: HashMap<String, InjectedError>,
    /// Query results not yet fully paged, by locator id.
    cursors: HashMap<String, Vec<Value>>,
    cursor_serial: u64,
}

impl State {
    fn new(config: SalesforceConfig) -> Self {
        Self {
            schema: schema_with_external_id(&config.external_id_field),
            api_max: config.api_limit,
            config,
            url: String::new(),
            store: Store::default(),
            tokens: HashMap::new(),
            issued_tokens: Vec::new(),
            api_used: 0,
            faults: HashMap::new(),
            latency: HashMap::new(),
            record_errors: HashMap::new(),
            cursors: HashMap::new(),
            cursor_serial: 0,
        }
    }

    /// sObject names are case-insensitive in URLs and SOQL.
    fn is_object(&self, name: &str) -> bool {
        self.config.object.eq_ignore_ascii_case(name)
    }

    fn is_external_id_field(&self, name: &str) -> bool {
        self.config.external_id_field.eq_ignore_ascii_case(name)
    }

    fn push_fault(&mut self, endpoint: &str, fault: Fault, times: u32) {
        if times > 0 {
            self.faults
                .entry(endpoint.to_string())
                .or_default()
                .push_back((fault, times));
        }
    }

    /// The fault the next request to `endpoint` must get, if one is queued.
    fn take_fault(&mut self, endpoint: &str) -> Option<Fault> {
        let queue = self.faults.get_mut(endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    fn inject_record_error(
        &mut self,
        external_id: &str,
        code: &str,
        message: &str,
        times: Option<u32>,
    ) {
        if times == Some(0) {
            return;
        }
        let error = RecordError::new(code, message, Vec::new());
        self.record_errors.insert(
            external_id.to_string(),
            InjectedError {
                error,
                remaining: times,
            },
        );
    }

    /// The injected error a write of `external_id` must fail with, if any, consuming one use.
    fn take_record_error(&mut self, external_id: &str) -> Option<RecordError> {
        let injected = self.record_errors.get_mut(external_id)?;
        let error = injected.error.clone();
        if let Some(remaining) = &mut injected.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.record_errors.remove(external_id);
            }
        }
        Some(error)
    }

    fn set_latency(&mut self, endpoint: &str, delay: Duration) {
        if delay.is_zero() {
            self.latency.remove(endpoint);
        } else {
            self.latency.insert(endpoint.to_string(), delay);
        }
    }

    /// Rows sorted by external ID value (rows without one first).
    fn sorted_rows(&self) -> Vec<SfRow> {
        let key = |row: &SfRow| {
            row.fields
                .get(&self.config.external_id_field)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut rows = self.store.rows.clone();
        rows.sort_by_key(key);
        rows
    }
}

impl SalesforceSim {
    /// Starts the org on a free port of 127.0.0.1.
    pub async fn start(config: SalesforceConfig) -> SalesforceSim {
        Self::start_on(config, 0)
            .await
            .expect("bind the Salesforce simulator to a free loopback port")
    }

    /// Starts the org on `127.0.0.1:port` (0 = a free port).
    pub async fn start_on(config: SalesforceConfig, port: u16) -> std::io::Result<SalesforceSim> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config)),
            log: RequestLog::default(),
        });
        let network = Network::default();
        let server = server::serve(network.wrap(http::router(shared.clone())), port).await?;
        shared.state().url = server.url();
        Ok(SalesforceSim {
            shared,
            network,
            server,
        })
    }

    /// The network between the org and its clients: a round trip for every API request, and
    /// how many were in flight at once.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// `http://127.0.0.1:PORT`, also the `instance_url` of every token.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request received, under the endpoint names `token`, `upsert`, `upsert_single`,
    /// `create`, `composite`, `query`, `describe`, `limits`, `delete`, `versions` and `other`.
    /// Token request bodies are kept with the `client_secret` value replaced by `<redacted>`.
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// All rows, sorted by external ID value.
    pub fn records(&self) -> Vec<SfRow> {
        self.shared.state().sorted_rows()
    }

    /// The row whose external ID is exactly `external_id`.
    pub fn record(&self, external_id: &str) -> Option<SfRow> {
        let state = self.shared.state();
        let position = state
            .store
            .position_by_external_id(&state.config.external_id_field, external_id)?;
        Some(state.store.rows[position].clone())
    }

    /// Seeds a row directly, as if an admin had created it: no API call is counted, and neither
    /// length nor picklist rules apply (so tests can seed drifted data). `CreatedDate` and
    /// `LastModifiedDate` may be given to backdate the row. Returns the new Id.
    ///
    /// # Panics
    /// On a field the object does not have, on a value of the wrong JSON type, or on `Id`:
    /// those are mistakes in the test, not data.
    pub fn insert_record(&self, fields: Map<String, Value>) -> String {
        let mut guard = self.shared.state();
        let state = &mut *guard;
        let now = Utc::now();
        let (mut created, mut modified) = (now, None);
        let mut values = Map::new();
        for (name, value) in fields {
            let spec = schema::find(&state.schema, &name).unwrap_or_else(|| {
                panic!("insert_record: {} has no field {name}", state.config.object)
            });
            let decoded = spec
                .decode(&value)
                .unwrap_or_else(|e| panic!("insert_record: {name}: {e}"));
            let as_datetime = || {
                decoded
                    .as_str()
                    .and_then(schema::parse_datetime)
                    .unwrap_or_else(|| panic!("insert_record: {name} needs a datetime"))
            };
            match spec.name.as_str() {
                "Id" => panic!("insert_record: the org assigns Ids"),
                "CreatedDate" => created = as_datetime(),
                "LastModifiedDate" | "SystemModstamp" => modified = Some(as_datetime()),
                _ => {
                    values.insert(spec.name.clone(), decoded);
                }
            }
        }
        let id = state.store.create(&state.schema, values, created);
        if let Some(row) = state.store.rows.last_mut() {
            row.last_modified_date = modified.unwrap_or(created);
        }
        id
    }

    /// Deletes the row with this external ID behind the API's back (drift); not a DELETE call.
    pub fn remove_record(&self, external_id: &str) -> bool {
        let mut state = self.shared.state();
        let field = state.config.external_id_field.clone();
        match state.store.position_by_external_id(&field, external_id) {
            Some(position) => {
                state.store.rows.remove(position);
                true
            }
            None => false,
        }
    }

    /// Makes every write of the record with this external ID fail with `code` / `message`
    /// (e.g. `UNABLE_TO_LOCK_ROW`), `times` times or, with `None`, until cleared.
    pub fn inject_record_error(
        &self,
        external_id: &str,
        code: &str,
        message: &str,
        times: Option<u32>,
    ) {
        self.shared
            .state()
            .inject_record_error(external_id, code, message, times);
    }

    pub fn clear_record_errors(&self) {
        self.shared.state().record_errors.clear();
    }

    /// The next `times` requests to `endpoint` are answered with `status` and `body` (as JSON,
    /// with the usage header on data endpoints) before any processing: they change nothing and
    /// are not counted as API calls.
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code.
    pub fn fail_next(&self, endpoint: &str, status: u16, body: Value, times: u32) {
        let status = StatusCode::from_u16(status).expect("fail_next needs a valid HTTP status");
        self.shared
            .state()
            .push_fault(endpoint, Fault::Respond { status, body }, times);
    }

    /// The next `times` requests to `endpoint` get their connection closed without any answer,
    /// before any processing.
    pub fn reset_next(&self, endpoint: &str, times: u32) {
        self.shared
            .state()
            .push_fault(endpoint, Fault::Reset, times);
    }

    /// Makes every query page say that more follow, at the same `nextRecordsUrl` (a broken
    /// server that a client must not loop on).
    pub fn set_endless_query(&self, endless: bool) {
        self.shared.state().config.endless_query = endless;
    }

    /// Makes sObject Collections upserts answer their results in reverse order (a broken server:
    /// the platform documents request order).
    pub fn set_reversed_results(&self, reversed: bool) {
        self.shared.state().config.reversed_results = reversed;
    }

    /// Delays every answer of `endpoint` by `delay` (zero removes the delay). The request is
    /// processed first, so a client that times out has still changed the org: the case a
    /// retrying client must survive.
    pub fn set_latency(&self, endpoint: &str, delay: Duration) {
        self.shared.state().set_latency(endpoint, delay);
    }

    /// Every access token this org has issued, expired ones included, oldest first: tests look
    /// for them in what the client logged.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.state().issued_tokens.clone()
    }

    /// Invalidates every token issued so far: their next use gets 401 `INVALID_SESSION_ID`.
    pub fn expire_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// Sets the org's rolling API usage, e.g. to sit just below the limit.
    pub fn set_api_usage(&self, used: u64, max: u64) {
        let mut state = self.shared.state();
        state.api_used = used;
        state.api_max = max;
    }

    /// The org's API usage `(used, max)`, as the last `Sforce-Limit-Info` header reported it.
    pub fn api_usage(&self) -> (u64, u64) {
        let state = self.shared.state();
        (state.api_used, state.api_max)
    }

    /// Adds an active value to the restricted picklist `Category__c`.
    pub fn add_picklist_value(&self, value: &str) {
        let mut state = self.shared.state();
        if let Some(field) = state.schema.iter_mut().find(|f| f.name == "Category__c")
            && !field.picklist_values.iter().any(|v| v == value)
        {
            field.picklist_values.push(value.to_string());
        }
    }

    /// The active values of `Category__c`.
    pub fn picklist_values(&self) -> Vec<String> {
        let state = self.shared.state();
        state
            .schema
            .iter()
            .find(|f| f.name == "Category__c")
            .map(|f| f.picklist_values.clone())
            .unwrap_or_default()
    }
}
