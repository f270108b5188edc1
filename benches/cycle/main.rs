//! `make bench`: the release `disposition-sync` binary against the local world (moto plus both
//! simulators on loopback, the simulators with a round trip on every request), for 300 to
//! 100,000 codes. Prints one markdown table and the machine, checks the performance targets, and
//! exits non-zero naming each one missed. Not part of `make test` or CI: speed is checked here
//! only.
//!
//! Per row, in a fresh world seeded with N codes modified five minutes apart (an established
//! tenant's history):
//! - the first full sync, as a child process: wall time from spawn to exit, peak RSS
//!   (`ru_maxrss`), Salesforce calls by kind and CXone requests by endpoint;
//! - a quiet scheduled cycle as a new process (a cold start): requests by platform, and the time
//!   from spawn to the process's first request;
//! - a quiet cycle in a warm container: the handler run twice in this process, the second run's
//!   requests counted.

mod child;
mod machine;
mod relay;

use child::Run;
use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::LocalWorld;
use disposition_sync::config::Config;
use disposition_sync::handler::App;
use relay::Relay;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// The binary measured: `make bench` builds it alone (`cargo build --release --bin`), as it is
/// deployed, and names it here; the copy cargo builds for a bench has its features unified with
/// the dev-dependencies' (the simulators', tokio's test utilities), which makes it larger.
const BINARY_VAR: &str = "DISPOSITION_BENCH_BINARY";

fn binary() -> PathBuf {
    std::env::var_os(BINARY_VAR).map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_disposition-sync")),
        PathBuf::from,
    )
}
const FULL_SYNC_EVENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/full-sync.json");
const SCHEDULED_EVENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/scheduled.json");
/// The seeded codes were last modified this far apart, the newest this long ago: an
/// established tenant, whose codes do not all fall inside a quiet cycle's overlap window
/// (`OVERLAP_SECONDS`, 60 by default) as codes created a moment ago would.
const HISTORY_STEP: Duration = Duration::from_secs(300);
/// Records per sObject Collections upsert call.
const BATCH: usize = 200;

/// The targets of issue 11.
const FULL_SYNC_10K_20MS: Duration = Duration::from_millis(600);
const RSS_300_MIB: f64 = 12.0;
const RSS_10K_MIB: f64 = 30.0;
const RSS_100K_MIB: f64 = 200.0;
const LINEAR_GROWTH: f64 = 15.0;
const START_TO_FIRST_REQUEST: Duration = Duration::from_millis(30);
/// What a cold quiet cycle cannot avoid asking CXone: the guide's token and one page; the Admin
/// API's discovery, token, tenant configuration and one page.
const QUIET_COLD_GUIDE: &[&str] = &["token", "list"];
const QUIET_COLD_ADMIN: &[&str] = &[
    "openid-configuration",
    "admin-token",
    "cxone-configuration",
    "admin-list",
];

/// One row of the table: a world and the settings the function runs with.
#[derive(Clone, Copy)]
struct Scenario {
    codes: usize,
    round_trip_ms: u64,
    api: CxoneApi,
    /// `CXONE_MAX_IN_FLIGHT` and `SF_MAX_IN_FLIGHT`; `None` leaves the function's default.
    cxone_in_flight: Option<u32>,
    sf_in_flight: Option<u32>,
    /// `CXONE_PAGE_SIZE`; `None` leaves the default (100).
    page_size: Option<u32>,
}

impl Scenario {
    const fn new(codes: usize, round_trip_ms: u64) -> Scenario {
        Scenario {
            codes,
            round_trip_ms,
            api: CxoneApi::Admin,
            cxone_in_flight: None,
            sf_in_flight: None,
            page_size: None,
        }
    }

    /// A tenant whose API serves larger pages than the default asks for.
    const fn pages_of(self, rows: u32) -> Scenario {
        Scenario {
            page_size: Some(rows),
            ..self
        }
    }

    const fn in_flight(self, cxone: Option<u32>, sf: u32) -> Scenario {
        Scenario {
            cxone_in_flight: cxone,
            sf_in_flight: Some(sf),
            ..self
        }
    }

    const fn guide(self) -> Scenario {
        Scenario {
            api: CxoneApi::Guide,
            ..self
        }
    }

    fn is_default(&self) -> bool {
        self.api == CxoneApi::Admin
            && self.cxone_in_flight.is_none()
            && self.sf_in_flight.is_none()
            && self.page_size.is_none()
    }

