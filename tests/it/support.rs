//! Shared set-up for the integration tests.

use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::LocalWorld;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh local world for one test: its own moto server (with a table, queues and secret named
/// after a prefix unique to the test) and its own CXone and Salesforce simulators.
///
/// # Panics
/// If the world cannot start, most often because moto is not installed: the message says how to
/// install it.
pub async fn world() -> LocalWorld {
    world_for(CxoneApi::Guide).await
}

/// A fresh local world whose CXone speaks `api`: the same test body runs against either.
pub async fn world_for(api: CxoneApi) -> LocalWorld {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "it{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    LocalWorld::start(&prefix, api)
        .await
        .unwrap_or_else(|e| panic!("cannot start the local world: {e}"))
}

/// The simulator's names for one API's endpoints, for faults, latency and request counts.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub token: &'static str,
    pub list: &'static str,
    pub get: &'static str,
}

/// The endpoint names of `api` in the CXone simulator.
pub fn endpoints(api: CxoneApi) -> Endpoints {
    match api {
        CxoneApi::Guide => Endpoints {
            token: "token",
            list: "list",
            get: "get",
        },
        CxoneApi::Admin => Endpoints {
            token: "admin-token",
            list: "admin-list",
            get: "admin-get",
        },
    }
}
