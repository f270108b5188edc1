//! What an operator sees of a cycle, through the real binary: the one Embedded Metric Format line
//! per invocation (checked value by value against the cycle's response and against the names
//! the alarms in `template.yaml` read), the JSON log lines and their spans, and the absence of
//! any secret or token from the logs and the dead letters.

use crate::harness::{Run, dead_letters, invoke};
use crate::support::{endpoints, world_for};
use chrono::{DateTime, Duration, Utc};
use disposition_sim::cxone::{CxoneApi, CxoneConfig, Fault};
use disposition_sim::salesforce::SalesforceConfig;
use disposition_sim::world::{LocalWorld, queue_bodies};
use rstest::rstest;
use serde_json::{Value, json};
use std::path::Path;

/// The stderr lines of a run, each parsed as JSON (every line the binary logs must be JSON).
fn log_lines(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The one EMF line of a run. Outside Lambda it goes to stderr, so that stdout holds only the
/// response (the harness already fails if stdout is anything but one JSON document).
fn emf_line(run: &Run) -> Value {
    let mut lines: Vec<Value> = log_lines(run)
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one EMF line:\n{}",
        run.stderr
    );
    lines.remove(0)
}

fn as_u64(v: &Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} is not a whole number in {v}"))
}

/// Runs one sync and checks that its EMF line is well formed and says what the response says.
/// Returns the response and the EMF line.
async fn sync_checked(world: &LocalWorld, full: bool, extra: &[(&str, &str)]) -> (Value, Value) {
    let started = Utc::now();
    let run = invoke(world, &json!({"action": "sync", "full": full}), extra).await;
    let finished = Utc::now();
    assert!(
        run.success,
        "invoke failed: {}\n{}",
        run.response, run.stderr
    );
    let report = run.response.clone();
    let emf = emf_line(&run);

    let directive = &emf["_aws"]["CloudWatchMetrics"][0];
    let namespace = extra
        .iter()
        .find(|(k, _)| *k == "METRICS_NAMESPACE")
        .map_or("DispositionSync", |(_, v)| v);
    let service = extra
        .iter()
        .find(|(k, _)| *k == "SERVICE_NAME")
        .map_or("disposition-sync", |(_, v)| v);
    assert_eq!(directive["Namespace"], namespace);
    assert_eq!(directive["Dimensions"], json!([["Service"]]));
    assert_eq!(emf["Service"], service);
    let stamp = DateTime::from_timestamp_millis(
        emf["_aws"]["Timestamp"]
            .as_i64()
            .expect("a millisecond timestamp"),
    )
    .unwrap();
    assert!(
        started - Duration::seconds(1) <= stamp && stamp <= finished,
        "timestamp {stamp} is outside the run"
    );
    let declared: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    for name in &declared {
        assert!(
            emf[name].is_number(),
            "{name} is declared but has no value: {emf}"
        );
    }

    for (metric, field) in [
        ("Fetched", "fetched"),
        ("Created", "created"),
        ("Updated", "updated"),
        ("Archived", "archived"),
        ("Failed", "failed"),
        ("DeadLettered", "dead_lettered"),
        ("Retries", "retries"),
        ("ThrottledMs", "throttled_ms"),
        ("SalesforceRequests", "salesforce_requests"),
        ("CxoneRequests", "cxone_requests"),
        ("DurationMs", "duration_ms"),
        ("UnmappedCategories", "unmapped_categories"),
    ] {
        assert_eq!(
            as_u64(&emf, metric),
            as_u64(&report, field),
            "{metric} vs the response's {field}"
        );
    }
    let status = report["status"].as_str().unwrap();
    let budget = status == "skipped"
        && report["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("api_budget"));
    assert_eq!(
        as_u64(&emf, "CycleSucceeded"),
        u64::from(status == "ok" || status == "partial"),
        "{status}"
    );
    assert_eq!(
        as_u64(&emf, "CycleFailed"),
        u64::from(status == "failed"),
        "{status}"
    );
    assert_eq!(
        as_u64(&emf, "CycleSkippedBudget"),
        u64::from(budget),
        "{status}"
    );
    assert_eq!(
        (&emf["cycle_id"], &emf["status"]),
        (&report["cycle_id"], &report["status"])
    );

    match report["sf_api_usage"].as_object() {
        Some(usage) => {
            let expected = usage["used"].as_f64().unwrap() * 100.0 / usage["max"].as_f64().unwrap();
            let got = emf["ApiUsagePercent"]
                .as_f64()
                .expect("ApiUsagePercent when usage is known");
            assert!(
                (got - expected).abs() < 1e-9,
                "ApiUsagePercent {got}, usage says {expected}"
            );
            assert!(declared.contains(&"ApiUsagePercent"));
        }
        None => assert!(
            emf.get("ApiUsagePercent").is_none(),
            "no usage was reported, yet: {emf}"
        ),
    }
    match report["watermark_after"].as_str() {
        Some(watermark) => {
            let watermark = DateTime::parse_from_rfc3339(watermark)
                .unwrap()
                .with_timezone(&Utc);
            let lag = emf["WatermarkLagSeconds"]
                .as_i64()
                .expect("WatermarkLagSeconds when there is a watermark");
            let (low, high) = (
                (started - watermark).num_seconds() - 1,
                (finished - watermark).num_seconds() + 1,
            );
            assert!(
                low <= lag && lag <= high,
                "WatermarkLagSeconds {lag} is not now − watermark ({low}..={high})"
            );
            assert!(declared.contains(&"WatermarkLagSeconds"));
        }
        None => assert!(
            emf.get("WatermarkLagSeconds").is_none(),
            "there is no watermark, yet: {emf}"
        ),
    }
    (report, emf)
}

/// The metric names of the template's alarms on the function's own namespace.
fn alarmed_metrics() -> Vec<String> {
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .unwrap();
    let lines: Vec<&str> = template.lines().map(str::trim).collect();
    let names: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == "Namespace: !Ref MetricsNamespace")
        .map(|(i, _)| {
            let name = lines[i + 1]
                .strip_prefix("MetricName: ")
                .expect("MetricName follows Namespace in the template");
            assert_eq!(
                &lines[i + 2..i + 4],
                ["Dimensions:", "- Name: Service"],
                "{name} is not selected by Service"
            );
            name.to_owned()
        })
        .collect();
    assert!(
        names.len() >= 4,
        "the template's alarms were not found: {names:?}"
    );
    names
}

