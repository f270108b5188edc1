//! What a cycle reports: its response (also logged as one JSON line and turned into metrics),
//! and why it was skipped, failed or stopped early.

use super::writer::{Outcome, Write};
use crate::domain::format_ts;
use crate::salesforce::{ApiUsage, SalesforceError};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Partial,
    Skipped,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Delta,
    Full,
}

/// The cycle's response, also logged as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CycleReport {
    pub status: Status,
    pub mode: Mode,
    pub cycle_id: String,
    pub fetched: usize,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub dead_lettered: usize,
    pub watermark_before: Option<String>,
    pub watermark_after: Option<String>,
    pub cxone_requests: u64,
    pub salesforce_requests: u64,
    pub duration_ms: u64,
    pub retries: u64,
    pub throttled_ms: u64,
    pub sf_api_usage: Option<ApiUsage>,
    /// Written records that are now archived (inactive).
    pub archived: usize,
    /// Records whose category Salesforce does not allow, and the distinct values.
    pub unmapped_categories: usize,
    pub unmapped_category_values: Vec<String>,
    /// Fields cut to their Salesforce length.
    pub truncated: usize,
    /// What a full reconciliation found (`null` for a delta).
    pub reconcile: Option<Reconcile>,
    /// Why the cycle was skipped, failed or stopped early; `null` when it ran to completion.
    pub reason: Option<Reason>,
    /// The listing kept changing while it was read, so the watermark held (absent when not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub listing_changed: bool,
    /// Times in the state item that lay in the future and were cleared (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_repairs: Vec<String>,
}

impl CycleReport {
    /// A report of nothing done yet; the cycle fills it in.
    pub fn new(cycle_id: String, mode: Mode) -> Self {
        Self {
            status: Status::Failed,
            mode,
            cycle_id,
            fetched: 0,
            created: 0,
            updated: 0,
            failed: 0,
            dead_lettered: 0,
            watermark_before: None,
            watermark_after: None,
            cxone_requests: 0,
            salesforce_requests: 0,
            duration_ms: 0,
            retries: 0,
            throttled_ms: 0,
            sf_api_usage: None,
            archived: 0,
            unmapped_categories: 0,
            unmapped_category_values: vec![],
            truncated: 0,
            reconcile: None,
            reason: None,
            listing_changed: false,
            state_repairs: vec![],
        }
    }

    /// Ends the report with `status` and, unless the cycle ran to completion, why.
    pub fn conclude(&mut self, status: Status, reason: Option<Reason>) {
        match (&status, &reason) {
            (Status::Failed, Some(r)) => tracing::error!(reason = %r, "cycle failed"),
            (Status::Skipped, Some(r)) => tracing::info!(reason = %r, "cycle skipped"),
            _ => {}
        }
        self.status = status;
        self.reason = reason;
    }
}

impl CycleReport {
    /// Counts what the writer did, and completes the reconciliation's findings with it.
    pub fn record_writes(
        &mut self,
        outcome: &Outcome,
        writes: &[Write],
        reconcile: Option<Reconcile>,
    ) {
        self.created = outcome.created;
        self.updated = outcome.updated;
        self.retries = outcome.retries;
        self.archived = outcome
            .written
            .iter()
            .filter(|&&i| writes[i].archives())
            .count();
        if let Some(mut reconcile) = reconcile {
            reconcile.fixed = outcome.written.len();
            reconcile.log();
            self.reconcile = Some(reconcile);
        }
    }
}

/// The discrepancies a full reconciliation found between CXone and Salesforce.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Reconcile {
    pub cxone_active: usize,
    pub salesforce_active: usize,
    /// CXone codes with no Salesforce record.
    pub missing: usize,
    /// Salesforce records whose fields differ from CXone.
    pub different: usize,
    /// Salesforce records no CXone code matches (flagged for review, never deleted).
    pub stale: usize,
    /// Records written to repair the above.
    pub fixed: usize,
    /// Up to 50 external IDs of each kind, for the operator.
    pub missing_ids: Vec<String>,
    pub stale_ids: Vec<String>,
}

impl Reconcile {
    /// The one structured log line of a full reconciliation.
    pub fn log(&self) {
        tracing::info!(target: "reconcile", reconcile = %serde_json::to_string(self).unwrap_or_default(), "full reconciliation compared CXone and Salesforce");
    }
}

