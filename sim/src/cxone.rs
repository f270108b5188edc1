//! A simulated NICE CXone tenant, serving either API a deployment can sync from:
//!
//! - **Admin** ([`CxoneApi::Admin`]): the real CXone Admin API. OIDC discovery, a password grant
//!   on the API user's access key and `cxone-configuration` on the issuer origin
//!   ([`CxoneSim::url`]); the dispositions API (`skip`/`top` paging, camelCase records, integer
//!   ids, classifications) on a second, different origin ([`CxoneSim::admin_url`]), as the real
//!   per-tenant API host is.
//! - **Guide** ([`CxoneApi::Guide`]): the API the implementation guide describes, a
//!   client-credentials token and a page-numbered list of snake_case records, on the issuer
//!   origin.
//!
//! Both read one store of dispositions. The handle ([`CxoneTenant`], which [`CxoneSim`]
//! dereferences to) speaks the world's API: ids, and the records `upsert`, `insert_raw`, `get`
//! and `all` take or give, are those of the API the simulator was configured for, so one test
//! body can run against either world. [`CxoneTenant::codes`] is the shape-neutral view.
//!
//! # Modules
//! - `store`: the records, their timestamps, insertion numbers, Admin ids and classifications.
//! - `shared`, `tokens`, `gate`: state, tokens, and what happens around every request
//!   (logging, latency, faults, bearer checks); `flight`: list requests in flight at once.
//! - `guide`: the guide's router. `discovery` and `admin`: the Admin API's identity side and
//!   its dispositions endpoints; `modes` and `jwt`: their switches and signed tokens.
//! - `control`: unauthenticated `/_sim/` routes for seeding, edits, modes and faults from
//!   outside the process (the demo binary), which the request log does not count.

mod admin;
mod control;
mod discovery;
mod flight;
mod gate;
mod guide;
mod jwt;
mod modes;
mod shared;
mod store;
mod tokens;

pub use flight::Flight;
pub use modes::{AdminModes, Precision, Zone, format_last_updated, parse_instant};
pub use store::ADMIN_ID_BASE;

use crate::network::Network;
use crate::server::{self, RequestLog};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{ListHook, Shared, lock};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use store::{AdminView, Entry, Store, integer, now_ms};

/// The categories seeded codes cycle through, in order: exactly the values a fresh simulated
/// org's picklist allows, so that a seeded sync maps every category. In the Admin API each is
/// a classification, with ids 1 to 8 in this order.
pub const CATEGORIES: [&str; 8] = crate::salesforce::DEFAULT_CATEGORIES;

/// The endpoints faults and latency can target; API requests are logged under these names
/// (anything else under `other`). The first three are the guide's API, the rest the Admin
/// API's.
pub const ENDPOINTS: [&str; 9] = [
    "token",
    "list",
    "get",
    "openid-configuration",
    "cxone-configuration",
    "admin-token",
    "admin-list",
    "classifications",
    "admin-get",
];

/// Most records `POST /_sim/seed` creates in one call, so a typo cannot stall the simulator.
const MAX_CONTROL_SEED: usize = 100_000;

/// Which CXone API a world speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CxoneApi {
    /// The real CXone Admin API (the product's default source).
    Admin,
    /// The implementation guide's API.
    Guide,
}

impl CxoneApi {
    /// `admin` or `guide`, as `CXONE_API` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CxoneApi::Admin => "admin",
            CxoneApi::Guide => "guide",
        }
    }

    fn name_field(self) -> &'static str {
        match self {
            CxoneApi::Admin => "dispositionName",
            CxoneApi::Guide => "name",
        }
    }

    fn active_field(self) -> &'static str {
        match self {
            CxoneApi::Admin => "isActive",
            CxoneApi::Guide => "is_active",
        }
    }

    fn category_field(self) -> &'static str {
        match self {
            CxoneApi::Admin => "classificationName",
            CxoneApi::Guide => "category",
        }
    }
}

