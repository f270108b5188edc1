//! Never lossy, never stuck: the watermark's edges, deadlines and bad input, through the real
//! binary.

use crate::harness::{state, sync};
use crate::support::{endpoints, world, world_for};
use disposition_sim::cxone::CxoneApi;
use disposition_sync::domain::format_ts;
use rstest::rstest;
use serde_json::json;

/// A new active code in `api`'s shape, in the category "Sales", last modified at `at`: under
/// the string id `guide_id` in the guide's API, under the next free `dispositionId` in the
/// Admin API (whose ids are integers). Upsert it to learn its external id.
fn new_code(api: CxoneApi, guide_id: &str, name: &str, at: &str) -> serde_json::Value {
    match api {
        CxoneApi::Guide => json!({"id": guide_id, "name": name, "category": "Sales",
            "is_active": true, "last_modified_date": at}),
        CxoneApi::Admin => json!({"dispositionName": name, "classificationName": "Sales",
            "isActive": true, "lastUpdated": at}),
    }
}

/// A code whose timestamp lies exactly on `watermark − OVERLAP_SECONDS` is returned by every
/// delta listing (it is inclusive), so the overlap memory must keep it: once written, quiet
/// cycles send nothing.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_code_on_the_overlap_boundary_is_written_once(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark.expect("a watermark");
    let edge = watermark - chrono::Duration::seconds(60);
    world
        .cxone
        .upsert(new_code(api, "on-the-edge", "Edge", &format_ts(edge)));

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
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_future_dated_record_does_not_hide_later_edits(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(5);
    world.cxone.upsert(new_code(
        api,
        "from-the-future",
        "Bad import",
        "9999-12-31T00:00:00Z",
    ));
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
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn future_times_in_the_state_are_reported_and_repaired(#[case] api: CxoneApi) {
    use disposition_sync::watermark::{DynamoDbStateStore, Lease, StateStore, SyncState};
    let world = world_for(api).await;
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

/// Runs `disposition-sync invoke` with `args` after the event, and the world's environment.
async fn invoke_with(
    world: &disposition_sim::world::LocalWorld,
    event: serde_json::Value,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_disposition-sync"));
    cmd.args(["invoke", "--event", "-"]).args(args).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout + &stderr,
    )
}

/// A CXone 429 asking to wait an hour, against a 10 s deadline: the cycle does not sleep past
/// its deadline; it stops at once, says why, keeps the watermark and releases the lease.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_retry_after_past_the_deadline_stops_the_cycle_in_time(#[case] api: CxoneApi) {
    use disposition_sim::cxone::Fault;
    let world = world_for(api).await;
    world.cxone.seed(5);
    sync(&world, false, &[]).await;
    let before = state(&world).await.watermark;
    let first = world.cxone.codes()[0].external_id.clone();
    world.cxone.rename(&first, "Renamed");
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 429,
            retry_after: Some(3600),
            times: 1,
            ..Fault::default()
        },
    );

    let started = std::time::Instant::now();
    let (_, run, output) = invoke_with(
        &world,
        json!({"action": "sync"}),
        &[],
        &["--timeout-seconds", "10"],
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(run["status"], "failed", "{output}");
    assert!(
        run["reason"].as_str().unwrap().starts_with("deadline"),
        "{run}"
    );
    let after = state(&world).await;
    assert_eq!((after.watermark, after.lease), (before, None));
}

/// A lock-retry pause of a minute (RETRY_BASE_DELAY_MS=60000) against a 20 s deadline: the
/// writer does not sleep past the deadline; the cycle ends `partial` in time, and the record it
/// could not retry is written by the next cycle.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_retry_pause_past_the_deadline_ends_the_cycle_partial_in_time(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    world
        .salesforce
        .inject_record_error(&ids[3], "UNABLE_TO_LOCK_ROW", "locked", Some(1));
    let env = [("RETRY_BASE_DELAY_MS", "60000")];

    let started = std::time::Instant::now();
    let (_, run, output) = invoke_with(
        &world,
        json!({"action": "sync"}),
        &env,
        &["--timeout-seconds", "20"],
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(run["status"], "partial", "{output}");
    assert!(
        run["reason"].as_str().unwrap().starts_with("deadline"),
        "{run}"
    );
    assert_eq!(world.salesforce.records().len(), 9);

    let next = sync(&world, false, &[]).await;
    assert_eq!(next["status"], "ok", "{next}");
    assert_eq!(world.salesforce.records().len(), 10);
}

