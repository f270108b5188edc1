//! The dry run (`{"action": "plan"}`) and the status view (`{"action": "status"}`), end to end
//! through the real binary: a plan predicts exactly what the next cycle does (counts, upsert
//! calls, the records and fields it names), and neither action writes anything.

use crate::harness::{invoke, state, sync};
use crate::support::{endpoints, world_for};
use aws_sdk_dynamodb::types::AttributeValue;
use disposition_sim::cxone::{CxoneApi, Fault};
use disposition_sim::world::{LocalWorld, queue_depth};
use disposition_sync::record::STALE_REASON;
use disposition_sync::watermark::{DynamoDbStateStore, Lease, StateStore};
use rstest::rstest;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

type Item = Option<HashMap<String, AttributeValue>>;

/// The raw DynamoDB item under `pk`, attribute by attribute.
async fn item(world: &LocalWorld, pk: &str) -> Item {
    aws_sdk_dynamodb::Client::new(&world.sdk)
        .get_item()
        .table_name(&world.aws.table)
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("the state table is readable")
        .item
}

/// Everything a plan or a status must leave alone: the state item, the history item, every
/// Salesforce write the simulator counted, and the DLQ's depth.
#[derive(Debug, PartialEq)]
struct Footprint {
    state: Item,
    history: Item,
    salesforce_writes: usize,
    dlq: usize,
}

async fn footprint(world: &LocalWorld) -> Footprint {
    let writes = world
        .salesforce
        .log()
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.endpoint != "token")
        .count();
    Footprint {
        state: item(world, "dispositions").await,
        history: item(world, "dispositions#history").await,
        salesforce_writes: writes,
        dlq: queue_depth(&world.sdk, &world.aws.dlq_url).await,
    }
}

/// Runs `event` (a plan or a status) and asserts it changed nothing.
async fn read_only(world: &LocalWorld, event: Value, extra: &[(&str, &str)]) -> Value {
    let before = footprint(world).await;
    let run = invoke(world, &event, extra).await;
    assert!(run.success, "{}\n{}", run.response, run.stderr);
    assert_eq!(footprint(world).await, before, "{event} wrote something");
    run.response
}

async fn plan(world: &LocalWorld, full: bool, extra: &[(&str, &str)]) -> Value {
    let response = read_only(world, json!({"action": "plan", "full": full}), extra).await;
    assert_eq!(response["mode"], "plan", "{response}");
    response
}

async fn status(world: &LocalWorld) -> Value {
    let response = read_only(world, json!({"action": "status"}), &[]).await;
    assert_eq!(response["mode"], "status", "{response}");
    response
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// Runs the cycle the plan predicted and checks the exactness equation against its response
/// and the upsert calls the Salesforce simulator counted.
async fn cycle_matches(
    world: &LocalWorld,
    plan: &Value,
    full: bool,
    extra: &[(&str, &str)],
) -> Value {
    let upserts = world.salesforce.log().count("upsert");
    let cycle = sync(world, full, extra).await;
    let w = &plan["would"];
    let next = &plan["next_cycle"];
    assert_eq!(
        cycle["mode"],
        if plan["full"] == true {
            "full"
        } else {
            "delta"
        },
        "{cycle}"
    );
    assert_eq!(cycle["status"], next["status"], "{plan}\n{cycle}");
    assert_eq!(n(&cycle["created"]), n(&w["create"]), "{plan}\n{cycle}");
    assert_eq!(n(&cycle["created"]), n(&next["created"]));
    if plan["breaker"] == "pass" {
        let updates = [
            "update",
            "archive",
            "reactivate",
            "flag_stale",
            "clear_flag",
        ]
        .iter()
        .map(|k| n(&w[*k]))
        .sum::<u64>();
        assert_eq!(n(&cycle["updated"]), updates, "{plan}\n{cycle}");
        assert_eq!(
            n(&cycle["dead_lettered"]),
            n(&w["dead_letter"]),
            "{plan}\n{cycle}"
        );
    }
    assert_eq!(n(&cycle["updated"]), n(&next["updated"]));
    assert_eq!(
        n(&cycle["archived"]),
        n(&next["archived"]),
        "{plan}\n{cycle}"
    );
    assert_eq!(n(&cycle["dead_lettered"]), n(&next["dead_lettered"]));
    let sent = world.salesforce.log().count("upsert") - upserts;
    assert_eq!(sent as u64, n(&next["upsert_calls"]), "{plan}\n{cycle}");
    // Each invoke is a cold start, as the plan assumes: its price is the cycle's request count.
    assert_eq!(
        (
            n(&cycle["salesforce_requests"]),
            n(&cycle["cxone_requests"])
        ),
        (
            n(&plan["cost"]["salesforce_requests"]),
            n(&plan["cost"]["cxone_requests"])
        ),
        "{plan}\n{cycle}"
    );
    cycle
}

/// The change the plan lists for `external_id`.
fn change<'a>(plan: &'a Value, external_id: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == external_id)
        .unwrap_or_else(|| panic!("no change for {external_id} in {plan}"))
}

