//! A property test of the whole cycle, in process: random sequences of CXone edits, injected
//! faults (on both platforms, at the request and at the record level) and cycles, run through
//! the Lambda handler (`App::handle`) against the simulators and moto.
//!
//! After every cycle: every CXone version at or below the watermark is in Salesforce or in the
//! DLQ. Once the faults stop (the queued ones drained, lock contention cleared) one clean cycle
//! leaves every code in Salesforce or, at its current version, in the DLQ; only poisoned records
//! are dead-lettered as rejected; and once the poison is lifted a full cycle makes Salesforce
//! equal to the projection of CXone.
//!
//! The property runs once against each CXone API, each world its own test.
//!
//! `PROPTEST_CASES` (default 16 per API) sets the number of cases; `PROPTEST_RNG_SEED` replays a
//! run.

use crate::support::{Endpoints, endpoints, world_for};
use disposition_sim::cxone::{CxoneApi, CxoneConfig, CxoneSim, Fault, SimCode};
use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim, format_datetime};
use disposition_sim::world::{AwsResources, LocalWorld, create_resources, queue_bodies};
use disposition_sync::config::Config;
use disposition_sync::dlq::DeadLetter;
use disposition_sync::domain::format_ts;
use disposition_sync::handler::App;
use disposition_sync::watermark::{DynamoDbStateStore, StateStore};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use rstest::rstest;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// The error code of a record Salesforce always refuses until the poison is lifted.
const POISON: &str = "FIELD_CUSTOM_VALIDATION_EXCEPTION";
/// Marks the bodies of injected faults, so draining can tell them from real answers.
const INJECTED: &str = "injected by the property test";
/// Categories the edits use; the last one is not in the Salesforce picklist.
const CATEGORIES: [&str; 4] = ["Sales", "Billing", "Technical", "Compliance Review"];

// ---------------------------------------------------------------------------------------------
// Comparing Salesforce with CXone

/// One way in which Salesforce is not the projection of CXone.
#[derive(Debug)]
pub(crate) struct Difference {
    pub kind: DifferenceKind,
    pub external_id: String,
    pub what: String,
}

/// The Salesforce fields one CXone code projects to, given the picklist's allowed categories.
fn projection(code: &SimCode, picklist: &[String]) -> BTreeMap<&'static str, Value> {
    let modified = code.last_modified;
    let active = code.is_active;
    let category = code
        .category
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let allowed = category.and_then(|c| picklist.iter().find(|v| v.eq_ignore_ascii_case(c)));
    let unmapped = category.filter(|_| allowed.is_none());
    BTreeMap::from([
        ("Name", json!(code.name)),
        ("Description__c", json!(code.description)),
        ("IsActive__c", json!(active)),
        ("LastModifiedCXone__c", json!(format_datetime(modified))),
        (
            "ArchivedDate__c",
            if active {
                Value::Null
            } else {
                json!(format_datetime(modified))
            },
        ),
        ("Category__c", json!(allowed)),
        ("RawCategory__c", json!(unmapped)),
        ("NeedsReview__c", json!(unmapped.is_some())),
        (
            "ReviewReason__c",
            json!(unmapped.map(|c| format!("unmapped category: {c}"))),
        ),
    ])
}

