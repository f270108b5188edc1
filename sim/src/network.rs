//! The network between a client and a simulator: a round-trip delay added to every API request,
//! as a real network adds it, and the figures that show what the client made of it.
//!
//! The delay is a `tokio::time::sleep` per request with no lock held, half before the request is
//! handled and half after (the request's and the answer's trip), so requests in flight at once
//! wait at once: a client that keeps eight requests in flight pays the round trip once per eight,
//! as it would on a real link. The `/_sim/` control routes are not part of the simulated platform
//! and are neither delayed nor counted.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Path prefix of the control routes, which the network leaves alone.
const CONTROL_PREFIX: &str = "/_sim/";

/// One simulator's side of the network. Cloning shares it.
#[derive(Clone, Default)]
pub struct Network {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The round trip, in microseconds.
    round_trip_us: AtomicU64,
    /// API requests between arrival and answer now, and the most there have been at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// API requests that paid a round trip since the last reset.
    delayed: AtomicUsize,
    /// When the first API request since the last reset arrived.
    first_request: Mutex<Option<Instant>>,
}

impl Network {
    /// The round trip every API request now pays; zero when none is set.
    pub fn round_trip(&self) -> Duration {
        Duration::from_micros(self.inner.round_trip_us.load(Ordering::Relaxed))
    }

    /// Sets the round trip every API request pays from now on (zero removes it). Adds to any
    /// per-endpoint latency the simulator has.
    pub fn set_round_trip(&self, round_trip: Duration) {
        // Saturates rather than wraps: 584,000 years is as good as forever.
        let micros = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
        self.inner.round_trip_us.store(micros, Ordering::Relaxed);
    }

    /// The most API requests that were in flight at once since the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::Relaxed)
    }

    /// API requests that have paid a (non-zero) round trip since the last reset.
    pub fn delayed(&self) -> usize {
        self.inner.delayed.load(Ordering::Relaxed)
    }

    /// When the first API request since the last reset arrived.
    pub fn first_request(&self) -> Option<Instant> {
        *self.first_request_slot()
    }

    /// Forgets the figures (not the round trip), e.g. between two measured runs.
    pub fn reset(&self) {
        self.inner.max_in_flight.store(
            self.inner.in_flight.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.inner.delayed.store(0, Ordering::Relaxed);
        *self.first_request_slot() = None;
    }

    /// `router` with every API request going through this network.
    pub fn wrap(&self, router: Router) -> Router {
        let network = self.clone();
        router.layer(middleware::from_fn(move |request: Request, next: Next| {
            let network = network.clone();
            async move { network.carry(request, next).await }
        }))
    }

    async fn carry(&self, request: Request, next: Next) -> Response {
        if request.uri().path().starts_with(CONTROL_PREFIX) {
            return next.run(request).await;
        }
        self.first_request_slot().get_or_insert_with(Instant::now);
        let _in_flight = InFlight::enter(&self.inner);
        let round_trip = self.round_trip();
        let there = round_trip / 2;
        // The answer's trip is what is left, so an odd microsecond is not lost.
        let back = round_trip.saturating_sub(there);
        if !there.is_zero() {
            tokio::time::sleep(there).await;
        }
        let response = next.run(request).await;
        if !back.is_zero() {
            tokio::time::sleep(back).await;
        }
        if !round_trip.is_zero() {
            self.inner.delayed.fetch_add(1, Ordering::Relaxed);
        }
        response
    }

    fn first_request_slot(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner
            .first_request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts one request in flight until dropped, also when the client goes away mid-request and
/// the handler is cancelled.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        inner.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
