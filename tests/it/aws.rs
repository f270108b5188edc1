//! The AWS adapters against a real moto server: the DynamoDB state store and the SQS dead-letter
//! queue, including the conflicts and failures the sync engine relies on.

use crate::support::world;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use disposition_sim::world::{LocalWorld, queue_bodies, queue_depth};
use disposition_sync::dlq::{
    DeadLetter, DeadLetterKind, DeadLetterQueue, SCHEMA_VERSION, SqsDeadLetterQueue,
};
use disposition_sync::salesforce::RecordError;
use disposition_sync::watermark::{
    DynamoDbStateStore, Lease, StateError, StateStore, SyncState, VersionMark, Versioned,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

const SYNC_ID: &str = "dispositions";

fn store(world: &LocalWorld) -> DynamoDbStateStore {
    DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        SYNC_ID,
    )
}

/// Milliseconds only: the store keeps millisecond precision.
fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_714_564_800_000 + millis).unwrap()
}

fn state(step: i64) -> SyncState {
    SyncState {
        watermark: Some(at(step * 1_000 + 123)),
        last_full_sync: Some(at(0)),
        recent: BTreeMap::from([
            (VersionMark::of("101", at(step * 1_000)), at(step * 1_000)),
            (
                VersionMark::of("102", at(step * 1_000 + 123)),
                at(step * 1_000 + 123),
            ),
        ]),
        lease: Some(Lease {
            owner: format!("cycle-{step}"),
            expires: at(step * 1_000 + 300_000),
        }),
        last_cycle_started: Some(at(step * 1_000 + 1)),
    }
}

/// An empty table reads as version 0, and every save is read back exactly, one version later.
#[tokio::test]
async fn state_round_trips_through_dynamodb() {
    let world = world().await;
    let store = store(&world);
    assert_eq!(store.load().await.unwrap(), Versioned::default());

    assert_eq!(store.save(&state(1), 0).await.unwrap(), 1);
    assert_eq!(
        store.load().await.unwrap(),
        Versioned {
            state: state(1),
            version: 1
        }
    );

    // Fields that become unset are removed, not left behind.
    let cleared = SyncState {
        lease: None,
        recent: BTreeMap::new(),
        ..state(2)
    };
    assert_eq!(store.save(&cleared, 1).await.unwrap(), 2);
    assert_eq!(
        store.load().await.unwrap(),
        Versioned {
            state: cleared,
            version: 2
        }
    );
}

/// The first save must say version 0, and only one first save can win.
#[tokio::test]
async fn the_first_save_needs_version_0() {
    let world = world().await;
    let store = store(&world);
    assert!(matches!(
        store.save(&state(1), 3).await,
        Err(StateError::Conflict { expected: 3 })
    ));
    assert_eq!(
        store.load().await.unwrap().version,
        0,
        "a refused save wrote something"
    );

    assert_eq!(store.save(&state(1), 0).await.unwrap(), 1);
    assert!(matches!(
        store.save(&state(2), 0).await,
        Err(StateError::Conflict { expected: 0 })
    ));
    assert_eq!(
        store.load().await.unwrap(),
        Versioned {
            state: state(1),
            version: 1
        }
    );
}

/// Of two cycles that read the same version, the second to save gets a Conflict and the first
/// one's state stays.
#[tokio::test]
async fn a_stale_version_is_a_conflict() {
    let world = world().await;
    let (mine, theirs) = (store(&world), store(&world));
    mine.save(&state(1), 0).await.unwrap();
    let read_by_me = mine.load().await.unwrap();
    let read_by_them = theirs.load().await.unwrap();

    assert_eq!(
        theirs.save(&state(2), read_by_them.version).await.unwrap(),
        2
    );
    let stale = mine.save(&state(3), read_by_me.version).await;
    assert!(
        matches!(stale, Err(StateError::Conflict { expected: 1 })),
        "{stale:?}"
    );
    assert_eq!(
        mine.load().await.unwrap(),
        Versioned {
            state: state(2),
            version: 2
        }
    );
}

