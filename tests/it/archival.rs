//! Archival, full reconciliation, the mass-change breaker, category normalisation, field lengths
//! and the retention purge, end to end through the real binary. Every test asserts what the
//! Salesforce simulator holds afterwards, not only what the response claims.

use crate::harness::{assert_mirrored, dead_letters, invoke, newest_cxone_timestamp, state, sync};
use crate::support::{world, world_for};
use chrono::{DateTime, Duration, Utc};
use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::LocalWorld;
use disposition_sync::dlq::DeadLetterKind;
use disposition_sync::domain::format_ts;
use disposition_sync::record::STALE_REASON;
use rstest::rstest;
use serde_json::{Map, Value, json};

/// DELETE requests Salesforce received, whatever the endpoint.
fn deletes(world: &LocalWorld) -> usize {
    world
        .salesforce
        .log()
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

/// The field of `api`'s record shape that holds its modification time.
fn modified_field(api: CxoneApi) -> &'static str {
    match api {
        CxoneApi::Guide => "last_modified_date",
        CxoneApi::Admin => "lastUpdated",
    }
}

/// A datetime as either side writes it: CXone's `...Z` or Salesforce's `...+0000`.
fn instant(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a datetime: {value}"));
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// The field `name` of the Salesforce record with this external ID.
fn field(world: &LocalWorld, external_id: &str, name: &str) -> Value {
    let row = world
        .salesforce
        .record(external_id)
        .unwrap_or_else(|| panic!("{external_id} missing in Salesforce"));
    row.fields[name].clone()
}

/// Seeds a Salesforce row directly, as an admin or an earlier sync would have left it.
fn seed_row(
    world: &LocalWorld,
    external_id: &str,
    active: bool,
    archived: Option<DateTime<Utc>>,
) -> String {
    let mut fields = Map::new();
    fields.insert("CXone_DispositionId__c".into(), json!(external_id));
    fields.insert("Name".into(), json!(format!("Seeded {external_id}")));
    fields.insert("IsActive__c".into(), json!(active));
    if let Some(at) = archived {
        fields.insert("ArchivedDate__c".into(), json!(format_ts(at)));
    }
    world.salesforce.insert_record(fields)
}

/// The structured log lines (JSON on stderr) of one run.
fn log_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// External IDs of the purge candidates in a purge response.
fn candidate_ids(response: &Value) -> Vec<&str> {
    response["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect()
}

/// A deactivated code is archived in place (IsActive__c=false, ArchivedDate__c = the CXone time of
/// the deactivation); reactivated, the same record is active again with the date cleared.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_deactivated_code_is_archived_and_a_reactivated_one_restored(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    let id = &ids[4];
    let original = world.salesforce.record(id).unwrap();
    assert_eq!(original.fields["ArchivedDate__c"], Value::Null);

    world.cxone.deactivate(id);
    let deactivated_at = world.cxone.code(id).unwrap().last_modified;
    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["mode"].as_str()),
        (Some("ok"), Some("delta")),
        "{run}"
    );
    assert_eq!(
        (run["updated"].as_u64(), run["archived"].as_u64()),
        (Some(1), Some(1)),
        "{run}"
    );
    let row = world.salesforce.record(id).unwrap();
    assert_eq!(row.id, original.id, "archived in place, not re-created");
    assert_eq!(row.fields["IsActive__c"], false);
    assert_eq!(instant(&row.fields["ArchivedDate__c"]), deactivated_at);
    assert_eq!(row.fields["Name"], original.fields["Name"]);
    assert_eq!(world.salesforce.records().len(), 10);

    world.cxone.reactivate(id);
    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        (run["updated"].as_u64(), run["archived"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    let row = world.salesforce.record(id).unwrap();
    assert_eq!(row.id, original.id);
    assert_eq!(row.fields["IsActive__c"], true);
    assert_eq!(
        row.fields["ArchivedDate__c"],
        Value::Null,
        "reactivation clears the archive date"
    );
    assert_eq!(deletes(&world), 0);
}

/// No sync cycle sends a DELETE, whatever it has to do: the first full sync, a delta archiving
/// codes, a full reconciliation with missing, stale and orphaned records, the breaker refusing
/// and its override. Every record ever created is still in Salesforce at the end.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn no_sync_cycle_ever_sends_a_delete(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(20);
    sync(&world, false, &[]).await;

    world.cxone.deactivate(&ids[0]);
    world.cxone.deactivate(&ids[1]);
    assert_eq!(sync(&world, false, &[]).await["archived"].as_u64(), Some(2));

    assert!(world.cxone.remove(&ids[2]));
    assert!(world.salesforce.remove_record(&ids[3]));
    seed_row(&world, "orphan-1", true, None);
    let full = sync(&world, true, &[]).await;
    assert_eq!(full["status"], "ok", "{full}");
    assert_eq!(
        (
            full["reconcile"]["missing"].as_u64(),
            full["reconcile"]["stale"].as_u64()
        ),
        (Some(1), Some(2)),
        "{full}"
    );

    for id in &ids[4..10] {
        world.cxone.deactivate(id);
    }
    let refused = sync(&world, false, &[]).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let forced = invoke(
        &world,
        &json!({"action": "sync", "full": true, "allow_mass_change": true}),
        &[],
    )
    .await;
    assert_eq!(forced.response["status"], "ok", "{}", forced.response);
    assert_eq!(forced.response["archived"].as_u64(), Some(6));

    assert_eq!(deletes(&world), 0, "a sync cycle sent a DELETE");
    assert_eq!(world.salesforce.log().count("delete"), 0);
    for id in ids.iter().map(String::as_str).chain(["orphan-1"]) {
        assert!(
            world.salesforce.record(id).is_some(),
            "{id} is gone from Salesforce"
        );
    }
    assert_eq!(world.salesforce.records().len(), 21);
}

