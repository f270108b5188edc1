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
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "it{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    LocalWorld::start(&prefix, CxoneApi::Guide)
        .await
        .unwrap_or_else(|e| panic!("cannot start the local world: {e}"))
}