/// A full cycle and a busy delta each emit one EMF line whose every value matches the response:
/// counts, retries, throttling, requests, API usage percent, duration, watermark lag (an hour
/// for backdated codes, about zero after fresh edits) and the outcome flags, under the namespace
/// and service the environment names and with every metric an alarm reads.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn each_cycle_emits_one_metrics_line_that_matches_its_report(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(20);
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let modified_field = match api {
        CxoneApi::Guide => "last_modified_date",
        CxoneApi::Admin => "lastUpdated",
    };
    for (i, id) in ids.iter().enumerate() {
        let at = an_hour_ago + Duration::milliseconds(i as i64);
        world.cxone.set_field(
            id,
            modified_field,
            json!(disposition_sync::domain::format_ts(at)),
        );
    }
    let labels = [
        ("METRICS_NAMESPACE", "Acme/Dispositions"),
        ("SERVICE_NAME", "obs-stack"),
    ];

    let (full, emf) = sync_checked(&world, true, &labels).await;
    assert_eq!(
        (full["status"].as_str(), as_u64(&emf, "Created")),
        (Some("ok"), 20),
        "{full}"
    );
    let lag = emf["WatermarkLagSeconds"].as_i64().unwrap();
    assert!(
        (3590..3700).contains(&lag),
        "the watermark is an hour old, the lag says {lag} s"
    );
    for name in alarmed_metrics() {
        assert!(
            emf[&name].is_number(),
            "the alarm metric {name} is missing from {emf}"
        );
    }

    // A delta with something of everything: archives, an unmapped category, a permanent
    // rejection (dead-lettered), a lock that clears on retry, and a CXone 429 to wait out.
    world.cxone.deactivate(&ids[0]);
    world.cxone.deactivate(&ids[1]);
    world.cxone.set_category(&ids[2], "Not A Picklist Value");
    world.cxone.rename(&ids[3], "Rejected Rename");
    world.cxone.rename(&ids[4], "Locked Rename");
    world.salesforce.inject_record_error(
        &ids[3],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Rejected by a validation rule",
        None,
    );
    world.salesforce.inject_record_error(
        &ids[4],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        Some(1),
    );
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 429,
            retry_after: Some(1),
            times: 1,
            ..Fault::default()
        },
    );
    world.salesforce.set_api_usage(12_000, 100_000);

    // The overlap window re-reads the 15 untouched codes too: fetched, but not sent again.
    let (delta, emf) = sync_checked(&world, false, &labels).await;
    assert_eq!(
        (delta["status"].as_str(), delta["mode"].as_str()),
        (Some("partial"), Some("delta")),
        "{delta}"
    );
    let counts = [
        "Fetched",
        "Updated",
        "Archived",
        "UnmappedCategories",
        "DeadLettered",
        "Failed",
        "CycleSucceeded",
    ]
    .map(|m| as_u64(&emf, m));
    assert_eq!(counts, [20, 4, 2, 1, 1, 1, 1], "{emf}");
    assert!(
        as_u64(&emf, "Retries") >= 1 && as_u64(&emf, "ThrottledMs") >= 1000,
        "{emf}"
    );
    assert!(emf["ApiUsagePercent"].as_f64().unwrap() > 12.0, "{emf}");
}