/// The template's smallest FunctionTimeout (30 s) leaves time to write: the safety margins
/// scale with the deadline.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_thirty_second_deadline_still_writes_everything(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(50);
    let (_, run, output) = invoke_with(
        &world,
        json!({"action": "sync"}),
        &[],
        &["--timeout-seconds", "30"],
    )
    .await;
    assert_eq!(run["status"], "ok", "{output}");
    assert_eq!(world.salesforce.records().len(), 50);
}

/// A Salesforce query whose `nextRecordsUrl` never ends does not hold the cycle: it fails at
/// once, naming the broken paging.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_query_that_never_ends_fails_the_cycle_instead_of_looping(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    sync(&world, false, &[]).await;
    world.salesforce.set_endless_query(true);
    let started = std::time::Instant::now();
    let run = sync(&world, true, &[]).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["reason"].as_str().unwrap().contains("do not end"),
        "{run}"
    );
}

/// 403 REQUEST_LIMIT_EXCEEDED on describe is the API budget, like the same answer to an upsert:
/// the cycle is `skipped` (`api_budget`), not `failed`.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_request_limit_on_describe_skips_the_cycle(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    world.salesforce.fail_next(
        "describe",
        403,
        json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]),
        1,
    );
    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "skipped", "{run}");
    assert!(
        run["reason"].as_str().unwrap().starts_with("api_budget"),
        "{run}"
    );
    assert!(state(&world).await.lease.is_none());
}

/// A local run killed mid-cycle leaves its lease; `invoke --take-over-lease` takes it over at
/// once (a plain run still skips), and the scheduled path never does.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn invoke_can_take_over_a_stale_lease_explicitly(#[case] api: CxoneApi) {
    use disposition_sync::watermark::{DynamoDbStateStore, Lease, StateStore, SyncState};
    let world = world_for(api).await;
    world.cxone.seed(5);
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        "dispositions",
    );
    let held = SyncState {
        lease: Some(Lease {
            owner: "killed-run".into(),
            expires: chrono::Utc::now() + chrono::Duration::minutes(14),
        }),
        ..SyncState::default()
    };
    store.save(&held, 0).await.unwrap();

    let plain = sync(&world, false, &[]).await;
    assert_eq!(plain["status"], "skipped", "{plain}");
    let (ok, run, output) = invoke_with(
        &world,
        json!({"action": "sync"}),
        &[],
        &["--take-over-lease"],
    )
    .await;
    assert!(ok, "{output}");
    assert_eq!(run["status"], "ok", "{output}");
    assert_eq!(world.salesforce.records().len(), 5);
    assert!(state(&world).await.lease.is_none());
}

/// Without AWS_REGION the binary says so in those words, instead of failing later on a call.
#[tokio::test]
async fn a_missing_aws_region_is_named() {
    let world = world().await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_disposition-sync"));
    cmd.args(["invoke", "--event", "events/manual-sync.json"])
        .env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("HOME", "/nonexistent");
    for (k, v) in world.env() {
        if k != "AWS_REGION" && k != "AWS_DEFAULT_REGION" {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("AWS_REGION is not set"), "{text}");
}

/// Collection results out of request order are a failed call, never a success of the wrong
/// record: an update whose result names another record than the one the query read is not
/// counted as written, and the watermark does not pass it.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn results_out_of_order_are_a_failed_call(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    for id in &ids[2..6] {
        world.cxone.rename(id, &format!("Renamed {id}"));
    }
    world.salesforce.set_reversed_results(true);
    let run = sync(&world, true, &[]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["updated"], 0, "{run}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .starts_with("salesforce_unavailable"),
        "{run}"
    );

    world.salesforce.set_reversed_results(false);
    let next = sync(&world, true, &[]).await;
    assert_eq!(next["status"], "ok", "{next}");
    for id in &ids[2..6] {
        assert_eq!(
            world.salesforce.record(id).unwrap().fields["Name"],
            format!("Renamed {id}")
        );
    }
}

/// Page size for the page-boundary tests: 250 codes make three pages in either API.
const PAGE_SIZE: &str = "100";