    fn settings(&self) -> String {
        let setting = |value: Option<u32>| value.map_or("default".to_owned(), |v| v.to_string());
        let in_flight = if self.cxone_in_flight.is_none() && self.sf_in_flight.is_none() {
            "default".to_owned()
        } else {
            format!(
                "{} / {}",
                setting(self.cxone_in_flight),
                setting(self.sf_in_flight)
            )
        };
        let in_flight = match self.page_size {
            Some(rows) => format!("{in_flight}, pages of {rows}"),
            None => in_flight,
        };
        match self.api {
            CxoneApi::Admin => in_flight,
            CxoneApi::Guide => format!("{in_flight}, guide API"),
        }
    }

    fn name(&self) -> String {
        format!(
            "{} codes, {} ms, in flight {}",
            thousands(self.codes),
            self.round_trip_ms,
            self.settings()
        )
    }

    fn env(&self, world: &LocalWorld) -> Vec<(String, String)> {
        let mut env = world.env();
        let overrides = [
            ("CXONE_MAX_IN_FLIGHT", self.cxone_in_flight),
            ("SF_MAX_IN_FLIGHT", self.sf_in_flight),
            ("CXONE_PAGE_SIZE", self.page_size),
        ];
        for (name, value) in overrides {
            if let Some(value) = value {
                set(&mut env, name, value.to_string());
            }
        }
        env
    }
}

/// 100,000 codes at 0 ms is left out: at 10,000 codes the 0 ms rows already show what the
/// function costs without a network, and 100,000 codes at 20 ms answers the question that row
/// is for (does the time grow linearly, does memory stay bounded) within the run's budget.
const SCENARIOS: [Scenario; 13] = [
    Scenario::new(300, 0),
    Scenario::new(300, 20),
    Scenario::new(2_000, 0),
    Scenario::new(2_000, 20),
    Scenario::new(10_000, 0),
    Scenario::new(10_000, 20),
    Scenario::new(10_000, 20).in_flight(Some(4), 4),
    Scenario::new(10_000, 20).in_flight(Some(4), 8),
    // The contrast row: every concurrency setting at 1.
    Scenario::new(10_000, 20).in_flight(Some(1), 1),
    // At 100 rows a page (the contract's default) and 4 pages in flight, 10,000 codes are at
    // least 25 round trips of paging alone; a tenant serving 1,000 rows a page is not.
    Scenario::new(10_000, 20).pages_of(1000),
    Scenario::new(100_000, 20),
    Scenario::new(300, 0).guide(),
    Scenario::new(300, 20).guide(),
];

/// What one row measured.
struct Row {
    scenario: Scenario,
    full: FullSync,
    quiet_cold: Requests,
    start_to_first_request: Option<Duration>,
    quiet_warm: Requests,
}

struct FullSync {
    run: Run,
    status: String,
    salesforce: BTreeMap<String, usize>,
    cxone: BTreeMap<String, usize>,
    rows_in_salesforce: usize,
}

/// Requests a cycle made, by endpoint, per platform.
struct Requests {
    status: String,
    cxone: BTreeMap<String, usize>,
    salesforce: BTreeMap<String, usize>,
}

