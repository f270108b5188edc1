//! Reading CXone pages at once (`CXONE_MAX_IN_FLIGHT`), over either API: everything is still
//! read exactly once into Salesforce, a 429 drops the rest of the cycle to one request at a
//! time, an edit amid pages read at once is neither lost nor passed by the watermark, and a
//! warm quiet cycle costs one CXone request.
//!
//! Concurrency is observed, never timed: the simulator counts the list requests it has in
//! flight. A small per-request latency only keeps requests in flight long enough to overlap.

use crate::harness::{assert_mirrored, invoke, state, sync};
use crate::support::{endpoints, world_for};
use disposition_sim::cxone::{AdminModes, CxoneApi, Fault, Flight};
use disposition_sim::world::LocalWorld;
use disposition_sync::config::Config;
use disposition_sync::handler::App;
use rstest::rstest;
use serde_json::{Value, json};
use std::time::Duration;

const PAGE_SIZE: (&str, &str) = ("CXONE_PAGE_SIZE", "100");

/// Keeps every list request in flight a little while, so that requests sent at once overlap.
fn slow_lists(world: &LocalWorld, api: CxoneApi) {
    world
        .cxone
        .set_latency(endpoints(api).list, Duration::from_millis(25));
}

/// Ten pages read at once mirror every code exactly once, and the simulator saw more than one
/// page request at a time; with `CXONE_MAX_IN_FLIGHT=1`, never more than one.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn pages_read_at_once_mirror_every_code_once(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(1000);
    slow_lists(&world, api);
    let run = sync(&world, true, &[PAGE_SIZE]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.salesforce.records().len(), 1000, "{run}");
    assert_mirrored(&world);
    assert!(
        world.cxone.max_list_in_flight() > 1,
        "the pages were read one at a time"
    );

    world.cxone.reset_list_flights();
    world
        .cxone
        .rename(&world.cxone.codes()[0].external_id, "One");
    let run = sync(&world, true, &[PAGE_SIZE, ("CXONE_MAX_IN_FLIGHT", "1")]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.cxone.max_list_in_flight(), 1);
    assert_eq!(world.salesforce.records().len(), 1000);
    assert_mirrored(&world);
}

/// A server that serves fewer rows than `top` asks (silently) is read at its own stride: every
/// code, in exactly as many requests as its pages, several at once.
#[tokio::test]
async fn a_capped_top_is_read_at_once_at_the_served_stride() {
    let world = world_for(CxoneApi::Admin).await;
    world.cxone.seed(250);
    world.cxone.set_admin_modes(AdminModes {
        page_cap: Some(30),
        ..AdminModes::default()
    });
    slow_lists(&world, CxoneApi::Admin);
    let run = sync(&world, true, &[PAGE_SIZE]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.salesforce.records().len(), 250, "{run}");
    assert_mirrored(&world);
    assert_eq!(
        world.cxone.log().count("admin-list"),
        9,
        "250 rows, 30 a page"
    );
    assert!(world.cxone.max_list_in_flight() > 1);
}

/// A 429 amid pages read at once: the cycle completes with every code, and once the requests
/// already sent when the 429 came back have ended, no page request starts while another one is
/// in flight.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_429_reads_the_rest_of_the_cycle_one_page_at_a_time(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(1000);
    slow_lists(&world, api);
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 429,
            retry_after: Some(1),
            skip: 2,
            times: 1,
            ..Fault::default()
        },
    );
    let run = sync(&world, true, &[PAGE_SIZE]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(world.salesforce.records().len(), 1000, "{run}");
    assert_mirrored(&world);

    let flights = world.cxone.list_flights();
    let throttled = flights
        .iter()
        .position(|f| *f == Flight::End { status: Some(429) })
        .expect("the 429 was served");
    assert!(
        flights[..throttled]
            .iter()
            .any(|f| matches!(f, Flight::Start { in_flight } if *in_flight > 1)),
        "pages were not read at once before the 429: {flights:?}"
    );
    // Requests the client sent before the 429 reached it may still arrive after it was served;
    // once those have all ended (nothing in flight), every page request must go alone.
    let mut in_flight = flights[..=throttled].iter().fold(0i64, |n, f| match f {
        Flight::Start { in_flight } => *in_flight as i64,
        _ => n - 1,
    });
    let settled = flights[throttled + 1..]
        .iter()
        .position(|f| {
            in_flight = match f {
                Flight::Start { in_flight } => *in_flight as i64,
                _ => in_flight - 1,
            };
            in_flight == 0
        })
        .map_or(flights.len(), |i| throttled + 1 + i);
    let after: Vec<&Flight> = flights[settled..]
        .iter()
        .filter(|f| matches!(f, Flight::Start { .. }))
        .collect();
    assert!(!after.is_empty(), "nothing was read after the 429");
    assert!(
        after.iter().all(|f| **f == Flight::Start { in_flight: 1 }),
        "page requests overlapped after the 429: {flights:?}"
    );
}

/// Every code whose version is at or below the watermark is in Salesforce as CXone has it now
/// (no edits follow the cycle): the watermark passed no row it did not read.
async fn assert_watermark_passed_nothing_unread(world: &LocalWorld) {
    let watermark = state(world).await.watermark.expect("a watermark");
    for code in world.cxone.codes() {
        if code.last_modified > watermark {
            continue;
        }
        let row = world
            .salesforce
            .record(&code.external_id)
            .unwrap_or_else(|| {
                panic!(
                    "{} is below the watermark but not written",
                    code.external_id
                )
            });
        assert_eq!(
            row.fields["Name"],
            code.name.as_str(),
            "{}",
            code.external_id
        );
        assert_eq!(
            row.fields["Description__c"],
            code.description
                .as_deref()
                .map_or(Value::Null, |d| json!(d)),
            "{}",
            code.external_id
        );
    }
}

