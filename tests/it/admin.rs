//! What only the CXone Admin API asks of the sync, through the real binary against an Admin
//! world: discovery across two origins, the password grant's token expiring mid-cycle, servers
//! that cap `top`, `204 No Content`, classification ids, ids and times in every shape the API
//! may send them, list items without `isActive`, redrive by id, and the access-key secret.

use crate::harness::{assert_mirrored, dead_letters, invoke, newest_cxone_timestamp, state, sync};
use crate::redrive::{dead_letter, sqs_event};
use crate::support::{endpoints, world_for};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use disposition_sim::cxone::{
    AdminModes, CATEGORIES, CxoneApi, CxoneConfig, Fault, Precision, Zone, parse_instant,
};
use disposition_sim::salesforce::SalesforceConfig;
use disposition_sim::server::RecordedRequest;
use disposition_sim::world::{LocalWorld, queue_depth};
use disposition_sync::dlq::DeadLetter;
use rstest::rstest;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A fresh world whose CXone speaks the Admin API.
async fn admin_world() -> LocalWorld {
    world_for(CxoneApi::Admin).await
}

/// The query parameters of a recorded request.
fn query(request: &RecordedRequest) -> HashMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://sim{}", request.uri))
        .unwrap_or_else(|e| panic!("{}: {e}", request.uri));
    url.query_pairs().into_owned().collect()
}

/// The list requests CXone received, in order.
fn list_requests(world: &LocalWorld) -> Vec<RecordedRequest> {
    world
        .cxone
        .log()
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == endpoints(CxoneApi::Admin).list)
        .collect()
}

/// A datetime as Salesforce holds it (`...Z` or `...+0000`).
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
    world
        .salesforce
        .record(external_id)
        .unwrap_or_else(|| panic!("{external_id} missing in Salesforce"))
        .fields[name]
        .clone()
}

/// The list item CXone serves for this id.
fn listed(world: &LocalWorld, id: &str) -> Value {
    world
        .cxone
        .all()
        .into_iter()
        .find(|item| {
            item["dispositionId"]
                .as_i64()
                .map(|n| n.to_string())
                .as_deref()
                == Some(id)
                || item["dispositionId"].as_str() == Some(id)
        })
        .unwrap_or_else(|| panic!("CXone does not list {id}"))
}

/// The token endpoint comes from the issuer's openid-configuration and the API host from its
/// cxone-configuration, asked for the tenant named in the access token; the dispositions are read
/// from that host, a different origin from the issuer, and nothing is sent where it does not
/// belong. With `CXONE_API_ENDPOINT` set, cxone-configuration is not asked at all.
#[tokio::test]
async fn discovery_finds_the_api_host_on_another_origin_than_the_issuer() {
    let world = admin_world().await;
    world.cxone.seed(5);
    assert_ne!(world.cxone.url(), world.cxone.admin_url());

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(5)),
        "{run}"
    );
    assert_mirrored(&world);
    let log = world.cxone.log();
    let counts = log.counts();
    let count = |endpoint: &str| counts.get(endpoint).copied().unwrap_or(0);
    // Issuer origin: discovery and the token; API origin: the list and classifications.
    assert_eq!(
        (
            count("openid-configuration"),
            count("cxone-configuration"),
            count("admin-token"),
        ),
        (1, 1, 1),
        "{counts:?}"
    );
    assert!(count("admin-list") >= 1, "{counts:?}");
    assert_eq!(
        (count("token"), count("list"), count("other")),
        (0, 0, 0),
        "a request went to the guide's API or to a path the origin does not serve: {counts:?}"
    );
    let configuration = log
        .requests()
        .into_iter()
        .find(|r| r.endpoint == "cxone-configuration")
        .unwrap();
    assert_eq!(
        query(&configuration).get("tenantId").map(String::as_str),
        Some(CxoneConfig::admin().tenant_id.as_str()),
        "the tenant comes from the token's tenantId claim"
    );
    let token = log
        .requests()
        .into_iter()
        .find(|r| r.endpoint == "admin-token")
        .unwrap();
    let form: HashMap<String, String> =
        url::form_urlencoded::parse(token.body.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    // The simulator checks the password and logs it redacted; that it issued a token is the
    // proof it was right.
    let (key_id, _) = world.cxone.admin_credentials();
    assert_eq!(
        (
            form.get("grant_type").map(String::as_str),
            form.get("username").map(String::as_str),
            form.contains_key("password"),
        ),
        (Some("password"), Some(key_id), true)
    );

    log.clear();
    let admin_url = world.cxone.admin_url();
    let pinned = sync(&world, true, &[("CXONE_API_ENDPOINT", admin_url.as_str())]).await;
    assert_eq!(pinned["status"], "ok", "{pinned}");
    let counts = world.cxone.log().counts();
    assert_eq!(
        counts.get("cxone-configuration"),
        None,
        "the endpoint override still asked for the configuration: {counts:?}"
    );
    assert_eq!(counts.get("openid-configuration"), Some(&1), "{counts:?}");
    assert!(counts.contains_key("admin-list"), "{counts:?}");
}

