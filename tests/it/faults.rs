//! The cycle under the faults production throws at it, through the real binary: expiring and
//! refused tokens, CXone throttling, Salesforce outages, timeouts, resets, lock contention, the
//! API budget, concurrent invocations, a killed run's lease and a short deadline. Each test
//! checks that nothing is lost and nothing is written twice, and what the response reports.

use crate::harness::{assert_mirrored, dead_letters, state, sync};
use crate::kill::{finish, start_sync};
use crate::support::{endpoints, world_for};
use chrono::{DateTime, Utc};
use disposition_sim::cxone::{AdminModes, CxoneApi, Fault};
use disposition_sim::world::LocalWorld;
use rstest::rstest;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Five CXone pages at the default page size of 100, the last one short.
const FIVE_PAGES: usize = 450;

/// The page numbers (from 1) of every CXone list request, in the order they arrived: the
/// guide's `page`, or the Admin API's `skip / top + 1`.
fn pages_requested(world: &LocalWorld) -> Vec<u64> {
    let api = world.cxone.api();
    world
        .cxone
        .log()
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoints(api).list)
        .map(|r| page_of(api, &r.uri))
        .collect()
}

/// The page a list request asks for. An Admin `skip` that is not a whole number of pages
/// fails the test: no cycle here should ever ask for one.
fn page_of(api: CxoneApi, uri: &str) -> u64 {
    let url = url::Url::parse(&format!("http://sim{uri}")).unwrap();
    let param = |name: &str| -> u64 {
        let value = url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("the list request {uri} names no {name}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("the list request {uri} has {name}={value}"))
    };
    match api {
        CxoneApi::Guide => param("page"),
        CxoneApi::Admin => {
            let (skip, top) = (param("skip"), param("top"));
            assert!(
                top > 0 && skip % top == 0,
                "the list request {uri} starts mid-page"
            );
            skip / top + 1
        }
    }
}

/// The external IDs of every record sent in an upsert request, in order, repeats included.
fn upserted_ids(world: &LocalWorld) -> Vec<String> {
    world
        .salesforce
        .log()
        .requests()
        .iter()
        .filter(|r| r.endpoint == "upsert")
        .flat_map(|r| {
            let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|record| {
                    record["CXone_DispositionId__c"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Asserts that every id in `ids` was sent exactly once, and nothing else was sent.
fn assert_sent_once_each(world: &LocalWorld, ids: &[String]) {
    let sent = upserted_ids(world);
    let distinct: HashSet<&String> = sent.iter().collect();
    assert_eq!(distinct.len(), sent.len(), "a record was sent twice");
    assert_eq!(
        distinct,
        ids.iter().collect::<HashSet<_>>(),
        "the records sent are not the codes"
    );
}

/// The modification time of one CXone code, in either API.
fn modified_at(world: &LocalWorld, id: &str) -> DateTime<Utc> {
    world
        .cxone
        .code(id)
        .unwrap_or_else(|| panic!("no CXone code {id}"))
        .last_modified
}

/// Polls `condition` every 5 ms; panics after 20 s so that a broken test cannot hang.
async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {report}"))
}

fn reason(report: &Value) -> &str {
    report["reason"].as_str().unwrap_or_default()
}

/// A Salesforce request-level error body, as the platform sends it.
fn sf_error(code: &str, message: &str) -> Value {
    json!([{"errorCode": code, "message": message}])
}

// ---------------------------------------------------------------------------------------------
// Tokens and authentication

/// A CXone token that expires while the cycle pages through CXone is refreshed once; the page
/// that got the 401 is asked again and no page is skipped or written twice.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_cxone_token_expiring_mid_cycle_is_refreshed_once_and_no_page_is_lost(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(FIVE_PAGES);
    // Page 2 sits in the simulator's latency long enough for its token to expire under it.
    world
        .cxone
        .set_latency(endpoints(api).list, Duration::from_millis(150));
    let expire = async {
        wait_for("the request for page 2", || {
            world.cxone.log().count(endpoints(api).list) >= 2
        })
        .await;
        world.cxone.expire_tokens();
    };
    // One page at a time: the order of the requests is what this test pins down.
    let (run, ()) = tokio::join!(sync(&world, false, &[("CXONE_MAX_IN_FLIGHT", "1")]), expire);

    assert_eq!(run["status"], "ok", "{run}");
    // Every page once, except the one whose token expired: asked again right away.
    let pages = pages_requested(&world);
    let repeated: Vec<usize> = (1..pages.len())
        .filter(|&i| pages[i] == pages[i - 1])
        .collect();
    assert_eq!(repeated.len(), 1, "{pages:?}");
    let mut distinct = pages.clone();
    distinct.dedup();
    assert_eq!(distinct, [1, 2, 3, 4, 5]);
    assert_eq!(
        world.cxone.log().count(endpoints(api).token),
        2,
        "one token, then exactly one refresh"
    );
    assert_eq!((count(&run, "created"), count(&run, "updated")), (450, 0));
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
}

/// A Salesforce session that expires between two batches is refreshed once; the refused batch
/// is sent again and every record is created exactly once.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_salesforce_session_expiring_mid_cycle_is_refreshed_once_and_no_batch_is_lost(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    world.cxone.seed(FIVE_PAGES);
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(100));
    let env = [("SF_BATCH_SIZE", "50"), ("SF_MAX_IN_FLIGHT", "1")];
    let expire = async {
        wait_for("the first upsert", || {
            world.salesforce.log().count("upsert") >= 1
        })
        .await;
        world.salesforce.expire_tokens();
    };
    let (run, ()) = tokio::join!(sync(&world, false, &env), expire);

    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        world.salesforce.log().count("token"),
        2,
        "one token, then exactly one refresh"
    );
    // Nine batches, one of them refused with 401 and sent again.
    assert_eq!(world.salesforce.log().count("upsert"), 10);
    // A record written twice would count as updated the second time.
    assert_eq!((count(&run, "created"), count(&run, "updated")), (450, 0));
    assert_eq!(
        count(&run, "retries"),
        0,
        "the 401 retry is the client's, not a record retry"
    );
    assert_mirrored(&world);
}

/// A single 401 on a request, on either platform, costs exactly one token request and one
/// repeat of that request.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_401_on_a_request_refreshes_once_and_retries_once(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(FIVE_PAGES);
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 401,
            skip: 1,
            times: 1,
            ..Fault::default()
        },
    );
    world.salesforce.fail_next(
        "upsert",
        401,
        sf_error("INVALID_SESSION_ID", "Session expired or invalid"),
        1,
    );

    // One page at a time: the order of the requests is what this test pins down.
    let run = sync(&world, false, &[("CXONE_MAX_IN_FLIGHT", "1")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(pages_requested(&world), [1, 2, 2, 3, 4, 5]);
    assert_eq!(world.cxone.log().count(endpoints(api).token), 2);
    assert_eq!(world.salesforce.log().count("token"), 2);
    // Three batches of at most 200, the first one twice.
    assert_eq!(world.salesforce.log().count("upsert"), 4);
    assert_eq!((count(&run, "created"), count(&run, "updated")), (450, 0));
    assert_mirrored(&world);
}

/// A Salesforce 401 that persists after the refresh fails the cycle with `auth_unavailable`
/// after one more try on freshly read credentials: the watermark does not move, the lease is
/// released, and the next cycle writes what was missed.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_salesforce_401_that_survives_the_refresh_fails_with_auth_unavailable_and_keeps_the_watermark(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(20);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark;
    world.cxone.rename(&ids[3], "Renamed Three");
    let tokens_before = world.salesforce.log().count("token");

    // Two tries (one refresh each) in each of the two cycle attempts.
    world.salesforce.fail_next(
        "upsert",
        401,
        sf_error("INVALID_SESSION_ID", "Session expired or invalid"),
        4,
    );
    let failed = sync(&world, false, &[]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(reason(&failed).starts_with("auth_unavailable"), "{failed}");
    assert_eq!(
        world.salesforce.log().count("token") - tokens_before,
        4,
        "token + refresh, twice"
    );
    assert_eq!(
        state(&world).await.watermark,
        watermark,
        "the watermark moved"
    );
    assert!(
        state(&world).await.lease.is_none(),
        "the lease was not released"
    );
    assert_ne!(
        world.salesforce.record(&ids[3]).unwrap().fields["Name"],
        "Renamed Three"
    );

    let next = sync(&world, false, &[]).await;
    assert_eq!(next["status"], "ok", "{next}");
    assert_eq!(count(&next, "updated"), 1);
    assert_eq!(
        world.salesforce.record(&ids[3]).unwrap().fields["Name"],
        "Renamed Three"
    );
}

/// A CXone 401 that persists after the refresh is an authentication failure: the handler
/// re-reads the credentials and runs the cycle once more, which succeeds once CXone accepts
/// tokens again.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_cxone_401_that_survives_the_refresh_is_retried_on_freshly_read_credentials(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(20);
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 401,
            times: 2,
            ..Fault::default()
        },
    );

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(pages_requested(&world), [1, 1, 1]);
    // The first attempt's token and refresh, then the retry's own token.
    assert_eq!(world.cxone.log().count(endpoints(api).token), 3);
    assert_sent_once_each(&world, &ids);
}