/// Runs a cycle of pages of [`PAGE_SIZE`] and, once page 1 has been served and before page 2
/// is, renames `moved`, a code page 1 returned: the code moves to the end of the listing (both
/// APIs order by modification time) and the row behind its old place slips past the page
/// boundary. Returns the cycle's response, after checking that the edit landed mid-listing.
async fn sync_with_an_edit_between_pages(
    world: &disposition_sim::world::LocalWorld,
    api: CxoneApi,
    moved: &str,
) -> serde_json::Value {
    let list = endpoints(api).list;
    let before = world.cxone.log().count(list);
    let edited = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    {
        let (edited, moved) = (edited.clone(), moved.to_owned());
        world.cxone.after_list_pages(1, move |cxone| {
            edited.store(cxone.log().count(list), std::sync::atomic::Ordering::SeqCst);
            cxone.rename(&moved, "Renamed while the cycle paged");
        });
    }
    let (ok, run, output) = invoke_with(
        world,
        json!({"action": "sync"}),
        &[("CXONE_PAGE_SIZE", PAGE_SIZE)],
        &[],
    )
    .await;
    assert!(ok, "{output}");
    let pages = world.cxone.log().count(list) - before;
    assert!(
        pages >= 3,
        "the cycle read {pages} pages, not three or more"
    );
    assert_eq!(
        edited.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "the edit did not land right after page 1"
    );
    run
}

/// A first full snapshot over either API: a code edited between two page requests does not lose
/// the code that slipped past the boundary, in this cycle or after the next.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn an_edit_between_page_requests_loses_nothing_in_a_full_snapshot(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(250);
    let run = sync_with_an_edit_between_pages(&world, api, &ids[10]).await;
    assert_eq!(
        (run["status"].as_str(), run["mode"].as_str()),
        (Some("ok"), Some("full")),
        "{run}"
    );
    assert_eq!(
        world.salesforce.records().len(),
        250,
        "a code slipped past a page boundary"
    );
    // No overlap: only the watermark protects the next delta.
    sync(&world, false, &[("OVERLAP_SECONDS", "0")]).await;
    crate::harness::assert_mirrored(&world);
    assert_eq!(
        world.salesforce.record(&ids[10]).unwrap().fields["Name"],
        "Renamed while the cycle paged"
    );
}

/// A delta over either API: the same edit while a delta pages loses nothing either.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn an_edit_between_page_requests_loses_nothing_in_a_delta(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(250);
    sync(&world, false, &[]).await;
    // A delta of 250 changed codes: three pages. Both fields become Description__c.
    let description = match api {
        CxoneApi::Guide => "description",
        CxoneApi::Admin => "notes",
    };
    for id in &ids {
        world.cxone.set_field(id, description, json!("changed"));
    }
    let run = sync_with_an_edit_between_pages(&world, api, &ids[10]).await;
    assert_eq!(
        (run["status"].as_str(), run["mode"].as_str()),
        (Some("ok"), Some("delta")),
        "{run}"
    );
    let changed =
        |id: &String| world.salesforce.record(id).unwrap().fields["Description__c"] == "changed";
    assert!(
        ids.iter().all(changed),
        "a code slipped past a page boundary"
    );
    // No overlap: only the watermark protects the next delta.
    sync(&world, false, &[("OVERLAP_SECONDS", "0")]).await;
    crate::harness::assert_mirrored(&world);
    assert!(ids.iter().all(changed));
    assert_eq!(
        world.salesforce.record(&ids[10]).unwrap().fields["Name"],
        "Renamed while the cycle paged"
    );
}

/// Runs a cycle with `overrides` pointing the listing at a wrong path, and checks that it fails
/// as a configuration error naming the URL, not a quiet `ok` with nothing fetched.
async fn a_missing_listing_fails_naming_the_url(
    world: &disposition_sim::world::LocalWorld,
    overrides: &[(&str, &str)],
) {
    let run = sync(world, false, overrides).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("no dispositions listing") && reason.contains("wrong-prefix"),
        "{run}"
    );
}

/// The guide's API: a listing that is not there (a wrong base path answering 404) is a
/// configuration error that names the URL.
#[tokio::test]
async fn a_missing_listing_fails_the_cycle_naming_the_url() {
    let world = world().await;
    world.cxone.seed(5);
    let base = world
        .env()
        .into_iter()
        .find(|(k, _)| k == "CXONE_BASE_URL")
        .map(|(_, v)| v)
        .expect("the guide world has a base URL");
    let wrong = format!("{}/wrong-prefix", base.trim_end_matches('/'));
    let token = format!("{}/oauth/token", base.trim_end_matches('/'));
    a_missing_listing_fails_naming_the_url(
        &world,
        &[("CXONE_BASE_URL", &wrong), ("CXONE_TOKEN_URL", &token)],
    )
    .await;
}

/// The Admin API: an API endpoint override whose listing is not there (404 under a wrong path)
/// is the same configuration error, naming the URL.
#[tokio::test]
async fn a_missing_admin_listing_fails_the_cycle_naming_the_url() {
    let world = world_for(CxoneApi::Admin).await;
    world.cxone.seed(5);
    let wrong = format!("{}/wrong-prefix", world.cxone.admin_url());
    a_missing_listing_fails_naming_the_url(&world, &[("CXONE_API_ENDPOINT", &wrong)]).await;
}

