//! The state every router and the handle share: the store, tokens, the signing key, the
//! switchable modes, and the per-endpoint fault queues, latencies and edit hooks that shape
//! what a request gets.

use super::admin::AdminListing;
use super::flight::Flights;
use super::jwt::Signer;
use super::modes::AdminModes;
use super::store::Store;
use super::tokens::Tokens;
use super::{CxoneConfig, CxoneTenant, ENDPOINTS, Envelope, Fault};
use crate::server::RequestLog;
use axum::http::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// An edit a test scheduled.
pub type Edit = Box<dyn FnOnce(&CxoneTenant) + Send>;

/// An edit to run once, right after a given number of further list pages have been served.
pub struct ListHook {
    pub remaining: usize,
    pub edit: Edit,
}

/// Everything the routers and the handle share.
pub struct Shared {
    pub config: CxoneConfig,
    pub envelope: Mutex<Envelope>,
    pub admin_modes: Mutex<AdminModes>,
    pub store: Mutex<Store>,
    pub tokens: Mutex<Tokens>,
    pub signer: Signer,
    pub faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub latency: Mutex<HashMap<String, Duration>>,
    pub list_hooks: Mutex<Vec<ListHook>>,
    /// List requests (either API) in flight.
    pub flights: Flights,
    /// The Admin list's last sort of the store, reused while the store is unchanged.
    pub admin_listing: Mutex<Option<AdminListing>>,
    pub log: RequestLog,
    /// The issuer origin (where discovery and tokens are served), once bound.
    pub issuer_url: OnceLock<String>,
    /// The Admin API origin, once bound.
    pub admin_url: OnceLock<String>,
}

impl Shared {
    pub fn new(config: CxoneConfig) -> Shared {
        Shared {
            envelope: Mutex::new(config.envelope),
            admin_modes: Mutex::new(config.admin_modes.clone()),
            store: Mutex::new(Store::new(config.api)),
            tokens: Mutex::new(Tokens::default()),
            signer: Signer::new(),
            faults: Mutex::new(HashMap::new()),
            latency: Mutex::new(HashMap::new()),
            list_hooks: Mutex::new(Vec::new()),
            flights: Flights::default(),
            admin_listing: Mutex::new(None),
            log: RequestLog::default(),
            issuer_url: OnceLock::new(),
            admin_url: OnceLock::new(),
            config,
        }
    }

    pub fn store(&self) -> StoreGuard<'_> {
        StoreGuard(lock(&self.store))
    }

    pub fn admin_modes(&self) -> AdminModes {
        lock(&self.admin_modes).clone()
    }

    pub fn issuer_url(&self) -> &str {
        self.issuer_url.get().map_or("", String::as_str)
    }

    pub fn admin_url(&self) -> &str {
        self.admin_url.get().map_or("", String::as_str)
    }

    pub fn inject(&self, endpoint: &str, fault: Fault) -> Result<(), String> {
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

    pub fn set_latency(&self, endpoint: &str, delay: Duration) -> Result<(), String> {
        if !ENDPOINTS.contains(&endpoint) {
            return Err(format!(
                "unknown endpoint {endpoint:?} (expected one of {ENDPOINTS:?})"
            ));
        }
        lock(&self.latency).insert(endpoint.to_owned(), delay);
        Ok(())
    }

    /// Counts one request against `endpoint`'s fault queue; returns the fault if it fails.
    pub fn take_fault(&self, endpoint: &str) -> Option<Fault> {
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

    /// Counts one served list page against the hooks; returns the edits now due, to be run
    /// once no lock is held.
    pub fn due_hooks(&self) -> Vec<Edit> {
        let mut hooks = lock(&self.list_hooks);
        let mut due = Vec::new();
        let mut waiting = Vec::new();
        for mut hook in hooks.drain(..) {
            hook.remaining = hook.remaining.saturating_sub(1);
            if hook.remaining == 0 {
                due.push(hook.edit);
            } else {
                waiting.push(hook);
            }
        }
        *hooks = waiting;
        due
    }
}

/// A poisoned lock only means another test thread panicked mid-update; the data is still usable
/// for the assertions that follow, so carry on rather than cascade the panic.
/// The locked store. Every mutable use counts as a change ([`Store::generation`]), so that what
/// is derived from the store can be cached until it changes.
pub struct StoreGuard<'a>(MutexGuard<'a, Store>);

impl Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.0
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.0.changed();
        &mut self.0
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
