//! The sync cycle end to end through the real binary: happy path, deltas, per-record failures
//! and the watermark rule.

use crate::harness::{assert_mirrored, dead_letters, invoke, newest_cxone_timestamp, state, sync};
use crate::support::{endpoints, world_for};
use disposition_sim::cxone::CxoneApi;
use rstest::rstest;
use serde_json::json;
use std::time::Duration;

/// 300 codes arrive in exactly two collection calls, the watermark lands on the newest code, and
/// an immediate second cycle re-reads the overlap window but sends nothing.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn first_cycle_writes_everything_in_two_calls_and_a_second_sends_nothing(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    world.cxone.seed(300);

    let first = sync(&world, false, &[]).await;
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["mode"], "full");
    assert_eq!(
        (first["fetched"].as_u64(), first["created"].as_u64()),
        (Some(300), Some(300))
    );
    assert_eq!(world.salesforce.records().len(), 300);
    assert_eq!(world.salesforce.log().count("upsert"), 2);
    let newest = newest_cxone_timestamp(&world);
    assert_eq!(state(&world).await.watermark, Some(newest));
    assert_eq!(
        first["watermark_after"],
        disposition_sync::domain::format_ts(newest)
    );
    assert_mirrored(&world);

    let second = sync(&world, false, &[]).await;
    assert_eq!(second["status"], "ok", "{second}");
    assert_eq!(second["mode"], "delta");
    assert_eq!(
        (second["created"].as_u64(), second["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        world.salesforce.log().count("upsert"),
        2,
        "the second cycle sent an upsert"
    );
    assert_eq!(world.salesforce.records().len(), 300);
    assert_eq!(second["watermark_after"], first["watermark_after"]);
}

/// A renamed code arrives by delta and updates the record with the same external ID: no
/// duplicate under the new label.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_rename_updates_the_same_record(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(20);
    sync(&world, false, &[]).await;
    let before = world.salesforce.record(&ids[7]).unwrap();

    world.cxone.rename(&ids[7], "Renamed Seven");
    let delta = sync(&world, false, &[]).await;
    assert_eq!(delta["mode"], "delta");
    assert_eq!(
        (delta["created"].as_u64(), delta["updated"].as_u64()),
        (Some(0), Some(1)),
        "{delta}"
    );
    let after = world.salesforce.record(&ids[7]).unwrap();
    assert_eq!(after.id, before.id);
    assert_eq!(after.fields["Name"], "Renamed Seven");
    assert_eq!(world.salesforce.records().len(), 20);
}

/// The guide's Edge Case 1: a code modified while a cycle is writing is picked up by the next
/// cycle, because the watermark only moves to timestamps the cycle actually read.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_code_modified_during_a_write_is_picked_up_by_the_next_cycle(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(1500));

    let running = {
        let world = &world;
        async move { sync(world, false, &[]).await }
    };
    let edit = async {
        // Wait until the cycle has read CXone and is blocked writing.
        while world.salesforce.log().count("upsert") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        world.cxone.rename(&ids[3], "Changed Mid-Write");
    };
    let (first, ()) = tokio::join!(running, edit);
    assert_eq!(first["status"], "ok", "{first}");
    assert_ne!(
        world.salesforce.record(&ids[3]).unwrap().fields["Name"],
        "Changed Mid-Write"
    );

    world.salesforce.set_latency("upsert", Duration::ZERO);
    let next = sync(&world, false, &[]).await;
    assert_eq!(next["updated"].as_u64(), Some(1), "{next}");
    assert_eq!(
        world.salesforce.record(&ids[3]).unwrap().fields["Name"],
        "Changed Mid-Write"
    );
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world))
    );
}

/// A record Salesforce keeps rejecting is dead-lettered with its reason while every other record
/// is written: a validation error is permanent (one attempt), lock contention is retried up to
/// RECORD_MAX_ATTEMPTS first. The response says `partial` and the watermark still advances.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn rejected_records_are_dead_lettered_and_the_rest_written(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(50);
    world.salesforce.inject_record_error(
        &ids[10],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Category requires approval",
        None,
    );
    world.salesforce.inject_record_error(
        &ids[20],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        None,
    );

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(
        (
            run["created"].as_u64(),
            run["failed"].as_u64(),
            run["dead_lettered"].as_u64()
        ),
        (Some(48), Some(2), Some(2))
    );
    assert_eq!(
        run["retries"].as_u64(),
        Some(2),
        "only the lock error is retried, twice"
    );
    // First call: 50 records; retries: the locked record alone, twice.
    assert_eq!(world.salesforce.log().count("upsert"), 3);
    assert_eq!(world.salesforce.records().len(), 48);

    let mut letters = dead_letters(&world).await;
    letters.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    assert_eq!(letters.len(), 2);
    let validation = letters
        .iter()
        .find(|l| l.external_id.as_deref() == Some(ids[10].as_str()))
        .unwrap();
    assert_eq!(validation.error.code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(validation.attempts, 1);
    assert_eq!(
        validation.payload.as_ref().unwrap()["CXone_DispositionId__c"],
        ids[10]
    );
    assert_eq!(
        source_id(api, &validation.source).as_deref(),
        Some(ids[10].as_str())
    );
    assert_eq!(validation.cycle_id, run["cycle_id"].as_str().unwrap());
    let locked = letters
        .iter()
        .find(|l| l.external_id.as_deref() == Some(ids[20].as_str()))
        .unwrap();
    assert_eq!(
        (locked.error.code.as_str(), locked.attempts),
        ("UNABLE_TO_LOCK_ROW", 3)
    );
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world))
    );
}