/// The outcome flags through the binary: a cycle skipped for the Salesforce API budget sets only
/// `CycleSkippedBudget`; a cycle that fails on CXone sets only `CycleFailed`, and leaves out the
/// watermark lag it never learnt, under the default namespace and service.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn skipped_and_failed_cycles_raise_their_own_flags(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    world.salesforce.set_api_usage(95_000, 100_000);
    let (skipped, emf) = sync_checked(&world, false, &[]).await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    let flags = |emf: &Value| {
        ["CycleSucceeded", "CycleFailed", "CycleSkippedBudget"].map(|m| as_u64(emf, m))
    };
    assert_eq!(flags(&emf), [0, 0, 1]);

    world.salesforce.set_api_usage(0, 100_000);
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 503,
            times: 50,
            ..Fault::default()
        },
    );
    let (failed, emf) = sync_checked(&world, false, &[]).await;
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("cxone_unavailable")),
        "{failed}"
    );
    assert_eq!(flags(&emf), [0, 1, 0]);
    // (The API usage may be known: a full snapshot reads Salesforce while CXone pages arrive.)
    assert!(emf.get("WatermarkLagSeconds").is_none(), "{emf}");
}

/// Every log line is JSON and sits in the invocation's span, which carries the request id (the
/// same one the metrics line names) and the sync id; the cycle's lines also sit in the `cycle`
/// span, and the cycle id in the logs is the one in the response.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn every_log_line_names_its_invocation_and_cycle(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(3);
    let run = invoke(&world, &json!({"action": "sync"}), &[]).await;
    assert!(run.success, "{}\n{}", run.response, run.stderr);
    let emf = emf_line(&run);
    let request_id = emf["request_id"]
        .as_str()
        .expect("the metrics line names the request");
    assert!(!request_id.is_empty());

    let lines: Vec<Value> = log_lines(&run)
        .into_iter()
        .filter(|l| l.get("_aws").is_none())
        .collect();
    assert!(!lines.is_empty());
    let mut in_cycle = 0;
    for line in &lines {
        let spans = line["spans"]
            .as_array()
            .unwrap_or_else(|| panic!("a line outside any span: {line}"));
        let invocation = spans
            .iter()
            .find(|s| s["name"] == "invocation")
            .unwrap_or_else(|| panic!("outside the invocation span: {line}"));
        assert_eq!(
            (
                invocation["request_id"].as_str(),
                invocation["sync_id"].as_str()
            ),
            (Some(request_id), Some("dispositions")),
            "{line}"
        );
        if let Some(cycle) = spans.iter().find(|s| s["name"] == "cycle") {
            assert_eq!(cycle["cycle_id"], run.response["cycle_id"], "{line}");
            in_cycle += 1;
        }
    }
    assert!(
        in_cycle >= 2,
        "the cycle wrote its lines outside the cycle span:\n{}",
        run.stderr
    );
    let planned = lines
        .iter()
        .find(|l| l["fields"]["message"] == "cycle planned")
        .expect("the cycle logs its plan");
    assert_eq!(planned["fields"]["cycle_id"], run.response["cycle_id"]);
    let finished = lines
        .iter()
        .find(|l| l["fields"]["message"] == "cycle finished")
        .expect("the cycle logs its report");
    let logged: Value =
        serde_json::from_str(finished["fields"]["report"].as_str().unwrap()).unwrap();
    assert_eq!(logged, run.response, "the logged report is the response");
}