/// Token endpoints that fail once (503 on CXone, a reset on Salesforce) are tried again: the
/// cycle completes, even with the production minimum poll interval in force.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn token_endpoints_down_for_one_try_are_survived(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(30);
    world.cxone.inject(
        endpoints(api).token,
        Fault {
            status: 503,
            times: 1,
            ..Fault::default()
        },
    );
    world.salesforce.reset_next("token", 1);

    let run = sync(&world, false, &[("MIN_POLL_INTERVAL_SECONDS", "30")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.cxone.log().count(endpoints(api).token), 2);
    assert_eq!(world.salesforce.log().count("token"), 2);
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
}

/// Credentials refused once (as after a rotation) make the handler re-read the secret and run
/// the cycle once more, which succeeds. With the production minimum poll interval in force,
/// that second run must still happen rather than be skipped as too soon.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn refused_credentials_are_reread_and_the_cycle_tried_once_more(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(30);
    let refused =
        json!({"error": "invalid_client", "error_description": "invalid client credentials"});
    world.salesforce.fail_next("token", 400, refused, 1);

    let run = sync(&world, false, &[("MIN_POLL_INTERVAL_SECONDS", "30")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.salesforce.log().count("token"), 2);
    assert_sent_once_each(&world, &ids);
    assert_eq!(
        state(&world).await.watermark,
        Some(modified_at(&world, &ids[29]))
    );
}