/// How a guide list response wraps its records. The guide does not say, so clients must cope
/// with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Envelope {
    /// `[{...}, ...]`
    BareArray,
    /// `{"dispositions": [...], "page": p, "pageSize": n, "totalRecords": t}`
    #[default]
    Object,
}

/// Credentials and knobs of one simulated tenant.
#[derive(Clone, Debug)]
pub struct CxoneConfig {
    /// The API the handle speaks (both are served either way).
    pub api: CxoneApi,
    /// The OAuth client: client credentials for the guide, client authentication for the
    /// Admin API's password grant.
    pub client_id: String,
    pub client_secret: String,
    /// The Admin API user's access key: the password grant's `username` and `password`. Real
    /// ones end in `=` padding, so these do too.
    pub access_key_id: String,
    pub access_key_secret: String,
    /// The `tenantId` claim and the tenant `cxone-configuration` knows.
    pub tenant_id: String,
    /// `icBUId` and every `businessUnitId`.
    pub business_unit_id: i64,
    /// The API user (`sub` is `user:{user_id}`).
    pub user_id: String,
    /// How long an access token stays valid; `expires_in` reports it in whole seconds.
    pub token_ttl: Duration,
    pub envelope: Envelope,
    /// Largest `pageSize` the guide's list accepts; larger values get 400.
    pub max_page_size: u32,
    /// The Admin API's initial modes.
    pub admin_modes: AdminModes,
}

impl Default for CxoneConfig {
    /// A guide world, as the simulator has always been; [`CxoneConfig::admin`] for the other.
    fn default() -> Self {
        CxoneConfig {
            api: CxoneApi::Guide,
            client_id: "cx-client".into(),
            client_secret: "cx-secret".into(),
            access_key_id: "SIMKEYID4FAKE7TENANT2DISPOSITIONSYNCQ6KNZ3Q====".into(),
            access_key_secret: "c2ltdWxhdGVkK2FjY2Vzcy9rZXkgc2VjcmV0IQ+/9a==".into(),
            tenant_id: "11eb660f-4c5b-4f2a-9c1e-6b1f3d2a7e90".into(),
            business_unit_id: 4_607_084,
            user_id: "11eb7a35-2c9e-4b7d-8f41-0d6e5c3b2a19".into(),
            token_ttl: Duration::from_secs(3600),
            envelope: Envelope::Object,
            max_page_size: 1000,
            admin_modes: AdminModes::default(),
        }
    }
}

impl CxoneConfig {
    /// The default configuration of a world speaking `api`.
    pub fn for_api(api: CxoneApi) -> CxoneConfig {
        CxoneConfig {
            api,
            ..CxoneConfig::default()
        }
    }

    /// An Admin API world on default settings.
    pub fn admin() -> CxoneConfig {
        CxoneConfig::for_api(CxoneApi::Admin)
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

/// One disposition code, whatever API serves it: what a mirror in Salesforce must show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimCode {
    /// The id the world's API gives it: the guide's `id`, or the Admin `dispositionId` in
    /// decimal.
    pub external_id: String,
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_active: bool,
    pub last_modified: DateTime<Utc>,
}

/// A running CXone simulator: the tenant handle plus its two listeners. Dropping it stops both.
pub struct CxoneSim {
    tenant: CxoneTenant,
    network: Network,
    issuer: server::Running,
    admin: server::Running,
}

impl CxoneSim {
    /// Starts on free loopback ports.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(config: CxoneConfig) -> CxoneSim {
        CxoneSim::start_on(config, 0, 0)
            .await
            .expect("bind the CXone simulator to free loopback ports")
    }

