//! Never lossy, never stuck: the watermark's edges, deadlines and bad input, through the real
//! binary.

use crate::harness::{state, sync};
use crate::support::world;
use disposition_sync::domain::format_ts;
use serde_json::json;

/// A code whose timestamp lies exactly on `watermark − OVERLAP_SECONDS` is returned by every
/// delta listing (it is inclusive), so the overlap memory must keep it: once written, quiet
/// cycles send nothing.
#[tokio::test]
async fn a_code_on_the_overlap_boundary_is_written_once() {
    let world = world().await;
    world.cxone.seed(5);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark.expect("a watermark");
    let edge = watermark - chrono::Duration::seconds(60);
    world.cxone.upsert(
        json!({"id": "on-the-edge", "name": "Edge", "category": "Sales",
        "is_active": true, "last_modified_date": format_ts(edge)}),
    );

    let first = sync(&world, false, &[("OVERLAP_SECONDS", "60")]).await;
    assert_eq!(first["created"], 1, "{first}");
    let upserts = world.salesforce.log().count("upsert");
    for _ in 0..2 {
        let quiet = sync(&world, false, &[("OVERLAP_SECONDS", "60")]).await;
        assert_eq!(
            (quiet["created"].as_u64(), quiet["updated"].as_u64()),
            (Some(0), Some(0)),
            "{quiet}"
        );
    }
    assert_eq!(
        world.salesforce.log().count("upsert"),
        upserts,
        "a quiet cycle sent an upsert"
    );
}

/// A record dated 9999-12-31 is written and reported, but the watermark stays at the time the
/// cycle observed: an edit made afterwards still arrives by delta, and quiet cycles send nothing.
#[tokio::test]
async fn a_future_dated_record_does_not_hide_later_edits() {
    let world = world().await;
    let ids = world.cxone.seed(5);
    world.cxone.upsert(
        json!({"id": "from-the-future", "name": "Bad import", "category": "Sales",
        "is_active": true, "last_modified_date": "9999-12-31T00:00:00Z"}),
    );
    let started = chrono::Utc::now();
    let first = sync(&world, false, &[]).await;
    assert_eq!(
        (first["status"].as_str(), first["created"].as_u64()),
        (Some("ok"), Some(6)),
        "{first}"
    );
    let watermark = state(&world).await.watermark.expect("a watermark");
    assert!(
        watermark <= chrono::Utc::now() + chrono::Duration::seconds(5)
            && watermark >= started - chrono::Duration::hours(1),
        "the watermark moved to {watermark}"
    );

    world.cxone.rename(&ids[2], "Renamed after the bad import");
    let delta = sync(&world, false, &[]).await;
    assert_eq!(
        (delta["mode"].as_str(), delta["updated"].as_u64()),
        (Some("delta"), Some(1)),
        "{delta}"
    );
    assert_eq!(
        world.salesforce.record(&ids[2]).unwrap().fields["Name"],
        "Renamed after the bad import"
    );
    let upserts = world.salesforce.log().count("upsert");
    let quiet = sync(&world, false, &[]).await;
    assert!(
        quiet["fetched"].as_u64().unwrap() >= 1,
        "the future-dated record is re-read: {quiet}"
    );
    assert_eq!(
        world.salesforce.log().count("upsert"),
        upserts,
        "a quiet cycle sent an upsert"
    );
}

/// A state item whose watermark, lease and last cycle lie in the future (a clock error, a bad
/// restore) would skip or hide everything for ever: the cycle names each as corrupt, clears it,
/// and runs a full snapshot that sets a sane watermark.
#[tokio::test]
async fn future_times_in_the_state_are_reported_and_repaired() {
    use disposition_sync::watermark::{DynamoDbStateStore, Lease, StateStore, SyncState};
    let world = world().await;
    world.cxone.seed(5);
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        "dispositions",
    );
    let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z")
        .unwrap()
        .to_utc();
    let corrupt = SyncState {
        watermark: Some(far),
        last_full_sync: Some(far),
        last_cycle_started: Some(far),
        lease: Some(Lease {
            owner: "ghost".into(),
            expires: far,
        }),
        ..SyncState::default()
    };
    store.save(&corrupt, 0).await.unwrap();

    let run = sync(&world, false, &[("MIN_POLL_INTERVAL_SECONDS", "30")]).await;
    assert_eq!(
        (run["status"].as_str(), run["mode"].as_str()),
        (Some("ok"), Some("full")),
        "{run}"
    );
    let repairs = run["state_repairs"]
        .as_array()
        .expect("state_repairs listed")
        .len();
    assert_eq!(repairs, 4, "{run}");
    assert_eq!(world.salesforce.records().len(), 5);
    let after = state(&world).await;
    assert!(
        after.watermark.unwrap() < far && after.last_full_sync.unwrap() < far,
        "{after:?}"
    );
}
