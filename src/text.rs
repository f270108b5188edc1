//! `invoke --format text`: a response as a short human summary. It reads the response's JSON
//! (the contract), so what it prints is what an operator would find in the JSON.

use serde_json::Value;
use std::fmt::Write;

/// Changes and cycles listed before "…and N more".
const ROWS: usize = 10;
const RECENT_CYCLES: usize = 5;

/// The summary of any response the handler returns; unknown shapes print as JSON.
pub fn render(response: &Value) -> String {
    let mode = response.get("mode").and_then(Value::as_str);
    let mut out = String::new();
    match mode {
        Some("plan") => plan(&mut out, response),
        Some("status") => status(&mut out, response),
        Some("delta" | "full") => cycle(&mut out, response),
        Some("purge") => purge(&mut out, response),
        Some("redrive") => redrive(&mut out, response),
        _ if response.get("batchItemFailures").is_some() => {
            let kept = response["batchItemFailures"].as_array().map_or(0, Vec::len);
            let _ = writeln!(out, "SQS redrive: {kept} messages kept in the queue");
        }
        _ if response.get("errorType").is_some() => {
            let _ = writeln!(
                out,
                "error {}: {}",
                s(&response["errorType"]),
                s(&response["errorMessage"])
            );
        }
        _ => out = serde_json::to_string_pretty(response).unwrap_or_default() + "\n",
    }
    out
}

/// A JSON value as plain text: strings unquoted, null as "-".
fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The reason line, when there is one.
fn reason(out: &mut String, response: &Value) {
    if let Some(r) = response.get("reason").and_then(Value::as_str) {
        let _ = writeln!(out, "  reason: {}", in_words(r));
    }
}

/// A reason's text, its leading code (`api_budget: …`) spelt out.
fn in_words(reason: &str) -> String {
    let Some((code, rest)) = reason.split_once(": ") else {
        return reason.to_owned();
    };
    let words = match code {
        "auth_unavailable" => "authentication failed",
        "cxone_unavailable" => "CXone could not be read",
        "salesforce_unavailable" => "Salesforce could not be reached",
        "salesforce_rejected" => "Salesforce refused the request",
        "api_budget" => "the Salesforce API budget is spent",
        "mass_change" => "the mass-change breaker refused the cycle",
        "dlq_unavailable" | "dlq_rejected" => "the dead-letter queue did not take the letters",
        "state_unavailable" => "the state table could not be read",
        "state_conflict" => "the state changed under the cycle",
        "deadline" => "the invocation deadline came",
        _ => return reason.to_owned(),
    };
    format!("{words} ({rest})")
}

fn cycle(out: &mut String, r: &Value) {
    let _ = writeln!(
        out,
        "cycle {}: {} ({} sync)",
        s(&r["cycle_id"]),
        s(&r["status"]),
        s(&r["mode"])
    );
    let _ = writeln!(
        out,
        "  fetched {}, created {}, updated {}, archived {}, dead-lettered {}, failed {}",
        n(&r["fetched"]),
        n(&r["created"]),
        n(&r["updated"]),
        n(&r["archived"]),
        n(&r["dead_lettered"]),
        n(&r["failed"])
    );
    let mark = |v: &Value| v.as_str().unwrap_or("none").to_owned();
    let _ = writeln!(
        out,
        "  watermark {} -> {}",
        mark(&r["watermark_before"]),
        mark(&r["watermark_after"])
    );
    let _ = writeln!(
        out,
        "  requests: Salesforce {}, CXone {}; {} ms",
        n(&r["salesforce_requests"]),
        n(&r["cxone_requests"]),
        n(&r["duration_ms"])
    );
    reason(out, r);
}

