//! The CXone simulator over HTTP, as the sync client sees it: tokens, paging, filtering,
//! envelopes, faults, and the store's timestamp rules.

use chrono::{DateTime, Utc};
use disposition_sim::cxone::{CATEGORIES, CxoneConfig, CxoneSim, Envelope, Fault, Flight};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[path = "cxone/admin.rs"]
mod admin;

const SCOPE: &str = "disposition:view disposition:edit";

type Form<'a> = &'a [(&'a str, &'a str)];

thread_local! {
    // Building a client loads TLS roots, which dominates these tests' time; one per test thread
    // (libtest runs each test on its own thread, with its own runtime) keeps pools per runtime.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

fn client() -> reqwest::Client {
    CLIENT.with(Clone::clone)
}

async fn token(sim: &CxoneSim) -> String {
    let response = client()
        .post(format!("{}/oauth/token", sim.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cx-client"),
            ("client_secret", "cx-secret"),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET /api/v2/dispositions with `query`: status, Retry-After and the JSON body.
async fn list(
    sim: &CxoneSim,
    token: &str,
    query: &[(&str, &str)],
) -> (StatusCode, Option<String>, Value) {
    let response = client()
        .get(format!("{}/api/v2/dispositions", sim.url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

fn ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn modified(record: &Value) -> DateTime<Utc> {
    let text = record["last_modified_date"].as_str().unwrap();
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn newest(sim: &CxoneSim) -> DateTime<Utc> {
    sim.all().iter().map(modified).max().unwrap()
}

#[tokio::test]
async fn token_is_issued_for_form_and_basic_client_credentials() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let url = format!("{}/oauth/token", sim.url());

    let body: Value = client()
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cx-client"),
            ("client_secret", "cx-secret"),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], SCOPE);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);

    let response = client()
        .post(&url)
        .basic_auth("cx-client", Some("cx-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "disposition:view"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["scope"], "disposition:view");
    assert_ne!(second["access_token"], body["access_token"]);

    // The log keeps what was sent, minus the secret.
    let logged = sim.log().requests()[0].body.clone().unwrap();
    assert!(logged.contains("client_id=cx-client"), "{logged}");
    assert!(!logged.contains("cx-secret"), "{logged}");
    assert_eq!(sim.log().count("token"), 2);
}

#[tokio::test]
async fn token_refuses_bad_client_grant_or_scope() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let url = format!("{}/oauth/token", sim.url());
    let cases: [(Form, StatusCode, &str); 4] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "cx-client"),
                ("client_secret", "wrong"),
                ("scope", SCOPE),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "someone"),
                ("client_secret", "cx-secret"),
                ("scope", SCOPE),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", "cx-client"),
                ("client_secret", "cx-secret"),
                ("scope", SCOPE),
            ],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "cx-client"),
                ("client_secret", "cx-secret"),
                ("scope", "disposition:edit"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        let response = client().post(&url).form(form).send().await.unwrap();
        assert_eq!(response.status(), status, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}");
        assert!(body["error_description"].is_string());
    }

    let wrong_basic = client()
        .post(&url)
        .basic_auth("cx-client", Some("nope"))
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_calls_need_a_live_token() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    sim.seed(2);
    let url = format!("{}/api/v2/dispositions", sim.url());

    let missing = client().get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    let (status, _, body) = list(&sim, "not-a-token", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    let live = token(&sim).await;
    let (status, _, _) = list(&sim, &live, &[]).await;
    assert_eq!(status, StatusCode::OK);

    sim.expire_tokens();
    let response = client().get(&url).bearer_auth(&live).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "The access token expired"})
    );

    // A token issued after expire_tokens() works.
    let (status, _, _) = list(&sim, &token(&sim).await, &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let config = CxoneConfig {
        token_ttl: Duration::from_millis(800),
        ..CxoneConfig::default()
    };
    let sim = CxoneSim::start(config).await;
    let live = token(&sim).await;
    assert_eq!(list(&sim, &live, &[]).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(850)).await;
    let (status, _, body) = list(&sim, &live, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn list_pages_in_modified_order() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(25);
    let token = token(&sim).await;

    let mut paged = Vec::new();
    for (page, expected) in [("1", 10), ("2", 10), ("3", 5), ("4", 0)] {
        let (status, _, body) = list(&sim, &token, &[("page", page), ("pageSize", "10")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["page"], page.parse::<u32>().unwrap());
        assert_eq!(body["pageSize"], 10);
        assert_eq!(body["totalRecords"], 25);
        let page_ids = ids(&body["dispositions"]);
        assert_eq!(page_ids.len(), expected, "page {page}");
        paged.extend(page_ids);
    }
    assert_eq!(paged, seeded);

    // Defaults: page 1 of 100.
    let (_, _, body) = list(&sim, &token, &[]).await;
    assert_eq!(
        (body["page"].clone(), body["pageSize"].clone()),
        (json!(1), json!(100))
    );
    assert_eq!(ids(&body["dispositions"]), seeded);
}

#[tokio::test]
async fn list_filters_on_last_modified_date_inclusively() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(25);
    let token = token(&sim).await;
    let tenth = sim.get(&seeded[9]).unwrap();
    let since = tenth["last_modified_date"].as_str().unwrap();

    let (_, _, body) = list(
        &sim,
        &token,
        &[("last_modified_date", since), ("pageSize", "100")],
    )
    .await;
    assert_eq!(body["totalRecords"], 16);
    assert_eq!(ids(&body["dispositions"]), seeded[9..]);

    // Any RFC 3339 offset is understood; one ms later excludes the tenth.
    let later = (modified(&tenth) + chrono::TimeDelta::milliseconds(1))
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let (_, _, body) = list(&sim, &token, &[("last_modified_date", &later.to_rfc3339())]).await;
    assert_eq!(ids(&body["dispositions"]), seeded[10..]);

    // Edited records come back after the untouched ones.
    sim.rename(&seeded[0], "Renamed");
    let (_, _, body) = list(&sim, &token, &[("last_modified_date", since)]).await;
    assert_eq!(ids(&body["dispositions"]).last(), Some(&seeded[0]));
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let config = CxoneConfig {
        max_page_size: 50,
        ..CxoneConfig::default()
    };
    let sim = CxoneSim::start(config).await;
    let token = token(&sim).await;
    for query in [
        [("page", "0")],
        [("page", "two")],
        [("pageSize", "0")],
        [("pageSize", "51")],
        [("pageSize", "-1")],
        [("last_modified_date", "yesterday")],
        [("last_modified_date", "2024-03-15")],
    ] {
        let (status, _, body) = list(&sim, &token, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}");
        assert_eq!(body["error"], "invalid_request", "{query:?}");
    }
    assert_eq!(
        list(&sim, &token, &[("pageSize", "50")]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn envelope_is_configurable_and_switchable() {
    let config = CxoneConfig {
        envelope: Envelope::BareArray,
        ..CxoneConfig::default()
    };
    let sim = CxoneSim::start(config).await;
    let seeded = sim.seed(3);
    let token = token(&sim).await;

    let (_, _, body) = list(&sim, &token, &[("pageSize", "2")]).await;
    assert_eq!(ids(&body), seeded[..2]);
    let (_, _, body) = list(&sim, &token, &[("page", "9")]).await;
    assert_eq!(body, json!([]));

    sim.set_envelope(Envelope::Object);
    let (_, _, body) = list(&sim, &token, &[]).await;
    assert_eq!(ids(&body["dispositions"]), seeded);
    assert_eq!(CxoneConfig::default().envelope, Envelope::Object);
}

#[tokio::test]
async fn raw_records_are_served_verbatim_and_last() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let raws = [
        json!({"name": "no id at all", "is_active": true}),
        json!({"id": "bad-date", "name": "Bad", "last_modified_date": "yesterday"}),
        json!({"id": 42, "name": ["wrong"], "is_active": "yes", "last_modified_date": 7}),
    ];
    for raw in &raws {
        sim.insert_raw(raw.clone());
    }
    let seeded = sim.seed(3);
    let token = token(&sim).await;
    let since = sim.get(&seeded[2]).unwrap()["last_modified_date"]
        .as_str()
        .unwrap()
        .to_owned();

    let (_, _, body) = list(&sim, &token, &[("last_modified_date", &since)]).await;
    let records = body["dispositions"].as_array().unwrap();
    assert_eq!(body["totalRecords"], 4);
    assert_eq!(records[0]["id"], seeded[2].as_str());
    // Unreadable dates sort last, by id (the JSON text of a non-string id, "" when absent).
    assert_eq!(
        records[1..],
        [raws[0].clone(), raws[2].clone(), raws[1].clone()]
    );
    assert_eq!(sim.get("bad-date"), Some(raws[1].clone()));
}

#[tokio::test]
async fn get_returns_one_record_or_404() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(2);
    let token = token(&sim).await;

    let response = client()
        .get(format!("{}/api/v2/dispositions/{}", sim.url(), seeded[1]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        sim.get(&seeded[1]).unwrap()
    );

    let missing = client()
        .get(format!("{}/api/v2/dispositions/nope", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": "not_found", "error_description": "Invalid dispositionId"})
    );
    assert_eq!(sim.log().count("get"), 2);
}

#[tokio::test]
async fn faults_skip_then_fail_with_retry_after_without_consuming_the_page() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    sim.seed(5);
    let token = token(&sim).await;
    let page = [("page", "1"), ("pageSize", "2")];

    sim.inject(
        "list",
        Fault {
            status: 429,
            retry_after: Some(7),
            skip: 1,
            times: 2,
            ..Fault::default()
        },
    );
    sim.inject(
        "list",
        Fault {
            status: 503,
            times: 1,
            ..Fault::default()
        },
    );
    let (first, _, expected) = list(&sim, &token, &page).await;
    assert_eq!(first, StatusCode::OK);
    for _ in 0..2 {
        let (status, retry_after, body) = list(&sim, &token, &page).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after.as_deref(), Some("7"));
        assert_eq!(
            body,
            json!({"error": "too_many_requests", "error_description": "Rate limit exceeded"})
        );
    }
    // The queued 503 follows, without Retry-After.
    let (status, retry_after, body) = list(&sim, &token, &page).await;
    assert_eq!(
        (status, retry_after),
        (StatusCode::SERVICE_UNAVAILABLE, None)
    );
    assert_eq!(body["error"], "service_unavailable");
    // Then the same page again, unchanged.
    let (status, _, body) = list(&sim, &token, &page).await;
    assert_eq!((status, body), (StatusCode::OK, expected));
    assert_eq!(sim.log().count("list"), 5);

    // Faults on other endpoints, with a custom body.
    sim.inject(
        "token",
        Fault {
            status: 500,
            body: Some(json!({"oops": true})),
            times: 1,
            ..Fault::default()
        },
    );
    let response = client()
        .post(format!("{}/oauth/token", sim.url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"oops": true})
    );
    token_still_works(&sim).await;
}

async fn token_still_works(sim: &CxoneSim) {
    let fresh = token(sim).await;
    assert_eq!(list(sim, &fresh, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let id = sim.seed(1).remove(0);
    let token = token(&sim).await;
    sim.set_latency("get", Duration::from_millis(400));
    let started = Instant::now();
    let response = client()
        .get(format!("{}/api/v2/dispositions/{id}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    sim.set_latency("get", Duration::ZERO);
    let started = Instant::now();
    list(&sim, &token, &[]).await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

/// List requests sent at once are counted in flight at once (latency keeps them there: each
/// request sleeps on its own); sent one after another, never more than one is.
#[tokio::test]
async fn list_requests_in_flight_are_counted() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    sim.seed(10);
    let token = token(&sim).await;
    sim.set_latency("list", Duration::from_millis(100));
    for _ in 0..3 {
        list(&sim, &token, &[]).await;
    }
    assert_eq!(sim.max_list_in_flight(), 1);
    assert_eq!(sim.list_flights().len(), 6);

    sim.reset_list_flights();
    let (one, two, three, four) = (
        [("page", "1")],
        [("page", "2")],
        [("page", "3")],
        [("page", "4")],
    );
    let answers = tokio::join!(
        list(&sim, &token, &one),
        list(&sim, &token, &two),
        list(&sim, &token, &three),
        list(&sim, &token, &four)
    );
    let statuses = [answers.0.0, answers.1.0, answers.2.0, answers.3.0];
    assert_eq!(statuses, [StatusCode::OK; 4]);
    assert_eq!(sim.max_list_in_flight(), 4);
    let flights = sim.list_flights();
    assert_eq!(
        flights[..4],
        (1..=4)
            .map(|in_flight| Flight::Start { in_flight })
            .collect::<Vec<_>>()[..],
        "all four were in flight before any was answered: {flights:?}"
    );
    assert!(
        flights[4..]
            .iter()
            .all(|f| *f == Flight::End { status: Some(200) })
    );
}

/// An established tenant's history: codes spaced `step` apart, the newest `step` old, so that
/// an overlap window shorter than `step` holds one code at most.
#[tokio::test]
async fn seed_history_spaces_codes_into_the_past() {
    let step = Duration::from_secs(300);
    let before = Utc::now();
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed_history(4, step);
    let records = sim.all();
    assert_eq!(ids(&Value::Array(records.clone())), seeded);
    assert_eq!(records[0]["name"], "Code 001");
    let step = chrono::TimeDelta::from_std(step).unwrap();
    for pair in records.windows(2) {
        assert_eq!(modified(&pair[1]) - modified(&pair[0]), step);
    }
    let newest = modified(&records[3]);
    assert!(newest <= Utc::now() - step, "{newest}");
    assert!(
        newest > before - step - chrono::TimeDelta::minutes(1),
        "{newest}"
    );
    // Codes seeded after it are newer still, as `seed` promises.
    let more = sim.seed(1);
    assert!(modified(&sim.get(&more[0]).unwrap()) > newest);
}

#[tokio::test]
async fn seed_is_deterministic_ordered_and_recent() {
    let before = Utc::now();
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(20);
    let after = Utc::now();

    let other = CxoneSim::start(CxoneConfig::default()).await;
    assert_eq!(other.seed(20), seeded, "same calls, same ids");

    let records = sim.all();
    assert_eq!(ids(&Value::Array(records.clone())), seeded);
    for (i, record) in records.iter().enumerate() {
        let id = record["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        assert_eq!(record["name"], format!("Code {:03}", i + 1));
        assert_eq!(record["category"], CATEGORIES[i % CATEGORIES.len()]);
        assert_eq!(record["is_active"], true);
        assert!(record["description"].is_string());
        let text = record["last_modified_date"].as_str().unwrap();
        assert_eq!((text.len(), text.ends_with('Z')), (24, true), "{text}");
        assert!(modified(record) <= after);
        assert!(
            modified(record) > before - chrono::TimeDelta::minutes(5),
            "recent"
        );
        let created =
            DateTime::parse_from_rfc3339(record["created_date"].as_str().unwrap()).unwrap();
        assert!(created <= modified(record));
    }
    for pair in records.windows(2) {
        assert!(modified(&pair[1]) - modified(&pair[0]) >= chrono::TimeDelta::milliseconds(1));
    }
    // Ids are not in seed order, so sorting by id instead of date would show.
    let mut by_id = seeded.clone();
    by_id.sort();
    assert_ne!(by_id, seeded);

    // A second batch continues the numbering and starts after everything stored.
    let newest_before = newest(&sim);
    let more = sim.seed(5);
    let first_new = sim.get(&more[0]).unwrap();
    assert_eq!(first_new["name"], "Code 021");
    assert!(modified(&first_new) > newest_before);
    assert!(newest(&sim) <= Utc::now());
    assert_eq!(sim.all().len(), 25);
}

#[tokio::test]
async fn edits_bump_timestamps() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(3);
    let id = &seeded[0];

    let mut last = newest(&sim);
    let mut check = |field: &str, expected: Value| {
        let record = sim.get(id).unwrap();
        assert_eq!(record[field], expected);
        assert!(
            modified(&record) > last,
            "{field} edit must bump the timestamp"
        );
        assert_eq!(modified(&record), newest(&sim));
        last = modified(&record);
    };
    sim.rename(id, "Sale Completed");
    check("name", json!("Sale Completed"));
    sim.deactivate(id);
    check("is_active", json!(false));
    sim.deactivate(id);
    check("is_active", json!(false));
    sim.reactivate(id);
    check("is_active", json!(true));
    sim.set_category(id, "Compliance Review");
    check("category", json!("Compliance Review"));
    sim.set_field(id, "description", json!(null));
    check("description", json!(null));

    // An explicit date stands, and later edits still sort after everything seen so far.
    sim.set_field(
        &seeded[1],
        "last_modified_date",
        json!("2020-01-01T00:00:00.000Z"),
    );
    assert_eq!(
        sim.get(&seeded[1]).unwrap()["last_modified_date"],
        "2020-01-01T00:00:00.000Z"
    );
    sim.rename(&seeded[1], "Back");
    assert!(modified(&sim.get(&seeded[1]).unwrap()) > last);
}

#[tokio::test]
async fn upsert_remove_and_get() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let seeded = sim.seed(2);
    let before = newest(&sim);

    let record = json!({"id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "name": "Sale Completed",
        "description": "Customer purchased product during interaction", "category": "Sales", "is_active": true});
    sim.upsert(record.clone());
    let stored = sim.get("a1b2c3d4-e5f6-7890-abcd-ef1234567890").unwrap();
    assert!(modified(&stored) > before, "absent date gets a fresh time");
    assert_eq!(stored["name"], "Sale Completed");
    let created = stored["created_date"].clone();
    assert!(created.is_string());

    // Replacing keeps the given date and the old created_date, and adds no record.
    let mut replacement = record.clone();
    replacement["name"] = json!("Sale Closed");
    replacement["last_modified_date"] = json!("2024-03-15T14:32:00Z");
    sim.upsert(replacement);
    let stored = sim.get("a1b2c3d4-e5f6-7890-abcd-ef1234567890").unwrap();
    assert_eq!(stored["last_modified_date"], "2024-03-15T14:32:00Z");
    assert_eq!(stored["created_date"], created);
    assert_eq!(stored["name"], "Sale Closed");
    assert_eq!(sim.all().len(), 3);
    assert_eq!(
        sim.all()[0]["id"],
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "oldest date first"
    );

    assert!(sim.remove(&seeded[0]));
    assert!(!sim.remove(&seeded[0]));
    assert_eq!(sim.get(&seeded[0]), None);
    assert_eq!(sim.all().len(), 2);
}

#[tokio::test]
async fn admin_routes_drive_the_simulator_uncounted() {
    let sim = CxoneSim::start(CxoneConfig::default()).await;
    let admin = |path: &str| format!("{}/_sim/{path}", sim.url());
    let http = client();

    let seeded: Value = http
        .post(admin("seed"))
        .json(&json!({"count": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = serde_json::from_value(seeded["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);

    let renamed: Value = http
        .post(admin(&format!("dispositions/{}/rename", ids[0])))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["name"], "Renamed");
    let off: Value = http
        .post(admin(&format!("dispositions/{}/deactivate", ids[1])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["is_active"], false);
    let on: Value = http
        .post(admin(&format!("dispositions/{}/reactivate", ids[1])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on["is_active"], true);
    let missing = http
        .post(admin("dispositions/nope/deactivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let upserted = http
        .post(admin("dispositions"))
        .json(&json!({"id": "x-1", "name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(upserted.status(), StatusCode::OK);
    assert_eq!(upserted.json::<Value>().await.unwrap()["id"], "x-1");
    let no_id = http
        .post(admin("dispositions"))
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_id.status(), StatusCode::BAD_REQUEST);

    let all: Value = http
        .get(admin("dispositions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, Value::Array(sim.all()));
    assert_eq!(all.as_array().unwrap().len(), 4);

    let fault = http
        .post(admin("faults"))
        .json(&json!({"endpoint": "list", "status": 503, "retry_after": 2, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), StatusCode::NO_CONTENT);
    for bad in [
        json!({"endpoint": "lists", "status": 503, "times": 1}),
        json!({"endpoint": "list", "status": 503}),
    ] {
        let response = http.post(admin("faults")).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let token = token(&sim).await;
    let (status, retry_after, _) = list(&sim, &token, &[]).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("2"))
    );
    assert_eq!(list(&sim, &token, &[]).await.0, StatusCode::OK);

    let unknown = http
        .get(format!("{}/api/v2/nothing", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let wrong_method = http
        .delete(format!("{}/api/v2/dispositions", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);

    let counts: Value = http
        .get(admin("counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({"list": 2, "other": 2, "token": 1}));
}

#[tokio::test]
async fn the_binary_serves_both_simulators_until_sigterm() {
    use tokio::io::AsyncBufReadExt;

    let dir = std::env::temp_dir().join(format!("disposition-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready.json");
    std::fs::write(&ready, "stale").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_disposition-sim"))
        .arg("--ready-file")
        .arg(&ready)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the URLs are announced")
    .unwrap();
    let announced: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(std::fs::read_to_string(&ready).unwrap(), line);

    let cxone = announced["cxone_url"].as_str().unwrap();
    let salesforce = announced["salesforce_url"].as_str().unwrap();
    let admin = announced["cxone_admin_url"].as_str().unwrap();
    assert_eq!(
        announced["cxone_api"], "admin",
        "the Admin API is the default"
    );
    assert_ne!(admin, cxone);
    let discovery = client()
        .get(format!("{cxone}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), StatusCode::OK);
    for url in [cxone, salesforce, admin] {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }
    let token = client()
        .post(format!("{cxone}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cx-client"),
            ("client_secret", "cx-secret"),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    let sf_token = client()
        .post(format!("{salesforce}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sf-client"),
            ("client_secret", "sf-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sf_token.status(), StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("SIGTERM stops it")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!ready.exists(), "the ready file is removed on shutdown");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `disposition-sim --help` lists the control routes, the Admin modes and the fault endpoints.
#[test]
fn the_binary_help_lists_the_control_routes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_disposition-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--cxone-api",
        "/_sim/seed",
        "/_sim/codes",
        "/_sim/faults",
        "/_sim/admin-modes",
        "admin-list",
        "classifications",
        "page_cap",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[tokio::test]
async fn query_and_credentials_decode_like_forms() {
    let config = CxoneConfig {
        client_secret: "s+cr3t p".into(),
        ..CxoneConfig::default()
    };
    let sim = CxoneSim::start(config).await;
    sim.seed(3);

    // Basic credentials are form-encoded (RFC 6749 §2.3.1): `%2B` is a plus, `+` a space.
    let response = client()
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth("cx-client", Some("s%2Bcr3t+p"))
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A repeated parameter takes its first value.
    let response = client()
        .get(format!(
            "{}/api/v2/dispositions?pageSize=2&pageSize=500",
            sim.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["pageSize"], 2);

    // A malformed escape stays as written.
    let response = client()
        .get(format!(
            "{}/api/v2/dispositions?last_modified_date=%zz+1",
            sim.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error_description"],
        "last_modified_date must be an RFC 3339 time, got \"%zz 1\""
    );
}
