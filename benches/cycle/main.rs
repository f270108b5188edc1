//! Benchmarks of whole sync cycles against the local world (moto plus both simulators on
//! loopback), run by `make bench`. Each scenario prints what it measured and fails the run when
//! a target is missed: these targets are checked here, never in timed tests.
//!
//! Targets (loopback, debug or release build alike):
//! - a first full cycle of 300 codes: at most 2 upsert calls and under 5 s;
//! - a first full cycle of 5,000 codes: at most 25 upsert calls and under 30 s;
//! - a delta with nothing changed: no upsert call, and under 2 s;
//! - peak resident memory of the process (the simulators included) under 512 MiB.

use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::LocalWorld;
use disposition_sync::config::Config;
use disposition_sync::handler::App;
use serde_json::json;
use std::time::{Duration, Instant};

struct Target {
    name: &'static str,
    max_upserts: usize,
    max_time: Duration,
}

#[tokio::main]
async fn main() {
    let mut failures = Vec::new();
    for (codes, full, delta) in [
        (
            300,
            Target {
                name: "full 300",
                max_upserts: 2,
                max_time: Duration::from_secs(5),
            },
            Target {
                name: "idle delta 300",
                max_upserts: 0,
                max_time: Duration::from_secs(2),
            },
        ),
        (
            5000,
            Target {
                name: "full 5000",
                max_upserts: 25,
                max_time: Duration::from_secs(30),
            },
            Target {
                name: "idle delta 5000",
                max_upserts: 0,
                max_time: Duration::from_secs(2),
            },
        ),
    ] {
        let world = LocalWorld::start(&format!("bench{codes}"), CxoneApi::Guide)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        world.cxone.seed(codes);
        let app = app(&world);
        for target in [full, delta] {
            let upserts_before = world.salesforce.log().count("upsert");
            let started = Instant::now();
            let response = app
                .handle(json!({"action": "sync"}), "bench", None)
                .await
                .expect("the handler runs");
            let elapsed = started.elapsed();
            let upserts = world.salesforce.log().count("upsert") - upserts_before;
            println!(
                "{:<16} {:>6} ms  status {:<8} upserts {:>3}  salesforce requests {:>3}  cxone requests {:>3}",
                target.name,
                elapsed.as_millis(),
                response["status"].as_str().unwrap_or("?"),
                upserts,
                response["salesforce_requests"],
                response["cxone_requests"]
            );
            if response["status"] != "ok" {
                failures.push(format!("{}: status {}", target.name, response["status"]));
            }
            if upserts > target.max_upserts {
                failures.push(format!(
                    "{}: {upserts} upsert calls, target at most {}",
                    target.name, target.max_upserts
                ));
            }
            if elapsed > target.max_time {
                failures.push(format!(
                    "{}: {elapsed:?}, target under {:?}",
                    target.name, target.max_time
                ));
            }
        }
        assert_eq!(world.salesforce.records().len(), codes);
    }
    let peak = peak_rss_mib();
    println!("peak resident memory: {peak} MiB (target under 512 MiB)");
    if peak >= 512 {
        failures.push(format!("peak resident memory {peak} MiB"));
    }
    if !failures.is_empty() {
        eprintln!("targets missed:\n  {}", failures.join("\n  "));
        std::process::exit(1);
    }
    println!("all targets met");
}

fn app(world: &LocalWorld) -> App {
    let env: std::collections::HashMap<String, String> = world.env().into_iter().collect();
    let config = Config::from_lookup(|k| env.get(k).cloned())
        .expect("the local world's configuration is valid");
    App::with_sdk(config, &world.sdk).expect("the app builds")
}

/// `VmHWM` of this process, from /proc (Linux).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