fn plan(out: &mut String, r: &Value) {
    let full = if r["full"].as_bool() == Some(true) {
        "full reconciliation"
    } else {
        "delta"
    };
    let _ = writeln!(out, "plan ({full}): {}", s(&r["status"]));
    let w = &r["would"];
    let _ = writeln!(
        out,
        "  would create {}, update {}, archive {}, reactivate {}, flag stale {}, clear flag {}, dead-letter {}; {} unchanged",
        n(&w["create"]),
        n(&w["update"]),
        n(&w["archive"]),
        n(&w["reactivate"]),
        n(&w["flag_stale"]),
        n(&w["clear_flag"]),
        n(&w["dead_letter"]),
        n(&w["unchanged"])
    );
    let breaker = match r["breaker"].as_str() {
        Some("would_trip") => "WOULD TRIP: the cycle would write nothing and fail",
        _ => "pass",
    };
    let _ = writeln!(out, "  breaker: {breaker}");
    let c = &r["cost"];
    let _ = writeln!(
        out,
        "  cost: {} Salesforce API calls (upserts: {}), {} CXone requests; API usage after: {:.1}%",
        n(&c["salesforce_requests"]),
        n(&r["next_cycle"]["upsert_calls"]),
        n(&c["cxone_requests"]),
        c["api_usage_percent_after"].as_f64().unwrap_or(0.0)
    );
    reason(out, r);
    if let Some(owner) = r.get("lease_held_by").and_then(Value::as_str) {
        let _ = writeln!(
            out,
            "  note: {owner} holds the lease now; the plan wrote nothing"
        );
    }
    let changes = r["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        let _ = writeln!(out, "  no changes");
        return;
    }
    let width = changes
        .iter()
        .take(ROWS)
        .map(|c| s(&c["external_id"]).chars().count())
        .max()
        .unwrap_or(0)
        .max("external id".len());
    let _ = writeln!(out, "  {:width$}  {:11}  fields", "external id", "action");
    for c in changes.iter().take(ROWS) {
        let _ = writeln!(
            out,
            "  {:width$}  {:11}  {}",
            s(&c["external_id"]),
            s(&c["action"]),
            fields(c)
        );
    }
    let listed = changes.len().min(ROWS);
    let total: u64 = w
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "unchanged")
                .map(|(_, v)| n(v))
                .sum()
        })
        .unwrap_or(0);
    if total > listed as u64 {
        let _ = writeln!(out, "  …and {} more", total - listed as u64);
    }
}

/// `Name: "old" → "new", IsActive__c: true → false`, or a dead letter's reason. `Name` comes
/// first; CXone's modification time, which changes with every edit, is left to the JSON; a create
/// shows its name and how many fields it sets.
fn fields(change: &Value) -> String {
    if let Some(reason) = change.get("reason").and_then(Value::as_str) {
        return reason.to_owned();
    }
    let Some(fields) = change["fields"].as_object() else {
        return String::new();
    };
    let shown = |name: &str, c: &Value| format!("{name}: {} → {}", c["from"], c["to"]);
    if change["action"] == "create" {
        let name = fields
            .get("Name")
            .map(|c| shown("Name", c))
            .unwrap_or_default();
        return format!("{name} (new record, {} fields)", fields.len());
    }
    let mut parts: Vec<String> = fields
        .iter()
        .filter(|(name, _)| name.as_str() != "Name" && name.as_str() != "LastModifiedCXone__c")
        .map(|(name, c)| shown(name, c))
        .collect();
    if let Some(c) = fields.get("Name") {
        parts.insert(0, shown("Name", c));
    }
    if parts.is_empty() {
        return "(written again; no owned field differs)".into();
    }
    parts.join(", ")
}