/// When the DLQ cannot be written, the watermark stays put and the cycle fails; the next good
/// cycle re-reads the same window, so nothing is lost.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn an_unavailable_dlq_keeps_the_watermark_and_loses_nothing(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(30);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark;

    world.cxone.rename(&ids[1], "Renamed One");
    world.cxone.rename(&ids[2], "Renamed Two");
    world.salesforce.inject_record_error(
        &ids[2],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "blocked",
        None,
    );
    let missing_queue = format!("{}-does-not-exist", world.aws.dlq_url);
    let bad = sync(&world, false, &[("DLQ_URL", missing_queue.as_str())]).await;
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .starts_with("dlq_unavailable"),
        "{bad}"
    );
    assert_eq!(bad["dead_lettered"].as_u64(), Some(0));
    assert_eq!(
        state(&world).await.watermark,
        watermark,
        "the watermark moved past an undelivered record"
    );
    assert!(
        state(&world).await.lease.is_none(),
        "the lease was released"
    );

    let good = sync(&world, false, &[]).await;
    assert_eq!(good["status"], "partial", "{good}");
    assert_eq!(good["dead_lettered"].as_u64(), Some(1));
    let letters = dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload.as_ref().unwrap()["Name"], "Renamed Two");
    assert_eq!(
        world.salesforce.record(&ids[1]).unwrap().fields["Name"],
        "Renamed One"
    );
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world))
    );
}

/// The id a raw CXone record carries in `api`'s shape: the guide's string `id`, or the Admin
/// `dispositionId` (a number, or a numeric string) in decimal.
fn source_id(api: CxoneApi, raw: &serde_json::Value) -> Option<String> {
    match (api, raw) {
        (CxoneApi::Guide, raw) => raw["id"].as_str().map(str::to_owned),
        (CxoneApi::Admin, raw) => match &raw["dispositionId"] {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        },
    }
}

/// Seeds five valid codes beside `malformed` (one without an id, one with an unreadable date,
/// one with wrong types, in that order), syncs, and checks that the three are dead-lettered as
/// unmappable with raw JSON and a reason containing the matching `reasons` entry, while the
/// five are synced. `name_field` is where the id-less record's name "No id" sits.
async fn malformed_records_are_dead_lettered(
    api: CxoneApi,
    malformed: [serde_json::Value; 3],
    reasons: [&str; 3],
    name_field: &str,
) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    for raw in malformed {
        world.cxone.insert_raw(raw);
    }

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(
        (
            run["fetched"].as_u64(),
            run["created"].as_u64(),
            run["dead_lettered"].as_u64()
        ),
        (Some(8), Some(5), Some(3))
    );
    assert_eq!(world.salesforce.records().len(), 5);
    let letters = dead_letters(&world).await;
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(
        |l| l.kind == disposition_sync::dlq::DeadLetterKind::Unmappable && l.payload.is_none()
    ));
    let said: Vec<&str> = letters.iter().map(|l| l.error.message.as_str()).collect();
    for reason in reasons {
        assert!(
            said.iter().any(|r| r.contains(reason)),
            "{reason}: {said:?}"
        );
    }
    assert!(letters.iter().any(|l| l.source[name_field] == "No id"));
}

/// Guide records CXone sends malformed (no id, a bad date, wrong types) are dead-lettered with
/// the reason and the raw JSON; the valid ones are synced.
#[tokio::test]
async fn malformed_cxone_records_are_dead_lettered_and_the_rest_synced() {
    let now = "2024-05-01T10:00:00.000Z";
    malformed_records_are_dead_lettered(
        CxoneApi::Guide,
        [
            json!({"name": "No id", "is_active": true, "last_modified_date": now}),
            json!({"id": "bad-date", "name": "Bad date", "is_active": true, "last_modified_date": "last tuesday"}),
            json!({"id": "bad-type", "name": 42, "is_active": "yes", "last_modified_date": now}),
        ],
        ["id is missing", "RFC 3339", "wrong type"],
        "name",
    )
    .await;
}

