//! The run history: one summary per cycle, the newest [`MAX_CYCLES`], for the status view.
//!
//! It lives in its own DynamoDB item (`pk = "<SYNC_ID>#history"`), not in the state item: a
//! skipped cycle must record itself too, and it may not write the state item (another run holds
//! the lease on it). One cycle adds one conditional write: read the item, put it back with the
//! new summary first, on the condition that its `version` is still the one read. On a conflict
//! (another run recorded in between) it reads and tries once more, then gives up with a warning:
//! the history is for people, and never changes a cycle's outcome.

use crate::domain::format_ts;
use crate::salesforce::ApiUsage;
use crate::sync::report::CycleReport;
use crate::watermark::{Item, StateError, get_item, put_item};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most summaries kept (about 300 bytes each: the item stays far below DynamoDB's 400 KB).
pub const MAX_CYCLES: usize = 50;

/// One cycle, as the status view lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleSummary {
    pub cycle_id: String,
    /// `ok`, `partial`, `skipped` or `failed`, as in the cycle's response.
    pub status: String,
    /// `delta` or `full`.
    pub mode: String,
    /// The cycle's `reason`, as in its response; `null` when it ran to completion.
    pub reason: Option<String>,
    pub started: String,
    pub duration_ms: u64,
    pub created: usize,
    pub updated: usize,
    pub archived: usize,
    pub dead_lettered: usize,
    pub salesforce_requests: u64,
    /// The last `Sforce-Limit-Info` reading of the cycle (absent when it made none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sf_api_usage: Option<ApiUsage>,
}

impl CycleSummary {
    pub fn of(report: &CycleReport, started: DateTime<Utc>) -> Self {
        let text = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            cycle_id: report.cycle_id.clone(),
            status: text(serde_json::to_value(report.status).unwrap_or_default()),
            mode: text(serde_json::to_value(report.mode).unwrap_or_default()),
            reason: report.reason.as_ref().map(ToString::to_string),
            started: format_ts(started),
            duration_ms: report.duration_ms,
            created: report.created,
            updated: report.updated,
            archived: report.archived,
            dead_lettered: report.dead_lettered,
            salesforce_requests: report.salesforce_requests,
            sf_api_usage: report.sf_api_usage,
        }
    }
}

#[async_trait]
pub trait RunHistory: Send + Sync {
    /// The summaries, newest first.
    async fn recent(&self) -> Result<Vec<CycleSummary>, StateError>;
    /// Adds `summary` as the newest, dropping the oldest beyond [`MAX_CYCLES`].
    async fn record(&self, summary: &CycleSummary) -> Result<(), StateError>;
}

/// Records `summary`, logging (never returning) a failure.
pub async fn record(history: &dyn RunHistory, summary: &CycleSummary) {
    if let Err(e) = history.record(summary).await {
        tracing::warn!(error = %e, cycle_id = %summary.cycle_id, "could not add the cycle to the run history");
    }
}

mod attr {
    pub const PK: &str = "pk";
    pub const VERSION: &str = "version";
    /// The summaries, newest first, as one JSON array (readable in the console).
    pub const CYCLES: &str = "cycles";
}

/// [`RunHistory`] on one item of the state table.
pub struct DynamoDbRunHistory {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pk: String,
}

impl DynamoDbRunHistory {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, sync_id: &str) -> Self {
        Self {
            client,
            table: table.into(),
            pk: format!("{sync_id}#history"),
        }
    }

    async fn load(&self) -> Result<(Vec<CycleSummary>, u64), StateError> {
        let Some(item) = get_item(&self.client, &self.table, &self.pk).await? else {
            return Ok((vec![], 0));
        };
        let version = match item.get(attr::VERSION) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            StateError::Malformed(format!("history `{}` is not a number", attr::VERSION))
        })?;
        let cycles = match item.get(attr::CYCLES) {
            None => vec![],
            Some(AttributeValue::S(text)) => serde_json::from_str(text).map_err(|e| {
                StateError::Malformed(format!(
                    "history `{}` is not a list of cycles: {e}",
                    attr::CYCLES
                ))
            })?,
            Some(_) => {
                return Err(StateError::Malformed(format!(
                    "history `{}` is not a string (S)",
                    attr::CYCLES
                )));
            }
        };
        Ok((cycles, version))
    }

    async fn put(&self, cycles: &[CycleSummary], expected: u64) -> Result<(), StateError> {
        let text = serde_json::to_string(cycles)
            .map_err(|e| StateError::Malformed(format!("history does not serialize: {e}")))?;
        let item = Item::from([
            (attr::PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (
                attr::VERSION.to_owned(),
                AttributeValue::N((expected + 1).to_string()),
            ),
            (attr::CYCLES.to_owned(), AttributeValue::S(text)),
        ]);
        put_item(&self.client, &self.table, item, expected).await
    }
}

#[async_trait]
impl RunHistory for DynamoDbRunHistory {
    async fn recent(&self) -> Result<Vec<CycleSummary>, StateError> {
        let (mut cycles, _) = self.load().await?;
        cycles.truncate(MAX_CYCLES);
        Ok(cycles)
    }

    async fn record(&self, summary: &CycleSummary) -> Result<(), StateError> {
        // A second try after a conflict: two runs finishing at once is expected (a skipped
        // cycle while another holds the lease); a third writer in the same instant is not.
        let mut tries = 2;
        loop {
            tries -= 1;
            let (mut cycles, version) = self.load().await?;
            cycles.insert(0, summary.clone());
            cycles.truncate(MAX_CYCLES);
            match self.put(&cycles, version).await {
                Err(StateError::Conflict { .. }) if tries > 0 => continue,
                other => return other,
            }
        }
    }
}