/// The first sync, a delta with a rename, a deactivation, an added code, an unmapped category
/// and malformed records, a reactivation, and the breaker: each plan is what the cycle then does.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_plan_is_exactly_what_the_next_cycle_does(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(30);
    // Batches of 7: 30 creates take 5 upsert calls.
    let env = [("SF_BATCH_SIZE", "7")];

    // First sync: a full reconciliation into an empty org.
    let first = plan(&world, false, &env).await;
    assert_eq!(
        (first["status"].as_str(), first["full"].as_bool()),
        (Some("ok"), Some(true)),
        "{first}"
    );
    assert_eq!(n(&first["would"]["create"]), 30, "{first}");
    assert_eq!(n(&first["next_cycle"]["upsert_calls"]), 5);
    assert_eq!(first["breaker"], "pass");
    assert_eq!(first["changes"].as_array().unwrap().len(), 30);
    let created = change(&first, &ids[0]);
    assert_eq!(created["action"], "create");
    assert_eq!(created["fields"]["Name"]["from"], Value::Null);
    assert_eq!(
        created["fields"]["Name"]["to"],
        world.cxone.code(&ids[0]).unwrap().name.as_str()
    );
    // Its price: describe, the rows query and the upserts, at least.
    assert!(n(&first["cost"]["salesforce_requests"]) >= 2 + 5, "{first}");
    assert!(n(&first["cost"]["cxone_requests"]) >= 1, "{first}");
    cycle_matches(&world, &first, false, &env).await;

    // A quiet delta plans nothing.
    let quiet = plan(&world, false, &env).await;
    assert_eq!(
        (
            quiet["full"].as_bool(),
            n(&quiet["would"]["create"]),
            n(&quiet["would"]["update"])
        ),
        (Some(false), 0, 0),
        "{quiet}"
    );
    assert_eq!(quiet["changes"], json!([]));

    // A rename, a deactivation, an added code, an unmapped category, malformed records.
    world.cxone.rename(&ids[0], "Renamed by the test");
    world.cxone.deactivate(&ids[1]);
    world.cxone.set_category(&ids[2], "Compliance Review");
    let added = match api {
        CxoneApi::Guide => world.cxone.upsert(json!({"id": "added-1", "name": "Added", "description": null, "category": "Sales", "is_active": true})),
        CxoneApi::Admin => world.cxone.upsert(json!({"dispositionName": "Added", "notes": null, "classificationName": "Sales", "isActive": true})),
    };
    let malformed = match api {
        CxoneApi::Guide => {
            json!({"id": "bad-date", "name": "Bad date", "is_active": true, "last_modified_date": "last tuesday"})
        }
        CxoneApi::Admin => {
            json!({"dispositionId": 7001, "dispositionName": "Bad date", "isActive": true, "lastUpdated": "last tuesday"})
        }
    };
    world.cxone.insert_raw(malformed);
    let delta = plan(&world, false, &env).await;
    let w = &delta["would"];
    // The rename and the unmapped category are updates.
    assert_eq!(
        [
            w["create"].clone(),
            w["update"].clone(),
            w["archive"].clone(),
            w["dead_letter"].clone()
        ],
        [json!(1), json!(2), json!(1), json!(1)],
        "{delta}"
    );
    assert_eq!(delta["next_cycle"]["status"], "partial");
    let renamed = change(&delta, &ids[0]);
    assert_eq!(renamed["action"], "update");
    assert_eq!(
        renamed["fields"]["Name"]["to"], "Renamed by the test",
        "{renamed}"
    );
    assert_ne!(renamed["fields"]["Name"]["from"], Value::Null, "{renamed}");
    let archived = change(&delta, &ids[1]);
    assert_eq!(archived["action"], "archive");
    assert_eq!(
        archived["fields"]["IsActive__c"],
        json!({"from": true, "to": false})
    );
    assert_eq!(change(&delta, &added)["action"], "create");
    let unmapped = change(&delta, &ids[2]);
    assert_eq!(
        unmapped["fields"]["RawCategory__c"]["to"], "Compliance Review",
        "{unmapped}"
    );
    assert_eq!(
        unmapped["fields"]["NeedsReview__c"],
        json!({"from": false, "to": true})
    );
    assert!(
        delta["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "dead_letter")
    );
    cycle_matches(&world, &delta, false, &env).await;

    // A reactivation.
    world.cxone.reactivate(&ids[1]);
    let back = plan(&world, false, &env).await;
    assert_eq!(n(&back["would"]["reactivate"]), 1, "{back}");
    assert_eq!(
        change(&back, &ids[1])["fields"]["IsActive__c"],
        json!({"from": false, "to": true})
    );
    cycle_matches(&world, &back, false, &env).await;

    // The breaker: deactivating 10 of 31 active codes would trip it, and the cycle fails so.
    for id in &ids[10..20] {
        world.cxone.deactivate(id);
    }
    let tripping = plan(&world, false, &env).await;
    assert_eq!(tripping["breaker"], "would_trip", "{tripping}");
    assert_eq!(n(&tripping["would"]["archive"]), 10);
    assert_eq!(tripping["next_cycle"]["status"], "failed");
    assert!(
        tripping["reason"]
            .as_str()
            .unwrap()
            .starts_with("mass_change:")
    );
    let refused = cycle_matches(&world, &tripping, false, &env).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("mass_change:"),
        "{refused}"
    );
    // Allowed once, it passes and does what the plan says.
    let allowed = read_only(
        &world,
        json!({"action": "plan", "allow_mass_change": true}),
        &env,
    )
    .await;
    assert_eq!(allowed["breaker"], "pass", "{allowed}");
    assert_eq!(n(&allowed["next_cycle"]["archived"]), 10);
}