fn main() -> ExitCode {
    if let Some(code) = child::launcher() {
        return code;
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("bench: cannot start a runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        eprintln!("bench: cannot listen for SIGTERM");
        return ExitCode::FAILURE;
    };
    // Whichever way the bench ends, the world (moto included) is dropped, and so stopped, with
    // the future that owns it; a child still running is killed by its id.
    tokio::select! {
        code = bench() => code,
        _ = tokio::signal::ctrl_c() => interrupted(),
        _ = terminate.recv() => interrupted(),
    }
}

fn interrupted() -> ExitCode {
    child::kill_current();
    eprintln!("bench: interrupted");
    ExitCode::from(130)
}

async fn bench() -> ExitCode {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/bench");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("bench: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let machine = machine::describe();
    eprintln!("bench: {machine}; child output in {}", dir.display());
    let mut rows = Vec::new();
    let mut misses = Vec::new();
    for (number, scenario) in SCENARIOS.iter().enumerate() {
        eprintln!("bench: {}", scenario.name());
        match measure(scenario, &dir, &format!("row{number:02}")).await {
            Ok(row) => {
                eprintln!(
                    "bench:   full sync {} ({}), peak RSS {}",
                    seconds(row.full.run.wall),
                    row.full.status,
                    mib(row.full.run.peak_rss_kib)
                );
                rows.push(row);
            }
            Err(e) => misses.push(format!("{}: not measured: {e}", scenario.name())),
        }
    }

    println!("{}", table(&rows));
    println!();
    println!("Machine: {machine}.");
    println!();
    let (checks, mut missed) = check(&rows);
    misses.append(&mut missed);
    for line in notes(&rows) {
        println!("{line}");
    }
    println!();
    for line in checks {
        println!("- {line}");
    }
    if misses.is_empty() {
        println!("\nall targets met");
        ExitCode::SUCCESS
    } else {
        eprintln!("\ntargets missed:");
        for miss in &misses {
            eprintln!("  {miss}");
        }
        ExitCode::FAILURE
    }
}

async fn measure(scenario: &Scenario, dir: &Path, tag: &str) -> Result<Row, String> {
    let world = LocalWorld::start("bench", scenario.api).await?;
    world.cxone.seed_history(scenario.codes, HISTORY_STEP);
    world.set_round_trip(Duration::from_millis(scenario.round_trip_ms));
    let env = scenario.env(&world);

    // The first full sync, into an empty org.
    forget_requests(&world);
    let run = child::run(
        &binary(),
        &["invoke", "--event", FULL_SYNC_EVENT],
        &env,
        dir,
        &format!("{tag}-full"),
    )
    .await?;
    let full = FullSync {
        status: status(&run),
        salesforce: world.salesforce.log().counts(),
        cxone: world.cxone.log().counts(),
        rows_in_salesforce: world.salesforce.records().len(),
        run,
    };

    // A quiet cycle in a new process, its AWS traffic through the relay that notes the first
    // connection.
    let moto: SocketAddr = world
        .moto
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("moto's endpoint {}: {e}", world.moto.endpoint()))?;
    let relay = Relay::start(moto)
        .await
        .map_err(|e| format!("cannot start the relay: {e}"))?;
    let mut relayed = env.clone();
    set(&mut relayed, "AWS_ENDPOINT_URL", relay.url());
    forget_requests(&world);
    relay.reset();
    let cold = child::run(
        &binary(),
        &["invoke", "--event", SCHEDULED_EVENT],
        &relayed,
        dir,
        &format!("{tag}-quiet"),
    )
    .await?;
    let first_request = [
        relay.first_connection(),
        world.cxone.network().first_request(),
        world.salesforce.network().first_request(),
    ]
    .into_iter()
    .flatten()
    .min();
    let start_to_first_request = first_request.map(|at| at.saturating_duration_since(cold.spawned));
    let quiet_cold = Requests {
        status: status(&cold),
        cxone: world.cxone.log().counts(),
        salesforce: world.salesforce.log().counts(),
    };

    // A warm container: one handler, two quiet cycles; the second one's requests count.
    let lookup: HashMap<String, String> = env.iter().cloned().collect();
    let config = Config::from_lookup(|name| lookup.get(name).cloned())
        .map_err(|e| format!("the world's configuration: {e}"))?;
    let app = App::with_sdk(config, &world.sdk).map_err(|e| format!("the handler: {e}"))?;
    let event = std::fs::read_to_string(SCHEDULED_EVENT)
        .map_err(|e| format!("{SCHEDULED_EVENT}: {e}"))
        .and_then(|text| disposition_sync::event::read(&text).map_err(|e| e.to_string()))?;
    app.handle(event.clone(), "bench-warm-1", None)
        .await
        .map_err(|e| format!("the first warm cycle: {e}"))?;
    forget_requests(&world);
    let response = app
        .handle(event, "bench-warm-2", None)
        .await
        .map_err(|e| format!("the second warm cycle: {e}"))?;
    let quiet_warm = Requests {
        status: response["status"].as_str().unwrap_or("?").to_owned(),
        cxone: world.cxone.log().counts(),
        salesforce: world.salesforce.log().counts(),
    };

    Ok(Row {
        scenario: *scenario,
        full,
        quiet_cold,
        start_to_first_request,
        quiet_warm,
    })
}

fn forget_requests(world: &LocalWorld) {
    world.cxone.log().clear();
    world.salesforce.log().clear();
    world.cxone.network().reset();
    world.salesforce.network().reset();
}