/// Seeds three codes beside `malformed` (one with a readable id and time but a wrong type, one
/// without an id), and checks that the two are dead-lettered by the first cycle and never again.
async fn a_malformed_record_is_dead_lettered_once(
    api: CxoneApi,
    malformed: [serde_json::Value; 2],
) {
    let world = world_for(api).await;
    world.cxone.seed(3);
    for raw in malformed {
        world.cxone.insert_raw(raw);
    }

    let first = sync(&world, false, &[]).await;
    assert_eq!(first["dead_lettered"], 2, "{first}");
    for _ in 0..3 {
        let again = sync(&world, false, &[]).await;
        assert_eq!(again["dead_lettered"], 0, "{again}");
    }
    assert_eq!(crate::harness::dead_letters(&world).await.len(), 2);
}

/// A guide record that stays malformed is dead-lettered once, not on every cycle: with a
/// readable id and time, and without (remembered by a fingerprint of what CXone sent).
#[tokio::test]
async fn a_record_that_stays_malformed_is_dead_lettered_once() {
    let fresh = format_ts(chrono::Utc::now());
    a_malformed_record_is_dead_lettered_once(
        CxoneApi::Guide,
        [
            json!({"id": "bad-type", "name": 42, "is_active": true, "last_modified_date": fresh}),
            json!({"name": "No id", "is_active": true, "last_modified_date": fresh}),
        ],
    )
    .await;
}

/// The same over the Admin API, with camelCase records: a numeric `dispositionName` under a
/// readable `dispositionId` and `lastUpdated`, and a record without a `dispositionId`.
#[tokio::test]
async fn an_admin_record_that_stays_malformed_is_dead_lettered_once() {
    let fresh = format_ts(chrono::Utc::now());
    a_malformed_record_is_dead_lettered_once(
        CxoneApi::Admin,
        [
            json!({"dispositionId": 7001, "dispositionName": 42, "isActive": true,
                "lastUpdated": fresh}),
            json!({"dispositionName": "No id", "isActive": true, "lastUpdated": fresh}),
        ],
    )
    .await;
}

/// A listing that keeps moving through every pass (an edit between page requests each time):
/// the cycle still writes what it read, but holds its watermark and says so
/// (`listing_changed`); the next cycle, with the listing still, finishes the job.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_listing_that_keeps_moving_holds_the_watermark(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(250);
    sync(&world, false, &[]).await;
    for id in &ids {
        world
            .cxone
            .set_field(id, description_field(api), json!("changed"));
    }
    // An edit after every page served, each moving a code of the first page: every pass sees
    // the listing move, however many pages it asks for at once. Edits stop with the cycle.
    let moving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    for (page, moved) in ids.iter().enumerate().take(31).skip(1) {
        let (moved, moving) = (moved.clone(), moving.clone());
        world.cxone.after_list_pages(page, move |cxone| {
            if moving.load(std::sync::atomic::Ordering::SeqCst) {
                cxone.rename(&moved, "Renamed while the cycle paged")
            }
        });
    }
    let before = state(&world).await.watermark;
    let (ok, run, output) = invoke_with(
        &world,
        json!({"action": "sync"}),
        &[("CXONE_PAGE_SIZE", PAGE_SIZE)],
        &[],
    )
    .await;
    moving.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(ok, "{output}");
    assert_eq!(run["listing_changed"], true, "{run}");
    assert_eq!(state(&world).await.watermark, before, "{run}");

    let next = sync(&world, false, &[("CXONE_PAGE_SIZE", PAGE_SIZE)]).await;
    assert_eq!(next["status"], "ok", "{next}");
    assert!(next.get("listing_changed").is_none(), "{next}");
    crate::harness::assert_mirrored(&world);
}

/// The field that holds a code's description in `api`'s records.
fn description_field(api: CxoneApi) -> &'static str {
    match api {
        CxoneApi::Guide => "description",
        CxoneApi::Admin => "notes",
    }
}

/// A quiet delta (nothing changed in CXone) asks Salesforce nothing: no token, no describe, no
/// query, no upsert.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_quiet_cycle_asks_salesforce_nothing(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(20);
    sync(&world, false, &[]).await;
    let before = world.salesforce.log().requests().len();
    let quiet = sync(&world, false, &[]).await;
    assert_eq!(
        (quiet["status"].as_str(), quiet["mode"].as_str()),
        (Some("ok"), Some("delta")),
        "{quiet}"
    );
    assert_eq!(quiet["salesforce_requests"], 0, "{quiet}");
    assert_eq!(world.salesforce.log().requests().len(), before);
}