/// A Salesforce record no CXone code matches is flagged for review by the full reconciliation,
/// neither deleted nor deactivated, and listed in the response; a later reconciliation still
/// reports it without rewriting it; when the code is back in CXone, the flag is cleared.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_stale_record_is_flagged_for_review_and_cleared_when_its_code_returns(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    let gone = ids[6].clone();
    let snapshot = world.cxone.get(&gone).unwrap();
    let before = world.salesforce.record(&gone).unwrap();
    assert!(world.cxone.remove(&gone));
    seed_row(&world, "legacy-1", true, None);

    let run = sync(&world, true, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["mode"].as_str()),
        (Some("ok"), Some("full")),
        "{run}"
    );
    let r = &run["reconcile"];
    assert_eq!(
        (r["cxone_active"].as_u64(), r["salesforce_active"].as_u64()),
        (Some(9), Some(11)),
        "{run}"
    );
    assert_eq!(
        (
            r["missing"].as_u64(),
            r["different"].as_u64(),
            r["stale"].as_u64(),
            r["fixed"].as_u64()
        ),
        (Some(0), Some(0), Some(2), Some(2)),
        "{run}"
    );
    let mut expected_stale = vec![gone.clone(), "legacy-1".to_owned()];
    expected_stale.sort();
    assert_eq!(r["stale_ids"], json!(expected_stale));
    for id in [gone.as_str(), "legacy-1"] {
        let row = world
            .salesforce
            .record(id)
            .unwrap_or_else(|| panic!("{id} was deleted"));
        assert_eq!(row.fields["NeedsReview__c"], true, "{id}");
        assert_eq!(row.fields["ReviewReason__c"], STALE_REASON, "{id}");
        assert_eq!(
            row.fields["IsActive__c"], true,
            "{id} was deactivated silently"
        );
    }
    let flagged = world.salesforce.record(&gone).unwrap();
    assert_eq!(
        (flagged.id.as_str(), &flagged.fields["Name"]),
        (before.id.as_str(), &before.fields["Name"])
    );
    assert_eq!(world.salesforce.records().len(), 11);

    let upserts = world.salesforce.log().count("upsert");
    let again = sync(&world, true, &[]).await;
    assert_eq!(
        (
            again["reconcile"]["stale"].as_u64(),
            again["reconcile"]["fixed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{again}"
    );
    assert_eq!(
        world.salesforce.log().count("upsert"),
        upserts,
        "an already flagged record was rewritten"
    );

    // The code is back exactly as it was (same timestamp, so only a full reconciliation sees it).
    world.cxone.upsert(snapshot);
    let back = sync(&world, true, &[]).await;
    assert_eq!(back["status"], "ok", "{back}");
    assert_eq!(
        (
            back["reconcile"]["stale"].as_u64(),
            back["reconcile"]["different"].as_u64()
        ),
        (Some(1), Some(1)),
        "{back}"
    );
    assert_eq!(back["reconcile"]["stale_ids"], json!(["legacy-1"]));
    assert_eq!(field(&world, &gone, "NeedsReview__c"), false);
    assert_eq!(field(&world, &gone, "ReviewReason__c"), Value::Null);
    assert_eq!(field(&world, "legacy-1", "NeedsReview__c"), true);
    assert_eq!(deletes(&world), 0);
}

/// A record deleted behind the sync's back and one edited by hand in Salesforce are put back by
/// the full reconciliation; the response and exactly one `reconcile` log line report the same
/// discrepancies.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn full_reconciliation_recreates_missing_records_and_repairs_drift(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(12);
    sync(&world, false, &[]).await;
    assert!(world.salesforce.remove_record(&ids[3]));
    let mut drifted = world.salesforce.record(&ids[5]).unwrap().fields;
    assert!(world.salesforce.remove_record(&ids[5]));
    drifted.insert("Name".into(), json!("Edited by hand"));
    world.salesforce.insert_record(drifted);

    let run = invoke(&world, &json!({"action": "sync", "full": true}), &[]).await;
    assert!(run.success, "{}", run.response);
    let response = &run.response;
    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(
        (response["created"].as_u64(), response["updated"].as_u64()),
        (Some(1), Some(1)),
        "{response}"
    );
    let r = &response["reconcile"];
    assert_eq!(
        (r["cxone_active"].as_u64(), r["salesforce_active"].as_u64()),
        (Some(12), Some(11)),
        "{response}"
    );
    assert_eq!(
        (
            r["missing"].as_u64(),
            r["different"].as_u64(),
            r["stale"].as_u64(),
            r["fixed"].as_u64()
        ),
        (Some(1), Some(1), Some(0), Some(2)),
        "{response}"
    );
    assert_eq!(r["missing_ids"], json!([ids[3]]));
    assert_eq!(
        field(&world, &ids[5], "Name"),
        world.cxone.code(&ids[5]).unwrap().name.as_str()
    );
    assert_eq!(world.salesforce.records().len(), 12);
    assert_mirrored(&world);

    let lines: Vec<Value> = log_lines(&run.stderr)
        .into_iter()
        .filter(|l| l["target"] == "reconcile")
        .collect();
    assert_eq!(lines.len(), 1, "one reconcile log line: {}", run.stderr);
    let logged: Value =
        serde_json::from_str(lines[0]["fields"]["reconcile"].as_str().unwrap()).unwrap();
    assert_eq!(&logged, r, "the log line and the response disagree");
}