/// A full reconciliation plan: a record no CXone code matches is flagged stale, and a code that
/// comes back has its flag cleared; an unchanged mirror is all `unchanged`.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_full_plan_flags_stale_records_and_clears_the_flag_of_a_code_that_came_back(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(6);
    let env = [("MAX_ARCHIVE_PERCENT", "100")];
    sync(&world, false, &env).await;
    let same = plan(&world, true, &env).await;
    assert_eq!(
        (n(&same["would"]["unchanged"]), same["changes"].clone()),
        (6, json!([])),
        "{same}"
    );

    let raw = world.cxone.get(&ids[0]).unwrap();
    assert!(world.cxone.remove(&ids[0]));
    let mut orphan = Map::new();
    orphan.insert("CXone_DispositionId__c".into(), json!("orphan-1"));
    orphan.insert("Name".into(), json!("Orphan"));
    orphan.insert("IsActive__c".into(), json!(true));
    world.salesforce.insert_record(orphan);
    let stale = plan(&world, true, &env).await;
    assert_eq!(n(&stale["would"]["flag_stale"]), 2, "{stale}");
    let flagged = change(&stale, "orphan-1");
    assert_eq!(flagged["action"], "flag_stale");
    assert_eq!(flagged["fields"]["ReviewReason__c"]["to"], STALE_REASON);
    assert!(flagged["fields"].get("IsActive__c").is_none(), "{flagged}");
    cycle_matches(&world, &stale, true, &env).await;

    // The code comes back: its record's stale flag is cleared.
    world.cxone.upsert(raw);
    let back = plan(&world, true, &env).await;
    assert_eq!(n(&back["would"]["clear_flag"]), 1, "{back}");
    let cleared = change(&back, &ids[0]);
    assert_eq!(cleared["action"], "clear_flag");
    assert_eq!(
        cleared["fields"]["NeedsReview__c"],
        json!({"from": true, "to": false})
    );
    cycle_matches(&world, &back, true, &env).await;
}

/// More changes than listed: 200 entries, `changes_truncated`, and the counts cover them all.
#[tokio::test]
async fn a_plan_lists_at_most_200_changes() {
    let world = world_for(CxoneApi::Guide).await;
    world.cxone.seed(230);
    let first = plan(&world, false, &[]).await;
    assert_eq!(n(&first["would"]["create"]), 230);
    assert_eq!(first["changes"].as_array().unwrap().len(), 200);
    assert_eq!(first["changes_truncated"], true);
    // An API usage reading prices the cycle against the org's limit.
    world.salesforce.set_api_usage(1000, 10_000);
    let priced = plan(&world, false, &[]).await;
    let after = priced["cost"]["api_usage_percent_after"].as_f64().unwrap();
    let cost = n(&priced["cost"]["salesforce_requests"]) as f64;
    let used = world.salesforce.api_usage().0 as f64;
    assert!(
        (after - ((used + cost) / 100.0 * 10.0).round() / 10.0).abs() < 0.11,
        "{priced}"
    );
}