/// Why a cycle or a redrive was skipped, failed, stopped early or left work for later.
///
/// Code decides by variant (the handler re-reads the credentials on [`Reason::AuthUnavailable`],
/// the metrics count [`Reason::ApiBudget`] skips); people and alarms read the text, whose first
/// word names the kind (`auth_unavailable: …`), so the text is part of the response contract.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// Another cycle or redrive holds the lease.
    LeaseHeld {
        owner: String,
        until: DateTime<Utc>,
    },
    /// The previous cycle started less than `MIN_POLL_INTERVAL_SECONDS` ago.
    TooSoon {
        previous: DateTime<Utc>,
        min_interval_secs: u64,
    },
    /// Another invocation took the lease between our read and our write.
    LeaseTaken,
    StateUnavailable(String),
    /// The state changed under the cycle's final write.
    StateConflict(String),
    AuthUnavailable(String),
    CxoneUnavailable(String),
    SalesforceUnavailable(String),
    /// Salesforce refused a whole request (not a record): a configuration or permission problem.
    SalesforceRejected(String),
    /// The Salesforce API usage is at or above the budget.
    ApiBudget(String),
    /// The mass-change breaker refused the cycle.
    MassChange {
        archiving: usize,
        active: usize,
        max_percent: u32,
    },
    DlqUnavailable(String),
    /// The queue is up but did not take some letters.
    DlqRejected(String),
    /// The invocation's deadline came before the work was done.
    Deadline(String),
    /// A redrive could not write a record: Salesforce stopped accepting requests or the deadline
    /// came.
    NotWritten,
}

impl Reason {
    /// The writer stopped starting batches as the deadline neared.
    pub fn batches_stopped() -> Self {
        Self::Deadline(
            "stopped starting batches before the invocation deadline; the next cycle continues"
                .into(),
        )
    }

    /// The reason for a Salesforce failure outside the write phase, with what was being done.
    pub fn salesforce(doing: &str, e: &SalesforceError) -> Self {
        let detail = format!("{doing}: {e}");
        match e {
            SalesforceError::Auth(_) | SalesforceError::SessionRejected => {
                Self::AuthUnavailable(detail)
            }
            SalesforceError::RequestLimit => Self::ApiBudget(detail),
            SalesforceError::Deadline(_) => Self::Deadline(detail),
            _ => Self::SalesforceUnavailable(detail),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeaseHeld { owner, until } => write!(
                f,
                "another cycle ({owner}) holds the lease until {}",
                format_ts(*until)
            ),
            Self::TooSoon {
                previous,
                min_interval_secs,
            } => write!(
                f,
                "the previous cycle started at {}; the minimum poll interval is {min_interval_secs} s",
                format_ts(*previous)
            ),
            Self::LeaseTaken => f.write_str("another invocation took the lease first"),
            Self::StateUnavailable(m) => write!(f, "state_unavailable: {m}"),
            Self::StateConflict(m) => write!(f, "state_conflict: {m}"),
            Self::AuthUnavailable(m) => write!(f, "auth_unavailable: {m}"),
            Self::CxoneUnavailable(m) => write!(f, "cxone_unavailable: {m}"),
            Self::SalesforceUnavailable(m) => write!(f, "salesforce_unavailable: {m}"),
            Self::SalesforceRejected(m) => write!(f, "salesforce_rejected: {m}"),
            Self::ApiBudget(m) => write!(f, "api_budget: {m}"),
            Self::MassChange {
                archiving,
                active,
                max_percent,
            } => write!(
                f,
                "mass_change: the cycle would archive or flag {archiving} of {active} active records, \
                 more than MAX_ARCHIVE_PERCENT={max_percent}%; nothing was written. If this is intended, \
                 invoke {{\"action\": \"sync\", \"full\": true, \"allow_mass_change\": true}}"
            ),
            Self::DlqUnavailable(m) => write!(f, "dlq_unavailable: {m}"),
            Self::DlqRejected(m) => write!(f, "dlq_rejected: {m}"),
            Self::Deadline(m) => write!(f, "deadline: {m}"),
            Self::NotWritten => f.write_str(
                "not written: Salesforce stopped accepting requests or the deadline came; left for the next run",
            ),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
