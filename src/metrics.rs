//! The metrics of a sync cycle as one CloudWatch Embedded Metric Format (EMF) line: CloudWatch
//! Logs turns the line into metrics, so the function needs no `PutMetricData` call or permission.
//!
//! The metric names, the namespace (`METRICS_NAMESPACE`) and the `Service` dimension
//! (`SERVICE_NAME`) are the ones the alarms in `template.yaml` read; renaming one silences its
//! alarm.

use crate::config::Config;
use crate::sync::report::{CycleReport, Reason, Status};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::io::Write;

/// The one dimension of every metric.
pub const DIMENSION: &str = "Service";

/// The EMF document of one cycle, timestamped `now`. Besides the metrics it carries the cycle id,
/// status, mode and request id as plain properties, for Logs Insights.
///
/// `CycleSucceeded` counts `ok` and `partial` cycles (a partial cycle advanced the sync; what it
/// could not write is in the DLQ, which has its own alarm). `ApiUsagePercent` is left out while
/// Salesforce has not reported usage, and `WatermarkLagSeconds` while there is no watermark:
/// a made-up 0 would read as "all is well".
pub fn document(
    report: &CycleReport,
    namespace: &str,
    service: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let flag = |on: bool| json!(u8::from(on));
    let skipped_for_budget =
        report.status == Status::Skipped && matches!(report.reason, Some(Reason::ApiBudget(_)));
    let mut metrics: Vec<(&str, &str, Value)> = vec![
        ("Fetched", "Count", json!(report.fetched)),
        ("Created", "Count", json!(report.created)),
        ("Updated", "Count", json!(report.updated)),
        ("Archived", "Count", json!(report.archived)),
        ("Failed", "Count", json!(report.failed)),
        ("DeadLettered", "Count", json!(report.dead_lettered)),
        ("Retries", "Count", json!(report.retries)),
        ("ThrottledMs", "Milliseconds", json!(report.throttled_ms)),
        (
            "SalesforceRequests",
            "Count",
            json!(report.salesforce_requests),
        ),
        ("CxoneRequests", "Count", json!(report.cxone_requests)),
        ("DurationMs", "Milliseconds", json!(report.duration_ms)),
        (
            "UnmappedCategories",
            "Count",
            json!(report.unmapped_categories),
        ),
        (
            "CycleSucceeded",
            "Count",
            flag(matches!(report.status, Status::Ok | Status::Partial)),
        ),
        (
            "CycleFailed",
            "Count",
            flag(report.status == Status::Failed),
        ),
        ("CycleSkippedBudget", "Count", flag(skipped_for_budget)),
    ];
    if let Some(usage) = report.sf_api_usage {
        metrics.push(("ApiUsagePercent", "Percent", json!(usage.percent())));
    }
    let watermark = report
        .watermark_after
        .as_deref()
        .and_then(|w| DateTime::parse_from_rfc3339(w).ok());
    if let Some(watermark) = watermark {
        metrics.push((
            "WatermarkLagSeconds",
            "Seconds",
            json!(now.signed_duration_since(watermark).num_seconds()),
        ));
    }

    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [[DIMENSION]], "Metrics": definitions}],
        }),
    );
    line.insert(DIMENSION.into(), json!(service));
    for (name, _, value) in metrics {
        line.insert(name.into(), value);
    }
    line.insert("cycle_id".into(), json!(report.cycle_id));
    line.insert("status".into(), json!(report.status));
    line.insert("mode".into(), json!(report.mode));
    line.insert("request_id".into(), json!(request_id));
    Value::Object(line)
}