/// The same over the Admin API: camelCase records without a `dispositionId`, with a `lastUpdated`
/// that is no time, and with a numeric `dispositionName` are dead-lettered with the reason
/// naming the field, and the valid ones are synced.
#[tokio::test]
async fn malformed_admin_records_are_dead_lettered_and_the_rest_synced() {
    let now = "2024-05-01T10:00:00.000Z";
    malformed_records_are_dead_lettered(
        CxoneApi::Admin,
        [
            json!({"dispositionName": "No id", "isActive": true, "lastUpdated": now}),
            json!({"dispositionId": 7001, "dispositionName": "Bad date", "isActive": true, "lastUpdated": "last tuesday"}),
            json!({"dispositionId": 7002, "dispositionName": 42, "isActive": "yes", "lastUpdated": now}),
        ],
        [
            "missing field `dispositionId`",
            "lastUpdated: \"last tuesday\" is not an ISO 8601",
            "dispositionName: invalid type",
        ],
        "dispositionName",
    )
    .await;
}

/// Every file in `events/` runs through the `invoke` command over either API and gets the
/// response its trigger promises (the SQS sample's UUID ids are asked of the guide's API only);
/// a new file must be added here (only `env.json`, SAM's variables, is not an event).
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn the_invoke_command_runs_every_event_file(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(3);
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json") && f != "env.json")
        .collect();
    // The scheduled event first: it runs the first (full) cycle.
    files.sort_by_key(|f| (f != "scheduled.json", f.clone()));
    for file in &files {
        let event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{file}")).unwrap())
                .unwrap();
        let gets_before = world.cxone.log().count(endpoints(api).get);
        let run = invoke(&world, &event, &[]).await;
        assert!(run.success, "{file}: {}", run.response);
        let r = &run.response;
        let (status, mode) = (r["status"].as_str(), r["mode"].as_str());
        match file.as_str() {
            "scheduled.json" => assert_eq!((status, mode), (Some("ok"), Some("full")), "{r}"),
            "manual-sync.json" => assert_eq!((status, mode), (Some("ok"), Some("delta")), "{r}"),
            "full-sync.json" | "full-sync-allow-mass-change.json" => {
                assert_eq!((status, mode), (Some("ok"), Some("full")), "{file}: {r}")
            }
            "purge.json" => {
                assert_eq!(
                    (status, r["dry_run"].as_bool()),
                    (Some("ok"), Some(true)),
                    "{r}"
                )
            }
            // Deleting needs PURGE_ENABLED=true, which the local world does not set.
            "purge-execute.json" => assert!(
                r["reason"].as_str().unwrap().starts_with("purge_disabled"),
                "{r}"
            ),
            "redrive.json" => assert_eq!((status, mode), (Some("ok"), Some("redrive")), "{r}"),
            "plan.json" => assert_eq!((status, mode), (Some("ok"), Some("plan")), "{r}"),
            "status.json" => {
                assert_eq!((status, mode), (Some("ok"), Some("status")), "{r}");
                assert!(r["last_cycle"].is_object(), "{r}");
            }
            // Its two letters name codes this CXone does not have: superseded, none kept.
            "sqs-redrive.json" => {
                assert_eq!(r["batchItemFailures"], json!([]), "{r}");
                // The guide's API is asked about each; the Admin API's ids are integers, so
                // these UUIDs cannot name one of its codes and are never sent.
                let asked = world.cxone.log().count(endpoints(api).get) - gets_before;
                let expected = match api {
                    CxoneApi::Guide => 2,
                    CxoneApi::Admin => 0,
                };
                assert_eq!(asked, expected, "by-id reads for the two letters");
            }
            other => panic!("events/{other} is not covered by this test: add it"),
        }
    }
    assert_eq!(world.salesforce.records().len(), 3);

    let refused = invoke(&world, &json!({"action": "dance"}), &[]).await;
    assert!(!refused.success);
    assert_eq!(refused.response["errorType"], "InvalidEvent");
    assert!(
        refused.response["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Expected an EventBridge scheduled event")
    );
}

/// A full snapshot reads Salesforce while CXone pages arrive: with every CXone list page slowed
/// to a second, Salesforce's rows have been queried before the first page is even served.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_full_snapshot_reads_salesforce_while_cxone_pages_arrive(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    world
        .cxone
        .set_latency(endpoints(api).list, Duration::from_secs(1));
    let queried_by_first_page = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (seen, log) = (
        queried_by_first_page.clone(),
        world.salesforce.log().clone(),
    );
    world.cxone.after_list_pages(1, move |_| {
        *seen.lock().unwrap() = Some(log.count("query"));
    });

    let first = sync(&world, false, &[]).await;
    assert_eq!(
        (first["status"].as_str(), first["created"].as_u64()),
        (Some("ok"), Some(5)),
        "{first}"
    );
    assert_eq!(
        *queried_by_first_page.lock().unwrap(),
        Some(1),
        "Salesforce's rows should be read while the CXone page is on its way"
    );
    assert_eq!(world.salesforce.log().count("query"), 1);
}
