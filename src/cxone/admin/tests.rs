//! The admin client against a small local fake of the two CXone origins: the issuer (discovery
//! documents and the token endpoint) and the tenant's API host.

use super::*;
use crate::config::ApiVersion;
use crate::secrets::ClientCredentials;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

const TENANT: &str = "11eb660f-1c5d-4a3e-9b1b-0242ac110002";

/// What the fake serves, and what it was asked.
#[derive(Default)]
struct Fake {
    api_origin: String,
    /// Overrides the `api_endpoint` cxone-configuration names.
    api_endpoint: Option<String>,
    cxone_configuration_missing: bool,
    records: Vec<Value>,
    /// The most rows a page holds, whatever `top` asks.
    cap: Option<usize>,
    /// `(skip, rows)`: the page at this `skip` holds only this many rows, once (a hiccup).
    short_at: Option<(usize, usize)>,
    /// Pages without `totalRecords`.
    no_total: bool,
    /// One table per read; the last one repeats.
    tables: Vec<Vec<(u64, &'static str)>>,
    by_id: HashMap<String, Value>,
    /// List requests answered 401 before one is served.
    refuse_lists: usize,
    log: Vec<String>,
    token_forms: Vec<(String, String)>,
    tokens: usize,
    table_reads: usize,
}

type Shared = Arc<StdMutex<Fake>>;

fn jwt(claims: Value) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        engine.encode(r#"{"alg":"RS256"}"#),
        engine.encode(claims.to_string())
    )
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    origin
}

/// Starts both origins; returns the issuer's URL.
async fn start(fake: &Shared) -> String {
    let issuer = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(_): State<Shared>, headers: HeaderMap| async move {
                let host = headers["host"].to_str().unwrap().to_owned();
                axum::Json(json!({"issuer": format!("http://{host}"),
                    "token_endpoint": format!("http://{host}/auth/token")}))
            }),
        )
        .route("/auth/token", post(token))
        .route("/.well-known/cxone-configuration", get(cxone_configuration))
        .with_state(fake.clone());
    let api = Router::new()
        .route("/inContactAPI/services/{v}/dispositions", get(list))
        .route(
            "/inContactAPI/services/{v}/dispositions/classifications",
            get(classifications),
        )
        .route("/inContactAPI/services/{v}/dispositions/{id}", get(by_id))
        .with_state(fake.clone());
    let api_origin = serve(api).await;
    fake.lock().unwrap().api_origin = api_origin;
    serve(issuer).await
}