/// An access token that expires between two pages of one listing is answered by one new
/// password grant and the page asked again: the cycle reads and writes all 300 codes.
#[tokio::test]
async fn a_token_expiring_mid_cycle_is_renewed_and_the_listing_goes_on() {
    let world = admin_world().await;
    world.cxone.seed(300);
    world
        .cxone
        .after_list_pages(1, |tenant| tenant.expire_tokens());

    // One page at a time: the order of the requests is what this test pins down.
    let run = sync(&world, false, &[("CXONE_MAX_IN_FLIGHT", "1")]).await;
    assert_eq!(
        (
            run["status"].as_str(),
            run["fetched"].as_u64(),
            run["created"].as_u64()
        ),
        (Some("ok"), Some(300), Some(300)),
        "{run}"
    );
    assert_eq!(world.salesforce.records().len(), 300);
    let log = world.cxone.log();
    assert_eq!(
        log.count(endpoints(CxoneApi::Admin).token),
        2,
        "one grant, one renewal"
    );
    // Three pages of 100, plus the one refused for the expired token.
    assert_eq!(log.count("admin-list"), 4);
    let skips: Vec<String> = list_requests(&world)
        .iter()
        .map(|r| query(r)["skip"].clone())
        .collect();
    assert_eq!(skips, ["0", "100", "100", "200"]);
    assert_eq!(
        state(&world).await.watermark,
        Some(newest_cxone_timestamp(&world))
    );
}

/// A server that serves at most 30 rows whatever `top` asks does not end the listing early:
/// the sync keeps asking from where it got to until it has read `totalRecords` rows, and every
/// code arrives.
#[tokio::test]
async fn a_server_capping_top_still_delivers_every_code() {
    let world = admin_world().await;
    world.cxone.set_admin_modes(AdminModes {
        page_cap: Some(30),
        ..AdminModes::default()
    });
    world.cxone.seed(250);

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (
            run["status"].as_str(),
            run["fetched"].as_u64(),
            run["created"].as_u64()
        ),
        (Some("ok"), Some(250), Some(250)),
        "{run}"
    );
    assert_mirrored(&world);
    let requests = list_requests(&world);
    let mut pages: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let q = query(r);
            (q["skip"].clone(), q["top"].clone())
        })
        .collect();
    // Pages after the first are asked for at once, so they arrive in any order.
    pages.sort_by_key(|(skip, _)| skip.parse::<u64>().unwrap_or(u64::MAX));
    let expected: Vec<(String, String)> = (0..250)
        .step_by(30)
        .map(|skip| (skip.to_string(), "100".to_owned()))
        .collect();
    assert_eq!(pages, expected, "9 pages of at most 30, asked with top=100");
}

/// A delta with nothing new, answered `204 No Content` (or, by other servers, `200` with no
/// rows), is a successful empty cycle: nothing written, the watermark where it was.
#[rstest]
#[case::no_content(false)]
#[case::empty_200(true)]
#[tokio::test]
async fn an_empty_delta_is_a_quiet_success(#[case] empty_page_as_200: bool) {
    let world = admin_world().await;
    let ids = world.cxone.seed(3);
    sync(&world, false, &[]).await;
    let watermark = state(&world).await.watermark;
    assert!(watermark.is_some());
    let upserts = world.salesforce.log().count("upsert");
    // Nothing at or after the overlap window any more.
    for id in &ids {
        assert!(world.cxone.remove(id));
    }
    world.cxone.set_admin_modes(AdminModes {
        empty_page_as_200,
        ..AdminModes::default()
    });
    world.cxone.log().clear();

    let delta = sync(&world, false, &[]).await;
    assert_eq!(
        (
            delta["status"].as_str(),
            delta["mode"].as_str(),
            delta["fetched"].as_u64()
        ),
        (Some("ok"), Some("delta"), Some(0)),
        "{delta}"
    );
    let requests = list_requests(&world);
    assert_eq!(requests.len(), 1, "one request for an empty listing");
    let since = query(&requests[0])["updatedSince"].clone();
    assert!(since.ends_with('Z'), "updatedSince {since} is not UTC");
    assert_eq!(world.salesforce.log().count("upsert"), upserts);
    assert_eq!(world.salesforce.records().len(), 3);
    assert_eq!(state(&world).await.watermark, watermark);
}

