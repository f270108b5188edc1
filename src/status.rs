//! The status view (`{"action": "status"}`): the state item, the run history and the DLQ's
//! depth, read and reported. It writes nothing and calls neither platform.
//!
//! The DLQ is read with `GetQueueAttributes` only. Its `oldest_age_seconds` is `null`: SQS has
//! no read that leaves messages untouched (a receive, even with a zero visibility timeout, adds
//! to each message's `ApproximateReceiveCount`), and the SQS-triggered redrive counts receives
//! as attempts and parks a letter at `REDRIVE_MAX_ATTEMPTS`, so looking would wear letters out.
//! The dashboard's `ApproximateAgeOfOldestMessage` is the place to see the age.

use crate::dlq::{Depth, QueueDepth};
use crate::domain::format_ts;
use crate::history::{CycleSummary, RunHistory};
use crate::sync::report::Status;
use crate::watermark::StateStore;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    /// `ok`, or `failed` when a part could not be read (`reason` says which; the rest is shown).
    pub status: Status,
    pub mode: &'static str,
    pub sync_id: String,
    pub watermark: Option<String>,
    /// Now minus the watermark, as the `WatermarkLagSeconds` metric.
    pub watermark_lag_seconds: Option<i64>,
    pub last_full_sync: Option<String>,
    pub lease: LeaseView,
    pub last_cycle: Option<CycleSummary>,
    /// Newest first, at most [`crate::history::MAX_CYCLES`].
    pub recent_cycles: Vec<CycleSummary>,
    pub dlq: Option<DlqView>,
    /// The most recent reading in the history; no Salesforce call is made.
    pub sf_api_usage: Option<UsageView>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LeaseView {
    /// Whether an unexpired lease is held (a cycle or redrive is running, or was killed and its
    /// lease has not expired yet).
    pub held: bool,
    pub owner: Option<String>,
    pub expires: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DlqView {
    pub visible: u64,
    pub in_flight: u64,
    pub oldest_age_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageView {
    pub used: u64,
    pub max: u64,
    /// When the cycle that read it ended.
    pub as_of: String,
}

/// What the status view reads.
pub struct Sources<'a> {
    pub sync_id: &'a str,
    pub state: &'a dyn StateStore,
    pub history: &'a dyn RunHistory,
    pub dlq: &'a dyn QueueDepth,
}

impl Sources<'_> {
    pub async fn read(&self, now: DateTime<Utc>) -> StatusReport {
        let (state, history, depth) =
            tokio::join!(self.state.load(), self.history.recent(), self.dlq.depth());
        let mut problems = Vec::new();
        let mut report = StatusReport {
            status: Status::Ok,
            mode: "status",
            sync_id: self.sync_id.to_owned(),
            watermark: None,
            watermark_lag_seconds: None,
            last_full_sync: None,
            lease: LeaseView::default(),
            last_cycle: None,
            recent_cycles: vec![],
            dlq: None,
            sf_api_usage: None,
            reason: None,
        };
        match state {
            Ok(stored) => {
                let s = stored.state;
                report.watermark = s.watermark.map(format_ts);
                report.watermark_lag_seconds = s
                    .watermark
                    .map(|w| now.signed_duration_since(w).num_seconds());
                report.last_full_sync = s.last_full_sync.map(format_ts);
                if let Some(lease) = s.lease.filter(|l| l.expires > now) {
                    report.lease = LeaseView {
                        held: true,
                        owner: Some(lease.owner),
                        expires: Some(format_ts(lease.expires)),
                    };
                }
            }
            Err(e) => problems.push(format!("state_unavailable: {e}")),
        }
        match history {
            Ok(cycles) => {
                report.sf_api_usage = cycles.iter().find_map(usage_of);
                report.last_cycle = cycles.first().cloned();
                report.recent_cycles = cycles;
            }
            Err(e) => problems.push(format!("history_unavailable: {e}")),
        }
        match depth {
            Ok(Depth { visible, in_flight }) => {
                report.dlq = Some(DlqView {
                    visible,
                    in_flight,
                    oldest_age_seconds: None,
                });
            }
            Err(e) => problems.push(format!("dlq_unavailable: {e}")),
        }
        if !problems.is_empty() {
            report.status = Status::Failed;
            report.reason = Some(problems.join("; "));
        }
        report
    }
}

/// A cycle's API usage reading, dated by when the cycle ended.
fn usage_of(cycle: &CycleSummary) -> Option<UsageView> {
    let usage = cycle.sf_api_usage?;
    let started = DateTime::parse_from_rfc3339(&cycle.started).ok()?;
    let ended = started.checked_add_signed(chrono::Duration::milliseconds(
        i64::try_from(cycle.duration_ms).ok()?,
    ))?;
    Some(UsageView {
        used: usage.used,
        max: usage.max,
        as_of: format_ts(ended.with_timezone(&Utc)),
    })
}