/// The response's `status`, or what went wrong.
fn status(run: &Run) -> String {
    let response: Option<Value> = serde_json::from_str(&run.stdout).ok();
    match response.as_ref().and_then(|r| r["status"].as_str()) {
        Some(status) if run.success => status.to_owned(),
        Some(status) => format!("{status}, exit code not 0"),
        None => format!("failed (see {})", run.log.display()),
    }
}

fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_owned(), value));
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| N | RTT | in flight CXone / SF | full sync | peak RSS | Salesforce calls, full sync | \
         CXone requests, full sync | quiet, cold: CXone / SF | start → 1st request | \
         quiet, warm: CXone / SF |\n\
         |---:|---:|---|---:|---:|---|---|---|---:|---|\n",
    );
    for row in rows {
        let s = &row.scenario;
        let full = if row.full.status == "ok" {
            seconds(row.full.run.wall)
        } else {
            format!("{} ({})", seconds(row.full.run.wall), row.full.status)
        };
        out.push_str(&format!(
            "| {} | {} ms | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            thousands(s.codes),
            s.round_trip_ms,
            s.settings(),
            full,
            mib(row.full.run.peak_rss_kib),
            by_kind(&row.full.salesforce),
            by_kind(&row.full.cxone),
            platforms(&row.quiet_cold),
            row.start_to_first_request
                .map_or("—".into(), |d| format!("{} ms", d.as_millis())),
            platforms(&row.quiet_warm),
        ));
    }
    out
}

/// `total (kind n, kind n)`, or `0`.
fn by_kind(counts: &BTreeMap<String, usize>) -> String {
    let total: usize = counts.values().sum();
    if total == 0 {
        return "0".into();
    }
    let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{total} ({})", kinds.join(", "))
}

fn platforms(requests: &Requests) -> String {
    let status = if requests.status == "ok" {
        String::new()
    } else {
        format!(" [{}]", requests.status)
    };
    format!(
        "{} / {}{status}",
        by_kind(&requests.cxone),
        by_kind(&requests.salesforce)
    )
}

/// The lines under the table that compare rows.
fn notes(rows: &[Row]) -> Vec<String> {
    let mut notes = Vec::new();
    let at_10k_20 = |cx: Option<u32>, sf: Option<u32>| {
        rows.iter().find(|r| {
            r.scenario.codes == 10_000
                && r.scenario.round_trip_ms == 20
                && r.scenario.api == CxoneApi::Admin
                && r.scenario.page_size.is_none()
                && r.scenario.cxone_in_flight == cx
                && r.scenario.sf_in_flight == sf
        })
    };
    if let (Some(four), Some(eight)) = (at_10k_20(Some(4), Some(4)), at_10k_20(Some(4), Some(8))) {
        notes.push(format!(
            "SF_MAX_IN_FLIGHT at 10,000 codes and 20 ms: 4 → {}, {}; 8 → {}, {}.",
            seconds(four.full.run.wall),
            mib(four.full.run.peak_rss_kib),
            seconds(eight.full.run.wall),
            mib(eight.full.run.peak_rss_kib)
        ));
    }
    if let Some(starts) = start_to_first_request(rows) {
        notes.push(format!(
            "Process start → first request (cold quiet cycles): median {} ms over {} starts, \
             {} to {} ms.",
            starts.median.as_millis(),
            starts.count,
            starts.min.as_millis(),
            starts.max.as_millis()
        ));
    }
    notes
}

struct Starts {
    median: Duration,
    min: Duration,
    max: Duration,
    count: usize,
}

fn start_to_first_request(rows: &[Row]) -> Option<Starts> {
    let mut starts: Vec<Duration> = rows
        .iter()
        .filter_map(|r| r.start_to_first_request)
        .collect();
    starts.sort();
    Some(Starts {
        median: *starts.get(starts.len() / 2)?,
        min: *starts.first()?,
        max: *starts.last()?,
        count: starts.len(),
    })
}