    /// Starts the issuer origin on `127.0.0.1:port` and the Admin API on
    /// `127.0.0.1:admin_port` (0 = a free port).
    pub async fn start_on(
        config: CxoneConfig,
        port: u16,
        admin_port: u16,
    ) -> std::io::Result<CxoneSim> {
        let shared = Arc::new(Shared::new(config));
        let issuer_router = guide::router(shared.clone())
            .merge(discovery::router(shared.clone()))
            .merge(control::router(shared.clone()));
        // One network in front of both origins: a client's requests to either share it.
        let network = Network::default();
        let issuer = server::serve(network.wrap(issuer_router), port).await?;
        let admin = server::serve(network.wrap(admin::router(shared.clone())), admin_port).await?;
        // Set once, before any request can arrive that needs them.
        let _ = shared.issuer_url.set(issuer.url());
        let _ = shared.admin_url.set(admin.url());
        Ok(CxoneSim {
            tenant: CxoneTenant { shared },
            network,
            issuer,
            admin,
        })
    }

    /// The issuer origin, without a trailing slash: `CXONE_ISSUER` of an Admin world
    /// (`/.well-known/...`, `/auth/token`), and the guide's base URL (`/oauth/token`,
    /// `/api/v2/...`). The `/_sim/` control routes are here too.
    pub fn url(&self) -> String {
        self.issuer.url()
    }

    /// The Admin API origin (`api_endpoint`), without a trailing slash: a different port from
    /// [`CxoneSim::url`], as the real API host differs from the issuer.
    pub fn admin_url(&self) -> String {
        self.admin.url()
    }

    /// The network between the tenant (both origins) and its clients: a round trip for every
    /// API request, and how many were in flight at once.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// A handle that outlives this borrow, for edits run from a hook.
    pub fn tenant(&self) -> CxoneTenant {
        self.tenant.clone()
    }
}

impl Deref for CxoneSim {
    type Target = CxoneTenant;
    fn deref(&self) -> &CxoneTenant {
        &self.tenant
    }
}

/// The simulated tenant's data, faults and modes, addressed in the world's API.
#[derive(Clone)]
pub struct CxoneTenant {
    shared: Arc<Shared>,
}

impl CxoneTenant {
    /// The API this tenant speaks.
    pub fn api(&self) -> CxoneApi {
        self.shared.config.api
    }

    /// API requests by endpoint (see [`ENDPOINTS`]; `other` for the rest; control routes are
    /// not logged).
    pub fn log(&self) -> &RequestLog {
        &self.shared.log
    }

    /// Adds `n` valid codes and returns their external ids in list order. Codes are numbered
    /// across calls ("Code 001", "Code 002", ...), and ids derive from that number, so the same
    /// sequence of calls always yields the same ids. Their modification times are 1 ms apart,
    /// end no later than now and start after every time already in the store, so a delta sync
    /// sees them as new. When the store's newest time is too close to now for that, this waits
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

    /// Adds `n` valid codes as an established tenant has them: modified `step` apart, the newest
    /// one `step` ago, so that a sync's overlap window shorter than `step` holds one of them at
    /// most (where [`CxoneTenant::seed`]'s codes, 1 ms apart and ending now, all fall inside
    /// it). Numbered and identified as [`CxoneTenant::seed`] numbers them.
    ///
    /// # Panics
    /// If the store already holds a code modified within the span these would take.
    pub fn seed_history(&self, n: usize, step: Duration) -> Vec<String> {
        let step = chrono::TimeDelta::from_std(step).unwrap_or(chrono::TimeDelta::MAX);
        let newest = now_ms() - step;
        self.shared
            .store()
            .try_seed_spaced(n, newest, step)
            .unwrap_or_else(|_| panic!("CxoneSim::seed_history: the store has newer codes"))
    }

    /// Inserts or replaces a record in the world's shape and returns its external id.
    ///
    /// Guide: the record with this `"id"`; a missing `last_modified_date` is set to a fresh
    /// time, a missing `created_date` keeps the replaced record's, or takes that time.
    /// Admin: camelCase; `dispositionId` (optional) picks the record or the new id,
    /// `classificationName` or a known `classificationId` sets the category, a missing
    /// `lastUpdated` is a fresh time.
    ///
    /// # Panics
    /// If the record cannot be stored (no string `"id"` in a guide world, a non-integer
    /// `dispositionId` in an Admin one): use [`CxoneTenant::insert_raw`] for such records.
    pub fn upsert(&self, record: Value) -> String {
        self.shared
            .store()
            .upsert(record)
            .unwrap_or_else(|reason| panic!("CxoneSim::upsert: {reason}"))
    }

