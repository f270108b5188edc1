//! The CXone Admin API simulator over HTTP, as a real client sees it: discovery across two
//! origins, the password grant and its refusals, JWT claims, skip/top paging with a server cap
//! and `_links.next`, 204 on empty, `updatedSince` with offsets and 7 digits, classifications,
//! by-id, path casing, every mode, every fault, and the handle speaking Admin ids.

use super::client;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, Utc};
use disposition_sim::cxone::{
    AdminModes, CxoneApi, CxoneConfig, CxoneSim, Fault, Precision, SimCode, Zone,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const VERSION_PATH: &str = "/inContactAPI/services/v30.0";

async fn admin_sim() -> CxoneSim {
    CxoneSim::start(CxoneConfig::admin()).await
}

/// The payload of a JWT.
fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// A form body encoded by hand, so the test shows the `%3D` the keys arrive with.
fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// POST /auth/token with `body` and HTTP Basic client auth: status and JSON body.
async fn token_request(sim: &CxoneSim, body: String, basic: bool) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}/auth/token", sim.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if basic {
        request = request.basic_auth("cx-client", Some("cx-secret"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The token response of a password grant with the configured access key.
async fn password_grant(sim: &CxoneSim) -> Value {
    let (id, secret) = sim.admin_credentials();
    let body = form(&[
        ("grant_type", "password"),
        ("username", id),
        ("password", secret),
    ]);
    let (status, body) = token_request(sim, body, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn access_token(sim: &CxoneSim) -> String {
    password_grant(sim).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// GET `{admin_url}{path_and_query}` with a bearer token: status, headers' Retry-After, body
/// text.
async fn admin_get(
    sim: &CxoneSim,
    token: &str,
    path: &str,
) -> (StatusCode, Option<String>, String) {
    let response = client()
        .get(format!("{}{path}", sim.admin_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.text().await.unwrap())
}

/// GET the list with `query` and expect 200: the envelope.
async fn list(sim: &CxoneSim, token: &str, query: &str) -> Value {
    let (status, _, body) =
        admin_get(sim, token, &format!("{VERSION_PATH}/dispositions?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn ids(envelope: &Value) -> Vec<i64> {
    envelope["dispositions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dispositionId"].as_i64().unwrap())
        .collect()
}

fn seeded_ids(seeded: &[String]) -> Vec<i64> {
    seeded.iter().map(|id| id.parse().unwrap()).collect()
}

/// Discovery finds the token endpoint on the issuer and an API endpoint on another origin,
/// whose list answers the token issued by the first.
#[tokio::test]
async fn discovery_spans_two_origins() {
    let sim = admin_sim().await;
    sim.seed(2);
    let issuer = sim.url();
    let openid: Value = client()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openid["issuer"], issuer);
    assert_eq!(openid["token_endpoint"], format!("{issuer}/auth/token"));
    assert_eq!(openid["jwks_uri"], format!("{issuer}/auth/jwks"));
    assert_eq!(
        openid["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(openid["scopes_supported"], json!(["openid"]));

    let token = access_token(&sim).await;
    let tenant = claims(&token)["tenantId"].as_str().unwrap().to_owned();
    let configuration: Value = client()
        .get(format!("{issuer}/.well-known/cxone-configuration"))
        .query(&[("tenantId", &tenant)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = configuration["api_endpoint"].as_str().unwrap();
    assert_eq!(api, sim.admin_url());
    assert_ne!(api, issuer, "the API host is another origin");
    assert!(!api.ends_with('/'));
    assert_eq!(configuration["tenantId"], tenant);
    for key in [
        "area",
        "cluster",
        "domain",
        "acdDomain",
        "ui_endpoint",
        "auth_endpoint",
    ] {
        assert!(configuration[key].is_string(), "{key}: {configuration}");
    }

    let listed: Value = client()
        .get(format!("{api}{VERSION_PATH}/dispositions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["totalRecords"], 2);
    // The issuer does not serve the Admin API, and the API host does not serve discovery.
    let on_issuer = client()
        .get(format!("{issuer}{VERSION_PATH}/dispositions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(on_issuer.status(), StatusCode::NOT_FOUND);
    let on_api = client()
        .get(format!("{api}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.log().count("openid-configuration"), 1);
    assert_eq!(sim.log().count("cxone-configuration"), 1);
    assert_eq!(sim.log().count("admin-token"), 1);
    assert_eq!(sim.log().count("admin-list"), 1);
}

/// cxone-configuration answers with or without a bearer token, 404 for another tenant and 400
/// without one.
#[tokio::test]
async fn cxone_configuration_knows_one_tenant() {
    let sim = admin_sim().await;
    let tenant = CxoneConfig::admin().tenant_id;
    let url = format!("{}/.well-known/cxone-configuration", sim.url());
    let with_bearer = client()
        .get(&url)
        .query(&[("tenantId", &tenant)])
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(with_bearer.status(), StatusCode::OK);
    let other = client()
        .get(&url)
        .query(&[("tenantId", "00000000-0000-0000-0000-000000000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
}

/// The password grant takes `%3D`-encoded access keys with HTTP Basic or body client auth,
/// even under a JSON content type, and issues the documented response.
#[tokio::test]
async fn password_grant_issues_the_documented_tokens() {
    let sim = admin_sim().await;
    let (id, secret) = sim.admin_credentials();
    assert!(id.ends_with('=') && secret.ends_with('='));
    let body = form(&[
        ("grant_type", "password"),
        ("username", id),
        ("password", secret),
    ]);
    assert!(body.contains("%3D"), "{body}");
    let (status, basic) = token_request(&sim, body.clone(), true).await;
    assert_eq!(status, StatusCode::OK, "{basic}");
    assert_eq!(basic["token_type"], "Bearer");
    assert_eq!(basic["expires_in"], 3600);
    assert!(basic["expires_in"].is_u64());
    assert_eq!(
        basic["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    for key in ["access_token", "refresh_token", "id_token"] {
        claims(basic[key].as_str().unwrap());
    }

    let in_body = format!("{body}&client_id=cx-client&client_secret=cx-secret");
    let response = client()
        .post(format!("{}/auth/token", sim.url()))
        .header("content-type", "application/json")
        .body(in_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The secret and the password never reach the request log.
    let logged = sim.log().requests();
    assert!(logged.iter().all(|r| {
        let body = r.body.clone().unwrap_or_default();
        !body.contains("cx-secret") && !body.contains("password=c2lt")
    }));
}

/// The access token's claims carry the tenant, business unit, user and a lifetime matching
/// `expires_in`; its key is published at /auth/jwks.
#[tokio::test]
async fn access_tokens_carry_the_tenant_claims() {
    let sim = admin_sim().await;
    let response = password_grant(&sim).await;
    let token = response["access_token"].as_str().unwrap();
    let c = claims(token);
    let config = CxoneConfig::admin();
    assert_eq!(c["tenantId"], config.tenant_id);
    assert_eq!(c["icBUId"], config.business_unit_id);
    assert_eq!(c["iss"], sim.url());
    assert!(c["sub"].as_str().unwrap().starts_with("user:"));
    assert!(c["icClusterId"].is_string());
    let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 3600);
    let now = Utc::now().timestamp() as u64;
    assert!(iat.abs_diff(now) <= 5, "iat {iat}, now {now}");
    let id_token = claims(response["id_token"].as_str().unwrap());
    assert_eq!(id_token["tenantId"], config.tenant_id);
    assert!(id_token["userId"].is_string());

    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = client()
        .get(format!("{}/auth/jwks", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
}

/// Wrong client credentials are 401 invalid_client, a wrong access key 400 invalid_grant,
/// client_credentials 400 unsupported_grant_type, and no grant type 400 invalid_request.
#[tokio::test]
async fn token_endpoint_refuses_what_the_real_one_refuses() {
    let sim = admin_sim().await;
    let (id, secret) = sim.admin_credentials();
    let wrong_client = client()
        .post(format!("{}/auth/token", sim.url()))
        .basic_auth("cx-client", Some("nope"))
        .body(form(&[
            ("grant_type", "password"),
            ("username", id),
            ("password", secret),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_client.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong_client.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let cases = [
        (
            form(&[
                ("grant_type", "password"),
                ("username", id),
                ("password", "wrong="),
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            // The raw key, unencoded, loses its `+` to form decoding and is refused.
            format!("grant_type=password&username={id}&password={secret}"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            form(&[("grant_type", "client_credentials")]),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            form(&[("username", id), ("password", secret)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, error) in cases {
        let (got, answer) = token_request(&sim, body.clone(), true).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
    }
}

/// A refresh token gets a new access token, without client auth; expired access tokens get
/// 401 until then, and a bad refresh token is invalid_grant.
#[tokio::test]
async fn refresh_grant_renews_an_expired_token() {
    let sim = admin_sim().await;
    let first = password_grant(&sim).await;
    let token = first["access_token"].as_str().unwrap();
    sim.expire_tokens();
    let (status, _, body) = admin_get(&sim, token, &format!("{VERSION_PATH}/dispositions")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_token"
    );

    let refresh = first["refresh_token"].as_str().unwrap();
    let (status, renewed) = token_request(
        &sim,
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("scope", "openid"),
        ]),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let fresh = renewed["access_token"].as_str().unwrap();
    assert_ne!(fresh, token);
    let (status, _, _) = admin_get(&sim, fresh, &format!("{VERSION_PATH}/dispositions")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, bad) = token_request(
        &sim,
        form(&[("grant_type", "refresh_token"), ("refresh_token", "x.y.z")]),
        false,
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(sim.issued_tokens().len(), 2);
}

/// A configured lifetime is what `expires_in` and `exp` say, and the token stops working then.
#[tokio::test]
async fn token_lifetime_is_configurable() {
    let sim = CxoneSim::start(CxoneConfig {
        token_ttl: Duration::from_millis(300),
        ..CxoneConfig::admin()
    })
    .await;
    let response = password_grant(&sim).await;
    assert_eq!(response["expires_in"], 0);
    let token = response["access_token"].as_str().unwrap();
    let c = claims(token);
    assert!(c["exp"].as_u64().unwrap() > c["iat"].as_u64().unwrap());
    let path = format!("{VERSION_PATH}/dispositions");
    assert_eq!(
        admin_get(&sim, token, &path).await.0,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        admin_get(&sim, token, &path).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The list requires a live bearer token: none or an unknown one is 401 invalid_token with
/// `icStatusDescription`.
#[tokio::test]
async fn the_list_needs_a_bearer_token() {
    let sim = admin_sim().await;
    let url = format!("{}{VERSION_PATH}/dispositions", sim.admin_url());
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("icstatusdescription"));
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let unknown = client()
        .get(&url)
        .bearer_auth("a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
}

/// A server cap below `top` serves fewer rows with `totalRecords` still the whole set, and
/// `_links.next` (absolute, skip advanced by the rows served) walks every row once, ending in
/// JSON null.
#[tokio::test]
async fn paging_under_a_cap_follows_next_links_to_null() {
    let sim = admin_sim().await;
    let seeded = seeded_ids(&sim.seed(7));
    assert_eq!(seeded[0], 6001);
    sim.set_admin_modes(AdminModes {
        page_cap: Some(3),
        ..AdminModes::default()
    });
    let token = access_token(&sim).await;
    let first = list(&sim, &token, "skip=0&top=5&orderBy=lastUpdated").await;
    assert_eq!(first["totalRecords"], 7);
    assert_eq!(ids(&first), seeded[..3]);
    assert!(first["_links"]["previous"].is_null());
    assert!(first["businessUnitId"].is_i64());

    let mut seen = ids(&first);
    let mut next = first["_links"]["next"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(url) = next {
        assert!(url.starts_with(&sim.admin_url()), "{url}");
        assert!(url.contains("top=5"), "the query is kept: {url}");
        let page: Value = client()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["totalRecords"], 7);
        assert!(page["_links"]["previous"].is_string());
        seen.extend(ids(&page));
        next = page["_links"]["next"].as_str().map(str::to_owned);
        assert!(
            page["_links"].get("next").is_some(),
            "next is present, as null at the end"
        );
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, seeded);
}

/// An empty page is 204 with no body; in the 200 mode it is an envelope with no rows.
#[tokio::test]
async fn an_empty_page_is_204_or_an_empty_envelope() {
    let sim = admin_sim().await;
    sim.seed(2);
    let token = access_token(&sim).await;
    let path = format!("{VERSION_PATH}/dispositions?updatedSince=2999-01-01T00:00:00Z");
    let (status, _, body) = admin_get(&sim, &token, &path).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    let (status, _, _) =
        admin_get(&sim, &token, &format!("{VERSION_PATH}/dispositions?skip=2")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "past the end is empty too");

    sim.set_admin_modes(AdminModes {
        empty_page_as_200: true,
        ..AdminModes::default()
    });
    let envelope = list(&sim, &token, "updatedSince=2999-01-01T00:00:00Z").await;
    assert_eq!(envelope["dispositions"], json!([]));
    assert_eq!(envelope["totalRecords"], 0);
    assert!(envelope["_links"]["next"].is_null());
}

/// `updatedSince` is inclusive and reads `Z`, offsets (encoded or as a decoded space) and
/// 0–7 fractional digits as the same instant; nonsense is 400.
#[tokio::test]
async fn updated_since_reads_every_iso_form() {
    let sim = admin_sim().await;
    let seeded = seeded_ids(&sim.seed(3));
    let token = access_token(&sim).await;
    let second = sim.codes()[1].last_modified;
    let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
    let forms = [
        second.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        format!("{}0000Z", second.format("%Y-%m-%dT%H:%M:%S%.3f")),
        format!(
            "{}0000+02:00",
            second.with_timezone(&plus2).format("%Y-%m-%dT%H:%M:%S%.3f")
        ),
    ];
    for since in forms {
        let query = form(&[("updatedSince", since.as_str())]);
        let envelope = list(&sim, &token, &query).await;
        assert_eq!(ids(&envelope), seeded[1..], "{since}");
    }
    // A hand-built URL with an unencoded `+`: form decoding makes it a space.
    let raw = format!(
        "updatedSince={}",
        second
            .with_timezone(&plus2)
            .format("%Y-%m-%dT%H:%M:%S%.3f+02:00")
    );
    assert_eq!(ids(&list(&sim, &token, &raw).await), seeded[1..]);
    let (status, _, _) = admin_get(
        &sim,
        &token,
        &format!("{VERSION_PATH}/dispositions?updatedSince=yesterday"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// orderBy, isActive, fields and searchString shape the list; unknown fields or keys are 400.
#[tokio::test]
async fn list_parameters_filter_sort_and_select() {
    let sim = admin_sim().await;
    let seeded = sim.seed(4);
    sim.deactivate(&seeded[1]);
    let token = access_token(&sim).await;

    let by_name = list(&sim, &token, "orderBy=dispositionName%20desc").await;
    let names: Vec<&str> = by_name["dispositions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dispositionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Code 004", "Code 003", "Code 002", "Code 001"]);
    let newest_first = list(&sim, &token, "orderBy=lastUpdated+desc").await;
    assert_eq!(
        ids(&newest_first)[0].to_string(),
        seeded[1],
        "the deactivated code is newest"
    );

    let active = list(&sim, &token, "isActive=true").await;
    assert_eq!(active["totalRecords"], 3);
    let inactive = list(&sim, &token, "isActive=false").await;
    assert_eq!(ids(&inactive)[0].to_string(), seeded[1]);

    let selected = list(&sim, &token, "fields=dispositionId,dispositionName").await;
    let keys: Vec<&String> = selected["dispositions"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["dispositionId", "dispositionName"]);
    let searched = list(&sim, &token, "searchString=code%20003").await;
    assert_eq!(searched["totalRecords"], 1);
    let (status, _, body) = admin_get(
        &sim,
        &token,
        &format!("{VERSION_PATH}/dispositions?fields=colour"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Invalid fields - 'colour'"), "{body}");
    for bad in ["orderBy=colour", "top=0", "skip=-1", "isActive=maybe"] {
        let (status, _, _) =
            admin_get(&sim, &token, &format!("{VERSION_PATH}/dispositions?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// List items are camelCase with integer ids from 6001, names, notes, classification ids, the
/// active flag and a millisecond `Z` time by default.
#[tokio::test]
async fn list_items_have_the_admin_shape() {
    let sim = admin_sim().await;
    let seeded = sim.seed(1);
    let token = access_token(&sim).await;
    let item = list(&sim, &token, "").await["dispositions"][0].clone();
    assert_eq!(item["dispositionId"], 6001);
    assert_eq!(seeded, ["6001"]);
    assert_eq!(item["dispositionName"], "Code 001");
    assert_eq!(item["notes"], "Seeded disposition code 001");
    assert_eq!(item["classificationId"], 1);
    assert_eq!(item["isActive"], true);
    assert_eq!(item["isPreviewDisposition"], false);
    assert!(item["systemOutcome"].is_string());
    let last = item["lastUpdated"].as_str().unwrap();
    assert!(
        DateTime::parse_from_rfc3339(last).is_ok() && last.ends_with('Z') && last.len() == 24,
        "{last}"
    );
}

/// Classifications list one id per category in use; a new category gets a new id, which the
/// record then carries.
#[tokio::test]
async fn classifications_name_every_category_in_use() {
    let sim = admin_sim().await;
    let seeded = sim.seed(2);
    let token = access_token(&sim).await;
    let path = format!("{VERSION_PATH}/dispositions/classifications");
    let (status, _, body) = admin_get(&sim, &token, &path).await;
    assert_eq!(status, StatusCode::OK);
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["totalRecords"], 8);
    assert_eq!(table["classificationResults"][0]["classificationId"], 1);
    assert_eq!(
        table["classificationResults"][0]["classificationName"],
        disposition_sim::cxone::CATEGORIES[0]
    );

    sim.set_category(&seeded[0], "Callback Later");
    let (_, _, body) = admin_get(&sim, &token, &path).await;
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["totalRecords"], 9);
    assert_eq!(table["classificationResults"][8]["classificationId"], 9);
    assert_eq!(
        table["classificationResults"][8]["classificationName"],
        "Callback Later"
    );
    let item = &list(&sim, &token, "orderBy=lastUpdated%20desc").await["dispositions"][0];
    assert_eq!(item["classificationId"], 9);
    assert_eq!(
        sim.code(&seeded[0]).unwrap().category.as_deref(),
        Some("Callback Later")
    );
    assert_eq!(sim.log().count("classifications"), 2);
}

/// By id: the bare object with its classification name by default, wrapped in the mode, 404
/// for an unknown id and 400 for a non-integer one.
#[tokio::test]
async fn by_id_is_bare_wrapped_or_refused() {
    let sim = admin_sim().await;
    let seeded = sim.seed(2);
    let token = access_token(&sim).await;
    let path = |id: &str| format!("{VERSION_PATH}/dispositions/{id}");
    let (status, _, body) = admin_get(&sim, &token, &path(&seeded[1])).await;
    assert_eq!(status, StatusCode::OK);
    let object: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(object["dispositionId"], 6002);
    assert_eq!(
        object["classificationName"],
        disposition_sim::cxone::CATEGORIES[1]
    );
    assert_eq!(object["isActive"], true);
    assert!(object.get("showCommitmentAmount").is_some());

    sim.set_admin_modes(AdminModes {
        get_wrapped: true,
        ..AdminModes::default()
    });
    let (_, _, body) = admin_get(&sim, &token, &path(&seeded[1])).await;
    let wrapped: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(wrapped["dispositions"][0], object);

    assert_eq!(
        admin_get(&sim, &token, &path("9999")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin_get(&sim, &token, &path("abc")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(sim.log().count("admin-get"), 4);
}

/// Any casing of `inContactAPI` and `v`, any version and repeated slashes reach the list.
#[tokio::test]
async fn paths_tolerate_casing_versions_and_slashes() {
    let sim = admin_sim().await;
    sim.seed(1);
    let token = access_token(&sim).await;
    for path in [
        "/incontactapi/services/v30.0/dispositions",
        "/InContactAPI/services/V12.0/dispositions",
        "//inContactAPI//services/v33.0/dispositions",
    ] {
        let (status, _, body) = admin_get(&sim, &token, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _, _) = admin_get(&sim, &token, "/inContactAPI/services/v30/dispositions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(sim.log().count("admin-list"), 3);
    assert_eq!(sim.log().count("other"), 1);
}

/// Each mode changes exactly its field: digits and zone of `lastUpdated`, string ids and
/// classification ids, and list items without `isActive` while by-id keeps it.
#[tokio::test]
async fn modes_reshape_the_fields() {
    let sim = admin_sim().await;
    let seeded = sim.seed(1);
    sim.set_field(
        &seeded[0],
        "lastUpdated",
        json!("2024-05-01T12:34:56.1234567Z"),
    );
    let token = access_token(&sim).await;
    let item = |envelope: Value| envelope["dispositions"][0].clone();
    let cases = [
        (Precision::Ticks, "Z", "2024-05-01T12:34:56.1234567Z"),
        (Precision::Millis, "+00:00", "2024-05-01T12:34:56.123+00:00"),
        (Precision::Seconds, "none", "2024-05-01T12:34:56"),
        (
            Precision::Ticks,
            "-05:00",
            "2024-05-01T07:34:56.1234567-05:00",
        ),
    ];
    for (precision, zone, expected) in cases {
        sim.set_admin_modes(AdminModes {
            precision,
            zone: Zone::try_from(zone.to_owned()).unwrap(),
            ..AdminModes::default()
        });
        assert_eq!(item(list(&sim, &token, "").await)["lastUpdated"], expected);
    }

    sim.set_admin_modes(AdminModes {
        classification_id_as_string: true,
        disposition_id_as_string: true,
        list_without_is_active: true,
        ..AdminModes::default()
    });
    let listed = item(list(&sim, &token, "").await);
    assert_eq!(listed["dispositionId"], "6001");
    assert_eq!(listed["classificationId"], "1");
    assert!(listed.get("isActive").is_none(), "{listed}");
    let (_, _, body) = admin_get(&sim, &token, &format!("{VERSION_PATH}/dispositions/6001")).await;
    let object: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(object["isActive"], true);
}

/// Every Admin endpoint takes scripted 429s (with and without Retry-After) and 503s, then
/// answers normally; latency delays it; the log counts each.
#[tokio::test]
async fn faults_hit_each_admin_endpoint() {
    let sim = admin_sim().await;
    sim.seed(1);
    let token = access_token(&sim).await;
    let tenant = CxoneConfig::admin().tenant_id;
    let (id, secret) = sim.admin_credentials();
    let token_body = form(&[
        ("grant_type", "password"),
        ("username", id),
        ("password", secret),
    ]);
    for endpoint in [
        "openid-configuration",
        "cxone-configuration",
        "admin-token",
        "admin-list",
        "classifications",
        "admin-get",
    ] {
        sim.inject(
            endpoint,
            Fault {
                status: 429,
                retry_after: Some(7),
                times: 1,
                ..Fault::default()
            },
        );
        sim.inject(
            endpoint,
            Fault {
                status: 429,
                times: 1,
                ..Fault::default()
            },
        );
        sim.inject(
            endpoint,
            Fault {
                status: 503,
                times: 1,
                ..Fault::default()
            },
        );
        let request = || {
            let c = client();
            match endpoint {
                "openid-configuration" => {
                    c.get(format!("{}/.well-known/openid-configuration", sim.url()))
                }
                "cxone-configuration" => c
                    .get(format!("{}/.well-known/cxone-configuration", sim.url()))
                    .query(&[("tenantId", &tenant)]),
                "admin-token" => c
                    .post(format!("{}/auth/token", sim.url()))
                    .basic_auth("cx-client", Some("cx-secret"))
                    .body(token_body.clone()),
                "admin-list" => c
                    .get(format!("{}{VERSION_PATH}/dispositions", sim.admin_url()))
                    .bearer_auth(&token),
                "classifications" => c
                    .get(format!(
                        "{}{VERSION_PATH}/dispositions/classifications",
                        sim.admin_url()
                    ))
                    .bearer_auth(&token),
                _ => c
                    .get(format!(
                        "{}{VERSION_PATH}/dispositions/6001",
                        sim.admin_url()
                    ))
                    .bearer_auth(&token),
            }
        };
        let mut seen = Vec::new();
        for _ in 0..4 {
            let response = request().send().await.unwrap();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            seen.push((response.status().as_u16(), retry));
        }
        assert_eq!(
            seen,
            [
                (429, Some("7".to_owned())),
                (429, None),
                (503, None),
                (200, None)
            ],
            "{endpoint}"
        );
        assert_eq!(
            sim.log().count(endpoint),
            4 + usize::from(endpoint == "admin-token"),
            "{endpoint}"
        );
    }
    sim.set_latency("admin-list", Duration::from_millis(300));
    let started = std::time::Instant::now();
    list(&sim, &token, "").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// In an Admin world the handle takes and gives Admin ids and camelCase records: seed, edits,
/// upsert (numeric-string ids too), raw records served verbatim, get, remove and `codes`.
#[tokio::test]
async fn the_handle_speaks_admin_ids_and_shapes() {
    let sim = admin_sim().await;
    assert_eq!(sim.api(), CxoneApi::Admin);
    let seeded = sim.seed(3);
    assert_eq!(seeded, ["6001", "6002", "6003"]);
    sim.rename("6001", "Renamed");
    sim.deactivate("6002");
    assert_eq!(sim.get("6001").unwrap()["dispositionName"], "Renamed");
    assert_eq!(sim.get("6002").unwrap()["isActive"], false);
    sim.reactivate("6002");
    assert!(sim.code("6002").unwrap().is_active);

    let added = sim.upsert(json!({"dispositionName": "New", "notes": "n", "classificationName": "Sales", "isActive": true}));
    assert_eq!(added, "6004");
    let replaced = sim.upsert(json!({"dispositionId": "6004", "dispositionName": "Newer", "classificationId": 2, "isActive": false}));
    assert_eq!(replaced, "6004");
    let code = sim.code("6004").unwrap();
    assert_eq!(
        (code.name.as_str(), code.category.as_deref(), code.is_active),
        ("Newer", Some(disposition_sim::cxone::CATEGORIES[1]), false)
    );
    let chosen = sim.upsert(json!({"dispositionId": 7100, "dispositionName": "Chosen", "classificationName": "Sales", "isActive": true}));
    assert_eq!(chosen, "7100");

    let raw = json!({"dispositionId": "bad", "dispositionName": 42, "lastUpdated": "last tuesday"});
    sim.insert_raw(raw.clone());
    let all = sim.all();
    assert_eq!(
        all.last().unwrap(),
        &raw,
        "raw records are served verbatim, last"
    );
    assert_eq!(all.len(), 6);
    let codes: Vec<String> = sim
        .codes()
        .into_iter()
        .map(|c: SimCode| c.external_id)
        .collect();
    assert_eq!(codes, ["6003", "6001", "6002", "6004", "7100"]);
    assert!(sim.remove("7100"));
    assert!(!sim.remove("7100"));
    assert!(sim.get("7100").is_none());
    let token = access_token(&sim).await;
    let listed = list(&sim, &token, "").await;
    assert_eq!(listed["totalRecords"], 5);
    assert_eq!(listed["dispositions"][4], raw);
}

/// A hook edits a code right after the first page is served, so the second page request of
/// the same listing sees it: the edit lands between two pages.
#[tokio::test]
async fn a_hook_edits_between_two_pages() {
    let sim = admin_sim().await;
    let seeded = sim.seed(4);
    let token = access_token(&sim).await;
    let first_id = seeded[0].clone();
    sim.after_list_pages(1, move |tenant| {
        tenant.rename(&first_id, "Edited mid-listing")
    });
    let first = list(&sim, &token, "top=2").await;
    assert_eq!(first["dispositions"][0]["dispositionName"], "Code 001");
    assert_eq!(sim.code(&seeded[0]).unwrap().name, "Edited mid-listing");
    let second = list(&sim, &token, "top=2&skip=2").await;
    // The edited code moved to the end of the lastUpdated order: the second page now holds
    // codes 3 and 4 shifted by one, and a client paging by offset must re-read to see it.
    assert_eq!(second["totalRecords"], 4);
    assert_eq!(ids(&second), [6004, 6001]);
}

/// The control routes speak the world's ids, expose shape-neutral codes, set modes and
/// queue faults on Admin endpoints.
#[tokio::test]
async fn control_routes_drive_an_admin_world() {
    let sim = admin_sim().await;
    let base = sim.url();
    let seeded: Value = client()
        .post(format!("{base}/_sim/seed"))
        .json(&json!({"count": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["ids"], json!(["6001", "6002"]));
    let renamed: Value = client()
        .post(format!("{base}/_sim/dispositions/6001/rename"))
        .json(&json!({"name": "Via control"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["dispositionName"], "Via control");
    let added: Value = client()
        .post(format!("{base}/_sim/codes"))
        .json(&json!({"name": "Added", "category": "Sales"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["external_id"], "6003");
    assert_eq!(added["is_active"], true);
    let codes: Value = client()
        .get(format!("{base}/_sim/codes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes.as_array().unwrap().len(), 3);

    let modes: Value = client()
        .put(format!("{base}/_sim/admin-modes"))
        .json(&json!({"precision": 7, "zone": "+02:00", "page_cap": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(modes["precision"], 7);
    assert_eq!(sim.admin_modes().page_cap, Some(1));
    let refused = client()
        .put(format!("{base}/_sim/admin-modes"))
        .json(&json!({"precision": 5}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error());

    let fault = client()
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"endpoint": "admin-list", "status": 503, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), StatusCode::NO_CONTENT);
    let token = access_token(&sim).await;
    let (status, _, _) = admin_get(&sim, &token, &format!("{VERSION_PATH}/dispositions")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let expired = client()
        .post(format!("{base}/_sim/expire-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::NO_CONTENT);
    let (status, _, _) = admin_get(&sim, &token, &format!("{VERSION_PATH}/dispositions")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