/// The full reconciliation reads every Salesforce record, following `nextRecordsUrl` past the
/// first 2,000: records on the second page are neither reported missing nor sent again.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn full_reconciliation_pages_through_every_salesforce_record(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(2050);
    sync(&world, false, &[]).await;
    assert_eq!(world.salesforce.records().len(), 2050);
    assert!(world.salesforce.remove_record(&ids[2049]));
    seed_row(&world, "orphan-1", true, None);
    let (queries, upserts) = (
        world.salesforce.log().count("query"),
        world.salesforce.log().count("upsert"),
    );

    let run = sync(&world, true, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    let r = &run["reconcile"];
    assert_eq!(
        (
            r["missing"].as_u64(),
            r["different"].as_u64(),
            r["stale"].as_u64(),
            r["fixed"].as_u64()
        ),
        (Some(1), Some(0), Some(1), Some(2)),
        "{run}"
    );
    assert_eq!(
        (r["missing_ids"].clone(), r["stale_ids"].clone()),
        (json!([ids[2049]]), json!(["orphan-1"]))
    );
    assert_eq!(
        world.salesforce.log().count("query") - queries,
        2,
        "one query and one nextRecordsUrl page"
    );
    assert_eq!(world.salesforce.log().count("upsert") - upserts, 1);
    assert_eq!(world.salesforce.records().len(), 2051);
}