/// List items name their classification by id only; the sync reads the classifications once
/// per cycle and writes each code's classification name as its category.
#[tokio::test]
async fn classification_ids_are_written_as_their_names() {
    let world = admin_world().await;
    let ids = world.cxone.seed(8);
    let item = listed(&world, &ids[3]);
    assert!(item.get("classificationName").is_none(), "{item}");
    assert_eq!(item["classificationId"], 4, "{item}");

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["unmapped_categories"].as_u64()),
        (Some("ok"), Some(0)),
        "{run}"
    );
    assert_eq!(world.cxone.log().count("classifications"), 1);
    for (id, category) in ids.iter().zip(CATEGORIES) {
        assert_eq!(field(&world, id, "Category__c"), category, "{id}");
        assert_eq!(field(&world, id, "RawCategory__c"), Value::Null, "{id}");
    }
}

/// A classification id the table does not know (the table was read before the classification
/// existed) makes the sync read the table again, and the code gets the new name, not a
/// placeholder.
#[tokio::test]
async fn an_unknown_classification_id_refreshes_the_table() {
    let world = admin_world().await;
    let ids = world.cxone.seed(8);
    world.cxone.set_category(&ids[0], "Customer Care");
    let new_id = listed(&world, &ids[0])["classificationId"].clone();
    assert_eq!(new_id, 9, "a new classification");
    // The first read answers with the table as it was before "Customer Care" existed.
    let stale: Vec<Value> = CATEGORIES
        .iter()
        .zip(1..)
        .map(|(name, id)| json!({"classificationId": id, "classificationName": name}))
        .collect();
    world.cxone.inject(
        "classifications",
        Fault {
            status: 200,
            body: Some(json!({"totalRecords": 8, "classificationResults": stale})),
            times: 1,
            ..Fault::default()
        },
    );

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
    assert_eq!(
        world.cxone.log().count("classifications"),
        2,
        "the table was not read again"
    );
    assert_eq!(field(&world, &ids[0], "Category__c"), "Support");
    assert_eq!(field(&world, &ids[0], "NeedsReview__c"), false);
    assert_eq!(field(&world, &ids[1], "Category__c"), CATEGORIES[1]);
}

