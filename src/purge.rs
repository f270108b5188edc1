//! The retention purge: the only path that ever deletes a Salesforce record.
//!
//! Off by default. A dry run lists what would go; a real run needs `PURGE_ENABLED=true` and
//! deletes exactly the records that are inactive and archived longer than `RETENTION_DAYS` (at
//! least 365) ago, checked again on our side whatever the query returned.

use crate::domain::format_ts;
use crate::record::{Row, Target, columns};
use crate::salesforce::RecordSink;
use crate::sync::report::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A record old enough to purge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub id: String,
    pub external_id: String,
    pub name: Option<String>,
    pub archived_date: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PurgeFailure {
    pub id: String,
    pub external_id: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PurgeReport {
    pub status: Status,
    pub mode: &'static str,
    pub dry_run: bool,
    pub retention_days: u32,
    /// Records archived before this instant are candidates.
    pub cutoff: String,
    pub candidates: Vec<Candidate>,
    /// External IDs deleted.
    pub deleted: Vec<String>,
    pub failed: Vec<PurgeFailure>,
    pub salesforce_requests: u64,
    pub reason: Option<String>,
}

pub struct Purge<'a> {
    pub sink: &'a dyn RecordSink,
    pub target: &'a Target,
    pub retention_days: u32,
    pub enabled: bool,
}

impl Purge<'_> {
    pub async fn run(&self, dry_run: bool, now: DateTime<Utc>) -> PurgeReport {
        let requests_before = self.sink.requests();
        let cutoff = now - chrono::Duration::days(self.retention_days.max(365) as i64);
        let mut report = PurgeReport {
            status: Status::Ok,
            mode: "purge",
            dry_run,
            retention_days: self.retention_days,
            cutoff: format_ts(cutoff),
            candidates: vec![],
            deleted: vec![],
            failed: vec![],
            salesforce_requests: 0,
            reason: None,
        };
        self.purge(dry_run, cutoff, &mut report).await;
        report.salesforce_requests = self.sink.requests() - requests_before;
        tracing::info!(target: "purge_report", report = %serde_json::to_string(&report).unwrap_or_default(), "purge finished");
        report
    }

    async fn purge(&self, dry_run: bool, cutoff: DateTime<Utc>, report: &mut PurgeReport) {
        if !dry_run && !self.enabled {
            report.status = Status::Failed;
            report.reason = Some("purge_disabled: deleting needs PURGE_ENABLED=true; run with \"dry_run\": true to list candidates".into());
            return;
        }
        let t = self.target;
        let soql = format!(
            "SELECT {} FROM {} WHERE IsActive__c = false AND ArchivedDate__c < {}",
            columns(t),
            t.object,
            cutoff.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let rows = match self.sink.query(&soql).await {
            Ok(rows) => rows,
            Err(e) => {
                report.status = Status::Failed;
                report.reason = Some(format!("salesforce_unavailable: {e}"));
                return;
            }
        };
        // Whatever the query returned, only inactive records archived before the cutoff qualify.
        report.candidates = rows
            .iter()
            .filter_map(|row| candidate(&Row::parse(row, t)?, cutoff))
            .collect();
        report
            .candidates
            .sort_by(|a, b| a.external_id.cmp(&b.external_id));
        if dry_run {
            return;
        }
        for chunk in report.candidates.chunks(200) {
            let ids: Vec<String> = chunk.iter().map(|c| c.id.clone()).collect();
            match self.sink.delete(&ids).await {
                Ok(results) => {
                    for (c, result) in chunk.iter().zip(results) {
                        match result {
                            Ok(()) => report.deleted.push(c.external_id.clone()),
                            Err(e) => report.failed.push(PurgeFailure {
                                id: c.id.clone(),
                                external_id: c.external_id.clone(),
                                error: format!("{}: {}", e.code, e.message),
                            }),
                        }
                    }
                }
                Err(e) => {
                    report.failed.extend(chunk.iter().map(|c| PurgeFailure {
                        id: c.id.clone(),
                        external_id: c.external_id.clone(),
                        error: e.to_string(),
                    }));
                }
            }
        }
        if !report.failed.is_empty() {
            report.status = Status::Partial;
            report.reason = Some(format!(
                "{} of {} deletions failed",
                report.failed.len(),
                report.candidates.len()
            ));
        }
    }
}

fn candidate(row: &Row, cutoff: DateTime<Utc>) -> Option<Candidate> {
    let archived = row.fields.archived?;
    if row.fields.is_active != Some(false) || archived >= cutoff {
        return None;
    }
    Some(Candidate {
        id: row.id.clone()?,
        external_id: row.external_id.clone(),
        name: row.fields.name.clone(),
        archived_date: format_ts(archived),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_old_inactive_rows_qualify_whatever_the_query_returned() {
        let cutoff = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let target = Target {
            object: "Disposition__c".into(),
            external_id_field: "X".into(),
        };
        let row = |value: serde_json::Value| Row::parse(&value, &target).unwrap();
        let old = |active: bool, archived: &str| {
            row(
                json!({"Id": "a0B1", "X": "ext", "IsActive__c": active, "ArchivedDate__c": archived}),
            )
        };
        assert!(candidate(&old(false, "2023-06-01T00:00:00.000+0000"), cutoff).is_some());
        assert!(candidate(&old(true, "2023-06-01T00:00:00.000+0000"), cutoff).is_none());
        assert!(candidate(&old(false, "2025-06-01T00:00:00.000+0000"), cutoff).is_none());
        let never_archived = row(json!({"Id": "a0B1", "X": "ext", "IsActive__c": false}));
        assert!(candidate(&never_archived, cutoff).is_none());
    }
}