/// Writes the EMF line of `report`. Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) it goes to stdout,
/// the stream CloudWatch extracts EMF from. Anywhere else it goes to stderr with the logs, because
/// the `invoke` command's stdout must carry nothing but the handler's JSON response.
pub fn emit(config: &Config, report: &CycleReport, request_id: &str) {
    let line = document(
        report,
        &config.metrics.namespace,
        &config.metrics.service_name,
        request_id,
        Utc::now(),
    )
    .to_string();
    // Metrics are best effort: a closed stream must not fail the cycle that already ran.
    let _ = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        writeln!(std::io::stdout().lock(), "{line}")
    } else {
        writeln!(std::io::stderr().lock(), "{line}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::ApiUsage;
    use crate::sync::report::Mode;
    use chrono::TimeZone;

    fn report(status: Status, reason: Option<Reason>) -> CycleReport {
        CycleReport {
            status,
            mode: Mode::Delta,
            cycle_id: "c-1".into(),
            fetched: 12,
            created: 3,
            updated: 5,
            failed: 2,
            dead_lettered: 1,
            watermark_before: None,
            watermark_after: Some("2024-03-15T14:30:00.000Z".into()),
            cxone_requests: 4,
            salesforce_requests: 6,
            duration_ms: 1234,
            retries: 7,
            throttled_ms: 250,
            sf_api_usage: Some(ApiUsage { used: 25, max: 200 }),
            archived: 1,
            unmapped_categories: 2,
            unmapped_category_values: vec!["Odd".into()],
            truncated: 0,
            reconcile: None,
            reason,
            listing_changed: false,
            state_repairs: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 15, 14, 35, 0).unwrap()
    }

    /// Every metric named in the directive has a value at the root, and vice versa.
    fn assert_well_formed(line: &Value) {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            assert!(
                line[name].is_number(),
                "{name} has no numeric value in {line}"
            );
        }
    }

    #[test]
    fn a_cycle_becomes_one_emf_document_with_the_alarmed_names() {
        let line = document(
            &report(Status::Partial, None),
            "DispositionSync",
            "stack-a",
            "req-9",
            now(),
        );
        assert_well_formed(&line);
        assert_eq!(line["_aws"]["Timestamp"], json!(now().timestamp_millis()));
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "DispositionSync"
        );
        assert_eq!(line["Service"], "stack-a");
        let expected = json!({
            "Fetched": 12, "Created": 3, "Updated": 5, "Archived": 1, "Failed": 2, "DeadLettered": 1,
            "Retries": 7, "ThrottledMs": 250, "SalesforceRequests": 6, "CxoneRequests": 4,
            "DurationMs": 1234, "UnmappedCategories": 2, "ApiUsagePercent": 12.5,
            "WatermarkLagSeconds": 300, "CycleSucceeded": 1, "CycleFailed": 0, "CycleSkippedBudget": 0,
        });
        for (name, value) in expected.as_object().unwrap() {
            assert_eq!(&line[name], value, "{name}");
        }
        assert_eq!(
            (&line["cycle_id"], &line["status"], &line["request_id"]),
            (&json!("c-1"), &json!("partial"), &json!("req-9"))
        );
        let units: Map<String, Value> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap().to_owned(), m["Unit"].clone()))
            .collect();
        assert_eq!(units.len(), expected.as_object().unwrap().len());
        assert_eq!(
            (
                &units["DurationMs"],
                &units["WatermarkLagSeconds"],
                &units["ApiUsagePercent"]
            ),
            (&json!("Milliseconds"), &json!("Seconds"), &json!("Percent"))
        );
    }

    #[test]
    fn the_outcome_flags_follow_the_status_and_reason() {
        let flags = |status, reason| {
            let line = document(&report(status, reason), "N", "s", "r", now());
            (
                line["CycleSucceeded"].as_u64(),
                line["CycleFailed"].as_u64(),
                line["CycleSkippedBudget"].as_u64(),
            )
        };
        assert_eq!(flags(Status::Ok, None), (Some(1), Some(0), Some(0)));
        assert_eq!(
            flags(Status::Failed, Some(Reason::CxoneUnavailable("503".into()))),
            (Some(0), Some(1), Some(0))
        );
        assert_eq!(
            flags(Status::Skipped, Some(Reason::ApiBudget("usage 90%".into()))),
            (Some(0), Some(0), Some(1))
        );
        assert_eq!(
            flags(Status::Skipped, Some(Reason::LeaseTaken)),
            (Some(0), Some(0), Some(0))
        );
    }

    #[test]
    fn unknown_usage_and_watermark_are_left_out_rather_than_zero() {
        let mut first = report(
            Status::Failed,
            Some(Reason::SalesforceUnavailable("503".into())),
        );
        first.sf_api_usage = None;
        first.watermark_after = None;
        let line = document(&first, "N", "s", "r", now());
        assert_well_formed(&line);
        assert!(
            line.get("ApiUsagePercent").is_none() && line.get("WatermarkLagSeconds").is_none(),
            "{line}"
        );
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(
            !names.contains(&"ApiUsagePercent") && !names.contains(&"WatermarkLagSeconds"),
            "{names:?}"
        );
    }
}