fn status(out: &mut String, r: &Value) {
    let _ = writeln!(out, "status of {}: {}", s(&r["sync_id"]), s(&r["status"]));
    let lag = match r["watermark_lag_seconds"].as_i64() {
        Some(secs) => format!(" ({secs} s behind)"),
        None => String::new(),
    };
    let _ = writeln!(out, "  watermark {}{lag}", s(&r["watermark"]));
    let _ = writeln!(out, "  last full sync {}", s(&r["last_full_sync"]));
    let lease = &r["lease"];
    if lease["held"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "  lease: held by {} until {}",
            s(&lease["owner"]),
            s(&lease["expires"])
        );
    } else {
        let _ = writeln!(out, "  lease: free");
    }
    match r["last_cycle"].as_object() {
        Some(_) => {
            let c = &r["last_cycle"];
            let _ = writeln!(
                out,
                "  last cycle: {} {} at {} ({} ms)",
                s(&c["status"]),
                s(&c["mode"]),
                s(&c["started"]),
                n(&c["duration_ms"])
            );
            if let Some(why) = c["reason"].as_str() {
                let _ = writeln!(out, "    reason: {}", in_words(why));
            }
        }
        None => {
            let _ = writeln!(out, "  last cycle: none recorded");
        }
    }
    let recent = r["recent_cycles"].as_array().cloned().unwrap_or_default();
    if !recent.is_empty() {
        let _ = writeln!(
            out,
            "  {:24}  {:7}  {:5}  {:>7}  {:>7}  {:>8}  {:>4}  {:>7}",
            "started", "status", "mode", "created", "updated", "archived", "dlq", "sf req"
        );
        for c in recent.iter().take(RECENT_CYCLES) {
            let _ = writeln!(
                out,
                "  {:24}  {:7}  {:5}  {:>7}  {:>7}  {:>8}  {:>4}  {:>7}",
                s(&c["started"]),
                s(&c["status"]),
                s(&c["mode"]),
                n(&c["created"]),
                n(&c["updated"]),
                n(&c["archived"]),
                n(&c["dead_lettered"]),
                n(&c["salesforce_requests"])
            );
        }
        if recent.len() > RECENT_CYCLES {
            let _ = writeln!(out, "  …and {} older", recent.len() - RECENT_CYCLES);
        }
    }
    match r["dlq"].as_object() {
        Some(_) => {
            let _ = writeln!(
                out,
                "  DLQ: {} waiting, {} in flight",
                n(&r["dlq"]["visible"]),
                n(&r["dlq"]["in_flight"])
            );
        }
        None => {
            let _ = writeln!(out, "  DLQ: unknown");
        }
    }
    let u = &r["sf_api_usage"];
    if u.is_object() {
        let (used, max) = (n(&u["used"]), n(&u["max"]));
        let percent = if max == 0 {
            0.0
        } else {
            used as f64 * 100.0 / max as f64
        };
        let _ = writeln!(
            out,
            "  Salesforce API usage: {used}/{max} ({percent:.1}%) as of {}",
            s(&u["as_of"])
        );
    } else {
        let _ = writeln!(out, "  Salesforce API usage: no reading yet");
    }
    reason(out, r);
}

fn purge(out: &mut String, r: &Value) {
    let len = |k: &str| r[k].as_array().map_or(0, Vec::len);
    let what = if r["dry_run"].as_bool() == Some(false) {
        "purge"
    } else {
        "purge (dry run)"
    };
    let _ = writeln!(
        out,
        "{what}: {}; {} candidates archived before {}, {} deleted, {} failed",
        s(&r["status"]),
        len("candidates"),
        s(&r["cutoff"]),
        len("deleted"),
        len("failed")
    );
    reason(out, r);
}

fn redrive(out: &mut String, r: &Value) {
    let _ = writeln!(
        out,
        "redrive: {}; received {}, written {}, superseded {}, failed again {}, parked {}, invalid {}, deferred {}",
        s(&r["status"]),
        n(&r["received"]),
        n(&r["written"]),
        n(&r["superseded"]),
        n(&r["failed_again"]),
        n(&r["parked"]),
        n(&r["invalid"]),
        n(&r["deferred"])
    );
    reason(out, r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_are_spelt_out_and_unknown_shapes_print_as_json() {
        assert_eq!(
            in_words("api_budget: usage 90/100"),
            "the Salesforce API budget is spent (usage 90/100)"
        );
        assert_eq!(in_words("another cycle holds"), "another cycle holds");
        assert!(render(&json!({"x": 1})).contains("\"x\": 1"));
    }
}