/// Deactivating more than MAX_ARCHIVE_PERCENT of the active codes at once fails the cycle with
/// `mass_change`: nothing is written and the watermark stays. `allow_mass_change` lets one full
/// cycle through; the next mass change is refused again, unless the limit allows it.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn the_mass_change_breaker_refuses_wholesale_archival_until_overridden_once(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark;
    let upserts = world.salesforce.log().count("upsert");
    for id in &ids[..3] {
        world.cxone.deactivate(id);
    }

    let refused = sync(&world, false, &[]).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("mass_change") && reason.contains("3 of 10"),
        "{reason}"
    );
    assert_eq!(
        world.salesforce.log().count("upsert"),
        upserts,
        "the refused cycle wrote"
    );
    assert!(
        world
            .salesforce
            .records()
            .iter()
            .all(|r| r.fields["IsActive__c"] == true)
    );
    let after = state(&world).await;
    assert_eq!(
        after.watermark, watermark,
        "the refused cycle moved the watermark"
    );
    assert!(after.lease.is_none(), "the lease was released");

    let forced = invoke(
        &world,
        &json!({"action": "sync", "full": true, "allow_mass_change": true}),
        &[],
    )
    .await;
    assert!(forced.success);
    assert_eq!(forced.response["status"], "ok", "{}", forced.response);
    assert_eq!(
        (
            forced.response["updated"].as_u64(),
            forced.response["archived"].as_u64()
        ),
        (Some(3), Some(3))
    );
    for id in &ids[..3] {
        assert_eq!(field(&world, id, "IsActive__c"), false, "{id}");
    }
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world))
    );

    // The override was for one cycle: 2 of the 7 active codes is again more than 20%.
    world.cxone.deactivate(&ids[3]);
    world.cxone.deactivate(&ids[4]);
    let again = sync(&world, false, &[]).await;
    assert_eq!(again["status"], "failed", "{again}");
    assert!(
        again["reason"].as_str().unwrap().contains("2 of 7"),
        "{again}"
    );
    assert_eq!(field(&world, &ids[3], "IsActive__c"), true);

    // A higher limit lets the same change through: 2 of 7 is 28.6%, within 30%.
    let allowed = sync(&world, false, &[("MAX_ARCHIVE_PERCENT", "30")]).await;
    assert_eq!(
        (allowed["status"].as_str(), allowed["archived"].as_u64()),
        (Some("ok"), Some(2)),
        "{allowed}"
    );
    assert_eq!(field(&world, &ids[4], "IsActive__c"), false);
    assert_eq!(deletes(&world), 0);
}

/// CXone answering with no codes at all (a wrong tenant, an outage returning an empty list)
/// would flag every record stale: the breaker refuses, reports what it found, touches nothing.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn an_empty_cxone_answer_cannot_flag_the_whole_mirror_stale(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    let upserts = world.salesforce.log().count("upsert");
    for id in &ids {
        world.cxone.remove(id);
    }

    let run = sync(&world, true, &[]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["reason"].as_str().unwrap().starts_with("mass_change"),
        "{run}"
    );
    assert_eq!(
        (
            run["reconcile"]["stale"].as_u64(),
            run["reconcile"]["cxone_active"].as_u64()
        ),
        (Some(10), Some(0)),
        "{run}"
    );
    assert_eq!(world.salesforce.log().count("upsert"), upserts);
    let rows = world.salesforce.records();
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter()
            .all(|r| r.fields["NeedsReview__c"] == false && r.fields["IsActive__c"] == true)
    );
    assert_eq!(deletes(&world), 0);
}

/// "Compliance Review", a category the restricted picklist lacks, is written to RawCategory__c
/// with the record flagged; the response counts both records and lists the value once, with one
/// log line. Once Salesforce allows the value, the next full reconciliation fills Category__c and
/// clears the flag.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_new_category_is_kept_raw_and_flagged_then_healed_once_the_picklist_allows_it(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(6);
    sync(&world, false, &[]).await;
    world.cxone.set_category(&ids[1], "Compliance Review");
    world.cxone.set_category(&ids[2], "Compliance Review");

    let run = invoke(&world, &json!({"action": "sync"}), &[]).await;
    let response = &run.response;
    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(response["updated"].as_u64(), Some(2));
    assert_eq!(response["unmapped_categories"].as_u64(), Some(2));
    assert_eq!(
        response["unmapped_category_values"],
        json!(["Compliance Review"])
    );
    for id in &ids[1..3] {
        assert_eq!(field(&world, id, "Category__c"), Value::Null, "{id}");
        assert_eq!(
            field(&world, id, "RawCategory__c"),
            "Compliance Review",
            "{id}"
        );
        assert_eq!(field(&world, id, "NeedsReview__c"), true, "{id}");
        assert_eq!(
            field(&world, id, "ReviewReason__c"),
            "unmapped category: Compliance Review",
            "{id}"
        );
    }
    let warnings = log_lines(&run.stderr)
        .into_iter()
        .filter(|l| l["fields"]["category"] == "Compliance Review")
        .count();
    assert_eq!(
        warnings, 1,
        "one log line per distinct value: {}",
        run.stderr
    );
    assert!(dead_letters(&world).await.is_empty());

    world.salesforce.add_picklist_value("Compliance Review");
    let healed = sync(&world, true, &[]).await;
    assert_eq!(healed["status"], "ok", "{healed}");
    assert_eq!(
        (
            healed["reconcile"]["different"].as_u64(),
            healed["reconcile"]["fixed"].as_u64()
        ),
        (Some(2), Some(2)),
        "{healed}"
    );
    assert_eq!(healed["unmapped_categories"].as_u64(), Some(0));
    for id in &ids[1..3] {
        assert_eq!(
            field(&world, id, "Category__c"),
            "Compliance Review",
            "{id}"
        );
        assert_eq!(field(&world, id, "RawCategory__c"), Value::Null, "{id}");
        assert_eq!(field(&world, id, "NeedsReview__c"), false, "{id}");
        assert_eq!(field(&world, id, "ReviewReason__c"), Value::Null, "{id}");
    }
}