async fn token(State(fake): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut fake = fake.lock().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("cx-id:cx-secret");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Basic {basic}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    fake.token_forms
        .push((form["username"].clone(), body.clone()));
    if form.get("grant_type").map(String::as_str) != Some("password")
        || form["password"] != "ak-secret=="
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    fake.tokens += 1;
    let token = jwt(json!({"tenantId": TENANT, "n": fake.tokens, "exp": 1}));
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn cxone_configuration(
    State(fake): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    fake.log
        .push(format!("cxone-configuration {}", q["tenantId"]));
    if fake.cxone_configuration_missing || q["tenantId"] != TENANT {
        return StatusCode::NOT_FOUND.into_response();
    }
    let endpoint = fake.api_endpoint.clone().unwrap_or(fake.api_origin.clone());
    axum::Json(json!({"area": "na1", "api_endpoint": endpoint, "tenantId": TENANT})).into_response()
}

/// The bearer token's number (the `n` claim), if it is one of ours.
fn token_number(headers: &HeaderMap) -> Option<u64> {
    let bearer = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let payload = bearer.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["n"].as_u64()
}

async fn list(
    State(fake): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    fake.log.push(format!("list {version} {}", keys.join("&")));
    if token_number(&headers).is_none() || fake.refuse_lists > 0 {
        fake.refuse_lists = fake.refuse_lists.saturating_sub(1);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    let skip: usize = q["skip"].parse().unwrap();
    let top: usize = q["top"].parse().unwrap();
    let mut top = fake.cap.map_or(top, |cap| top.min(cap));
    if let Some((at, rows)) = fake.short_at
        && at == skip
    {
        fake.short_at = None;
        top = rows;
    }
    let since = q
        .get("updatedSince")
        .map(|s| records::parse_timestamp(s).unwrap());
    let matching: Vec<Value> = fake
        .records
        .iter()
        .filter(|r| {
            since.is_none_or(|s| {
                records::parse_timestamp(r["lastUpdated"].as_str().unwrap()).unwrap() >= s
            })
        })
        .cloned()
        .collect();
    let page: Vec<Value> = matching.iter().skip(skip).take(top).cloned().collect();
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = skip + page.len() < matching.len();
    let mut body = json!({"totalRecords": matching.len(), "businessUnitId": 1, "dispositions": page,
        "_links": {"self": "x", "next": if more { json!("https://next") } else { Value::Null }}});
    if fake.no_total {
        body.as_object_mut().unwrap().remove("totalRecords");
    }
    axum::Json(body).into_response()
}

async fn classifications(State(fake): State<Shared>) -> Response {
    let mut fake = fake.lock().unwrap();
    let table = fake.tables[fake.table_reads.min(fake.tables.len() - 1)].clone();
    fake.table_reads += 1;
    let results: Vec<Value> = table
        .iter()
        .map(|(id, name)| json!({"classificationId": id, "classificationName": name}))
        .collect();
    axum::Json(json!({"totalRecords": results.len(), "classificationResults": results}))
        .into_response()
}

async fn by_id(State(fake): State<Shared>, Path((_, id)): Path<(String, String)>) -> Response {
    let mut fake = fake.lock().unwrap();
    fake.log.push(format!("by-id {id}"));
    match fake.by_id.get(&id) {
        Some(body) => axum::Json(body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn record(id: u64, minute: u32, classification: u64) -> Value {
    json!({"dispositionId": id, "dispositionName": format!("Code {id}"), "notes": null,
           "lastUpdated": format!("2024-05-01T12:{minute:02}:00.000Z"),
           "classificationId": classification, "isActive": true})
}

fn client(issuer: &str, page_size: u32) -> AdminClient {
    let api = AdminApi {
        issuer: Url::parse(issuer).unwrap(),
        api_endpoint: None,
        api_version: ApiVersion::parse("30.0").unwrap(),
    };
    let settings = CxoneSettings {
        api: crate::config::CxoneApi::Admin(api.clone()),
        page_size,
        default_retry_after: Duration::from_millis(1),
        max_in_flight: 4,
    };
    let http = HttpSettings {
        timeout: Duration::from_secs(5),
        retry_base_delay: Duration::from_millis(1),
    };
    let credentials = AccessKeyCredentials {
        client: ClientCredentials {
            client_id: "cx-id".into(),
            client_secret: "cx-secret".into(),
        },
        access_key_id: "AKID=".into(),
        access_key_secret: "ak-secret==".into(),
    };
    AdminClient::new(&api, &settings, &http, reqwest::Client::new(), credentials)
}

fn shared(fake: Fake) -> Shared {
    Arc::new(StdMutex::new(fake))
}

fn valid(records: Vec<SourceRecord>) -> Vec<crate::domain::Disposition> {
    records
        .into_iter()
        .map(|r| match r {
            SourceRecord::Valid { disposition, .. } => disposition,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Discovery crosses two origins: the token endpoint from the issuer, the tenant from the
/// token, the API host from cxone-configuration; the grant form-encodes the access key, and
/// every request (token and discovery included) is counted.
#[tokio::test]
async fn a_full_snapshot_discovers_the_api_host_and_lists_every_page() {
    let fake = shared(Fake {
        records: (1..=5).map(|i| record(i, i as u32, 1)).collect(),
        tables: vec![vec![(1, "Positive w/Amount")]],
        ..Fake::default()
    });
    let issuer = start(&fake).await;
    let client = client(&issuer, 2);
    let codes = valid(client.changed_since(None).await.unwrap().records);
    assert_eq!(codes.len(), 5);
    assert_eq!(codes[4].id.as_str(), "5");
    assert_eq!(codes[0].category.as_deref(), Some("Positive w/Amount"));
    let fake = fake.lock().unwrap();
    assert_ne!(fake.api_origin, issuer, "two origins");
    assert_eq!(fake.token_forms.len(), 1);
    assert_eq!(fake.token_forms[0].0, "AKID=");
    assert!(
        fake.token_forms[0].1.contains("username=AKID%3D"),
        "{}",
        fake.token_forms[0].1
    );
    // The pages after the first are asked for at once: they may arrive in any order.
    let mut log = fake.log.clone();
    log[2..].sort();
    assert_eq!(
        log,
        [
            format!("cxone-configuration {TENANT}"),
            "list v30.0 orderBy=lastUpdated&skip=0&top=2".into(),
            "list v30.0 orderBy=lastUpdated&skip=2&top=2".into(),
            "list v30.0 orderBy=lastUpdated&skip=4&top=2".into(),
        ]
    );
    // openid-configuration, token, cxone-configuration, three pages, one table.
    assert_eq!(client.requests(), 7);
}

fn list_skips(fake: &Shared) -> Vec<u64> {
    fake.lock()
        .unwrap()
        .log
        .iter()
        .filter_map(|l| l.split("skip=").nth(1)?.split('&').next()?.parse().ok())
        .collect()
}

/// A page that comes short in the middle of pages asked for at once (the ones after it are
/// then off by the missing rows) is not taken as the end, nor are the pages after it trusted:
/// the listing is read on one page at a time from where the short page ended.
#[tokio::test]
async fn a_page_short_amid_pages_read_at_once_is_read_on_from_where_it_ended() {
    let fake = shared(Fake {
        records: (1..=10).map(|i| record(i, i as u32, 1)).collect(),
        short_at: Some((4, 1)),
        tables: vec![vec![(1, "None")]],
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 2);
    let listing = client.changed_since(None).await.unwrap();
    assert!(listing.settled);
    let ids: Vec<String> = valid(listing.records)
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    let expected: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected, "every code once, in order");
    let skips = list_skips(&fake);
    assert!(skips.ends_with(&[5, 7, 9]), "{skips:?}");
}

/// Without `totalRecords`, nothing says how far the listing goes: one page at a time.
#[tokio::test]
async fn without_total_records_pages_are_read_one_at_a_time() {
    let fake = shared(Fake {
        records: (1..=5).map(|i| record(i, i as u32, 1)).collect(),
        no_total: true,
        tables: vec![vec![(1, "None")]],
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 2);
    assert_eq!(
        valid(client.changed_since(None).await.unwrap().records).len(),
        5
    );
    assert_eq!(list_skips(&fake), [0, 2, 4]);
}

/// A server that caps `top` below what was asked returns short pages that are not the end:
/// the listing goes on until `totalRecords` rows are read.
#[tokio::test]
async fn a_server_capping_top_is_paged_to_the_end() {
    let fake = shared(Fake {
        records: (1..=7).map(|i| record(i, i as u32, 1)).collect(),
        cap: Some(3),
        tables: vec![vec![(1, "None")]],
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    assert_eq!(
        valid(client.changed_since(None).await.unwrap().records).len(),
        7
    );
    let lists = fake
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.starts_with("list"))
        .count();
    assert_eq!(lists, 3);
}

/// An empty delta is a 204: no records, and no classification read either.
#[tokio::test]
async fn an_empty_delta_is_no_content() {
    let fake = shared(Fake {
        records: vec![record(1, 1, 1)],
        tables: vec![vec![(1, "None")]],
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    let since = records::parse_timestamp("2024-06-01T00:00:00Z").unwrap();
    assert!(
        client
            .changed_since(Some(since))
            .await
            .unwrap()
            .records
            .is_empty()
    );
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.log.last().unwrap(),
        "list v30.0 orderBy=lastUpdated&skip=0&top=100&updatedSince=2024-06-01T00:00:00.000Z"
    );
    assert_eq!(fake.table_reads, 0);
}

/// The table is read once per cycle; an id it does not know makes it read again, and the new
/// name is used.
#[tokio::test]
async fn an_unknown_classification_id_refreshes_the_table() {
    let fake = shared(Fake {
        records: vec![record(1, 1, 1), record(2, 2, 9)],
        tables: vec![vec![(1, "None")], vec![(1, "None"), (9, "Retention")]],
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    let codes = valid(client.changed_since(None).await.unwrap().records);
    assert_eq!(codes[1].category.as_deref(), Some("Retention"));
    assert_eq!(fake.lock().unwrap().table_reads, 2);
    // The next cycle reads it once: every id is known.
    client.changed_since(None).await.unwrap();
    assert_eq!(fake.lock().unwrap().table_reads, 3);
}

/// A list item without `isActive` takes it from the by-id record (here wrapped), never a guess;
/// if the by-id record lacks it too, the record is dead-lettered with its id.
#[tokio::test]
async fn a_list_without_is_active_reads_it_by_id() {
    let mut first = record(1, 1, 1);
    first.as_object_mut().unwrap().remove("isActive");
    let mut second = record(2, 2, 1);
    second.as_object_mut().unwrap().remove("isActive");
    let mut inactive = record(1, 1, 1);
    inactive["isActive"] = json!(false);
    let fake = shared(Fake {
        records: vec![first, second.clone()],
        tables: vec![vec![(1, "None")]],
        by_id: HashMap::from([
            ("1".to_owned(), json!({"dispositions": [inactive]})),
            ("2".to_owned(), second),
        ]),
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    let mut out = client
        .changed_since(None)
        .await
        .unwrap()
        .records
        .into_iter();
    match out.next().unwrap() {
        SourceRecord::Valid { disposition, .. } => assert!(!disposition.is_active),
        other => panic!("{other:?}"),
    }
    match out.next().unwrap() {
        SourceRecord::Malformed {
            reason,
            external_id,
            ..
        } => {
            assert!(reason.contains("isActive"), "{reason}");
            assert_eq!(external_id.as_deref(), Some("2"));
        }
        other => panic!("{other:?}"),
    }
}

/// A token refused mid-cycle (401) is replaced by a new password grant and the page asked again.
#[tokio::test]
async fn a_token_refused_mid_cycle_is_renewed_once() {
    let fake = shared(Fake {
        records: (1..=3).map(|i| record(i, i as u32, 1)).collect(),
        tables: vec![vec![(1, "None")]],
        refuse_lists: 1,
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    assert_eq!(
        valid(client.changed_since(None).await.unwrap().records).len(),
        3
    );
    assert_eq!(fake.lock().unwrap().tokens, 2);

    // Refused again after the renewal: an authentication failure for the handler to act on.
    fake.lock().unwrap().refuse_lists = 2;
    let err = client.changed_since(None).await.unwrap_err();
    assert!(matches!(err, CxoneError::Auth(_)), "{err}");
}

/// By id: 404 is a code that no longer exists; a non-integer id cannot exist; a bare object is
/// read like a list item.
#[tokio::test]
async fn by_id_reads_bare_objects_and_404() {
    let fake = shared(Fake {
        tables: vec![vec![(1, "Sales")]],
        by_id: HashMap::from([("7".to_owned(), record(7, 7, 1))]),
        ..Fake::default()
    });
    let client = client(&start(&fake).await, 100);
    let id = |s: &str| DispositionId::parse(s).unwrap();
    let Some(SourceRecord::Valid { disposition, .. }) = client.get(&id("7")).await.unwrap() else {
        panic!()
    };
    assert_eq!(disposition.category.as_deref(), Some("Sales"));
    assert_eq!(client.get(&id("8")).await.unwrap(), None);
    let before = client.requests();
    assert_eq!(client.get(&id("a1b2-c3")).await.unwrap(), None);
    assert_eq!(client.requests(), before, "no request for an impossible id");
}

/// A discovery failure names the URL; a discovered API host on plain http (not loopback) is
/// refused, naming it.
#[tokio::test]
async fn discovery_failures_name_the_url() {
    let fake = shared(Fake {
        cxone_configuration_missing: true,
        ..Fake::default()
    });
    let err = client(&start(&fake).await, 100)
        .changed_since(None)
        .await
        .unwrap_err();
    let CxoneError::Discovery { url, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        url.contains("/.well-known/cxone-configuration?tenantId="),
        "{url}"
    );

    let fake = shared(Fake {
        api_endpoint: Some("http://api-na1.example.com".into()),
        ..Fake::default()
    });
    let err = client(&start(&fake).await, 100)
        .changed_since(None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("http://api-na1.example.com"),
        "{err}"
    );
    assert!(err.to_string().contains("cxone-configuration"), "{err}");
}