/// Credentials that stay refused: one more try on re-read credentials, then `failed` with
/// `auth_unavailable`, nothing written, the watermark untouched and the lease released.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn credentials_that_stay_refused_fail_with_auth_unavailable_and_keep_the_watermark(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    let before = state(&world).await;
    world.cxone.rename(&ids[0], "Never Written");
    let upserts = world.salesforce.log().count("upsert");
    let tokens = world.salesforce.log().count("token");

    let refused =
        json!({"error": "invalid_client", "error_description": "invalid client credentials"});
    world.salesforce.fail_next("token", 400, refused, 10);
    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(reason(&run).starts_with("auth_unavailable"), "{run}");
    assert_eq!(
        world.salesforce.log().count("token") - tokens,
        2,
        "one token request per attempt"
    );
    assert_eq!(world.salesforce.log().count("upsert"), upserts);
    let after = state(&world).await;
    assert_eq!(after.watermark, before.watermark);
    assert!(after.lease.is_none(), "the lease was not released");
}

/// Admin API only: each request the source makes besides the list (both discovery documents,
/// the token and the classifications table) survives a transient fault of its own, under the
/// same rules as the list: 503 and 429 tried again, 401 refreshing the token once.
#[tokio::test]
async fn admin_discovery_token_and_classification_faults_are_survived() {
    let world = world_for(CxoneApi::Admin).await;
    let ids = world.cxone.seed(30);
    let once = |status, retry_after| Fault {
        status,
        retry_after,
        times: 1,
        ..Fault::default()
    };
    world.cxone.inject("openid-configuration", once(503, None));
    world.cxone.inject("admin-token", once(429, Some(0)));
    world.cxone.inject("cxone-configuration", once(503, None));
    // One after the other: a 401 (refresh, ask again), then a 429 without Retry-After.
    world.cxone.inject("classifications", once(401, None));
    world.cxone.inject("classifications", once(429, None));

    let run = sync(&world, false, &[("CXONE_RETRY_AFTER_DEFAULT_SECONDS", "1")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    let log = world.cxone.log();
    assert_eq!(log.count("openid-configuration"), 2);
    assert_eq!(log.count("cxone-configuration"), 2);
    // The throttled grant, the token, then one refresh after the 401.
    assert_eq!(log.count("admin-token"), 3);
    assert_eq!(log.count("classifications"), 3);
    assert_eq!(log.count("admin-list"), 1);
    assert_eq!(count(&run, "throttled_ms"), 1000, "the default wait, once");
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
}

/// Admin API only: list items without `isActive` are completed from the by-id endpoint, and a
/// by-id request that meets a 503, a 401 or a 429 is tried again under the list's rules: every
/// code arrives with its real activity, none guessed, none dead-lettered.
#[tokio::test]
async fn admin_by_id_faults_while_completing_list_items_are_survived() {
    let api = CxoneApi::Admin;
    let ep = endpoints(api);
    let world = world_for(api).await;
    let ids = world.cxone.seed(12);
    world.cxone.deactivate(&ids[3]);
    world.cxone.deactivate(&ids[8]);
    world.cxone.set_admin_modes(AdminModes {
        list_without_is_active: true,
        ..AdminModes::default()
    });
    for (status, retry_after) in [(503, None), (401, None), (429, Some(0))] {
        world.cxone.inject(
            ep.get,
            Fault {
                status,
                retry_after,
                skip: 2,
                times: 1,
                ..Fault::default()
            },
        );
    }

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!((count(&run, "created"), count(&run, "failed")), (12, 0));
    // Each code once by id, plus the three refused requests asked again.
    assert_eq!(world.cxone.log().count(ep.get), 12 + 3);
    assert_eq!(
        world.cxone.log().count(ep.token),
        2,
        "one refresh, for the 401"
    );
    assert_eq!(world.cxone.log().count(ep.list), 1);
    for id in [&ids[3], &ids[8]] {
        assert_eq!(
            world.salesforce.record(id).unwrap().fields["IsActive__c"],
            false
        );
    }
    assert!(dead_letters(&world).await.is_empty());
    assert_mirrored(&world);
}

/// Admin API only: an issuer whose OpenID configuration stays unavailable fails the cycle as
/// `cxone_unavailable` naming the document's URL; nothing is written and no token is asked for.
#[tokio::test]
async fn an_admin_discovery_outage_fails_with_cxone_unavailable_naming_the_url() {
    let world = world_for(CxoneApi::Admin).await;
    world.cxone.seed(10);
    world.cxone.inject(
        "openid-configuration",
        Fault {
            status: 503,
            times: 100,
            ..Fault::default()
        },
    );

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(reason(&run).starts_with("cxone_unavailable"), "{run}");
    let url = format!("{}/.well-known/openid-configuration", world.cxone.url());
    assert!(reason(&run).contains(&url), "{run}");
    assert_eq!(world.cxone.log().count("admin-token"), 0);
    assert_eq!(world.cxone.log().count("admin-list"), 0);
    assert!(world.salesforce.records().is_empty());
    assert_eq!(state(&world).await.watermark, None);
}

// ---------------------------------------------------------------------------------------------
// CXone throttling

/// Runs a cycle over five pages with a 429 on page 3 and checks that the cycle waited
/// `expected_wait`, fetched every page, asked page 3 twice and wrote every record once.
async fn throttled_on_page_3(api: CxoneApi, retry_after: Option<u64>, expected_wait: Duration) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(FIVE_PAGES);
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 429,
            retry_after,
            skip: 2,
            times: 1,
            ..Fault::default()
        },
    );

    // One page at a time: the order of the requests is what this test pins down (pages read at
    // once are throttled in `concurrency::a_429_reads_the_rest_of_the_cycle_one_page_at_a_time`).
    let env = [
        ("CXONE_RETRY_AFTER_DEFAULT_SECONDS", "1"),
        ("CXONE_MAX_IN_FLIGHT", "1"),
    ];
    let run = sync(&world, false, &env).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(pages_requested(&world), [1, 2, 3, 3, 4, 5]);
    assert_eq!(
        count(&run, "throttled_ms"),
        expected_wait.as_millis() as u64
    );
    assert!(
        count(&run, "duration_ms") >= expected_wait.as_millis() as u64,
        "{run}"
    );
    assert_eq!(count(&run, "fetched"), 450);
    assert_eq!((count(&run, "created"), count(&run, "updated")), (450, 0));
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
}

