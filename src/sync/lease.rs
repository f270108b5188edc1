//! The lease: at most one cycle or redrive writes for a sync at a time.
//!
//! Taking and releasing it are conditional writes on the state item, so two invocations that
//! read the same state cannot both take it, and a holder's last write fails if anyone changed the
//! item since (see [`crate::watermark`]).

use super::report::Reason;
use crate::watermark::{Lease, StateError, StateStore, SyncState, Versioned};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long a lease lasts when the invocation has no deadline (a local run).
const UNBOUNDED_LEASE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Who takes the lease, and the rules that apply to them.
pub enum Holder<'a> {
    /// A sync cycle: it records when it started, and refuses to start sooner than
    /// `min_poll_interval` after the previous one (`None` skips that check: a retry within the
    /// same invocation).
    Cycle {
        id: &'a str,
        min_poll_interval: Option<Duration>,
        /// Take the lease even from a live holder (an operator's explicit choice).
        take_over: bool,
    },
    /// A redrive: it leaves the cycle's bookkeeping alone.
    Redrive { id: &'a str },
}

/// A lease this invocation holds: the state as it was before (less any time in the future),
/// and the version every later write is conditioned on.
pub struct Held {
    pub before: SyncState,
    pub version: u64,
    /// The state's times that lay in the future and were cleared, in words.
    pub repairs: Vec<String>,
}

/// Takes the lease on `stored` (the state just read) until `deadline`, or says why not. Times
/// in the state later than `now + clock_skew` (a lease: later than the longest lease) are
/// corrupt: they are cleared, and the cycle that takes the lease writes the state without them.
pub async fn take(
    store: &dyn StateStore,
    stored: Versioned,
    holder: Holder<'_>,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    clock_skew: Duration,
) -> Result<Held, Reason> {
    let mut before = stored.state;
    let repairs = repair(&mut before, now, clock_skew);
    let take_over = matches!(
        holder,
        Holder::Cycle {
            take_over: true,
            ..
        }
    );
    if let Some(lease) = &before.lease
        && lease.expires > now
    {
        if take_over {
            tracing::warn!(owner = %lease.owner, expires = %lease.expires, "taking over the lease on request");
        } else {
            return Err(Reason::LeaseHeld {
                owner: lease.owner.clone(),
                until: lease.expires,
            });
        }
    }
    let mut leased = before.clone();
    let owner = match holder {
        Holder::Cycle {
            id,
            min_poll_interval,
            ..
        } => {
            if let (Some(previous), Some(interval)) = (before.last_cycle_started, min_poll_interval)
                && !interval.is_zero()
                && now.signed_duration_since(previous)
                    < chrono::Duration::from_std(interval).unwrap_or_default()
            {
                return Err(Reason::TooSoon {
                    previous,
                    min_interval_secs: interval.as_secs(),
                });
            }
            leased.last_cycle_started = Some(now);
            id.to_owned()
        }
        Holder::Redrive { id } => id.to_owned(),
    };
    leased.lease = Some(Lease {
        owner,
        expires: deadline.unwrap_or(now + UNBOUNDED_LEASE),
    });
    match store.save(&leased, stored.version).await {
        Ok(version) => Ok(Held {
            before,
            version,
            repairs,
        }),
        Err(StateError::Conflict { .. }) => Err(Reason::LeaseTaken),
        Err(e) => Err(Reason::StateUnavailable(e.to_string())),
    }
}

/// Clears the times in `state` later than `now + clock_skew` (a lease: later than the longest
/// lease), which only a clock error or a corrupt item can put there; returns them in words. A
/// cycle writes the repaired state; a dry run repairs its copy in memory only.
pub fn repair(state: &mut SyncState, now: DateTime<Utc>, clock_skew: Duration) -> Vec<String> {
    let skew = chrono::Duration::from_std(clock_skew).unwrap_or_default();
    state.clear_future_times(now + skew, now + UNBOUNDED_LEASE + skew)
}

/// Writes `state` (which holds no lease) over the leased item. Best effort: if this write fails
/// the lease expires at the deadline anyway.
pub async fn release(store: &dyn StateStore, state: &SyncState, version: u64) {
    if let Err(e) = store.save(state, version).await {
        tracing::warn!(error = %e, "could not release the lease; it expires at the invocation deadline");
    }
}