/// Every difference between CXone's codes and Salesforce's rows: codes missing or different in
/// Salesforce, duplicate external IDs, and rows no code matches. Empty when Salesforce is
/// exactly the projection of CXone.
pub(crate) fn mirror_differences(cxone: &CxoneSim, salesforce: &SalesforceSim) -> Vec<Difference> {
    let picklist = salesforce.picklist_values();
    let mut out = Vec::new();
    let mut rows: HashMap<String, Vec<disposition_sim::salesforce::SfRow>> = HashMap::new();
    for row in salesforce.records() {
        let id = row.fields["CXone_DispositionId__c"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        rows.entry(id).or_default().push(row);
    }
    let codes = cxone.codes();
    for code in &codes {
        let id = code.external_id.as_str();
        let found = match rows.get(id).map(Vec::as_slice) {
            None | Some([]) => Some((DifferenceKind::Lost, "missing in Salesforce".to_owned())),
            Some([row]) => {
                let mut wrong = String::new();
                let mut kind = DifferenceKind::Other;
                for (field, want) in projection(code, &picklist) {
                    let have = row.fields.get(field).unwrap_or(&Value::Null);
                    if *have != want {
                        let _ = write!(wrong, " {field}: {have} instead of {want};");
                        // The same format on both sides: text order is time order.
                        if field == "LastModifiedCXone__c"
                            && have.as_str().unwrap_or_default() < want.as_str().unwrap_or_default()
                        {
                            kind = DifferenceKind::Regressed;
                        }
                    }
                }
                (!wrong.is_empty()).then_some((kind, wrong))
            }
            Some(many) => Some((
                DifferenceKind::Duplicated,
                format!("{} rows with this external ID", many.len()),
            )),
        };
        if let Some((kind, what)) = found {
            out.push(Difference {
                kind,
                external_id: id.to_owned(),
                what,
            });
        }
    }
    let known: HashSet<&str> = codes.iter().map(|c| c.external_id.as_str()).collect();
    for id in rows.keys().filter(|id| !known.contains(id.as_str())) {
        out.push(Difference {
            kind: DifferenceKind::Other,
            external_id: id.clone(),
            what: "no CXone code has this external ID".into(),
        });
    }
    out
}

/// The kinds of difference the soak figures count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DifferenceKind {
    /// A CXone code with no Salesforce record.
    Lost,
    /// Several Salesforce records with one external ID.
    Duplicated,
    /// A record holding an older CXone version than CXone has.
    Regressed,
    /// Any other field that differs, or a record no code matches.
    Other,
}

/// Lost, duplicated, regressed and other differences, for a run's closing figures.
pub(crate) fn tally(differences: &[Difference]) -> [usize; 4] {
    let count = |kind| differences.iter().filter(|d| d.kind == kind).count();
    [
        count(DifferenceKind::Lost),
        count(DifferenceKind::Duplicated),
        count(DifferenceKind::Regressed),
        count(DifferenceKind::Other),
    ]
}