/// Categories match the picklist exactly after trimming, then case-insensitively, with the
/// CATEGORY_ALIASES map (keys matched the same way) applied first.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn categories_match_after_trimming_case_insensitively_and_through_aliases(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(3);
    world.cxone.set_category(&ids[0], "  Billing  ");
    world.cxone.set_category(&ids[1], "tECHNICAL");
    world.cxone.set_category(&ids[2], "Customer Care");

    let run = sync(
        &world,
        false,
        &[("CATEGORY_ALIASES", r#"{"customer care": "Support"}"#)],
    )
    .await;
    assert_eq!(
        (run["status"].as_str(), run["unmapped_categories"].as_u64()),
        (Some("ok"), Some(0)),
        "{run}"
    );
    for (id, category) in ids.iter().zip(["Billing", "Technical", "Support"]) {
        assert_eq!(field(&world, id, "Category__c"), category, "{id}");
        assert_eq!(field(&world, id, "NeedsReview__c"), false, "{id}");
    }
}

/// A write Salesforce refuses with a picklist error (the picklist changed after describe) makes
/// the sync describe the object again and map the record anew; it is written, not dead-lettered.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_picklist_error_refreshes_the_schema_and_the_record_is_still_written(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(4);
    world.salesforce.inject_record_error(
        &ids[2],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "bad value for restricted picklist field: Service",
        Some(1),
    );

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["created"].as_u64(), Some(4), "{run}");
    assert_eq!(
        world.salesforce.log().count("describe"),
        2,
        "describe once to map, once after the picklist error"
    );
    assert_eq!(field(&world, &ids[2], "Category__c"), "Service");
    assert!(dead_letters(&world).await.is_empty());
}