/// A 429 with `Retry-After: 1` on page 3 of 5: the cycle waits one second and asks again.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_cxone_429_with_retry_after_on_page_3_of_5_fetches_every_page_and_writes_each_once(
    #[case] api: CxoneApi,
) {
    throttled_on_page_3(api, Some(1), Duration::from_secs(1)).await;
}

/// A 429 without `Retry-After` on page 3 of 5: the cycle waits
/// CXONE_RETRY_AFTER_DEFAULT_SECONDS and asks again.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_cxone_429_without_retry_after_on_page_3_of_5_fetches_every_page_and_writes_each_once(
    #[case] api: CxoneApi,
) {
    throttled_on_page_3(api, None, Duration::from_secs(1)).await;
}

// ---------------------------------------------------------------------------------------------
// Salesforce failures

/// A 503 on one batch: that batch is retried after the others, and every record ends up
/// created exactly once.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_salesforce_503_on_a_batch_is_retried_and_nothing_is_written_twice(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    world.cxone.seed(FIVE_PAGES);
    world.salesforce.fail_next(
        "upsert",
        503,
        sf_error("SERVER_UNAVAILABLE", "Service temporarily unavailable"),
        1,
    );

    let run = sync(&world, false, &[("SF_BATCH_SIZE", "50")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        world.salesforce.log().count("upsert"),
        10,
        "nine batches and one retry"
    );
    assert_eq!(
        count(&run, "retries"),
        50,
        "the refused batch's records, once each"
    );
    assert_eq!((count(&run, "created"), count(&run, "updated")), (450, 0));
    assert!(dead_letters(&world).await.is_empty());
    assert_mirrored(&world);
}