pub(crate) fn describe(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(|d| format!("{}: {}", d.external_id, d.what))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// The operations

/// A Salesforce endpoint a request-level fault can hit.
#[derive(Clone, Copy, Debug)]
enum SfEndpoint {
    Upsert,
    Describe,
    Query,
    Token,
}

impl SfEndpoint {
    fn name(self) -> &'static str {
        match self {
            SfEndpoint::Upsert => "upsert",
            SfEndpoint::Describe => "describe",
            SfEndpoint::Query => "query",
            SfEndpoint::Token => "token",
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    // CXone edits; `usize`s pick a code (modulo the number of codes).
    Rename(usize),
    Deactivate(usize),
    Reactivate(usize),
    SetCategory(usize, usize),
    AddCodes(usize),
    /// A rename that lands between two list pages of the next cycle (after its n-th page).
    EditDuringFetch(usize, usize),
    /// A code's CXone time set far in the future (a clock error, a bad import).
    FutureDated(usize),
    // Record-level Salesforce errors.
    Poison(usize),
    Lock(usize, u32),
    // Request-level faults: each hits the next `times` requests to its endpoint.
    CxoneThrottled {
        times: u32,
        retry_after: bool,
    },
    CxoneUnavailable {
        times: u32,
    },
    CxoneUnauthorized {
        times: u32,
    },
    CxoneTokenDown {
        times: u32,
    },
    CxoneTokensExpire,
    SalesforceUnavailable {
        endpoint: SfEndpoint,
        times: u32,
    },
    SalesforceReset {
        endpoint: SfEndpoint,
        times: u32,
    },
    SalesforceUnauthorized {
        times: u32,
    },
    SalesforceCredentialsRefused,
    SalesforceSessionsExpire,
    SalesforceRequestLimit,
    /// Usage at the budget for the next cycle only.
    SalesforceOverBudget,
    /// A new execution environment: fresh token caches and schema cache.
    ColdStart,
    Cycle {
        full: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let endpoint = prop_oneof![
        Just(SfEndpoint::Upsert),
        Just(SfEndpoint::Describe),
        Just(SfEndpoint::Query),
        Just(SfEndpoint::Token)
    ];
    let data_endpoint = prop_oneof![
        Just(SfEndpoint::Upsert),
        Just(SfEndpoint::Describe),
        Just(SfEndpoint::Query)
    ];
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Rename),
        1 => any::<usize>().prop_map(Op::Deactivate),
        1 => any::<usize>().prop_map(Op::Reactivate),
        1 => (any::<usize>(), 0..CATEGORIES.len()).prop_map(|(i, c)| Op::SetCategory(i, c)),
        1 => (1..6usize).prop_map(Op::AddCodes),
        1 => (any::<usize>(), 1..=3usize).prop_map(|(i, page)| Op::EditDuringFetch(i, page)),
        1 => any::<usize>().prop_map(Op::FutureDated),
        1 => any::<usize>().prop_map(Op::Poison),
        1 => (any::<usize>(), 1..=2u32).prop_map(|(i, t)| Op::Lock(i, t)),
        1 => (1..=6u32, any::<bool>()).prop_map(|(times, retry_after)| Op::CxoneThrottled { times, retry_after }),
        1 => (1..=4u32).prop_map(|times| Op::CxoneUnavailable { times }),
        1 => (1..=3u32).prop_map(|times| Op::CxoneUnauthorized { times }),
        1 => (1..=2u32).prop_map(|times| Op::CxoneTokenDown { times }),
        1 => Just(Op::CxoneTokensExpire),
        1 => (data_endpoint, 1..=3u32).prop_map(|(endpoint, times)| Op::SalesforceUnavailable { endpoint, times }),
        1 => (endpoint, 1..=2u32).prop_map(|(endpoint, times)| Op::SalesforceReset { endpoint, times }),
        1 => (1..=3u32).prop_map(|times| Op::SalesforceUnauthorized { times }),
        1 => Just(Op::SalesforceCredentialsRefused),
        1 => Just(Op::SalesforceSessionsExpire),
        1 => Just(Op::SalesforceRequestLimit),
        1 => Just(Op::SalesforceOverBudget),
        1 => Just(Op::ColdStart),
        5 => any::<bool>().prop_map(|full| Op::Cycle { full }),
    ]
}

// ---------------------------------------------------------------------------------------------
// One case

/// The settings every case runs with: small pages and batches so that faults land between
/// them, short delays, and the mass-change breaker out of the way (random deactivations are
/// not a mass change).
const SETTINGS: [(&str, &str); 9] = [
    ("CXONE_PAGE_SIZE", "10"),
    ("SF_BATCH_SIZE", "7"),
    ("SF_MAX_IN_FLIGHT", "2"),
    ("RECORD_MAX_ATTEMPTS", "3"),
    ("RETRY_BASE_DELAY_MS", "1"),
    ("CXONE_RETRY_AFTER_DEFAULT_SECONDS", "0"),
    ("SF_API_BUDGET_PERCENT", "80"),
    ("HTTP_TIMEOUT_SECONDS", "5"),
    ("MAX_ARCHIVE_PERCENT", "100"),
];

/// One case's own simulators and AWS resources (on the shared moto server), and the app.
struct Case<'w> {
    world: &'w LocalWorld,
    cxone: CxoneSim,
    salesforce: SalesforceSim,
    aws: AwsResources,
    /// The simulator's names for the endpoints faults target, in the world's API.
    endpoints: Endpoints,
    config: Config,
    app: App,
    ids: Vec<String>,
    /// Records whose writes Salesforce refuses permanently right now.
    poisoned: HashSet<String>,
    /// Every record that was ever poisoned.
    ever_poisoned: HashSet<String>,
    over_budget: bool,
    /// Set once the faults stop: pending mid-fetch edits then do nothing.
    faults_stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    renames: usize,
    dead_lettered: u64,
    log: String,
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

impl<'w> Case<'w> {
    /// A case whose CXone speaks the world's API.
    async fn start(world: &'w LocalWorld, number: usize, seed: usize) -> Case<'w> {
        let api = world.cxone.api();
        let (cx, sf) = (CxoneConfig::for_api(api), SalesforceConfig::default());
        let mut cxone_secret =
            json!({"client_id": cx.client_id, "client_secret": cx.client_secret});
        if api == CxoneApi::Admin {
            cxone_secret["access_key_id"] = json!(cx.access_key_id);
            cxone_secret["access_key_secret"] = json!(cx.access_key_secret);
        }
        let secret = json!({
            "cxone": cxone_secret,
            "salesforce": {"client_id": sf.client_id, "client_secret": sf.client_secret},
        });
        let cxone = CxoneSim::start(cx).await;
        let salesforce = SalesforceSim::start(sf).await;
        let prefix = format!("prop{}-{number}", std::process::id());
        let aws = create_resources(&world.sdk, &prefix, &secret.to_string()).await;
        let mut env: HashMap<String, String> = world.env().into_iter().collect();
        // The guide's base URL, or the Admin API's issuer (the world names the same variable).
        let cxone_url = match api {
            CxoneApi::Guide => "CXONE_BASE_URL",
            CxoneApi::Admin => "CXONE_ISSUER",
        };
        for (name, value) in [
            (cxone_url, cxone.url()),
            ("SF_LOGIN_URL", salesforce.url()),
            ("SECRET_ID", aws.secret_id.clone()),
            ("STATE_TABLE", aws.table.clone()),
            ("DLQ_URL", aws.dlq_url.clone()),
            ("PARKING_URL", aws.parking_url.clone()),
        ] {
            env.insert(name.into(), value);
        }
        env.extend(SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .expect("the case's settings are valid");
        let app = App::with_sdk(config.clone(), &world.sdk).expect("the app builds");
        let ids = cxone.seed(seed);
        Case {
            world,
            cxone,
            salesforce,
            aws,
            endpoints: endpoints(api),
            config,
            app,
            ids,
            poisoned: HashSet::new(),
            ever_poisoned: HashSet::new(),
            over_budget: false,
            faults_stopped: Default::default(),
            renames: 0,
            dead_lettered: 0,
            log: String::new(),
        }
    }

    fn pick(&self, i: usize) -> String {
        self.ids[i % self.ids.len()].clone()
    }

    fn cxone_fault(&self, endpoint: &str, status: u16, times: u32, retry_after: Option<u64>) {
        let body = json!({"error": "injected", "error_description": INJECTED});
        self.cxone.inject(
            endpoint,
            Fault {
                status,
                retry_after,
                body: Some(body),
                skip: 0,
                times,
            },
        );
    }

    fn salesforce_fault(&self, endpoint: SfEndpoint, status: u16, code: &str, times: u32) {
        let body = if matches!(endpoint, SfEndpoint::Token) {
            json!({"error": code, "error_description": INJECTED})
        } else {
            json!([{"errorCode": code, "message": INJECTED}])
        };
        self.salesforce
            .fail_next(endpoint.name(), status, body, times);
    }

    async fn apply(&mut self, op: &Op) -> Check {
        match op {
            Op::Rename(i) => {
                self.renames += 1;
                self.cxone
                    .rename(&self.pick(*i), &format!("Renamed {}", self.renames));
            }
            Op::Deactivate(i) => self.cxone.deactivate(&self.pick(*i)),
            Op::Reactivate(i) => self.cxone.reactivate(&self.pick(*i)),
            Op::SetCategory(i, c) => self.cxone.set_category(&self.pick(*i), CATEGORIES[*c]),
            Op::AddCodes(n) => {
                let added = self.cxone.seed(*n);
                self.ids.extend(added);
            }
            Op::EditDuringFetch(i, page) => {
                self.renames += 1;
                let (id, name) = (self.pick(*i), format!("Renamed mid-fetch {}", self.renames));
                let faults_stopped = self.faults_stopped.clone();
                self.cxone.after_list_pages(*page, move |cxone| {
                    // Edits stop with the faults: the closing cycles must see a still CXone.
                    if !faults_stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        cxone.rename(&id, &name);
                    }
                });
            }
            Op::FutureDated(i) => {
                let field = match self.cxone.api() {
                    CxoneApi::Guide => "last_modified_date",
                    CxoneApi::Admin => "lastUpdated",
                };
                self.cxone
                    .set_field(&self.pick(*i), field, json!("2999-01-01T00:00:00.000Z"));
            }
            Op::Poison(i) => {
                let id = self.pick(*i);
                self.salesforce.inject_record_error(
                    &id,
                    POISON,
                    "Category requires approval",
                    None,
                );
                self.poisoned.insert(id.clone());
                self.ever_poisoned.insert(id);
            }
            Op::Lock(i, times) => {
                // The simulator keeps one injected error per record: the lock replaces a poison.
                let id = self.pick(*i);
                self.salesforce.inject_record_error(
                    &id,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access",
                    Some(*times),
                );
                self.poisoned.remove(&id);
            }
            Op::CxoneThrottled { times, retry_after } => {
                self.cxone_fault(self.endpoints.list, 429, *times, retry_after.then_some(0))
            }
            Op::CxoneUnavailable { times } => {
                self.cxone_fault(self.endpoints.list, 503, *times, None)
            }
            Op::CxoneUnauthorized { times } => {
                self.cxone_fault(self.endpoints.list, 401, *times, None)
            }
            Op::CxoneTokenDown { times } => {
                self.cxone_fault(self.endpoints.token, 503, *times, None)
            }
            Op::CxoneTokensExpire => self.cxone.expire_tokens(),
            Op::SalesforceUnavailable { endpoint, times } => {
                self.salesforce_fault(*endpoint, 503, "SERVER_UNAVAILABLE", *times)
            }
            Op::SalesforceReset { endpoint, times } => {
                self.salesforce.reset_next(endpoint.name(), *times)
            }
            Op::SalesforceUnauthorized { times } => {
                self.salesforce_fault(SfEndpoint::Upsert, 401, "INVALID_SESSION_ID", *times)
            }
            Op::SalesforceCredentialsRefused => {
                self.salesforce_fault(SfEndpoint::Token, 400, "invalid_client", 1)
            }
            Op::SalesforceSessionsExpire => self.salesforce.expire_tokens(),
            Op::SalesforceRequestLimit => {
                self.salesforce_fault(SfEndpoint::Upsert, 403, "REQUEST_LIMIT_EXCEEDED", 1)
            }
            Op::SalesforceOverBudget => {
                let (used, max) = self.salesforce.api_usage();
                self.salesforce.set_api_usage(used.max(max * 8 / 10), max);
                self.over_budget = true;
            }
            Op::ColdStart => {
                self.app =
                    App::with_sdk(self.config.clone(), &self.world.sdk).expect("the app builds")
            }
            Op::Cycle { full } => {
                self.cycle(*full).await?;
            }
        }
        Ok(())
    }

    /// Runs one cycle through the handler and checks the watermark invariant after it.
    async fn cycle(&mut self, full: bool) -> Result<Value, String> {
        let event = json!({"action": "sync", "full": full, "allow_mass_change": true});
        let report = self
            .app
            .handle(event, "property-test", None)
            .await
            .map_err(|e| format!("the handler failed: {e}"))?;
        let _ = writeln!(self.log, "{report}");
        if self.over_budget {
            let (_, max) = self.salesforce.api_usage();
            self.salesforce.set_api_usage(0, max);
            self.over_budget = false;
        }
        let status = report["status"].as_str().unwrap_or_default();
        let reason = report["reason"].as_str().unwrap_or_default();
        ensure!(
            ["ok", "partial", "skipped", "failed"].contains(&status),
            "unknown status: {report}"
        );
        if status == "failed" || status == "skipped" {
            let kinds = [
                "auth_unavailable",
                "cxone_unavailable",
                "salesforce_unavailable",
                "salesforce_rejected",
                "api_budget",
            ];
            ensure!(
                kinds.iter().any(|k| reason.starts_with(k)),
                "unexpected reason: {report}"
            );
        }
        if let (Some(before), Some(after)) = (
            report["watermark_before"].as_str(),
            report["watermark_after"].as_str(),
        ) {
            ensure!(after >= before, "the watermark moved backwards: {report}");
        }
        self.dead_lettered += report["dead_lettered"].as_u64().unwrap_or_default();
        self.check_watermark().await?;
        Ok(report)
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        let bodies = queue_bodies(&self.world.sdk, &self.aws.dlq_url).await;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).expect("DLQ bodies are dead letters"))
            .collect()
    }

    /// Whether the DLQ holds a letter for CXone's current version of `code`.
    fn lettered(letters: &[DeadLetter], code: &SimCode) -> bool {
        letters.iter().any(|l| {
            l.external_id.as_deref() == Some(code.external_id.as_str())
                && l.last_modified == Some(code.last_modified)
        })
    }

    /// The watermark passes only versions that are in Salesforce or in the DLQ.
    async fn check_watermark(&self) -> Check {
        let store = DynamoDbStateStore::new(
            aws_sdk_dynamodb::Client::new(&self.world.sdk),
            &self.aws.table,
            "dispositions",
        );
        let state = store
            .load()
            .await
            .map_err(|e| format!("state unreadable: {e}"))?
            .state;
        let Some(watermark) = state.watermark else {
            return Ok(());
        };
        let differing: HashSet<String> = mirror_differences(&self.cxone, &self.salesforce)
            .into_iter()
            .map(|d| d.external_id)
            .collect();
        let passed: Vec<SimCode> = self
            .cxone
            .codes()
            .into_iter()
            .filter(|c| differing.contains(&c.external_id))
            .filter(|c| c.last_modified <= watermark)
            .collect();
        if passed.is_empty() {
            return Ok(());
        }
        let letters = self.dead_letters().await;
        for code in passed {
            ensure!(
                Self::lettered(&letters, &code),
                "the watermark {watermark} passed {} at {}, which is neither in Salesforce nor in the DLQ",
                code.external_id,
                format_ts(code.last_modified)
            );
        }
        Ok(())
    }

    /// Stops the faults: drains every queued request-level fault, ends the budget squeeze and
    /// clears lock contention. Poison stays: it is a data problem, not a fault.
    async fn stop_faults(&mut self) {
        self.faults_stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let http = reqwest::Client::new();
        let (list, token) = match self.cxone.api() {
            CxoneApi::Guide => (
                format!("{}/api/v2/dispositions", self.cxone.url()),
                format!("{}/oauth/token", self.cxone.url()),
            ),
            CxoneApi::Admin => (
                format!(
                    "{}/inContactAPI/services/v30.0/dispositions",
                    self.cxone.admin_url()
                ),
                format!("{}/auth/token", self.cxone.url()),
            ),
        };
        let sf = format!("{}/services/data/v58.0", self.salesforce.url());
        let drains = [
            (reqwest::Method::GET, list),
            (reqwest::Method::POST, token),
            (
                reqwest::Method::PATCH,
                format!("{sf}/composite/sobjects/Disposition__c/CXone_DispositionId__c"),
            ),
            (
                reqwest::Method::GET,
                format!("{sf}/sobjects/Disposition__c/describe"),
            ),
            (
                reqwest::Method::GET,
                format!("{sf}/query?q=SELECT+Id+FROM+Disposition__c"),
            ),
            (
                reqwest::Method::POST,
                format!("{}/services/oauth2/token", self.salesforce.url()),
            ),
        ];
        for (method, url) in drains {
            // Each request takes one queued fault; the first real answer means the queue is empty.
            for _ in 0..32 {
                let answer = match http.request(method.clone(), &url).send().await {
                    Ok(response) => response.text().await.unwrap_or_default(),
                    Err(_) => continue, // an injected connection reset
                };
                if !answer.contains(INJECTED) {
                    break;
                }
            }
        }
        let (_, max) = self.salesforce.api_usage();
        self.salesforce.set_api_usage(0, max);
        self.salesforce.clear_record_errors();
        for id in &self.poisoned {
            self.salesforce
                .inject_record_error(id, POISON, "Category requires approval", None);
        }
    }

    async fn finish(&mut self) -> Check {
        self.stop_faults().await;

        // One clean cycle, the poison still in place.
        let clean = self.cycle(false).await?;
        ensure!(
            ["ok", "partial"].contains(&clean["status"].as_str().unwrap_or_default()),
            "the clean cycle did not complete: {clean}"
        );
        let letters = self.dead_letters().await;
        ensure!(
            letters.len() as u64 == self.dead_lettered,
            "the DLQ holds {} letters; the cycles reported {}",
            letters.len(),
            self.dead_lettered
        );
        let differing = mirror_differences(&self.cxone, &self.salesforce);
        for d in &differing {
            let code = self.cxone.code(&d.external_id);
            let Some(code) = code else {
                return Err(format!("{}: {}", d.external_id, d.what));
            };
            // A poisoned record's version may also have been dead-lettered earlier, after lock
            // contention outlasted its attempts: any letter for the version counts.
            ensure!(
                Self::lettered(&letters, &code),
                "{}: {}, and the DLQ has no letter for its current version",
                d.external_id,
                d.what
            );
        }
        for letter in letters.iter().filter(|l| l.error.code == POISON) {
            let id = letter.external_id.clone().unwrap_or_default();
            ensure!(
                self.ever_poisoned.contains(&id),
                "{id} was dead-lettered with {POISON} but never poisoned"
            );
        }

        // The poison lifted, a full cycle repairs everything.
        self.salesforce.clear_record_errors();
        let full = self.cycle(true).await?;
        ensure!(
            full["status"] == "ok",
            "the final full cycle did not complete: {full}"
        );
        let differences = mirror_differences(&self.cxone, &self.salesforce);
        ensure!(
            differences.is_empty(),
            "Salesforce is not the projection of CXone:\n{}",
            describe(&differences)
        );
        Ok(())
    }
}

