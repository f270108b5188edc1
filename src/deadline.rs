//! The invocation's deadline, as every wait and every request sees it.
//!
//! The handler runs each invocation inside [`scope`]. The retry loop asks [`remaining`] before
//! it waits (a `Retry-After` or a backoff that would end past the deadline stops the request)
//! and cuts a request that would outlive it; the writer does the same before a pause between
//! rounds. Code outside a scope (unit tests, a background token refresh) has no deadline.

use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` (none: no bound).
pub async fn scope<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The time left before the deadline; `None` when there is no deadline.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|d| d.saturating_duration_since(Instant::now()))
        .ok()
}

/// A wait or a request that the deadline does not leave time for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeadlineExceeded(pub String);

/// Refuses a wait of `wait` that would end at or past the deadline; `what` says what asked for it.
pub fn check_wait(wait: Duration, what: &str) -> Result<(), DeadlineExceeded> {
    match remaining() {
        Some(left) if wait >= left => Err(DeadlineExceeded(format!(
            "{what} asked to wait {} ms, but only {} ms are left before the invocation deadline",
            wait.as_millis(),
            left.as_millis()
        ))),
        _ => Ok(()),
    }
}

/// Runs `request`, cut short at the deadline.
pub async fn bounded<T>(
    what: &str,
    request: impl Future<Output = T>,
) -> Result<T, DeadlineExceeded> {
    match remaining() {
        None => Ok(request.await),
        Some(left) => tokio::time::timeout(left, request).await.map_err(|_| {
            DeadlineExceeded(format!(
                "{what} did not answer before the invocation deadline"
            ))
        }),
    }
}

/// `now + d` as a deadline, saturating far in the future instead of overflowing.
pub fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_and_requests_are_bounded_only_inside_a_scope() {
        assert_eq!(remaining(), None);
        assert!(check_wait(Duration::from_secs(3600), "CXone").is_ok());
        scope(Some(after(Duration::from_secs(10))), async {
            let err = check_wait(Duration::from_secs(3600), "CXone").unwrap_err();
            assert!(err.0.starts_with("CXone asked to wait 3600000 ms"), "{err}");
            assert!(check_wait(Duration::from_secs(1), "CXone").is_ok());
            let slow = tokio::time::sleep(Duration::from_secs(60));
            assert!(bounded("Salesforce", slow).await.is_err());
        })
        .await;
    }
}