/// The status view after a partial, a failed and a skipped cycle: the last cycle, its reason,
/// the lease, the DLQ depth and the watermark, newest first.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn status_reports_the_last_cycles_lease_and_dlq(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(5);
    let empty = status(&world).await;
    assert_eq!(
        (
            empty["watermark"].clone(),
            empty["last_cycle"].clone(),
            empty["recent_cycles"].clone()
        ),
        (Value::Null, Value::Null, json!([])),
        "{empty}"
    );
    assert_eq!(
        empty["lease"],
        json!({"held": false, "owner": null, "expires": null})
    );

    // Partial: a malformed record is dead-lettered.
    let malformed = match api {
        CxoneApi::Guide => {
            json!({"id": "bad-date", "name": "Bad date", "is_active": true, "last_modified_date": "last tuesday"})
        }
        CxoneApi::Admin => {
            json!({"dispositionId": 7001, "dispositionName": "Bad date", "isActive": true, "lastUpdated": "last tuesday"})
        }
    };
    world.cxone.insert_raw(malformed);
    let partial = sync(&world, false, &[]).await;
    assert_eq!(partial["status"], "partial", "{partial}");
    let after_partial = status(&world).await;
    let last = &after_partial["last_cycle"];
    assert_eq!(
        (last["status"].as_str(), last["mode"].as_str()),
        (Some("partial"), Some("full")),
        "{after_partial}"
    );
    assert_eq!(last["cycle_id"], partial["cycle_id"]);
    assert_eq!((n(&last["created"]), n(&last["dead_lettered"])), (5, 1));
    assert_eq!(
        after_partial["dlq"],
        json!({"visible": 1, "in_flight": 0, "oldest_age_seconds": null})
    );
    assert_eq!(
        after_partial["watermark"].as_str(),
        partial["watermark_after"].as_str()
    );
    assert!(after_partial["watermark_lag_seconds"].as_i64().is_some());
    assert!(after_partial["last_full_sync"].is_string());
    let usage = &after_partial["sf_api_usage"];
    assert!(
        n(&usage["max"]) > 0 && usage["as_of"].is_string(),
        "{after_partial}"
    );

    // Skipped: another run holds the lease. The skip is recorded without touching the state.
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        "dispositions",
    );
    let stored = store.load().await.unwrap();
    let mut leased = stored.state.clone();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    leased.lease = Some(Lease {
        owner: "other-run".into(),
        expires,
    });
    store.save(&leased, stored.version).await.unwrap();
    let state_item = item(&world, "dispositions").await;
    let skipped = sync(&world, false, &[]).await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(
        item(&world, "dispositions").await,
        state_item,
        "a skipped cycle wrote the state item"
    );
    let after_skip = status(&world).await;
    let last = &after_skip["last_cycle"];
    assert_eq!(last["status"], "skipped");
    assert!(
        last["reason"].as_str().unwrap().contains("other-run"),
        "{last}"
    );
    assert_eq!(after_skip["lease"]["held"], true);
    assert_eq!(after_skip["lease"]["owner"], "other-run");
    // A plan runs while the lease is held, says so, and writes nothing.
    let during = plan(&world, false, &[]).await;
    assert_eq!(during["lease_held_by"], "other-run", "{during}");
    assert_eq!(state(&world).await.lease.unwrap().owner, "other-run");

    // Failed: CXone keeps failing the listing (the lease is free again first).
    let stored = store.load().await.unwrap();
    let mut free = stored.state.clone();
    free.lease = None;
    store.save(&free, stored.version).await.unwrap();
    world.cxone.inject(
        endpoints(api).list,
        Fault {
            status: 503,
            times: 50,
            ..Fault::default()
        },
    );
    let failed = invoke(&world, &json!({"action": "sync"}), &[])
        .await
        .response;
    assert_eq!(failed["status"], "failed", "{failed}");
    let after_failed = status(&world).await;
    assert_eq!(after_failed["last_cycle"]["status"], "failed");
    assert_eq!(after_failed["last_cycle"]["reason"], failed["reason"]);
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("cxone_unavailable")
    );
    assert_eq!(after_failed["lease"]["held"], false);
    let statuses: Vec<&str> = after_failed["recent_cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "skipped", "partial"]);
}