/// An upsert that times out after Salesforce applied it is sent again: the records are
/// updated, not duplicated, and the cycle completes.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_salesforce_timeout_is_retried_without_duplicating_records(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(100);
    // Only the first upsert is slow: the simulator applies it, then answers after the timeout.
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(1500));
    let env = [
        ("SF_BATCH_SIZE", "50"),
        ("SF_MAX_IN_FLIGHT", "1"),
        ("HTTP_TIMEOUT_SECONDS", "1"),
    ];
    let recover = async {
        wait_for("the first upsert", || {
            world.salesforce.log().count("upsert") >= 1
        })
        .await;
        world.salesforce.set_latency("upsert", Duration::ZERO);
    };
    let (run, ()) = tokio::join!(sync(&world, false, &env), recover);

    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        world.salesforce.log().count("upsert"),
        3,
        "two batches and one retry"
    );
    assert_eq!(count(&run, "retries"), 50);
    // The timed-out batch was applied by Salesforce: its retry finds the records there.
    assert_eq!((count(&run, "created"), count(&run, "updated")), (50, 50));
    assert_eq!(world.salesforce.records().len(), 100);
    assert_mirrored(&world);
}

/// Connection resets with no answer, on an upsert and on the describe and query calls of a
/// full cycle, are retried: the cycle completes and writes every record once.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn salesforce_connection_resets_are_retried(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(120);
    world.salesforce.reset_next("upsert", 1);
    world.salesforce.reset_next("describe", 1);
    world.salesforce.reset_next("query", 1);

    let run = sync(&world, false, &[("SF_BATCH_SIZE", "50")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["mode"], "full");
    assert_eq!(world.salesforce.log().count("describe"), 2);
    assert_eq!(world.salesforce.log().count("query"), 2);
    assert_eq!(
        world.salesforce.log().count("upsert"),
        4,
        "three batches and one retry"
    );
    assert_eq!((count(&run, "created"), count(&run, "updated")), (120, 0));
    // The reset batch (50 or 20 records) was sent twice, every other record once.
    let retried = count(&run, "retries") as usize;
    assert!([50, 20].contains(&retried), "{run}");
    assert_eq!(upserted_ids(&world).len(), 120 + retried);
    assert_eq!(world.salesforce.records().len(), ids.len());
    assert_mirrored(&world);
}