/// A warm execution environment (one app for every cycle, as Lambda reuses it) that last saw
/// usage at SF_API_BUDGET_PERCENT stops sending; once the usage has dropped, the next cycle must
/// notice and write what waited, not stay skipped on the old reading. Over either API.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_warm_app_resumes_writing_once_api_usage_drops_below_the_budget(#[case] api: CxoneApi) {
    let world = world_for(api).await;
    let mut case = Case::start(&world, 0, 20).await;
    let first = case.cycle(false).await.unwrap();
    assert_eq!(first["status"], "ok", "{first}");

    // The org's usage reaches the budget; this cycle's one batch reports it.
    case.salesforce.set_api_usage(80_000, 100_000);
    case.cxone.rename(&case.ids[0], "Written At The Budget");
    let at_budget = case.cycle(false).await.unwrap();
    assert_eq!(at_budget["sf_api_usage"]["used"], 80_001, "{at_budget}");

    // The rolling 24-hour window moves on: usage is low again.
    case.salesforce.set_api_usage(100, 100_000);
    case.cxone.rename(&case.ids[1], "Written After The Drop");
    let after = case.cycle(false).await.unwrap();
    assert_eq!(after["status"], "ok", "{after}");
    assert_eq!(
        case.salesforce.record(&case.ids[1]).unwrap().fields["Name"],
        "Written After The Drop"
    );
}

