//! The simulated network: a round trip on every API request of both simulators, paid
//! concurrently, and none on the control routes. Checked by the simulators' own figures, never by
//! a clock.

use disposition_sim::cxone::{CxoneConfig, CxoneSim};
use disposition_sim::network::Network;
use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim};
use disposition_sim::server::RequestLog;
use reqwest::Method;
use std::time::Duration;

/// Short, so that visiting every endpoint stays quick; only its being non-zero matters.
const SHORT: Duration = Duration::from_millis(5);
/// Long enough that two requests sent together are surely both still in flight when the second
/// arrives, even on a loaded machine.
const LONG: Duration = Duration::from_millis(1500);

/// Sends one request (any answer will do) and checks that the simulator logged it under
/// `endpoint` and that it, and only it, paid the round trip.
async fn visit(network: &Network, log: &RequestLog, method: Method, url: String, endpoint: &str) {
    network.reset();
    log.clear();
    reqwest::Client::new()
        .request(method, &url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(
        log.requests()
            .iter()
            .map(|r| r.endpoint.as_str())
            .collect::<Vec<_>>(),
        [endpoint],
        "{url}"
    );
    assert_eq!(network.delayed(), 1, "{url} did not pay the round trip");
}

#[tokio::test]
async fn every_cxone_endpoint_pays_the_round_trip() {
    let sim = CxoneSim::start(CxoneConfig::admin()).await;
    sim.network().set_round_trip(SHORT);
    let (issuer, admin) = (sim.url(), sim.admin_url());
    let api = format!("{admin}/inContactAPI/services/v33.0/dispositions");
    for (method, url, endpoint) in [
        (Method::POST, format!("{issuer}/oauth/token"), "token"),
        (Method::GET, format!("{issuer}/api/v2/dispositions"), "list"),
        (
            Method::GET,
            format!("{issuer}/api/v2/dispositions/7"),
            "get",
        ),
        (
            Method::GET,
            format!("{issuer}/.well-known/openid-configuration"),
            "openid-configuration",
        ),
        (
            Method::GET,
            format!("{issuer}/.well-known/cxone-configuration"),
            "cxone-configuration",
        ),
        (Method::POST, format!("{issuer}/auth/token"), "admin-token"),
        (Method::GET, api.clone(), "admin-list"),
        (
            Method::GET,
            format!("{api}/classifications"),
            "classifications",
        ),
        (Method::GET, format!("{api}/7"), "admin-get"),
        (Method::GET, format!("{admin}/nowhere"), "other"),
        (Method::GET, format!("{issuer}/nowhere"), "other"),
    ] {
        visit(sim.network(), sim.log(), method, url, endpoint).await;
    }

    // The control routes are no part of the platform: no round trip.
    sim.network().reset();
    let seeded = reqwest::get(format!("{issuer}/_sim/codes")).await.unwrap();
    assert!(seeded.status().is_success());
    assert_eq!(sim.network().delayed(), 0);
}

#[tokio::test]
async fn every_salesforce_endpoint_pays_the_round_trip() {
    let sim = SalesforceSim::start(SalesforceConfig::default()).await;
    sim.network().set_round_trip(SHORT);
    let url = sim.url();
    let data = format!("{url}/services/data/v62.0");
    for (method, url, endpoint) in [
        (
            Method::POST,
            format!("{url}/services/oauth2/token"),
            "token",
        ),
        (Method::GET, format!("{url}/services/data"), "versions"),
        (
            Method::GET,
            format!("{data}/sobjects/Disposition__c/describe"),
            "describe",
        ),
        (
            Method::GET,
            format!("{data}/query?q=SELECT+Id+FROM+Disposition__c"),
            "query",
        ),
        (
            Method::PATCH,
            format!("{data}/composite/sobjects/Disposition__c/External_Id__c"),
            "upsert",
        ),
        (Method::GET, format!("{data}/limits"), "limits"),
    ] {
        visit(sim.network(), sim.log(), method, url, endpoint).await;
    }

    sim.network().reset();
    let table = reqwest::get(format!("{url}/_sim/counts")).await.unwrap();
    assert!(table.status().is_success());
    assert_eq!(sim.network().delayed(), 0);
}

/// Two requests sent together are in flight together: the round trip is paid concurrently,
/// not one request after the other.
#[tokio::test]
async fn the_round_trip_does_not_serialise_requests() {
    let cxone = CxoneSim::start(CxoneConfig::admin()).await;
    let salesforce = SalesforceSim::start(SalesforceConfig::default()).await;
    let client = reqwest::Client::new();
    let targets = [
        (
            cxone.network(),
            format!("{}/.well-known/openid-configuration", cxone.url()),
        ),
        (
            salesforce.network(),
            format!("{}/services/data/v62.0/limits", salesforce.url()),
        ),
    ];
    for (network, url) in &targets {
        network.set_round_trip(LONG);
        let send = || client.get(url).send();
        let (first, second) = tokio::join!(send(), send());
        first.unwrap();
        second.unwrap();
        assert_eq!(network.max_in_flight(), 2, "{url}");
        assert_eq!(network.delayed(), 2, "{url}");
        assert!(network.first_request().is_some());
    }
}
