//! How many list page requests one cycle keeps in flight: up to `CXONE_MAX_IN_FLIGHT`, and, once
//! CXone has answered a 429, one at a time and alone for the rest of the cycle, so that reading
//! pages at once never multiplies throttling. The waiting itself stays with the one retry loop.

use super::gateway::Gateway;
use tokio::sync::{Semaphore, SemaphorePermit};

pub(super) struct Lanes<'a> {
    gateway: &'a Gateway,
    width: u32,
    seats: Semaphore,
    /// The gateway's 429 count when the cycle began.
    throttles_before: u64,
}

impl<'a> Lanes<'a> {
    /// Lanes for one cycle: `width` requests at once (at least one).
    pub fn new(gateway: &'a Gateway, width: u32) -> Self {
        let width = width.max(1);
        Self {
            gateway,
            width,
            seats: Semaphore::new(width as usize),
            throttles_before: gateway.throttles(),
        }
    }

    /// Whether CXone throttled a request since the cycle began.
    fn throttled(&self) -> bool {
        self.gateway.throttles() > self.throttles_before
    }

    /// How many pages to ask for ahead, as things stand now.
    pub fn width(&self) -> usize {
        if self.throttled() {
            1
        } else {
            self.width as usize
        }
    }

    /// Waits for a seat, held while one page request (and its retries) runs: one of `width`, or
    /// once throttled all of them, so that the request waits for every other one to finish and
    /// goes alone. Seats are never closed; `None` cannot happen and only means no seat is held.
    pub async fn seat(&self) -> Option<SemaphorePermit<'_>> {
        let seats = if self.throttled() { self.width } else { 1 };
        self.seats.acquire_many(seats).await.ok()
    }
}
