//! Dead-letter redrive through the real binary: both paths replay the current CXone version,
//! never a stale payload, in batches, and keep what still fails. Every test that reads CXone runs
//! against either API: the by-id read is the guide's `GET /api/v2/dispositions/{id}` or the Admin
//! API's `GET …/dispositions/{id}`.

use crate::harness::{dead_letters, invoke, sync};
use crate::support::{endpoints, world_for};
use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::{LocalWorld, queue_bodies, queue_depth};
use disposition_sync::dlq::DeadLetter;
use rstest::rstest;
use serde_json::{Value, json};

/// Dead-letters `ids` with a validation error in one cycle, then lifts the error.
pub(crate) async fn dead_letter(world: &LocalWorld, ids: &[String]) {
    for id in ids {
        world.salesforce.inject_record_error(
            id,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "blocked by a validation rule",
            None,
        );
    }
    let run = sync(world, false, &[]).await;
    assert_eq!(
        run["dead_lettered"].as_u64(),
        Some(ids.len() as u64),
        "{run}"
    );
    world.salesforce.clear_record_errors();
}

/// An SQS event carrying the queue's current messages, shaped like `events/sqs-redrive.json`.
pub(crate) async fn sqs_event(world: &LocalWorld, receive_count: u32) -> Value {
    let path = format!("{}/events/sqs-redrive.json", env!("CARGO_MANIFEST_DIR"));
    let template: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let record = &template["Records"][0];
    let bodies = queue_bodies(&world.sdk, &world.aws.dlq_url).await;
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut r = record.clone();
            r["messageId"] = json!(format!("msg-{i}"));
            r["body"] = json!(body);
            r["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
            r
        })
        .collect();
    json!({ "Records": records })
}

/// 250 dead-lettered records come home after the fix in ceil(250/200) = 2 collection calls, and
/// the DLQ is empty afterwards.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_manual_redrive_writes_every_fixed_record_in_batches_and_empties_the_queue(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(260);
    dead_letter(&world, &ids[..250]).await;
    assert_eq!(world.salesforce.records().len(), 10);
    let upserts_before = world.salesforce.log().count("upsert");

    let run = invoke(&world, &json!({"action": "redrive"}), &[]).await;
    assert!(run.success, "{}", run.response);
    let r = &run.response;
    assert_eq!(
        (r["status"].as_str(), r["mode"].as_str()),
        (Some("ok"), Some("redrive")),
        "{r}"
    );
    assert_eq!(
        (r["received"].as_u64(), r["written"].as_u64()),
        (Some(250), Some(250)),
        "{r}"
    );
    assert_eq!(world.salesforce.log().count("upsert") - upserts_before, 2);
    assert_eq!(world.salesforce.records().len(), 260);
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 0);
}

/// A code renamed in CXone after it was dead-lettered is replayed with its new name, read by id
/// from either API: the stale payload in the message is never written.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn the_redrive_writes_the_current_cxone_version_not_the_old_payload(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(5);
    dead_letter(&world, &ids[1..2]).await;
    assert_eq!(
        dead_letters(&world).await[0].payload.as_ref().unwrap()["Name"],
        world.cxone.code(&ids[1]).unwrap().name.as_str()
    );

    world.cxone.rename(&ids[1], "Renamed After Failure");
    let by_id = world.cxone.log().count(endpoints(api).get);
    let run = invoke(
        &world,
        &json!({"action": "redrive", "max_messages": 10}),
        &[],
    )
    .await;
    assert_eq!(
        run.response["written"].as_u64(),
        Some(1),
        "{}",
        run.response
    );
    assert_eq!(
        world.salesforce.record(&ids[1]).unwrap().fields["Name"],
        "Renamed After Failure"
    );
    assert_eq!(
        world.cxone.log().count(endpoints(api).get) - by_id,
        1,
        "the code is read by id, once"
    );
}

/// A message whose code Salesforce already holds at a newer version is superseded: deleted,
/// and Salesforce is not written at all.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_message_already_overtaken_by_a_newer_version_is_superseded(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(5);
    dead_letter(&world, &ids[2..3]).await;
    world.cxone.rename(&ids[2], "Newer Version");
    let cycle = sync(&world, false, &[]).await;
    assert_eq!(
        cycle["updated"].as_u64().unwrap() + cycle["created"].as_u64().unwrap(),
        1,
        "{cycle}"
    );
    let before = world.salesforce.record(&ids[2]).unwrap();
    let upserts = world.salesforce.log().count("upsert");

    let run = invoke(&world, &json!({"action": "redrive"}), &[]).await;
    assert_eq!(
        (
            run.response["superseded"].as_u64(),
            run.response["written"].as_u64()
        ),
        (Some(1), Some(0)),
        "{}",
        run.response
    );
    assert_eq!(
        world.salesforce.log().count("upsert"),
        upserts,
        "nothing may be written"
    );
    assert_eq!(world.salesforce.record(&ids[2]).unwrap(), before);
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 0);
}