/// Random edits, faults and cycles over either API; then the faults stop and clean cycles must
/// converge with nothing lost (see the module documentation for the properties).
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
fn random_edits_faults_and_cycles_converge_and_lose_nothing(#[case] api: CxoneApi) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(world_for(api));
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => ProptestConfig::default().cases,
        None => 16,
    };
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let case_number = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (15..40usize, proptest::collection::vec(op(), 1..14));
    let injected: std::sync::Mutex<BTreeMap<String, usize>> = Default::default();
    let result = runner.run(&strategy, |(seed, ops)| {
        let number = case_number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for op in &ops {
            let name = format!("{op:?}");
            let kind = name.split(['(', ' ', '{']).next().unwrap_or_default();
            *injected.lock().unwrap().entry(kind.to_owned()).or_default() += 1;
        }
        runtime.block_on(async {
            let mut case = Case::start(&world, number, seed).await;
            let mut outcome = Ok(());
            for op in &ops {
                outcome = case.apply(op).await;
                if outcome.is_err() {
                    break;
                }
            }
            if outcome.is_ok() {
                outcome = case.finish().await;
            }
            outcome.map_err(|e| TestCaseError::fail(format!("{e}\ncycle reports:\n{}", case.log)))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The closing figures of `make soak`: every case ended with Salesforce equal to CXone, so
    // nothing was lost, duplicated or regressed.
    let injected = injected.into_inner().unwrap();
    let listed: Vec<String> = injected.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "soak: property ({}): {} cases, {} steps ({}); lost 0, duplicated 0, regressed 0",
        api.as_str(),
        case_number.into_inner(),
        injected.values().sum::<usize>(),
        listed.join(", ")
    );
}
