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