/// Every target, met or not: the lines to print, and the misses.
fn check(rows: &[Row]) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut misses = Vec::new();
    let mut verdict = |met: bool, text: String| {
        if met {
            lines.push(format!("met: {text}"));
        } else {
            lines.push(format!("MISSED: {text}"));
            misses.push(text);
        }
    };
    let default_row = |codes: usize, round_trip_ms: u64| {
        rows.iter().find(|r| {
            r.scenario.is_default()
                && r.scenario.codes == codes
                && r.scenario.round_trip_ms == round_trip_ms
        })
    };

    for row in rows {
        let s = &row.scenario;
        let name = s.name();
        let upserts = row.full.salesforce.get("upsert").copied().unwrap_or(0);
        let expected = s.codes.div_ceil(BATCH);
        verdict(
            row.full.status == "ok"
                && upserts == expected
                && row.full.rows_in_salesforce == s.codes,
            format!(
                "{name}: full sync {}, {upserts} upsert calls (target ⌈N/200⌉ = {expected}), \
                 {} rows in Salesforce",
                row.full.status, row.full.rows_in_salesforce
            ),
        );
        let allowed = match s.api {
            CxoneApi::Guide => QUIET_COLD_GUIDE,
            CxoneApi::Admin => QUIET_COLD_ADMIN,
        };
        let cold_cxone_ok = row
            .quiet_cold
            .cxone
            .iter()
            .all(|(endpoint, n)| allowed.contains(&endpoint.as_str()) && *n <= 1);
        let cold_sf: usize = row.quiet_cold.salesforce.values().sum();
        verdict(
            row.quiet_cold.status == "ok" && cold_cxone_ok && cold_sf == 0,
            format!(
                "{name}: quiet cycle, cold: CXone {} (target at most one each of {}), \
                 Salesforce {cold_sf} (target 0)",
                by_kind(&row.quiet_cold.cxone),
                allowed.join(", ")
            ),
        );
        let warm_cxone: usize = row.quiet_warm.cxone.values().sum();
        let warm_sf: usize = row.quiet_warm.salesforce.values().sum();
        verdict(
            row.quiet_warm.status == "ok" && warm_cxone <= 1 && warm_sf == 0,
            format!(
                "{name}: quiet cycle, warm: CXone {} (target 1), Salesforce {warm_sf} (target 0)",
                by_kind(&row.quiet_warm.cxone)
            ),
        );
    }

    match default_row(10_000, 20) {
        Some(row) => verdict(
            row.full.status == "ok" && row.full.run.wall <= FULL_SYNC_10K_20MS,
            format!(
                "first full sync of 10,000 codes at 20 ms: {} (target ≤ {})",
                seconds(row.full.run.wall),
                seconds(FULL_SYNC_10K_20MS)
            ),
        ),
        None => verdict(false, "10,000 codes at 20 ms: not measured".into()),
    }
    for (codes, limit) in [
        (300, RSS_300_MIB),
        (10_000, RSS_10K_MIB),
        (100_000, RSS_100K_MIB),
    ] {
        for row in rows
            .iter()
            .filter(|r| r.scenario.is_default() && r.scenario.codes == codes)
        {
            let peak = kib_to_mib(row.full.run.peak_rss_kib);
            verdict(
                peak <= limit,
                format!(
                    "peak RSS, {} codes at {} ms: {peak:.1} MiB (target ≤ {limit} MiB)",
                    thousands(codes),
                    row.scenario.round_trip_ms
                ),
            );
        }
    }
    match (default_row(100_000, 20), default_row(10_000, 20)) {
        (Some(large), Some(small)) if !small.full.run.wall.is_zero() => {
            let ratio = large.full.run.wall.as_secs_f64() / small.full.run.wall.as_secs_f64();
            verdict(
                large.full.status == "ok" && ratio <= LINEAR_GROWTH,
                format!(
                    "100,000 codes at 20 ms: {} ({}), {ratio:.1} × the 10,000-code time \
                     (target ≤ {LINEAR_GROWTH}: linear growth)",
                    seconds(large.full.run.wall),
                    large.full.status
                ),
            );
        }
        _ => verdict(false, "100,000 codes at 20 ms: not measured".into()),
    }
    match start_to_first_request(rows) {
        Some(starts) => verdict(
            starts.median <= START_TO_FIRST_REQUEST,
            format!(
                "process start → first request: median {} ms (target ≤ {} ms)",
                starts.median.as_millis(),
                START_TO_FIRST_REQUEST.as_millis()
            ),
        ),
        None => verdict(false, "process start → first request: not measured".into()),
    }
    (lines, misses)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn kib_to_mib(kib: u64) -> f64 {
    // Exact enough for a table: KiB counts stay far below 2^52.
    kib as f64 / 1024.0
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib_to_mib(kib))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