/// An item with an unparsable attribute is Malformed, naming the attribute, rather than read
/// as a default.
#[tokio::test]
async fn a_malformed_item_is_reported_by_attribute() {
    let world = world().await;
    aws_sdk_dynamodb::Client::new(&world.sdk)
        .put_item()
        .table_name(&world.aws.table)
        .item("pk", AttributeValue::S(SYNC_ID.into()))
        .item("version", AttributeValue::N("4".into()))
        .item("watermark", AttributeValue::S("last tuesday".into()))
        .send()
        .await
        .unwrap();
    match store(&world).load().await {
        Err(StateError::Malformed(message)) => {
            assert!(message.contains("`watermark`"), "{message}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// A table that does not exist makes the store Unavailable, for both reads and writes.
#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let world = world().await;
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        "no-such-table",
        SYNC_ID,
    );
    assert!(matches!(
        store.load().await,
        Err(StateError::Unavailable(_))
    ));
    assert!(matches!(
        store.save(&state(1), 0).await,
        Err(StateError::Unavailable(_))
    ));
}

fn letter(i: usize, source_bytes: usize) -> DeadLetter {
    let failed_at = Utc::now() + TimeDelta::milliseconds(i as i64);
    // Every fifth letter is unmappable, without a readable id: no `external_id` attribute.
    let unmappable = i.is_multiple_of(5);
    DeadLetter {
        schema_version: SCHEMA_VERSION,
        sync_id: SYNC_ID.into(),
        cycle_id: "cycle-9".into(),
        kind: if unmappable {
            DeadLetterKind::Unmappable
        } else {
            DeadLetterKind::Rejected
        },
        external_id: (!unmappable).then(|| format!("code-{i}")),
        last_modified: Some(at(i as i64)),
        payload: (!unmappable).then(
            || json!({"Name": format!("Code {i}"), "CXone_DispositionId__c": format!("code-{i}")}),
        ),
        source: json!({"id": format!("code-{i}"), "padding": "x".repeat(source_bytes)}),
        error: RecordError {
            code: format!("ERROR_{}", i % 3),
            message: format!("record {i} failed"),
            fields: vec!["Name".into()],
        },
        attempts: 3,
        failed_at,
        redrive_attempts: 0,
    }
}

/// 25 letters become 25 messages (three batches) whose bodies deserialize back to the same
/// letters and whose attributes repeat the body's sync id, kind, error code and external id.
#[tokio::test]
async fn sqs_dlq_delivers_every_letter_with_its_attributes() {
    let world = world().await;
    let letters: Vec<DeadLetter> = (0..25).map(|i| letter(i, 100)).collect();
    let dlq = SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&world.sdk), &world.aws.dlq_url);
    dlq.send(&letters).await.unwrap();

    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 25);
    // Peeking does not consume: a second peek sees the same 25, and they are all still queued.
    let peeked = queue_bodies(&world.sdk, &world.aws.dlq_url).await;
    assert_eq!(peeked.len(), 25);
    assert_eq!(queue_bodies(&world.sdk, &world.aws.dlq_url).await.len(), 25);
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 25);
    let mut decoded: Vec<DeadLetter> = peeked
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    decoded.sort_by_key(|l| l.failed_at);
    assert_eq!(decoded, letters);

    // Attributes, checked by consuming every message.
    let sqs = aws_sdk_sqs::Client::new(&world.sdk);
    let mut checked = 0;
    while checked < 25 {
        let received = sqs
            .receive_message()
            .queue_url(&world.aws.dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        assert!(
            !received.messages().is_empty(),
            "only {checked} of 25 messages received"
        );
        for message in received.messages() {
            let body: DeadLetter = serde_json::from_str(message.body().unwrap()).unwrap();
            let attributes: HashMap<&str, &str> = message
                .message_attributes()
                .unwrap()
                .iter()
                .map(|(name, value)| {
                    assert_eq!(value.data_type(), "String");
                    (name.as_str(), value.string_value().unwrap())
                })
                .collect();
            let kind = serde_json::to_value(body.kind).unwrap();
            let mut expected = HashMap::from([
                ("sync_id", body.sync_id.as_str()),
                ("kind", kind.as_str().unwrap()),
                ("error_code", body.error.code.as_str()),
            ]);
            if let Some(id) = &body.external_id {
                expected.insert("external_id", id);
            }
            assert_eq!(attributes, expected);
            checked += 1;
        }
    }
}

/// A queue that does not exist fails the send, naming how many letters were lost; an empty send
/// makes no call at all, so it succeeds even there.
#[tokio::test]
async fn a_missing_queue_is_a_dlq_error() {
    let world = world().await;
    let url = format!("{}/123456789012/no-such-queue", world.moto.endpoint());
    let dlq = SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&world.sdk), url);
    dlq.send(&[]).await.unwrap();

    let letters: Vec<DeadLetter> = (0..3).map(|i| letter(i, 10)).collect();
    let error = dlq.send(&letters).await.unwrap_err().to_string();
    assert!(
        error.contains("3 of 3 dead letters were not sent"),
        "{error}"
    );
    assert!(
        !error.contains("record 1 failed"),
        "the error quotes a body: {error}"
    );
}

/// A letter above 256 KiB (a 300 KB CXone record) is cut to fit and delivered with the others:
/// its id, timestamp and error arrive whole, and the error says the record was cut.
#[tokio::test]
async fn an_oversized_letter_is_cut_to_fit_and_delivered() {
    let world = world().await;
    let letters = vec![letter(1, 10), letter(2, 300 * 1024), letter(3, 10)];
    let dlq = SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&world.sdk), &world.aws.dlq_url);
    dlq.send(&letters).await.expect("every letter fits");
    let bodies = queue_bodies(&world.sdk, &world.aws.dlq_url).await;
    assert_eq!(bodies.len(), 3);
    let cut: DeadLetter = bodies
        .iter()
        .map(|b| serde_json::from_str::<DeadLetter>(b).unwrap())
        .find(|l| l.external_id == letters[1].external_id)
        .expect("the big letter arrived");
    assert_eq!(
        (cut.last_modified, cut.error.code.as_str()),
        (letters[1].last_modified, letters[1].error.code.as_str())
    );
    assert!(
        cut.error.message.contains("source keeps its first"),
        "{}",
        cut.error.message
    );
}