/// Ids sent as numeric strings (`"6001"`, and classification ids the same way) are the same
/// codes as integer ids: mirrored under their decimal id, and a later cycle that sees them as
/// integers changes nothing.
#[tokio::test]
async fn numeric_string_ids_are_the_same_codes_as_integers() {
    let world = admin_world().await;
    world.cxone.set_admin_modes(AdminModes {
        disposition_id_as_string: true,
        classification_id_as_string: true,
        ..AdminModes::default()
    });
    let ids = world.cxone.seed(5);
    let item = listed(&world, &ids[0]);
    assert_eq!(item["dispositionId"], json!(ids[0]), "{item}");
    assert!(item["classificationId"].is_string(), "{item}");

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(5)),
        "{run}"
    );
    assert_mirrored(&world);
    for (id, category) in ids.iter().zip(CATEGORIES) {
        assert_eq!(field(&world, id, "Category__c"), category, "{id}");
    }

    world.cxone.set_admin_modes(AdminModes::default());
    let again = sync(&world, true, &[]).await;
    assert_eq!(
        (
            again["status"].as_str(),
            again["created"].as_u64(),
            again["updated"].as_u64()
        ),
        (Some("ok"), Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(world.salesforce.records().len(), 5);
}

/// `lastUpdated` with seven fractional digits (.NET ticks), with an offset instead of `Z`, or
/// both, is read as the instant it names: every code is mirrored with that time, the watermark
/// lands on the newest (to the millisecond Salesforce keeps), `updatedSince` goes out in UTC, and
/// the next cycle writes nothing.
#[rstest]
#[case::ticks_utc(Precision::Ticks, "Z")]
#[case::millis_offset(Precision::Millis, "+05:30")]
#[case::ticks_negative_offset(Precision::Ticks, "-05:00")]
#[tokio::test]
async fn last_updated_is_read_whatever_its_digits_and_zone(
    #[case] precision: Precision,
    #[case] zone: &str,
) {
    let world = admin_world().await;
    let zone = Zone::try_from(zone.to_owned()).unwrap();
    world.cxone.set_admin_modes(AdminModes {
        precision,
        zone,
        ..AdminModes::default()
    });
    let ids = world.cxone.seed(5);
    // One time with sub-millisecond digits, as ticks can carry.
    let fine = newest_cxone_timestamp(&world) + TimeDelta::nanoseconds(1_234_500);
    world.cxone.set_field(
        &ids[4],
        "lastUpdated",
        json!(fine.to_rfc3339_opts(SecondsFormat::Nanos, true)),
    );
    let served = listed(&world, &ids[4])["lastUpdated"]
        .as_str()
        .unwrap()
        .to_owned();
    let digits = if precision == Precision::Ticks { 7 } else { 3 };
    let fraction = served.split('.').nth(1).unwrap_or_default();
    assert!(
        fraction.bytes().take_while(u8::is_ascii_digit).count() == digits
            && served.ends_with(&String::from(zone)),
        "the simulator served {served}"
    );

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(5)),
        "{run}"
    );
    assert!(dead_letters(&world).await.is_empty());
    let millisecond = TimeDelta::milliseconds(1);
    for id in &ids {
        let code = world.cxone.code(id).unwrap();
        let mirrored = instant(&field(&world, id, "LastModifiedCXone__c"));
        assert!(
            mirrored <= code.last_modified && code.last_modified - mirrored < millisecond,
            "{id}: CXone {} but Salesforce {mirrored}",
            code.last_modified
        );
    }
    let newest = parse_instant(&served).unwrap();
    let watermark = state(&world).await.watermark.unwrap();
    assert!(
        watermark <= newest && newest - watermark < millisecond,
        "watermark {watermark}, newest {newest}"
    );

    world.cxone.log().clear();
    let again = sync(&world, false, &[]).await;
    assert_eq!(
        (
            again["status"].as_str(),
            again["created"].as_u64(),
            again["updated"].as_u64()
        ),
        (Some("ok"), Some(0), Some(0)),
        "{again}"
    );
    let since = query(&list_requests(&world)[0])["updatedSince"].clone();
    assert!(since.ends_with('Z'), "updatedSince {since} is not UTC");
}

/// List items without `isActive` (older API versions) are completed from the by-id endpoint,
/// never guessed: an inactive code is archived, the active ones are not.
#[tokio::test]
async fn a_list_without_is_active_is_completed_by_id() {
    let world = admin_world().await;
    world.cxone.set_admin_modes(AdminModes {
        list_without_is_active: true,
        ..AdminModes::default()
    });
    let ids = world.cxone.seed(5);
    world.cxone.deactivate(&ids[2]);
    assert!(listed(&world, &ids[2]).get("isActive").is_none());

    let run = sync(&world, false, &[]).await;
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(5)),
        "{run}"
    );
    assert_eq!(world.cxone.log().count("admin-get"), 5, "one read per code");
    for id in &ids {
        assert_eq!(
            field(&world, id, "IsActive__c"),
            id != &ids[2],
            "{id} activity"
        );
    }
    assert!(dead_letters(&world).await.is_empty());
}