/// Records that still fail: the manual path re-sends them with the attempt counted and the new
/// error, and parks them at REDRIVE_MAX_ATTEMPTS; the SQS path reports them as batch item
/// failures so only they stay in the queue, and parks them once their receive count reaches the
/// limit.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn still_failing_records_keep_their_history_and_are_parked_at_the_limit(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(6);
    dead_letter(&world, &ids[..2]).await;
    world.salesforce.inject_record_error(
        &ids[0],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "still blocked",
        None,
    );

    // SQS path, first delivery: the good record is written, the failing one stays.
    let event = sqs_event(&world, 1).await;
    let run = invoke(&world, &event, &[("REDRIVE_MAX_ATTEMPTS", "2")]).await;
    assert!(run.success, "{}", run.response);
    let failures = run.response["batchItemFailures"].as_array().unwrap();
    let failing_message = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            serde_json::from_str::<DeadLetter>(r["body"].as_str().unwrap())
                .unwrap()
                .external_id
                .as_deref()
                == Some(ids[0].as_str())
        })
        .unwrap();
    assert_eq!(
        failures,
        &vec![json!({"itemIdentifier": failing_message["messageId"]})]
    );
    assert!(world.salesforce.record(&ids[1]).is_some());
    assert!(world.salesforce.record(&ids[0]).is_none());

    // Manual path: the failing message is re-sent with its attempt counted and the new error.
    let manual = invoke(
        &world,
        &json!({"action": "redrive"}),
        &[("REDRIVE_MAX_ATTEMPTS", "2")],
    )
    .await;
    // (The SQS run above did not delete anything: Lambda would. The written record's message is
    // now superseded.)
    let m = &manual.response;
    assert_eq!(
        (m["failed_again"].as_u64(), m["superseded"].as_u64()),
        (Some(1), Some(1)),
        "{m}"
    );
    let letters: Vec<DeadLetter> = dead_letters(&world)
        .await
        .into_iter()
        .filter(|l| l.external_id.as_deref() == Some(ids[0].as_str()))
        .collect();
    assert!(
        letters
            .iter()
            .all(|l| l.redrive_attempts == 1 && l.error.message == "still blocked"),
        "{letters:?}"
    );

    // Second manual failure reaches the limit: parked, gone from the DLQ.
    let parked = invoke(
        &world,
        &json!({"action": "redrive"}),
        &[("REDRIVE_MAX_ATTEMPTS", "2")],
    )
    .await;
    assert!(
        parked.response["parked"].as_u64().unwrap() >= 1,
        "{}",
        parked.response
    );
    let in_parking: Vec<DeadLetter> = queue_bodies(&world.sdk, &world.aws.parking_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert!(
        in_parking
            .iter()
            .any(|l| l.external_id.as_deref() == Some(ids[0].as_str()) && l.redrive_attempts == 2)
    );
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 0);
}

/// Messages that are not ours (not JSON, an unknown schema version) sit next to good ones: the
/// good ones are written, the poison is reported by message id and moved to the parking queue
/// verbatim, never deleted unread.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn poison_messages_are_reported_and_parked_while_good_ones_are_written(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(4);
    dead_letter(&world, &ids[..2]).await;
    let sqs = aws_sdk_sqs::Client::new(&world.sdk);
    for body in [
        "this is not json",
        r#"{"schema_version": 99, "sync_id": "dispositions"}"#,
    ] {
        sqs.send_message()
            .queue_url(&world.aws.dlq_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let run = invoke(&world, &json!({"action": "redrive"}), &[]).await;
    let r = &run.response;
    assert_eq!(
        (
            r["written"].as_u64(),
            r["invalid"].as_u64(),
            r["status"].as_str()
        ),
        (Some(2), Some(2), Some("partial")),
        "{r}"
    );
    let reasons: Vec<&str> = r["invalid_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|m| m.contains("not JSON"))
            && reasons.iter().any(|m| m.contains("schema_version 99")),
        "{reasons:?}"
    );
    let parked = queue_bodies(&world.sdk, &world.aws.parking_url).await;
    assert!(
        parked.contains(&"this is not json".to_owned()),
        "{parked:?}"
    );
    assert_eq!(world.salesforce.records().len(), 4);

    // Without a parking queue the poison stays in the DLQ, visible again.
    sqs.send_message()
        .queue_url(&world.aws.dlq_url)
        .message_body("{oops")
        .send()
        .await
        .unwrap();
    let run = invoke(
        &world,
        &json!({"action": "redrive"}),
        &[("PARKING_URL", "")],
    )
    .await;
    assert_eq!(
        run.response["invalid"].as_u64(),
        Some(1),
        "{}",
        run.response
    );
    assert_eq!(
        queue_bodies(&world.sdk, &world.aws.dlq_url).await,
        vec!["{oops".to_owned()]
    );
}

/// A redrive while a scheduled cycle holds the lease writes nothing and leaves every message
/// in place; the SQS path reports them all as failures.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_redrive_waits_for_a_cycle_that_holds_the_lease(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(3);
    dead_letter(&world, &ids[..1]).await;
    // A cycle slowed down by Salesforce holds the lease while the redrive arrives.
    world.cxone.rename(&ids[2], "Being Written");
    world
        .salesforce
        .set_latency("upsert", std::time::Duration::from_millis(4000));
    let cycle = async { sync(&world, false, &[]).await };
    let redrives = async {
        while world.salesforce.log().count("upsert") < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let manual = invoke(&world, &json!({"action": "redrive"}), &[]).await;
        let event = sqs_event(&world, 1).await;
        let sqs = invoke(&world, &event, &[]).await;
        (manual, sqs, event)
    };
    let (cycle, (manual, sqs, event)) = tokio::join!(cycle, redrives);
    assert_eq!(cycle["status"], "ok", "{cycle}");
    assert_eq!(
        (
            manual.response["status"].as_str(),
            manual.response["written"].as_u64()
        ),
        (Some("skipped"), Some(0)),
        "{}",
        manual.response
    );
    assert_eq!(
        sqs.response["batchItemFailures"].as_array().unwrap().len(),
        event["Records"].as_array().unwrap().len()
    );
    assert!(world.salesforce.record(&ids[0]).is_none());
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 1);
}