/// A cycle that refreshes both tokens mid-way and dead-letters a record, run with distinctive
/// client secrets and AWS credentials at the most verbose log level (dependencies included),
/// leaves no secret, AWS credential or access token the simulators issued in stdout (the
/// response), stderr or any DLQ message.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn no_secret_or_token_reaches_the_logs_or_the_dead_letters(#[case] api: CxoneApi) {
    let canary =
        |platform: &str| format!("{platform}-canary-secret-{}", uuid::Uuid::new_v4().simple());
    let (cxone_secret, salesforce_secret) = (canary("cxone"), canary("salesforce"));
    // The Admin API user's access key secret, with the characters real ones have that form
    // encoding changes: found encoded or not, its canary part gives it away.
    let access_key = canary("access-key");
    let cxone = CxoneConfig {
        client_secret: cxone_secret.clone(),
        access_key_secret: format!("{access_key}+/=="),
        ..CxoneConfig::for_api(api)
    };
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", cxone.client_id, cxone.client_secret),
    );
    let world = LocalWorld::start_with(
        &format!("obs{}-{}", std::process::id(), api.as_str()),
        cxone,
        SalesforceConfig {
            client_secret: salesforce_secret.clone(),
            ..SalesforceConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("cannot start the local world: {e}"));
    let ids = world.cxone.seed(10);
    world.salesforce.inject_record_error(
        &ids[6],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Rejected by a validation rule",
        None,
    );
    // Both clients must fetch a second token in the middle of the cycle.
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 401,
            times: 1,
            ..Fault::default()
        },
    );
    world.salesforce.fail_next(
        "upsert",
        401,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        1,
    );

    let (aws_secret_key, aws_session_token) = (canary("aws-key"), canary("aws-session"));
    let extra = [
        ("RUST_LOG", "trace"),
        ("AWS_SECRET_ACCESS_KEY", aws_secret_key.as_str()),
        ("AWS_SESSION_TOKEN", aws_session_token.as_str()),
    ];
    let run = invoke(&world, &json!({"action": "sync"}), &extra).await;
    assert!(run.success, "{}\n{}", run.response, run.stderr);
    assert_eq!(run.response["status"], "partial", "{}", run.response);
    assert_eq!(dead_letters(&world).await.len(), 1);

    let mut needles = vec![
        cxone_secret,
        salesforce_secret,
        aws_secret_key,
        aws_session_token,
    ];
    let (cxone_tokens, salesforce_tokens) = (
        world.cxone.issued_tokens(),
        world.salesforce.issued_tokens(),
    );
    assert!(
        cxone_tokens.len() >= 2 && salesforce_tokens.len() >= 2,
        "each client should have fetched two tokens"
    );
    assert!(
        world.cxone.log().count(endpoints(api).token) >= 2,
        "CXone's token endpoint should have been asked twice"
    );
    needles.extend(cxone_tokens);
    // The client's HTTP Basic credentials, should a header be logged.
    needles.push(basic);
    if api == CxoneApi::Admin {
        let refresh_tokens = world.cxone.issued_refresh_tokens();
        assert!(
            refresh_tokens.len() >= 2,
            "each password grant should have come with a refresh token"
        );
        needles.extend(refresh_tokens);
        needles.push(access_key);
    }
    needles.extend(salesforce_tokens);
    let mut haystacks = vec![
        ("stdout", run.response.to_string()),
        ("stderr", run.stderr.clone()),
    ];
    haystacks.extend(
        queue_bodies(&world.sdk, &world.aws.dlq_url)
            .await
            .into_iter()
            .map(|b| ("a DLQ message", b)),
    );
    assert!(
        run.stderr.lines().count() > 20,
        "trace logging produced almost nothing; the check would prove little"
    );
    for (where_, text) in &haystacks {
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "{where_} contains a secret or token ({}…)",
                &needle[..12]
            );
        }
    }
}