/// `UNABLE_TO_LOCK_ROW` on some records: only those records are retried, until they are
/// written; nothing is dead-lettered.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn unable_to_lock_row_on_some_records_is_retried_until_written(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(60);
    let locked = "unable to obtain exclusive access to this record";
    for id in [&ids[5], &ids[17], &ids[42]] {
        world
            .salesforce
            .inject_record_error(id, "UNABLE_TO_LOCK_ROW", locked, Some(1));
    }
    world
        .salesforce
        .inject_record_error(&ids[50], "UNABLE_TO_LOCK_ROW", locked, Some(2));

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(count(&run, "retries"), 5, "three records once, one twice");
    // All 60, then the four locked ones, then the one still locked.
    assert_eq!(world.salesforce.log().count("upsert"), 3);
    assert_eq!((count(&run, "created"), count(&run, "failed")), (60, 0));
    assert!(dead_letters(&world).await.is_empty());
    assert_mirrored(&world);
}

// ---------------------------------------------------------------------------------------------
// The API budget

/// `Sforce-Limit-Info` reaching SF_API_BUDGET_PERCENT mid-cycle: the cycle stops sending,
/// reports `skipped` with `api_budget` and the usage, and checkpoints exactly what it wrote.
/// While usage stays high the next cycle sends nothing; once it drops, a cycle writes the rest
/// and nothing twice.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn crossing_the_api_budget_mid_cycle_checkpoints_honestly_and_the_next_cycle_recovers(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(FIVE_PAGES);
    let env = [
        ("SF_BATCH_SIZE", "50"),
        ("SF_MAX_IN_FLIGHT", "1"),
        ("SF_API_BUDGET_PERCENT", "80"),
    ];
    // describe (796), the reconciliation query (797), then three batches reach 800 = 80%.
    world.salesforce.set_api_usage(795, 1000);

    let stopped = sync(&world, false, &env).await;
    assert_eq!(stopped["status"], "skipped", "{stopped}");
    assert!(reason(&stopped).starts_with("api_budget"), "{stopped}");
    assert_eq!(stopped["sf_api_usage"], json!({"used": 800, "max": 1000}));
    assert_eq!(count(&stopped, "created"), 150);
    assert_eq!(world.salesforce.records().len(), 150);
    let checkpoint = state(&world).await;
    assert_eq!(
        checkpoint.watermark,
        Some(modified_at(&world, &ids[149])),
        "the watermark is not where the writing stopped"
    );
    assert!(checkpoint.lease.is_none());

    let still_high = sync(&world, false, &env).await;
    assert_eq!(still_high["status"], "skipped", "{still_high}");
    assert_eq!(
        world.salesforce.log().count("upsert"),
        3,
        "a cycle above the budget sent an upsert"
    );

    world.salesforce.set_api_usage(100, 1000);
    let recovered = sync(&world, false, &env).await;
    assert_eq!(recovered["status"], "ok", "{recovered}");
    assert_eq!(
        (count(&recovered, "created"), count(&recovered, "updated")),
        (300, 0)
    );
    assert_sent_once_each(&world, &ids);
    assert_eq!(
        state(&world).await.watermark,
        Some(modified_at(&world, &ids[449]))
    );
    assert_mirrored(&world);
}