/// The retention purge lists, then deletes, exactly the records that are inactive and archived
/// longer than RETENTION_DAYS ago: not a younger archive, not an active record whatever its date,
/// not an inactive one without a date. Deleting needs PURGE_ENABLED=true and `"dry_run": false`.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn the_purge_deletes_only_records_archived_longer_than_the_retention_period(
    #[case] api: CxoneApi,
) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(3);
    sync(&world, false, &[]).await;
    let now = Utc::now();
    seed_row(&world, "old-1", false, Some(now - Duration::days(400)));
    seed_row(&world, "old-2", false, Some(now - Duration::days(366)));
    seed_row(&world, "young", false, Some(now - Duration::days(364)));
    seed_row(&world, "active-old", true, Some(now - Duration::days(800)));
    seed_row(&world, "undated", false, None);
    let kept = ["young", "active-old", "undated"];

    let dry = invoke(
        &world,
        &json!({"action": "purge", "dry_run": true}),
        &[("PURGE_ENABLED", "true")],
    )
    .await;
    assert!(dry.success);
    assert_eq!(
        (
            dry.response["status"].as_str(),
            dry.response["dry_run"].as_bool()
        ),
        (Some("ok"), Some(true)),
        "{}",
        dry.response
    );
    assert_eq!(candidate_ids(&dry.response), ["old-1", "old-2"]);
    assert_eq!(dry.response["deleted"], json!([]));
    assert_eq!((deletes(&world), world.salesforce.records().len()), (0, 8));

    let longer = invoke(
        &world,
        &json!({"action": "purge", "dry_run": true}),
        &[("RETENTION_DAYS", "380")],
    )
    .await;
    assert_eq!(
        candidate_ids(&longer.response),
        ["old-1"],
        "{}",
        longer.response
    );

    let disabled = invoke(&world, &json!({"action": "purge", "dry_run": false}), &[]).await;
    assert_eq!(
        disabled.response["status"], "failed",
        "{}",
        disabled.response
    );
    assert!(
        disabled.response["reason"]
            .as_str()
            .unwrap()
            .starts_with("purge_disabled"),
        "{}",
        disabled.response
    );
    assert_eq!((deletes(&world), world.salesforce.records().len()), (0, 8));

    let real = invoke(
        &world,
        &json!({"action": "purge", "dry_run": false}),
        &[("PURGE_ENABLED", "true")],
    )
    .await;
    assert_eq!(real.response["status"], "ok", "{}", real.response);
    assert_eq!(real.response["deleted"], json!(["old-1", "old-2"]));
    assert_eq!(real.response["failed"], json!([]));
    assert!(
        world.salesforce.record("old-1").is_none() && world.salesforce.record("old-2").is_none()
    );
    for id in ids.iter().map(String::as_str).chain(kept) {
        assert!(world.salesforce.record(id).is_some(), "{id} was purged");
    }
    assert_eq!(world.salesforce.records().len(), 6);

    let again = invoke(
        &world,
        &json!({"action": "purge", "dry_run": false}),
        &[("PURGE_ENABLED", "true")],
    )
    .await;
    assert_eq!(
        (
            again.response["status"].as_str(),
            again.response["deleted"].clone()
        ),
        (Some("ok"), json!([])),
        "{}",
        again.response
    );
    assert_eq!(world.salesforce.records().len(), 6);
}

/// More than 200 purge candidates are deleted 200 per request and every deleted external ID is
/// reported; a record Salesforce fails to delete is reported with its error.
#[tokio::test]
async fn the_purge_deletes_in_batches_and_reports_each_id() {
    let world = world().await;
    let archived = Utc::now() - Duration::days(500);
    let mut expected: Vec<String> = (0..205).map(|i| format!("old-{i:03}")).collect();
    for id in &expected {
        seed_row(&world, id, false, Some(archived));
    }
    seed_row(
        &world,
        "young",
        false,
        Some(Utc::now() - Duration::days(30)),
    );

    // The record vanishes between the query and the delete (removed by someone else meanwhile).
    world
        .salesforce
        .set_latency("query", std::time::Duration::from_millis(800));
    let event = json!({"action": "purge", "dry_run": false});
    let purge = invoke(&world, &event, &[("PURGE_ENABLED", "true")]);
    let vanish = async {
        while world.salesforce.log().count("query") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(world.salesforce.remove_record("old-100"));
    };
    let (run, ()) = tokio::join!(purge, vanish);
    let response = &run.response;
    assert_eq!(response["status"], "partial", "{response}");
    assert_eq!(response["candidates"].as_array().unwrap().len(), 205);
    assert_eq!(
        world.salesforce.log().count("delete"),
        2,
        "205 records in two requests"
    );
    let failed = response["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{response}");
    assert_eq!(failed[0]["external_id"], "old-100");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("ENTITY_IS_DELETED"),
        "{response}"
    );
    expected.retain(|id| id != "old-100");
    assert_eq!(response["deleted"], json!(expected));
    let rows = world.salesforce.records();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].fields["CXone_DispositionId__c"], "young");
}