/// A code edited while pages are read at once (after the first page and some of the others
/// were served): the cycle loses nothing, its watermark passes no row it did not read, and the
/// edit reaches Salesforce. Edits land after different numbers of served pages.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn an_edit_amid_pages_read_at_once_is_not_lost(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(1000);
    sync(&world, false, &[PAGE_SIZE]).await;
    slow_lists(&world, api);
    let description = match api {
        CxoneApi::Guide => "description",
        CxoneApi::Admin => "notes",
    };
    for (round, served) in [2usize, 3, 5].into_iter().enumerate() {
        // A delta of every code: ten pages.
        for id in &ids {
            world
                .cxone
                .set_field(id, description, json!(format!("changed {round}")));
        }
        let moved = ids[10 + round].clone();
        let name = format!("Renamed amid pages {round}");
        {
            let name = name.clone();
            world
                .cxone
                .after_list_pages(served, move |cxone| cxone.rename(&moved, &name));
        }
        let run = sync(&world, false, &[PAGE_SIZE]).await;
        assert_eq!(run["status"], "ok", "{run}");
        assert_watermark_passed_nothing_unread(&world).await;
        let changed = |id: &String| {
            world.salesforce.record(id).unwrap().fields["Description__c"]
                == format!("changed {round}").as_str()
        };
        assert!(
            ids.iter().all(changed),
            "a code slipped past a page boundary"
        );
        // No overlap: only the watermark protects the next delta.
        sync(&world, false, &[PAGE_SIZE, ("OVERLAP_SECONDS", "0")]).await;
        assert_mirrored(&world);
        assert_eq!(
            world.salesforce.record(&ids[10 + round]).unwrap().fields["Name"],
            name.as_str()
        );
    }
}

/// An app as one warm execution environment keeps it: the same clients for every invocation.
fn warm_app(world: &LocalWorld) -> App {
    let env: std::collections::HashMap<String, String> = world.env().into_iter().collect();
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("valid settings");
    App::with_sdk(config, &world.sdk).expect("the app builds")
}

/// A quiet delta in a warm environment sends exactly one CXone request, the page (discovery,
/// the token, and the classifications table are kept), and none to Salesforce. A cold one
/// sends only what it cannot avoid: the guide its token and the page; the Admin API its
/// discovery documents, its token and the page (the codes the overlap window re-reads are
/// written already, so their classifications need no names).
#[rstest]
#[case::guide(CxoneApi::Guide, 2)]
#[case::admin(CxoneApi::Admin, 4)]
#[tokio::test]
async fn a_warm_quiet_cycle_sends_one_cxone_request(#[case] api: CxoneApi, #[case] cold: usize) {
    let world = world_for(api).await;
    world.cxone.seed(20);
    let app = warm_app(&world);
    let event = json!({"action": "sync"});
    let first = app.handle(event.clone(), "first", None).await.unwrap();
    assert_eq!(first["status"], "ok", "{first}");
    for n in 0..2 {
        let (cxone, salesforce) = (
            world.cxone.log().requests().len(),
            world.salesforce.log().requests().len(),
        );
        let quiet = app.handle(event.clone(), "quiet", None).await.unwrap();
        assert_eq!(
            (quiet["status"].as_str(), quiet["mode"].as_str()),
            (Some("ok"), Some("delta")),
            "{quiet}"
        );
        let sent: Vec<String> = world.cxone.log().requests()[cxone..]
            .iter()
            .map(|r| r.endpoint.clone())
            .collect();
        assert_eq!(sent, [endpoints(api).list], "warm quiet cycle {n}");
        assert_eq!(quiet["cxone_requests"], 1, "{quiet}");
        assert_eq!(world.salesforce.log().requests().len(), salesforce);
    }

    // Cold: a new process.
    let before = world.cxone.log().requests().len();
    let quiet = invoke(&world, &event, &[]).await;
    assert!(quiet.success, "{}", quiet.response);
    assert_eq!(quiet.response["mode"], "delta", "{}", quiet.response);
    assert_eq!(
        world.cxone.log().requests().len() - before,
        cold,
        "{:?}",
        &world.cxone.log().requests()[before..]
            .iter()
            .map(|r| &r.endpoint)
            .collect::<Vec<_>>()
    );
}

/// `CXONE_MAX_IN_FLIGHT` outside 1–16 stops the run at start, naming the variable.
#[rstest]
#[case::zero("0")]
#[case::too_many("17")]
#[case::not_a_number("four")]
#[tokio::test]
async fn an_out_of_range_max_in_flight_is_named_at_start(#[case] value: &str) {
    let world = world_for(CxoneApi::Admin).await;
    world.cxone.seed(3);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_disposition-sync"))
        .args(["invoke", "--event", "events/manual-sync.json"])
        .env_clear()
        .envs(world.env())
        .env("CXONE_MAX_IN_FLIGHT", value)
        .output()
        .await
        .expect("the binary starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("configuration error: CXONE_MAX_IN_FLIGHT is invalid"),
        "{stderr}"
    );
    assert!(
        world.cxone.log().requests().is_empty(),
        "it started: {stderr}"
    );
}