/// A 403 `REQUEST_LIMIT_EXCEEDED` after the first batch stops the cycle (`skipped`,
/// `api_budget`): no batch is sent after it, what was written is checkpointed, and the next
/// cycle writes the rest.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn request_limit_exceeded_stops_the_cycle_and_the_next_one_recovers(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(200);
    let env = [("SF_BATCH_SIZE", "50"), ("SF_MAX_IN_FLIGHT", "1")];
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(100));
    let limit = async {
        wait_for("the first upsert", || {
            world.salesforce.log().count("upsert") >= 1
        })
        .await;
        let body = sf_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        world.salesforce.fail_next("upsert", 403, body, 1);
    };
    let (stopped, ()) = tokio::join!(sync(&world, false, &env), limit);

    assert_eq!(stopped["status"], "skipped", "{stopped}");
    assert!(reason(&stopped).starts_with("api_budget"), "{stopped}");
    // The 403 answered the last upsert sent; every batch before it was written.
    let written = count(&stopped, "created") as usize;
    let upserts = world.salesforce.log().count("upsert");
    assert_eq!(
        written,
        50 * (upserts - 1),
        "a batch was sent after the 403"
    );
    assert!((50..200).contains(&written), "{stopped}");
    assert_eq!(
        state(&world).await.watermark,
        Some(modified_at(&world, &ids[written - 1]))
    );

    world.salesforce.set_latency("upsert", Duration::ZERO);
    let recovered = sync(&world, false, &env).await;
    assert_eq!(recovered["status"], "ok", "{recovered}");
    assert_eq!(
        (
            count(&recovered, "created") as usize,
            count(&recovered, "updated")
        ),
        (200 - written, 0)
    );
    assert_eq!(world.salesforce.records().len(), 200);
    assert_mirrored(&world);
}

// ---------------------------------------------------------------------------------------------
// Concurrency and leases

/// Two invocations started together: exactly one runs the cycle, the other is skipped because
/// of the lease, and each record is sent once. Three rounds, each with new edits.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn two_invocations_at_once_run_exactly_one_cycle(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(100);
    // Every cycle lasts over a second, so that the two invocations surely overlap.
    world
        .cxone
        .set_latency(endpoints(api).list, Duration::from_millis(400));
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(150));
    let env = [("SF_BATCH_SIZE", "25"), ("SF_MAX_IN_FLIGHT", "1")];
    // Round 0 writes every code; each later round renames one code first.
    for (round, renamed) in [None, Some(&ids[1]), Some(&ids[2])].into_iter().enumerate() {
        if let Some(id) = renamed {
            world.cxone.rename(id, &format!("Round {round}"));
        }
        let upserts = world.salesforce.log().count("upsert");
        let (a, b) = tokio::join!(sync(&world, false, &env), sync(&world, false, &env));
        let statuses = [a["status"].as_str().unwrap(), b["status"].as_str().unwrap()];
        let ran = statuses.iter().filter(|s| **s == "ok").count();
        let skipped: Vec<&Value> = [&a, &b]
            .into_iter()
            .filter(|r| r["status"] == "skipped")
            .collect();
        assert_eq!((ran, skipped.len()), (1, 1), "round {round}: {a}\n{b}");
        assert!(
            reason(skipped[0]).contains("lease"),
            "round {round}: {}",
            skipped[0]
        );
        let sent = world.salesforce.log().count("upsert") - upserts;
        assert_eq!(
            sent,
            if renamed.is_some() { 1 } else { 4 },
            "round {round}: two cycles wrote"
        );
    }
    assert_eq!(world.salesforce.records().len(), 100);
    assert_mirrored(&world);
}