    /// Sets the name and bumps the modification time. Panics if `id` is unknown.
    pub fn rename(&self, id: &str, name: &str) {
        self.edit(id, self.api().name_field(), json!(name));
    }

    /// Marks the code inactive and bumps the modification time. Panics if `id` is unknown.
    pub fn deactivate(&self, id: &str) {
        self.edit(id, self.api().active_field(), json!(false));
    }

    /// Marks the code active and bumps the modification time. Panics if `id` is unknown.
    pub fn reactivate(&self, id: &str) {
        self.edit(id, self.api().active_field(), json!(true));
    }

    /// Sets the category (the Admin API's classification; a new name gets a new
    /// classification id) and bumps the modification time. Panics if `id` is unknown.
    pub fn set_category(&self, id: &str, category: &str) {
        self.edit(id, self.api().category_field(), json!(category));
    }

    /// Sets any field of the world's shape and bumps the modification time, except when the
    /// field *is* the modification time (`last_modified_date`, `lastUpdated`): then the given
    /// value stands, so tests can place a record in time. Panics if `id` is unknown.
    pub fn set_field(&self, id: &str, key: &str, value: Value) {
        self.edit(id, key, value);
    }

    /// Stores `raw` exactly as given and serves it verbatim: records without an id, with a bad
    /// date, or with wrong types. A raw record whose id is readable (a string `"id"`, an
    /// integer `"dispositionId"`) replaces the one with that id.
    pub fn insert_raw(&self, raw: Value) {
        self.shared.store().insert_raw(raw);
    }

    /// Deletes the record (something the real API never does); false if there was none.
    pub fn remove(&self, id: &str) -> bool {
        self.shared.store().remove(id)
    }

    /// The record as the world's API serves it one by one (Admin: the by-id object, unwrapped).
    pub fn get(&self, id: &str) -> Option<Value> {
        let modes = self.shared.admin_modes();
        let store = self.shared.store();
        let entry = store.find(id)?;
        match self.api() {
            CxoneApi::Guide => Some(entry.record.clone()),
            CxoneApi::Admin => Some(admin::project(entry, &store.classifications, &modes, true)),
        }
    }

    /// Every record in list order, as the world's list serves it.
    pub fn all(&self) -> Vec<Value> {
        let modes = self.shared.admin_modes();
        let store = self.shared.store();
        match self.api() {
            CxoneApi::Guide => store.modified_since(None),
            CxoneApi::Admin => {
                let mut entries: Vec<&Entry> = store.entries().iter().collect();
                entries.sort_by_key(|e| {
                    let modified = e.admin_modified();
                    (modified.is_none(), modified, e.admin_id, e.seq)
                });
                entries
                    .into_iter()
                    .map(|e| admin::project(e, &store.classifications, &modes, false))
                    .collect()
            }
        }
    }

    /// Every record readable as a code, in list order; raw records that are not (no id, a bad
    /// time, wrong types) are left out.
    pub fn codes(&self) -> Vec<SimCode> {
        let store = self.shared.store();
        let mut codes: Vec<SimCode> = store
            .entries()
            .iter()
            .filter_map(|entry| sim_code(&store, entry))
            .collect();
        codes.sort_by(|a, b| {
            (a.last_modified, &a.external_id).cmp(&(b.last_modified, &b.external_id))
        });
        codes
    }

    /// The code with this external id, if it is readable as one.
    pub fn code(&self, id: &str) -> Option<SimCode> {
        let store = self.shared.store();
        sim_code(&store, store.find(id)?)
    }