/// Text longer than its Salesforce field is cut on a character boundary and counted; an external
/// ID longer than its field is never cut: that code is dead-lettered, the rest written, and the
/// watermark is not held back by it, nor is it dead-lettered again by the next cycle. (An Admin
/// id is an integer, so there the too-long id is 51 digits no integer holds, and its letter
/// carries no id.)
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn long_text_is_truncated_and_a_too_long_external_id_is_dead_lettered(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    world.cxone.seed(3);
    let long_name = "Ünïcödé ".repeat(15);
    let long_description = "é".repeat(2100);
    let text_id = match api {
        CxoneApi::Guide => world.cxone.upsert(json!({"id": "long-text", "name": long_name, "description": long_description, "category": "Sales", "is_active": true})),
        CxoneApi::Admin => world.cxone.upsert(json!({"dispositionName": long_name, "notes": long_description, "classificationName": "Sales", "isActive": true})),
    };
    let (long_id, id_field, letter_id) = match api {
        CxoneApi::Guide => {
            let long_id = "x".repeat(51);
            world.cxone.upsert(json!({"id": long_id, "name": "Long id", "description": null, "category": "Sales", "is_active": true}));
            (long_id.clone(), "id", Some(long_id))
        }
        CxoneApi::Admin => {
            let long_id = "1".repeat(51);
            let newest = newest_cxone_timestamp(&world) + Duration::milliseconds(1);
            world.cxone.insert_raw(json!({"dispositionId": long_id, "dispositionName": "Long id", "notes": null, "classificationId": 6, "isActive": true, "lastUpdated": format_ts(newest)}));
            (long_id, "dispositionId", None)
        }
    };

    let run = sync(&world, false, &[]).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(
        (
            run["created"].as_u64(),
            run["truncated"].as_u64(),
            run["dead_lettered"].as_u64()
        ),
        (Some(4), Some(2), Some(1)),
        "{run}"
    );
    let expected_name: String = long_name.chars().take(80).collect();
    assert_eq!(field(&world, &text_id, "Name"), expected_name);
    assert_eq!(field(&world, &text_id, "Description__c"), "é".repeat(2000));
    assert!(
        world
            .salesforce
            .records()
            .iter()
            .all(|r| r.fields["CXone_DispositionId__c"].as_str().unwrap().len() <= 50)
    );
    assert_eq!(world.salesforce.records().len(), 4);

    let letters = dead_letters(&world).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].external_id, letter_id);
    let code = match api {
        CxoneApi::Guide => "EXTERNAL_ID_TOO_LONG",
        CxoneApi::Admin => "UNMAPPABLE_RECORD",
    };
    assert_eq!(
        (letters[0].kind, letters[0].error.code.as_str()),
        (DeadLetterKind::Unmappable, code)
    );
    assert_eq!(letters[0].source[id_field], long_id.as_str());
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world)),
        "the watermark is stuck behind the dead-lettered code"
    );

    let next = sync(&world, false, &[]).await;
    assert_eq!(
        (next["status"].as_str(), next["dead_lettered"].as_u64()),
        (Some("ok"), Some(0)),
        "{next}"
    );
    assert_eq!(
        dead_letters(&world).await.len(),
        1,
        "the same code was dead-lettered twice"
    );
}

/// A purged record stays purged: CXone still lists the retired code, but a full reconciliation
/// does not recreate a code archived longer ago than the retention period.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn full_reconciliation_does_not_resurrect_a_purged_record(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    world.cxone.deactivate(&ids[0]);
    let long_ago = format_ts(Utc::now() - Duration::days(400));
    world
        .cxone
        .set_field(&ids[0], modified_field(api), json!(long_ago));
    assert!(
        world.salesforce.remove_record(&ids[0]),
        "the purge removed it"
    );

    let full = sync(&world, true, &[]).await;
    assert_eq!(full["status"], "ok", "{full}");
    assert_eq!(full["reconcile"]["missing"].as_u64(), Some(0), "{full}");
    assert!(world.salesforce.record(&ids[0]).is_none());
    assert_eq!(world.salesforce.records().len(), 9);
}

/// In a delta the breaker counts only codes that are active in Salesforce: edits to codes that
/// are already archived archive nothing and pass.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn the_delta_breaker_ignores_codes_already_archived(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let ids = world.cxone.seed(10);
    sync(&world, false, &[]).await;
    for id in &ids[..3] {
        world.cxone.deactivate(id);
    }
    let refused = sync(&world, false, &[]).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("mass_change"),
        "{refused}"
    );
    let allowed = invoke(
        &world,
        &json!({"action": "sync", "full": true, "allow_mass_change": true}),
        &[],
    )
    .await;
    assert_eq!(
        allowed.response["archived"].as_u64(),
        Some(3),
        "{}",
        allowed.response
    );

    for id in &ids[..3] {
        world.cxone.rename(id, &format!("Retired {id}"));
    }
    let edits = sync(&world, false, &[]).await;
    assert_eq!(
        (edits["status"].as_str(), edits["updated"].as_u64()),
        (Some("ok"), Some(3)),
        "{edits}"
    );
    assert_eq!(
        world.salesforce.record(&ids[1]).unwrap().fields["IsActive__c"],
        false
    );
}