/// A run killed (SIGKILL) while holding the lease blocks other invocations only until the lease
/// expires at its deadline; then the next invocation takes over, completes the cycle and
/// leaves no lease behind.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_stale_lease_from_a_killed_run_is_taken_over(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(40);
    world
        .cxone
        .set_latency(endpoints(api).list, Duration::from_secs(3));
    let mut doomed = start_sync(&world, &[], &["--timeout-seconds", "4"]).await;
    wait_for("the killed run to read CXone", || {
        world.cxone.log().count(endpoints(api).list) >= 1
    })
    .await;
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    world.cxone.set_latency(endpoints(api).list, Duration::ZERO);

    let lease = state(&world)
        .await
        .lease
        .expect("the killed run held the lease");
    let blocked = sync(&world, false, &[]).await;
    assert_eq!(blocked["status"], "skipped", "{blocked}");
    assert!(reason(&blocked).contains(&lease.owner), "{blocked}");
    assert!(world.salesforce.records().is_empty());

    let left = (lease.expires - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
    let taken_over = sync(&world, false, &[]).await;
    assert_eq!(taken_over["status"], "ok", "{taken_over}");
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
    assert_eq!(
        state(&world).await.lease,
        None,
        "the killed run's lease is still in the state"
    );
}

// ---------------------------------------------------------------------------------------------
// The deadline

/// With a short deadline and a slow Salesforce, the cycle stops starting batches before the
/// deadline (HTTP_TIMEOUT_SECONDS + 5 s, at most a quarter of the invocation's time) and returns
/// `partial` in time, with the watermark on the last record written; the next cycle writes the
/// rest, each record once.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_short_deadline_returns_partial_in_time_and_the_next_cycle_finishes(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(200);
    world
        .salesforce
        .set_latency("upsert", Duration::from_millis(400));
    // Twenty batches of 0.4 s each cannot all start before 9 s less the margins.
    let env = [
        ("HTTP_TIMEOUT_SECONDS", "1"),
        ("SF_BATCH_SIZE", "10"),
        ("SF_MAX_IN_FLIGHT", "1"),
    ];
    let started = Instant::now();
    let partial = finish(start_sync(&world, &env, &["--timeout-seconds", "9"]).await).await;
    let took = started.elapsed();

    assert_eq!(partial["status"], "partial", "{partial}");
    assert!(reason(&partial).starts_with("deadline"), "{partial}");
    assert!(
        took < Duration::from_secs(9),
        "returned after {took:?}, past the 9 s deadline"
    );
    let written = count(&partial, "created") as usize;
    assert!((1..200).contains(&written), "{partial}");
    assert_eq!(world.salesforce.records().len(), written);
    assert_eq!(
        state(&world).await.watermark,
        Some(modified_at(&world, &ids[written - 1]))
    );
    assert!(state(&world).await.lease.is_none());

    world.salesforce.set_latency("upsert", Duration::ZERO);
    let next = sync(&world, false, &env).await;
    assert_eq!(next["status"], "ok", "{next}");
    assert_eq!(
        (count(&next, "created") as usize, count(&next, "updated")),
        (200 - written, 0)
    );
    assert_sent_once_each(&world, &ids);
    assert_mirrored(&world);
}
