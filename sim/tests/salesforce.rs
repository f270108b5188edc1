//! The Salesforce simulator seen from a client: every assertion is about what goes over HTTP
//! or what the org holds afterwards.

use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim, default_schema};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::time::Duration;

const UPSERT: &str = "composite/sobjects/Disposition__c/CXone_DispositionId__c";

/// A running org plus a client holding a valid token.
struct Org {
    sim: SalesforceSim,
    http: reqwest::Client,
    token: String,
}

/// What came back: status, the `Sforce-Limit-Info` header and the JSON body (null when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    usage: Option<String>,
    body: Value,
}

impl Org {
    async fn start() -> Org {
        Org::with(SalesforceConfig::default()).await
    }

    async fn with(config: SalesforceConfig) -> Org {
        let sim = SalesforceSim::start(config).await;
        let http = reqwest::Client::new();
        let token = token_request(&http, &sim, "sf-client", "sf-secret").await.1["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        Org { sim, http, token }
    }

    fn data_url(&self, path: &str) -> String {
        format!("{}/services/data/v62.0/{path}", self.sim.url())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_with_token(method, path, body, &self.token).await
    }

    async fn call_with_token(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, self.data_url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the simulator answers")).await
    }

    async fn upsert(&self, body: Value) -> Reply {
        self.call(Method::PATCH, UPSERT, Some(body)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let usage = response
        .headers()
        .get("sforce-limit-info")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    Reply {
        status,
        usage,
        body,
    }
}

async fn token_request(
    http: &reqwest::Client,
    sim: &SalesforceSim,
    id: &str,
    secret: &str,
) -> (StatusCode, Value) {
    let response = http
        .post(format!("{}/services/oauth2/token", sim.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A collection record with an external ID and a Name.
fn record(external_id: &str, name: &str) -> Value {
    json!({"attributes": {"type": "Disposition__c"}, "CXone_DispositionId__c": external_id, "Name": name})
}

fn with(mut record: Value, field: &str, value: Value) -> Value {
    record[field] = value;
    record
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn error_codes(result: &Value) -> Vec<String> {
    result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["statusCode"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn token_has_the_client_credentials_shape_and_costs_no_api_call() {
    let sim = SalesforceSim::start(SalesforceConfig::default()).await;
    let http = reqwest::Client::new();
    let (status, body) = token_request(&http, &sim, "sf-client", "sf-secret").await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("00D") && token.contains("!AQ"), "{token}");
    assert_eq!(body["instance_url"], json!(sim.url()));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api");
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    assert_eq!(issued_at.len(), 13);
    assert!(body.get("expires_in").is_none() && body.get("refresh_token").is_none());
    assert!(body["signature"].is_string() && body["id"].is_string());

    // HTTP Basic with only grant_type in the body works too, and gives a different token.
    let basic = http
        .post(format!("{}/services/oauth2/token", sim.url()))
        .basic_auth("sf-client", Some("sf-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    let other: Value = basic.json().await.unwrap();
    assert_ne!(other["access_token"], body["access_token"]);

    assert_eq!(sim.api_usage(), (0, 100_000));
    assert_eq!(sim.log().count("token"), 2);
}

#[tokio::test]
async fn token_errors_use_the_oauth_shape() {
    let sim = SalesforceSim::start(SalesforceConfig::default()).await;
    let http = reqwest::Client::new();
    let (status, body) = token_request(&http, &sim, "sf-client", "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "invalid client credentials"})
    );

    let password_grant = http
        .post(format!("{}/services/oauth2/token", sim.url()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "sf-client"),
            ("client_secret", "sf-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(password_grant.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        password_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    // The grant is refused on the shared login host.
    let login_host = http
        .post(format!("{}/services/oauth2/token", sim.url()))
        .header("host", "login.salesforce.com")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sf-client"),
            ("client_secret", "sf-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        login_host.json::<Value>().await.unwrap(),
        json!({"error": "invalid_grant", "error_description": "request not supported on this domain"})
    );
}

#[tokio::test]
async fn bad_or_expired_sessions_get_401_with_header_and_body() {
    let org = Org::start().await;
    let expected =
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);

    let response = org
        .http
        .get(org.data_url("limits"))
        .bearer_auth("00Dnot!AQreal")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Token");
    assert_eq!(
        response.headers()["sforce-limit-info"],
        "api-usage=0/100000"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    let missing = reply(org.http.get(org.data_url("limits")).send().await.unwrap()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);

    assert_eq!(org.get("limits").await.status, StatusCode::OK);
    org.sim.expire_tokens();
    let expired = org.upsert(json!({"records": [record("1", "A")]})).await;
    assert_eq!(
        (expired.status, expired.body),
        (StatusCode::UNAUTHORIZED, expected)
    );
    assert!(org.sim.records().is_empty());

    let fresh = token_request(&org.http, &org.sim, "sf-client", "sf-secret")
        .await
        .1;
    let retried = org
        .call_with_token(
            Method::GET,
            "limits",
            None,
            fresh["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK);
    // Only the two authenticated calls counted.
    assert_eq!(org.sim.api_usage().0, 2);
}

#[tokio::test]
async fn tokens_expire_after_the_configured_ttl() {
    let config = SalesforceConfig {
        token_ttl: Some(Duration::from_millis(150)),
        ..SalesforceConfig::default()
    };
    let org = Org::with(config).await;
    assert_eq!(org.get("limits").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(org.get("limits").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_data_call_counts_and_reports_usage() {
    let org = Org::start().await;
    assert_eq!(
        org.get("sobjects/Disposition__c/describe")
            .await
            .usage
            .as_deref(),
        Some("api-usage=1/100000")
    );
    // Errors count and carry the header too.
    let bad = org.get("sobjects/Nope__c/describe").await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert_eq!(bad.usage.as_deref(), Some("api-usage=2/100000"));
    let limits = org.get("limits").await;
    assert_eq!(limits.usage.as_deref(), Some("api-usage=3/100000"));
    assert_eq!(
        limits.body["DailyApiRequests"],
        json!({"Max": 100000, "Remaining": 99997})
    );

    // The versions list needs no session, has no header and is free.
    let versions = org
        .http
        .get(format!("{}/services/data/", org.sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.status(), StatusCode::OK);
    assert!(versions.headers().get("sforce-limit-info").is_none());
    let list: Value = versions.json().await.unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "62.0")
    );
    assert_eq!(org.sim.api_usage(), (3, 100_000));
}

#[tokio::test]
async fn at_the_limit_every_call_gets_403_and_changes_nothing() {
    let org = Org::start().await;
    org.sim.set_api_usage(499, 500);
    assert_eq!(
        org.upsert(json!({"records": [record("1", "A")]}))
            .await
            .status,
        StatusCode::OK
    );
    let refused = org.upsert(json!({"records": [record("2", "B")]})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(refused.usage.as_deref(), Some("api-usage=500/500"));
    assert!(org.sim.record("2").is_none());
    assert_eq!(org.sim.api_usage(), (500, 500));
}

#[tokio::test]
async fn upsert_creates_then_updates_with_patch_semantics() {
    let org = Org::start().await;
    let first = with(
        with(record("1001", "Sale"), "Category__c", json!("Sales")),
        "IsActive__c",
        json!(true),
    );
    let created = org
        .upsert(json!({"allOrNone": false, "records": [first, record("1002", "No answer")]}))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let results = created.body.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for result in results {
        assert_eq!(
            (&result["success"], &result["created"], &result["errors"]),
            (&json!(true), &json!(true), &json!([]))
        );
        let id = result["id"].as_str().unwrap();
        assert!(id.starts_with("a0B") && id.len() == 18, "{id}");
    }
    let before = org.sim.record("1001").unwrap();
    assert_eq!(before.id, results[0]["id"].as_str().unwrap());
    assert_eq!(before.fields["IsActive__c"], json!(true));
    // An unset field takes its default: IsActive__c true (as the metadata defines it), other
    // checkboxes false, text null.
    assert_eq!(
        org.sim.record("1002").unwrap().fields["IsActive__c"],
        json!(true)
    );
    assert_eq!(
        org.sim.record("1002").unwrap().fields["NeedsReview__c"],
        json!(false)
    );
    assert_eq!(
        org.sim.record("1002").unwrap().fields["Category__c"],
        Value::Null
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    let update = with(
        with(record("1001", "Sale!"), "Category__c", Value::Null),
        "LastModifiedCXone__c",
        json!("2024-03-15T14:32:00Z"),
    );
    let updated = org.upsert(json!({"records": [update]})).await;
    assert_eq!(updated.body[0]["created"], json!(false));
    assert_eq!(updated.body[0]["id"], results[0]["id"]);
    let after = org.sim.record("1001").unwrap();
    assert_eq!(after.fields["Name"], "Sale!");
    assert_eq!(
        after.fields["Category__c"],
        Value::Null,
        "null clears a field"
    );
    assert_eq!(
        after.fields["IsActive__c"],
        json!(true),
        "absent fields keep their value"
    );
    assert_eq!(
        after.fields["LastModifiedCXone__c"],
        "2024-03-15T14:32:00.000+0000"
    );
    assert_eq!(after.created_date, before.created_date);
    assert!(after.last_modified_date > before.last_modified_date);
    assert_eq!(org.sim.records().len(), 2);
    assert_eq!(org.sim.log().count("upsert"), 2);
}

#[tokio::test]
async fn external_id_matching_is_case_sensitive() {
    let org = Org::start().await;
    org.upsert(json!({"records": [record("abc", "lower")]}))
        .await;
    let upper = org
        .upsert(json!({"records": [record("ABC", "upper")]}))
        .await;
    assert_eq!(upper.body[0]["created"], json!(true));
    let names: Vec<Value> = org
        .sim
        .records()
        .iter()
        .map(|r| r.fields["Name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("upper"), json!("lower")],
        "sorted by external id"
    );
}

#[tokio::test]
async fn partial_failures_keep_body_order_and_persist_only_good_records() {
    let org = Org::start().await;
    let batch = json!({"records": [
        record("1", "ok"),
        record("2", &"x".repeat(81)),
        with(record("3", "bad category"), "Category__c", json!("Marketing")),
        json!({"attributes": {"type": "Disposition__c"}, "Name": "no external id"}),
        with(record("5", &"é".repeat(80)), "Category__c", json!("Billing")),
    ]});
    let answer = org.upsert(batch).await;
    assert_eq!(answer.status, StatusCode::OK, "HTTP 200 even with failures");
    let results = answer.body.as_array().unwrap();
    let success: Vec<bool> = results
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert_eq!(success, [true, false, false, false, true]);
    assert_eq!(error_codes(&results[1]), ["STRING_TOO_LONG"]);
    assert_eq!(
        results[1]["errors"][0]["message"],
        json!(format!(
            "Name: data value too large: {} (max length=80)",
            "x".repeat(81)
        ))
    );
    assert_eq!(results[1]["errors"][0]["fields"], json!(["Name"]));
    assert_eq!(
        error_codes(&results[2]),
        ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    );
    assert_eq!(
        results[2]["errors"][0]["message"],
        "Category: bad value for restricted picklist field: Marketing"
    );
    assert_eq!(error_codes(&results[3]), ["REQUIRED_FIELD_MISSING"]);
    for failed in [&results[1], &results[2], &results[3]] {
        assert_eq!(failed["id"], Value::Null);
    }
    let stored: Vec<String> = org
        .sim
        .records()
        .iter()
        .map(|r| {
            r.fields["CXone_DispositionId__c"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(stored, ["1", "5"]);
}

#[tokio::test]
async fn added_picklist_values_are_accepted_and_described() {
    let org = Org::start().await;
    let marketing = with(record("1", "A"), "Category__c", json!("Marketing"));
    assert_eq!(
        org.upsert(json!({"records": [marketing.clone()]}))
            .await
            .body[0]["success"],
        json!(false)
    );
    org.sim.add_picklist_value("Marketing");
    assert!(org.sim.picklist_values().contains(&"Marketing".to_string()));
    assert_eq!(
        org.upsert(json!({"records": [marketing]})).await.body[0]["success"],
        json!(true)
    );
    let describe = org.get("sobjects/Disposition__c/describe").await.body;
    let category = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Category__c")
        .unwrap()
        .clone();
    assert!(
        category["picklistValues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["value"] == "Marketing")
    );
}

#[tokio::test]
async fn the_same_external_id_twice_in_one_request_fails_both() {
    let org = Org::start().await;
    let answer = org
        .upsert(json!({"records": [record("7", "a"), record("8", "b"), record("7", "c")]}))
        .await;
    let results = answer.body.as_array().unwrap();
    assert_eq!(error_codes(&results[0]), ["DUPLICATE_VALUE"]);
    assert_eq!(
        results[0]["errors"][0]["message"],
        "Duplicate external id specified: 7"
    );
    assert_eq!(results[1]["success"], json!(true));
    assert_eq!(error_codes(&results[2]), ["DUPLICATE_VALUE"]);
    assert!(org.sim.record("7").is_none());
}

#[tokio::test]
async fn more_than_200_records_are_refused_whole() {
    let org = Org::start().await;
    let batch: Vec<Value> = (0..201).map(|i| record(&i.to_string(), "n")).collect();
    let refused = org.upsert(json!({"records": batch})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    assert!(org.sim.records().is_empty());
    let exactly_200: Vec<Value> = (0..200).map(|i| record(&i.to_string(), "n")).collect();
    assert_eq!(
        org.upsert(json!({"records": exactly_200}))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        200
    );
    assert_eq!(org.sim.records().len(), 200);
}

#[tokio::test]
async fn all_or_none_rolls_everything_back() {
    let org = Org::start().await;
    org.sim.insert_record(fields(
        json!({"CXone_DispositionId__c": "1", "Name": "original"}),
    ));
    let answer = org
        .upsert(json!({"allOrNone": true, "records": [record("1", "changed"), record("2", &"x".repeat(81)), record("3", "new")]}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let results = answer.body.as_array().unwrap();
    assert_eq!(
        error_codes(&results[0]),
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    );
    assert_eq!(error_codes(&results[1]), ["STRING_TOO_LONG"]);
    assert_eq!(
        error_codes(&results[2]),
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    );
    assert_eq!(org.sim.records().len(), 1);
    assert_eq!(org.sim.record("1").unwrap().fields["Name"], "original");
}

#[tokio::test]
async fn malformed_requests_fail_whole_and_change_nothing() {
    let org = Org::start().await;
    let raw = org
        .http
        .patch(org.data_url(UPSERT))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .unwrap();
    let raw = reply(raw).await;
    assert_eq!(
        (raw.status, raw.body[0]["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("JSON_PARSER_ERROR"))
    );

    // The implementation guide's body: a Composite body sent to sObject Collections.
    let guide = json!({"allOrNone": false, "compositeRequest": [{"method": "PATCH", "url": "/x", "referenceId": "r", "body": {}}]});
    let cases: Vec<(Value, &str)> = vec![
        (guide, "JSON_PARSER_ERROR"),
        (json!({"allOrNone": false}), "REQUIRED_FIELD_MISSING"),
        (json!({"records": []}), "REQUIRED_FIELD_MISSING"),
        (
            json!({"records": [{"CXone_DispositionId__c": "1"}]}),
            "INVALID_TYPE",
        ),
        (
            json!({"records": [{"attributes": {"type": "Account"}, "CXone_DispositionId__c": "1"}]}),
            "INVALID_TYPE",
        ),
        (
            json!({"records": [with(record("1", "a"), "Id", json!("a0B5g0000000001EAA"))]}),
            "INVALID_FIELD",
        ),
        (
            json!({"records": [with(record("1", "a"), "Is_Active__c", json!(true))]}),
            "INVALID_FIELD",
        ),
        (
            json!({"records": [with(record("1", "a"), "IsActive__c", json!("yes"))]}),
            "JSON_PARSER_ERROR",
        ),
        (
            json!({"records": [with(record("1", "a"), "ArchivedDate__c", json!("15/03/2024"))]}),
            "JSON_PARSER_ERROR",
        ),
        (
            json!({"records": [with(record("1", "a"), "Name", json!(42))]}),
            "JSON_PARSER_ERROR",
        ),
    ];
    for (body, code) in cases {
        let answer = org.upsert(body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body[0]["errorCode"], code, "{body}: {}", answer.body);
        assert!(answer.body[0]["message"].is_string());
    }
    let unknown = org
        .upsert(json!({"records": [with(record("1", "a"), "Is_Active__c", json!(true))]}))
        .await;
    assert_eq!(
        unknown.body[0]["message"],
        "No such column 'Is_Active__c' on sobject of type Disposition__c"
    );

    let body = Some(json!({"records": [record("1", "a")]}));
    let old_version = org
        .http
        .patch(format!("{}/services/data/v45.0/{UPSERT}", org.sim.url()))
        .bearer_auth(&org.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(old_version.status(), StatusCode::NOT_FOUND);
    let wrong_field = org
        .call(
            Method::PATCH,
            "composite/sobjects/Disposition__c/Name",
            body.clone(),
        )
        .await;
    assert_eq!(wrong_field.status, StatusCode::NOT_FOUND);
    assert_eq!(
        wrong_field.body[0]["message"],
        "Provided external ID field does not exist or is not accessible: Name"
    );
    let wrong_object = org
        .call(
            Method::PATCH,
            "composite/sobjects/Account/CXone_DispositionId__c",
            body,
        )
        .await;
    assert_eq!(
        wrong_object.body,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );

    assert!(org.sim.records().is_empty());
    assert_eq!(org.sim.api_usage().0, 15, "rejected requests still count");
}

#[tokio::test]
async fn query_pages_with_relative_next_records_urls() {
    let org = Org::with(SalesforceConfig {
        query_page_size: 3,
        ..SalesforceConfig::default()
    })
    .await;
    for i in 0..7 {
        org.sim.insert_record(fields(json!({
            "CXone_DispositionId__c": format!("d{i}"), "Name": format!("Code {i}"), "IsActive__c": i % 2 == 0,
            "LastModifiedCXone__c": format!("2024-01-0{}T10:00:00Z", i + 1),
        })));
    }
    let soql = "SELECT Id, CXone_DispositionId__c, IsActive__c, LastModifiedCXone__c FROM Disposition__c ORDER BY CXone_DispositionId__c";
    let url = format!("{}?q={}", org.data_url("query"), soql.replace(' ', "+"));
    let mut page = reply(
        org.http
            .get(url)
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["totalSize"], 7);
        for r in page.body["records"].as_array().unwrap() {
            assert_eq!(r["attributes"]["type"], "Disposition__c");
            assert!(
                r["attributes"]["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("/services/data/v62.0/sobjects/Disposition__c/a0B")
            );
            seen.push(r["CXone_DispositionId__c"].as_str().unwrap().to_string());
        }
        if page.body["done"] == json!(true) {
            assert!(page.body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page.body["nextRecordsUrl"].as_str().unwrap();
        assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
        page = reply(
            org.http
                .get(format!("{}{next}", org.sim.url()))
                .bearer_auth(&org.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["d0", "d1", "d2", "d3", "d4", "d5", "d6"]);
    assert_eq!(org.sim.api_usage().0, 3, "each page is one call");
    assert_eq!(org.sim.log().count("query"), 3);

    let filtered = org
        .http
        .get(org.data_url("query"))
        .bearer_auth(&org.token)
        .query(&[("q", "select Name, LastModifiedCXone__c from Disposition__c where IsActive__c = true and LastModifiedCXone__c > 2024-01-03T10:00:00Z order by Name desc")])
        .send()
        .await
        .unwrap();
    let filtered = reply(filtered).await.body;
    assert_eq!(filtered["done"], json!(true));
    assert_eq!(
        filtered["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Name"].clone())
            .collect::<Vec<_>>(),
        [json!("Code 6"), json!("Code 4")]
    );
    assert_eq!(
        filtered["records"][0]["LastModifiedCXone__c"],
        "2024-01-07T10:00:00.000+0000"
    );
}

#[tokio::test]
async fn bad_soql_is_a_400_with_the_platform_code() {
    let org = Org::start().await;
    for (soql, code) in [
        ("SELECT Name FROM Disposition__c WHERE", "MALFORMED_QUERY"),
        ("SELECT Foo__c FROM Disposition__c", "INVALID_FIELD"),
        (
            "SELECT Name FROM Disposition__c WHERE Name = 5",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
    ] {
        let answer = reply(
            org.http
                .get(org.data_url("query"))
                .bearer_auth(&org.token)
                .query(&[("q", soql)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (answer.status, answer.body[0]["errorCode"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{soql}"
        );
    }
    let stale = org.get("query/01gNOPE-2000").await;
    assert_eq!(stale.body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn describe_reports_the_schema_the_upsert_enforces() {
    let org = Org::start().await;
    let describe = org.get("sobjects/Disposition__c/describe").await.body;
    assert_eq!(
        (&describe["name"], &describe["custom"]),
        (&json!("Disposition__c"), &json!(true))
    );
    let described = describe["fields"].as_array().unwrap();
    let field = |name: &str| {
        described
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let names: Vec<&str> = described
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = default_schema().into_iter().map(|f| f.name).collect();
    assert_eq!(names, expected);

    let name = field("Name");
    assert_eq!(
        (&name["type"], &name["length"], &name["label"]),
        (&json!("string"), &json!(80), &json!("Disposition Name"))
    );
    let ext = field("CXone_DispositionId__c");
    for flag in ["externalId", "unique", "idLookup"] {
        assert_eq!(ext[flag], json!(true), "{flag}");
    }
    assert_eq!(
        (&ext["caseSensitive"], &ext["length"]),
        (&json!(false), &json!(50))
    );
    let category = field("Category__c");
    assert_eq!(
        (&category["type"], &category["restrictedPicklist"]),
        (&json!("picklist"), &json!(true))
    );
    let first = &category["picklistValues"][0];
    assert_eq!(
        first,
        &json!({"active": true, "defaultValue": false, "label": "Sales", "validFor": null, "value": "Sales"})
    );
    assert_eq!(category["picklistValues"].as_array().unwrap().len(), 8);
    assert_eq!(field("Description__c")["length"], 2000);
    assert_eq!(field("IsActive__c")["type"], "boolean");
    assert_eq!(field("LastModifiedCXone__c")["type"], "datetime");
    assert_eq!(
        (
            &field("CreatedDate")["createable"],
            &field("CreatedDate")["updateable"]
        ),
        (&json!(false), &json!(false))
    );

    // The description length the describe reports is the one the upsert enforces.
    let too_long = with(record("1", "a"), "Description__c", json!("d".repeat(2001)));
    assert_eq!(
        error_codes(&org.upsert(json!({"records": [too_long]})).await.body[0]),
        ["STRING_TOO_LONG"]
    );
    let system = with(
        record("1", "a"),
        "CreatedDate",
        json!("2024-01-01T00:00:00Z"),
    );
    assert_eq!(
        error_codes(&org.upsert(json!({"records": [system]})).await.body[0]),
        ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    );
}

#[tokio::test]
async fn deletes_answer_per_record_and_are_counted() {
    let org = Org::start().await;
    let a = org
        .sim
        .insert_record(fields(json!({"CXone_DispositionId__c": "a"})));
    let b = org
        .sim
        .insert_record(fields(json!({"CXone_DispositionId__c": "b"})));
    org.sim
        .insert_record(fields(json!({"CXone_DispositionId__c": "c"})));
    assert_eq!(
        org.sim.record("a").unwrap().fields["Name"],
        json!(a),
        "a record inserted without Name is named by its Id"
    );

    let gone = "a0B5g0000000999EAA";
    let answer = org
        .call(
            Method::DELETE,
            &format!("composite/sobjects?ids={a},{gone}&allOrNone=false"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body[0],
        json!({"id": a, "success": true, "errors": []})
    );
    assert_eq!(error_codes(&answer.body[1]), ["ENTITY_IS_DELETED"]);

    let single = org
        .call(
            Method::DELETE,
            &format!("sobjects/Disposition__c/{}", &b[..15]),
            None,
        )
        .await;
    assert_eq!(
        (single.status, single.body),
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let missing = org
        .call(
            Method::DELETE,
            &format!("sobjects/Disposition__c/{b}"),
            None,
        )
        .await;
    assert_eq!(
        (missing.status, &missing.body[0]["errorCode"]),
        (StatusCode::NOT_FOUND, &json!("NOT_FOUND"))
    );

    assert!(org.sim.remove_record("c"));
    assert!(!org.sim.remove_record("c"));
    assert!(org.sim.records().is_empty());
    assert_eq!(org.sim.log().count("delete"), 3);
}

#[tokio::test]
async fn injected_faults_answer_first_and_change_nothing() {
    let org = Org::start().await;
    let unavailable =
        json!([{"errorCode": "SERVER_UNAVAILABLE", "message": "down for maintenance"}]);
    org.sim.fail_next("upsert", 503, unavailable.clone(), 1);
    let failed = org.upsert(json!({"records": [record("1", "a")]})).await;
    assert_eq!(
        (failed.status, &failed.body),
        (StatusCode::SERVICE_UNAVAILABLE, &unavailable)
    );
    assert_eq!(failed.usage.as_deref(), Some("api-usage=0/100000"));
    assert!(org.sim.records().is_empty());
    assert_eq!(
        org.upsert(json!({"records": [record("1", "a")]}))
            .await
            .status,
        StatusCode::OK
    );

    org.sim
        .fail_next("token", 500, json!({"error": "server_error"}), 1);
    assert_eq!(
        token_request(&org.http, &org.sim, "sf-client", "sf-secret")
            .await
            .0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        token_request(&org.http, &org.sim, "sf-client", "sf-secret")
            .await
            .0,
        StatusCode::OK
    );

    org.sim.inject_record_error(
        "1",
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        Some(1),
    );
    let locked = org
        .upsert(json!({"records": [record("1", "b"), record("2", "c")]}))
        .await;
    assert_eq!(error_codes(&locked.body[0]), ["UNABLE_TO_LOCK_ROW"]);
    assert_eq!(locked.body[1]["success"], json!(true));
    assert_eq!(org.sim.record("1").unwrap().fields["Name"], "a");
    assert_eq!(
        org.upsert(json!({"records": [record("1", "b")]}))
            .await
            .body[0]["success"],
        json!(true)
    );

    org.sim
        .inject_record_error("2", "UNABLE_TO_LOCK_ROW", "locked", None);
    for _ in 0..2 {
        assert_eq!(
            org.upsert(json!({"records": [record("2", "d")]}))
                .await
                .body[0]["success"],
            json!(false)
        );
    }
    org.sim.clear_record_errors();
    assert_eq!(
        org.upsert(json!({"records": [record("2", "d")]}))
            .await
            .body[0]["success"],
        json!(true)
    );
}

#[tokio::test]
async fn slow_answers_time_out_after_the_write_and_resets_drop_the_connection() {
    let org = Org::start().await;
    org.sim.set_latency("upsert", Duration::from_millis(400));
    let timed_out = org
        .http
        .patch(org.data_url(UPSERT))
        .bearer_auth(&org.token)
        .timeout(Duration::from_millis(100))
        .json(&json!({"records": [record("1", "a")]}))
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());
    assert!(
        org.sim.record("1").is_some(),
        "the org wrote the record although the client gave up"
    );
    org.sim.set_latency("upsert", Duration::ZERO);

    org.sim.reset_next("upsert", 1);
    let reset = org
        .http
        .patch(org.data_url(UPSERT))
        .bearer_auth(&org.token)
        .json(&json!({"records": [record("2", "b")]}))
        .send()
        .await;
    assert!(reset.is_err(), "{reset:?}");
    assert!(org.sim.record("2").is_none());
    assert_eq!(
        org.upsert(json!({"records": [record("2", "b")]}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn single_record_upsert_and_composite_work_and_are_counted_apart() {
    let org = Org::start().await;
    let path = "sobjects/Disposition__c/CXone_DispositionId__c/9001";
    let created = org
        .call(Method::PATCH, path, Some(json!({"Name": "Single"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["created"], json!(true));
    let updated = org
        .call(Method::PATCH, path, Some(json!({"Name": "Single 2"})))
        .await;
    assert_eq!(
        (updated.status, &updated.body["created"]),
        (StatusCode::OK, &json!(false))
    );
    assert_eq!(org.sim.record("9001").unwrap().fields["Name"], "Single 2");

    let composite = json!({"allOrNone": false, "compositeRequest": [
        {"method": "PATCH", "referenceId": "good", "url": "/services/data/v62.0/sobjects/Disposition__c/CXone_DispositionId__c/9002", "body": {"Name": "Composite"}},
        // The implementation guide's `Field=value` form is not an upsert URL.
        {"method": "PATCH", "referenceId": "guide", "url": "/services/data/v62.0/sobjects/Disposition__c/CXone_DispositionId__c=9003", "body": {"Name": "Guide"}},
    ]});
    let answer = org.call(Method::POST, "composite", Some(composite)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let results = answer.body["compositeResponse"].as_array().unwrap();
    assert_eq!(
        (&results[0]["httpStatusCode"], &results[0]["referenceId"]),
        (&json!(201), &json!("good"))
    );
    assert!(
        results[0]["httpHeaders"]["Location"]
            .as_str()
            .unwrap()
            .contains("/sobjects/Disposition__c/a0B")
    );
    assert_eq!(
        (
            &results[1]["httpStatusCode"],
            &results[1]["body"][0]["errorCode"]
        ),
        (&json!(404), &json!("NOT_FOUND"))
    );
    assert!(org.sim.record("9002").is_some() && org.sim.record("9003").is_none());

    let halted = json!({"allOrNone": true, "compositeRequest": [
        {"method": "PATCH", "referenceId": "a", "url": "/services/data/v62.0/sobjects/Disposition__c/CXone_DispositionId__c/9004", "body": {"Name": "A"}},
        {"method": "PATCH", "referenceId": "b", "url": "/services/data/v62.0/sobjects/Disposition__c/CXone_DispositionId__c/9005", "body": {"Category__c": "Nope"}},
    ]});
    let results =
        org.call(Method::POST, "composite", Some(halted)).await.body["compositeResponse"].clone();
    assert_eq!(results[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        results[1]["body"][0]["errorCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert!(org.sim.record("9004").is_none());

    let counts = org.sim.log().counts();
    assert_eq!(
        (
            counts.get("upsert_single"),
            counts.get("composite"),
            counts.get("upsert")
        ),
        (Some(&2), Some(&2), None)
    );
}

#[tokio::test]
async fn unknown_routes_are_404_not_found() {
    let org = Org::start().await;
    let answer = org
        .get("sobjects/Disposition__c/CXone_DispositionId__c/1/extra")
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
    let outside = org
        .http
        .get(format!("{}/services/apexrest/x", org.sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    assert_eq!(org.sim.log().count("other"), 2);
}

#[tokio::test]
async fn admin_routes_show_and_control_the_org_without_counting() {
    let org = Org::start().await;
    org.sim.insert_record(fields(json!({
        "CXone_DispositionId__c": "42", "Name": "Sale", "Category__c": "Sales", "IsActive__c": true,
        "LastModifiedCXone__c": "2024-03-15T14:32:00Z",
    })));
    let admin = |path: &str| format!("{}/_sim/{path}", org.sim.url());
    let table = org
        .http
        .get(admin("table"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("External Id  Name") && lines[0].contains("LastModifiedCXone"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("42           Sale") && lines[1].contains("yes"),
        "{table}"
    );

    let records: Value = org
        .http
        .get(admin("records"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records[0]["CXone_DispositionId__c"], "42");
    assert!(records[0]["Id"].as_str().unwrap().starts_with("a0B"));

    let injected = org
        .http
        .post(admin("record-errors"))
        .json(&json!({"external_id": "42", "code": "UNABLE_TO_LOCK_ROW", "message": "locked", "times": 1}))
        .send()
        .await
        .unwrap();
    assert!(injected.status().is_success());
    let failing = org
        .http
        .post(admin("fail-next"))
        .json(&json!({"endpoint": "describe", "status": 500, "body": [{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}], "times": 1}))
        .send()
        .await
        .unwrap();
    assert!(failing.status().is_success());
    assert_eq!(
        org.get("sobjects/Disposition__c/describe").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        error_codes(
            &org.upsert(json!({"records": [record("42", "x")]}))
                .await
                .body[0]
        ),
        ["UNABLE_TO_LOCK_ROW"]
    );

    let counts: Value = org
        .http
        .get(admin("counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({"describe": 1, "token": 1, "upsert": 1}));
    assert_eq!(
        org.sim.api_usage().0,
        1,
        "the faulted describe and the admin routes are free"
    );
}

#[tokio::test]
async fn inserts_and_id_updates_keep_the_external_id_unique() {
    let org = Org::start().await;
    let taken = org.sim.insert_record(fields(
        json!({"CXone_DispositionId__c": "taken", "Name": "Taken"}),
    ));
    let answer = org
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"records": [record("new", "New"), record("taken", "Again")]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body[0]["success"], json!(true));
    assert!(
        answer.body[0].get("created").is_none(),
        "create results have no created flag"
    );
    assert_eq!(error_codes(&answer.body[1]), ["DUPLICATE_VALUE"]);
    assert_eq!(
        answer.body[1]["errors"][0]["message"],
        json!(format!(
            "duplicate value found: CXone_DispositionId__c duplicates value on record with id: {taken}"
        ))
    );
    assert_eq!(org.sim.log().count("create"), 1);

    let new_id = answer.body[0]["id"].as_str().unwrap().to_string();
    let path = format!("sobjects/Disposition__c/{new_id}");
    let clash = org
        .call(
            Method::PATCH,
            &path,
            Some(json!({"CXone_DispositionId__c": "taken"})),
        )
        .await;
    assert_eq!(
        (clash.status, &clash.body[0]["errorCode"]),
        (StatusCode::BAD_REQUEST, &json!("DUPLICATE_VALUE"))
    );
    let renamed = org
        .call(Method::PATCH, &path, Some(json!({"Name": "Renamed"})))
        .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT);
    assert_eq!(org.sim.record("new").unwrap().fields["Name"], "Renamed");
}

#[tokio::test]
async fn paths_are_read_segment_by_segment_and_every_method_is_routed() {
    let org = Org::start().await;
    let url = |path: &str| format!("{}{path}", org.sim.url());
    let send = |method: Method, path: &str| {
        org.http
            .request(method, url(path))
            .bearer_auth(&org.token)
            .send()
    };

    // Empty segments are skipped and escapes decoded before the path is matched; the log keeps
    // the path as sent.
    for path in [
        "/services/data/v62.0/limits/",
        "/services/data//v62.0//limits",
        "/services/data/v62%2E0/%6Cimits",
    ] {
        let answer = reply(send(Method::GET, path).await.unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(org.sim.log().requests().last().unwrap().uri, path);
    }
    let described = send(
        Method::GET,
        "/services/data/v62.0/sobjects/Disposition__c/describe/",
    )
    .await
    .unwrap();
    assert_eq!(described.status(), StatusCode::OK);
    assert_eq!(org.sim.log().count("limits"), 3);

    // A data path with no resource, a method the resource lacks (HEAD included) and an unknown
    // resource are data calls: counted, with the usage header, then 404 logged as `other`.
    for (method, path) in [
        (Method::GET, "/services/data/v62.0"),
        (Method::GET, "/services/data/v62.0/"),
        (Method::GET, "/services/data/v62.0/composite"),
        (Method::HEAD, "/services/data/v62.0/limits"),
        (
            Method::GET,
            "/services/data/v62.0/sobjects/Disposition__c/a0B5g0000000001EAA",
        ),
        (Method::PUT, "/services/data/v62.0/query/x/y"),
    ] {
        let response = send(method.clone(), path).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(
            response.headers().contains_key("sforce-limit-info"),
            "{path}"
        );
    }
    // `describe` in a record's place is read as an Id (here, an unknown external ID field).
    let patched = org
        .call(
            Method::PATCH,
            "sobjects/Disposition__c/describe",
            Some(json!({"Name": "x"})),
        )
        .await;
    assert_eq!(
        (patched.status, &patched.body[0]["message"]),
        (
            StatusCode::NOT_FOUND,
            &json!("Provided external ID field does not exist or is not accessible: describe")
        )
    );

    // Outside the data API: 404 without a session check or usage; the token and versions list
    // answer only their own method.
    for (method, path) in [
        (Method::GET, "/services/data//"),
        (Method::GET, "/services/oauth2/token"),
        (Method::HEAD, "/services/data/"),
        (Method::POST, "/services/data"),
        (Method::GET, "/_sim"),
    ] {
        let response = send(method.clone(), path).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(
            !response.headers().contains_key("sforce-limit-info"),
            "{path}"
        );
    }
    let counts = org.sim.log().counts();
    assert_eq!(counts.get("other"), Some(&11));
    assert_eq!(counts.get("upsert_single"), Some(&1));

    // Admin routes answer only their own methods, and nothing there is logged.
    for (method, path) in [
        (Method::POST, "/_sim/records"),
        (Method::HEAD, "/_sim/table"),
        (Method::GET, "/_sim/"),
        (Method::GET, "/_sim/records/"),
        (Method::GET, "/_sim/fail-next"),
    ] {
        let response = send(method.clone(), path).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        if method != Method::HEAD {
            assert_eq!(response.text().await.unwrap(), "unknown admin route");
        }
    }
    assert_eq!(org.sim.log().counts(), counts);
}

#[tokio::test]
async fn repeated_query_parameters_take_the_last_value() {
    let org = Org::start().await;
    org.sim.insert_record(fields(
        json!({"CXone_DispositionId__c": "1", "Name": "One"}),
    ));
    let answer = reply(
        org.http
            .get(format!(
                "{}?q=nonsense&q=SELECT+Name+FROM+Disposition__c+WHERE+Name+%3D+%27One%27",
                org.data_url("query")
            ))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["totalSize"], 1);
}