/// The history keeps the newest 50 cycles: a history already full drops its oldest.
#[tokio::test]
async fn the_run_history_keeps_the_newest_50() {
    let world = world_for(CxoneApi::Guide).await;
    world.cxone.seed(2);
    let first = sync(&world, false, &[]).await;
    // Fill the history to 50 by copying the real summary (the cheapest honest way to get there).
    let history = item(&world, "dispositions#history")
        .await
        .expect("the cycle was recorded");
    let AttributeValue::S(text) = &history["cycles"] else {
        panic!("{history:?}")
    };
    let one: Vec<Value> = serde_json::from_str(text).unwrap();
    assert_eq!(one.len(), 1);
    let filled: Vec<Value> = (0..50)
        .map(|i| {
            let mut c = one[0].clone();
            c["cycle_id"] = json!(format!("old-{i}"));
            c
        })
        .collect();
    let AttributeValue::N(version) = &history["version"] else {
        panic!("{history:?}")
    };
    aws_sdk_dynamodb::Client::new(&world.sdk)
        .put_item()
        .table_name(&world.aws.table)
        .item("pk", AttributeValue::S("dispositions#history".into()))
        .item("version", AttributeValue::N(version.clone()))
        .item(
            "cycles",
            AttributeValue::S(serde_json::to_string(&filled).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let mut newest = vec![];
    for _ in 0..3 {
        newest.push(sync(&world, false, &[]).await["cycle_id"].clone());
    }
    let report = status(&world).await;
    let recent = report["recent_cycles"].as_array().unwrap();
    assert_eq!(recent.len(), 50, "{report}");
    let ids: Vec<&Value> = recent.iter().map(|c| &c["cycle_id"]).collect();
    assert_eq!(ids[..3], [&newest[2], &newest[1], &newest[0]]);
    assert_eq!(ids[3], "old-0");
    assert_eq!(ids[49], "old-46");
    assert!(!ids.contains(&&first["cycle_id"]));
    assert_eq!(report["last_cycle"]["cycle_id"], newest[2]);
}

/// `invoke --format text` prints each kind of response as a short summary: a plan with its
/// changes table, a cycle, the status view, a purge and a redrive.
#[tokio::test]
async fn format_text_summarises_every_response() {
    let world = world_for(CxoneApi::Guide).await;
    let ids = world.cxone.seed(25);
    let text = |event: Value| {
        let world = &world;
        async move {
            let (ok, stdout, stderr) =
                crate::harness::invoke_with(world, &event, &["--format", "text"], &[]).await;
            assert!(ok, "{stdout}\n{stderr}");
            assert!(serde_json::from_str::<Value>(&stdout).is_err(), "{stdout}");
            stdout
        }
    };
    let lines = |out: &str, needles: &[&str]| {
        for needle in needles {
            assert!(out.contains(needle), "no {needle:?} in\n{out}");
        }
    };

    let first = text(json!({"action": "plan"})).await;
    let name = world.cxone.code(&ids[0]).unwrap().name;
    lines(
        &first,
        &[
            "plan (full reconciliation): ok",
            "would create 25, update 0, archive 0",
            "breaker: pass",
            "Salesforce API calls (upserts: 1)",
            "external id",
            &format!("create       Name: null → \"{name}\" (new record, 6 fields)"),
            "…and 15 more",
        ],
    );
    let cycle = text(json!({"action": "sync"})).await;
    lines(
        &cycle,
        &[
            "ok (full sync)",
            "created 25, updated 0, archived 0",
            "watermark none -> 20",
        ],
    );

    world.cxone.rename(&ids[0], "Renamed");
    world.cxone.deactivate(&ids[1]);
    let delta = text(json!({"action": "plan"})).await;
    lines(
        &delta,
        &[
            "plan (delta): ok",
            "would create 0, update 1, archive 1",
            &format!("Name: \"{name}\" → \"Renamed\""),
            "archive",
            "IsActive__c: true → false",
        ],
    );
    assert!(!delta.contains("more"), "{delta}");
    text(json!({"action": "sync"})).await;

    let status = text(json!({"action": "status"})).await;
    lines(
        &status,
        &[
            "status of dispositions: ok",
            "s behind)",
            "lease: free",
            "last cycle: ok delta",
            "started",
            "DLQ: 0 waiting, 0 in flight",
            "Salesforce API usage:",
        ],
    );
    let purge = text(json!({"action": "purge"})).await;
    lines(&purge, &["purge (dry run): ok; 0 candidates"]);
    let redrive = text(json!({"action": "redrive"})).await;
    lines(&redrive, &["redrive:", "received 0"]);
}
