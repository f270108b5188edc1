//! The retention purge: the only path that ever deletes a Salesforce record.
//!
//! Off by default. A dry run lists what would go; a real run needs `PURGE_ENABLED=true` and
//! deletes exactly the records that are inactive and archived longer than `RETENTION_DAYS` (at
//! least 365) ago, checked again on our side whatever the query returned.

use crate::domain::format_ts;
use crate::record::Target;
use crate::salesforce::RecordSink;
use crate::sync::report::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

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
            "SELECT Id, {}, Name, IsActive__c, ArchivedDate__c FROM {} WHERE IsActive__c = false AND ArchivedDate__c < {}",
            t.external_id_field,
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
            .filter_map(|row| candidate(row, &t.external_id_field, cutoff))
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

fn candidate(row: &Value, external_id_field: &str, cutoff: DateTime<Utc>) -> Option<Candidate> {
    if row.get("IsActive__c") != Some(&Value::Bool(false)) {
        return None;
    }
    let archived = row.get("ArchivedDate__c")?.as_str()?;
    let at = DateTime::parse_from_rfc3339(archived)
        .or_else(|_| DateTime::parse_from_str(archived, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?
        .with_timezone(&Utc);
    if at >= cutoff {
        return None;
    }
    Some(Candidate {
        id: row.get("Id")?.as_str()?.to_owned(),
        external_id: row.get(external_id_field)?.as_str()?.to_owned(),
        name: row.get("Name").and_then(Value::as_str).map(str::to_owned),
        archived_date: format_ts(at),
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
        let row = |active: bool, archived: &str| json!({"Id": "a0B1", "X": "ext", "IsActive__c": active, "ArchivedDate__c": archived});
        assert!(candidate(&row(false, "2023-06-01T00:00:00.000+0000"), "X", cutoff).is_some());
        assert!(candidate(&row(true, "2023-06-01T00:00:00.000+0000"), "X", cutoff).is_none());
        assert!(candidate(&row(false, "2025-06-01T00:00:00.000+0000"), "X", cutoff).is_none());
        assert!(
            candidate(
                &json!({"Id": "a0B1", "X": "ext", "IsActive__c": false}),
                "X",
                cutoff
            )
            .is_none()
        );
    }
}