/// An Admin record is redriven by its integer id on both paths: the SQS path and the manual one
/// (with by-id answers wrapped as `{"dispositions": [obj]}`) write the version CXone has now,
/// and a code CXone answers 404 for is not resurrected.
#[tokio::test]
async fn an_admin_record_is_redriven_by_id_on_both_paths() {
    let world = admin_world().await;
    let ids = world.cxone.seed(6);
    dead_letter(&world, &ids[..3]).await;
    world.cxone.rename(&ids[0], "Renamed For SQS");
    world.cxone.rename(&ids[1], "Renamed For Manual");
    assert!(world.cxone.remove(&ids[2]));

    // SQS path, with the message of the first code only.
    let mut event = sqs_event(&world, 1).await;
    event["Records"].as_array_mut().unwrap().retain(|r| {
        serde_json::from_str::<DeadLetter>(r["body"].as_str().unwrap())
            .unwrap()
            .external_id
            .as_deref()
            == Some(ids[0].as_str())
    });
    assert_eq!(event["Records"].as_array().unwrap().len(), 1);
    let gets = world.cxone.log().count("admin-get");
    let run = invoke(&world, &event, &[]).await;
    assert!(run.success, "{}", run.response);
    assert_eq!(
        run.response["batchItemFailures"],
        json!([]),
        "{}",
        run.response
    );
    assert_eq!(field(&world, &ids[0], "Name"), "Renamed For SQS");
    assert_eq!(world.cxone.log().count("admin-get") - gets, 1);
    let get = world
        .cxone
        .log()
        .requests()
        .into_iter()
        .rfind(|r| r.endpoint == "admin-get")
        .unwrap();
    assert!(
        get.uri.ends_with(&format!("/dispositions/{}", ids[0])),
        "{}",
        get.uri
    );

    // Manual path: the SQS run deleted nothing (Lambda would), so all three are still queued.
    world.cxone.set_admin_modes(AdminModes {
        get_wrapped: true,
        ..AdminModes::default()
    });
    let manual = invoke(&world, &json!({"action": "redrive"}), &[]).await;
    let m = &manual.response;
    assert_eq!(
        (
            m["status"].as_str(),
            m["written"].as_u64(),
            m["superseded"].as_u64()
        ),
        (Some("ok"), Some(1), Some(2)),
        "{m}"
    );
    assert_eq!(field(&world, &ids[1], "Name"), "Renamed For Manual");
    assert!(
        world.salesforce.record(&ids[2]).is_none(),
        "a code CXone no longer has was resurrected"
    );
    assert_eq!(queue_depth(&world.sdk, &world.aws.dlq_url).await, 0);
}

/// An Admin secret without `access_key_secret` stops the run before any CXone request, with an
/// error that names the missing key and prints no value of the secret.
#[tokio::test]
async fn a_secret_missing_the_access_key_secret_is_named_and_no_value_printed() {
    let world = admin_world().await;
    world.cxone.seed(3);
    let cxone = CxoneConfig::admin();
    let salesforce = SalesforceConfig::default();
    let secret = json!({
        "cxone": {
            "client_id": cxone.client_id,
            "client_secret": cxone.client_secret,
            "access_key_id": cxone.access_key_id,
        },
        "salesforce": {
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
        },
    });
    aws_sdk_secretsmanager::Client::new(&world.sdk)
        .put_secret_value()
        .secret_id(&world.aws.secret_id)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();

    let run = invoke(&world, &json!({"action": "sync"}), &[]).await;
    assert_eq!(
        run.response["errorType"], "CredentialsUnavailable",
        "{}",
        run.response
    );
    let message = run.response["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("`cxone.access_key_secret`"),
        "the missing key is not named: {message}"
    );
    let output = format!("{}\n{}", run.response, run.stderr);
    assert!(
        output.contains("access_key_secret"),
        "the missing key is not named: {output}"
    );
    for value in [
        cxone.client_secret.as_str(),
        cxone.access_key_id.as_str(),
        cxone.access_key_secret.as_str(),
        salesforce.client_secret.as_str(),
    ] {
        assert!(
            !output.contains(value),
            "a secret value was printed: {output}"
        );
    }
    assert_eq!(
        world.cxone.log().requests().len(),
        0,
        "CXone was called without credentials"
    );
    assert!(world.salesforce.records().is_empty());
}

/// A server that refuses a `top` of 1000 (`CXONE_PAGE_SIZE=1000`) with a 400 is asked again for
/// 100 rows a page, and every code arrives: the larger page is an optimisation, never a failure.
#[tokio::test]
async fn a_server_refusing_a_large_top_is_asked_for_pages_of_100() {
    let world = admin_world().await;
    world.cxone.set_admin_modes(AdminModes {
        max_top: Some(100),
        ..AdminModes::default()
    });
    world.cxone.seed(250);

    let run = sync(&world, false, &[("CXONE_PAGE_SIZE", "1000")]).await;
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(250)),
        "{run}"
    );
    assert_mirrored(&world);
    let mut pages: Vec<(String, String)> = list_requests(&world)
        .iter()
        .map(|r| {
            let q = query(r);
            (q["skip"].clone(), q["top"].clone())
        })
        .collect();
    pages.sort();
    let expected: Vec<(String, String)> =
        [("0", "100"), ("0", "1000"), ("100", "100"), ("200", "100")]
            .map(|(skip, top)| (skip.to_owned(), top.to_owned()))
            .to_vec();
    assert_eq!(pages, expected);
}