    /// Runs `edit` once, right after the `n`-th list page from now has been served (n ≥ 1;
    /// guide or Admin list; requests refused by a fault or for want of a token do not count):
    /// an edit that lands between two page requests of one cycle.
    pub fn after_list_pages(&self, n: usize, edit: impl FnOnce(&CxoneTenant) + Send + 'static) {
        lock(&self.shared.list_hooks).push(ListHook {
            remaining: n.max(1),
            edit: Box::new(edit),
        });
    }

    /// The most list requests (either API) the simulator had in flight at once since it started
    /// or [`CxoneTenant::reset_list_flights`].
    pub fn max_list_in_flight(&self) -> usize {
        self.shared.flights.max()
    }

    /// Every list request's start and end since then, in the order they happened.
    pub fn list_flights(&self) -> Vec<Flight> {
        self.shared.flights.log()
    }

    /// Forgets the list requests seen so far (the maximum and the log).
    pub fn reset_list_flights(&self) {
        self.shared.flights.reset();
    }

    /// Queues a fault for `endpoint` (one of [`ENDPOINTS`]). Queued faults run one after
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

    /// Delays every answer from `endpoint` (one of [`ENDPOINTS`]) by `delay`; zero removes it.
    ///
    /// # Panics
    /// On an unknown endpoint.
    pub fn set_latency(&self, endpoint: &str, delay: Duration) {
        if let Err(reason) = self.shared.set_latency(endpoint, delay) {
            panic!("CxoneSim::set_latency: {reason}");
        }
    }

    /// Every access token issued so far (both APIs), expired ones included, in no particular
    /// order: tests look for them in what the client logged.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).issued()
    }

    /// Every refresh token the Admin API's token endpoint issued so far, in no particular order:
    /// as secret as an access token, so tests look for them in what the client logged too.
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).issued_refresh()
    }

    /// Expires every access token issued so far: the next API call with one gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    pub fn set_envelope(&self, envelope: Envelope) {
        *lock(&self.shared.envelope) = envelope;
    }

    pub fn admin_modes(&self) -> AdminModes {
        self.shared.admin_modes()
    }

    pub fn set_admin_modes(&self, modes: AdminModes) {
        *lock(&self.shared.admin_modes) = modes;
    }

    /// The Admin API user's credentials as the function's secret holds them.
    pub fn admin_credentials(&self) -> (&str, &str) {
        (
            &self.shared.config.access_key_id,
            &self.shared.config.access_key_secret,
        )
    }

    fn edit(&self, id: &str, key: &str, value: Value) {
        if !self.shared.store().edit(id, key, value) {
            panic!("CxoneSim: no disposition with id {id:?}");
        }
    }
}

/// The entry as a code, if every field reads as one.
fn sim_code(store: &Store, entry: &Entry) -> Option<SimCode> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    match &entry.admin {
        AdminView::Verbatim(raw) => Some(SimCode {
            external_id: integer(raw.get("dispositionId")?)?.to_string(),
            name: text(raw.get("dispositionName"))?,
            description: text(raw.get("notes")),
            category: text(raw.get("classificationName")).or_else(|| {
                let id = integer(raw.get("classificationId")?)?;
                store.classifications.name_of(id).map(str::to_owned)
            }),
            is_active: raw.get("isActive")?.as_bool()?,
            last_modified: parse_instant(raw.get("lastUpdated")?.as_str()?)?,
        }),
        AdminView::Projected(_) => {
            let record = &entry.record;
            Some(SimCode {
                external_id: store.external_id(entry)?,
                name: text(record.get("name"))?,
                description: text(record.get("description")),
                category: text(record.get("category")),
                is_active: record.get("is_active")?.as_bool()?,
                last_modified: entry.admin_modified()?,
            })
        }
    }
}

/// Runs the edits due after one more served list page, with no lock held.
fn page_served(shared: &Arc<Shared>) {
    let due = shared.due_hooks();
    if due.is_empty() {
        return;
    }
    let tenant = CxoneTenant {
        shared: shared.clone(),
    };
    for edit in due {
        edit(&tenant);
    }
}
