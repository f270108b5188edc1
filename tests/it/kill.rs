//! The kill test: the real binary is killed with SIGKILL at random points of a cycle, over many
//! trials on one world whose CXone data changes between trials. After each kill, once the
//! killed run's lease has run out, one clean cycle must leave Salesforce equal to CXone with no
//! duplicate external IDs. It runs once against each CXone API.
//!
//! `KILL_TRIALS` (default 8) sets the number of trials and `KILL_SEED` replays a failing run.

use crate::harness::sync;
use crate::props::{describe, mirror_differences, tally};
use crate::support::{endpoints, world_for};
use chrono::Utc;
use disposition_sim::cxone::CxoneApi;
use disposition_sim::world::LocalWorld;
use disposition_sync::watermark::{DynamoDbStateStore, StateStore};
use rstest::rstest;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

/// Starts `disposition-sync invoke --event - <args>` on a `{"action": "sync"}` event with the
/// world's environment overridden by `extra_env`, and returns the running process so that the
/// test can wait for it with [`finish`] or kill it.
pub(crate) async fn start_sync(
    world: &LocalWorld,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> Child {
    start(world, &json!({"action": "sync"}), extra_env, args, true).await
}

/// Starts `invoke` on `event`. Without `capture` its output is discarded: a run that is going
/// to be killed must not block on a full pipe that nobody reads.
async fn start(
    world: &LocalWorld,
    event: &Value,
    extra_env: &[(&str, &str)],
    args: &[&str],
    capture: bool,
) -> Child {
    let output = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_disposition-sync"));
    cmd.args(["invoke", "--event", "-"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(world.env())
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the disposition-sync binary starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(event.to_string().as_bytes()).await.unwrap();
    // Dropping stdin closes it: the binary reads the event to the end.
    child
}

/// Waits for a process from [`start_sync`], asserts that it succeeded and returns its response.
pub(crate) async fn finish(child: Child) -> Value {
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "invoke failed: {stdout}\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\n{stderr}"))
}

/// Moves the lease a killed run left behind into the past, as waiting out its expiry would,
/// without the test sleeping through it. Everything else in the state stays as the run left it.
async fn let_the_lease_expire(world: &LocalWorld) {
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        "dispositions",
    );
    let mut stored = store.load().await.expect("state readable");
    if let Some(lease) = stored.state.lease.as_mut()
        && lease.expires > Utc::now()
    {
        lease.expires = Utc::now() - chrono::Duration::seconds(1);
        store
            .save(&stored.state, stored.version)
            .await
            .expect("nobody else writes the state");
    }
}

/// Edits CXone the way administrators do between cycles: renames, (de)activations, category
/// changes and new codes; enough of them that writing them takes several batches.
fn edit_cxone(world: &LocalWorld, rng: &mut fastrand::Rng, ids: &mut Vec<String>) {
    for _ in 0..rng.usize(5..=30) {
        let id = ids[rng.usize(..ids.len())].clone();
        match rng.u8(0..4) {
            0 => world.cxone.rename(&id, &format!("Renamed {}", rng.u32(..))),
            1 => world.cxone.deactivate(&id),
            2 => world.cxone.reactivate(&id),
            _ => world
                .cxone
                .set_category(&id, ["Sales", "Billing", "General"][rng.usize(..3)]),
        }
    }
    ids.extend(world.cxone.seed(rng.usize(0..=10)));
}

/// When a trial kills its run.
#[derive(Debug)]
enum KillPoint {
    /// After this long: start-up, the state and lease, the CXone pages or the first batches.
    After(Duration),
    /// This long after Salesforce received the run's n-th upsert: in the middle of writing, or
    /// (past the last batch) while it dead-letters and checkpoints.
    AfterUpsert(usize, Duration),
}

/// Waits for the kill point; false if the run ended before it.
async fn reach(
    world: &LocalWorld,
    run: &mut Child,
    point: &KillPoint,
    upserts_before: usize,
) -> bool {
    let (n, delay) = match point {
        KillPoint::After(delay) => (0, *delay),
        KillPoint::AfterUpsert(n, delay) => (*n, *delay),
    };
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while world.salesforce.log().count("upsert") < upserts_before + n {
        if run.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the run neither wrote nor ended in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(delay).await;
    run.try_wait().unwrap().is_none()
}

/// Each trial edits CXone, starts a cycle with slow simulators and kills it with SIGKILL at a
/// random point (alternately a random time from start-up on, and a random moment during the
/// writes), lets its lease expire, runs one clean cycle and checks that Salesforce mirrors
/// CXone exactly, over either API.
#[rstest]
#[case::guide(CxoneApi::Guide)]
#[case::admin(CxoneApi::Admin)]
#[tokio::test]
async fn a_clean_cycle_after_a_sigkill_at_any_point_leaves_salesforce_equal_to_cxone(
    #[case] api: CxoneApi,
) {
    let trials: usize = std::env::var("KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let world = world_for(api).await;
    let mut ids = world.cxone.seed(120);
    // Small pages and batches with some latency: the cycle has many points to be killed at.
    let env = [
        ("CXONE_PAGE_SIZE", "25"),
        ("SF_BATCH_SIZE", "5"),
        ("SF_MAX_IN_FLIGHT", "2"),
    ];
    let slow = |on: bool| {
        let delay = |ms| {
            if on {
                Duration::from_millis(ms)
            } else {
                Duration::ZERO
            }
        };
        world.cxone.set_latency(endpoints(api).list, delay(20));
        world.salesforce.set_latency("upsert", delay(40));
    };
    let first = sync(&world, false, &env).await;
    assert_eq!(first["status"], "ok", "seed {seed}: {first}");

    let (mut killed_running, mut diverged) = (0, 0);
    let (mut timed, mut during_writes) = (0, 0);
    let mut after_clean = [0; 4];
    for trial in 0..trials {
        edit_cxone(&world, &mut rng, &mut ids);
        let full = rng.bool();
        let point = if trial % 2 == 0 {
            timed += 1;
            KillPoint::After(Duration::from_millis(rng.u64(0..500)))
        } else {
            during_writes += 1;
            KillPoint::AfterUpsert(rng.usize(1..=4), Duration::from_millis(rng.u64(0..40)))
        };
        let context = format!("seed {seed}, trial {trial}, killed at {point:?} (full: {full})");
        slow(true);
        let upserts = world.salesforce.log().count("upsert");
        let event = json!({"action": "sync", "full": full});
        let mut doomed = start(&world, &event, &env, &[], false).await;
        if reach(&world, &mut doomed, &point, upserts).await {
            killed_running += 1;
        }
        // The run may have finished before the kill point; that is one of the points too.
        let _ = doomed.start_kill();
        doomed.wait().await.unwrap();
        if !mirror_differences(&world.cxone, &world.salesforce).is_empty() {
            diverged += 1;
        }

        slow(false);
        let_the_lease_expire(&world).await;
        let clean = sync(&world, false, &env).await;
        assert_eq!(clean["status"], "ok", "{context}: {clean}");
        let differences = mirror_differences(&world.cxone, &world.salesforce);
        for (total, n) in after_clean.iter_mut().zip(tally(&differences)) {
            *total += n;
        }
        assert!(
            differences.is_empty(),
            "{context}: Salesforce differs from CXone:\n{}",
            describe(&differences)
        );
    }
    // The closing figures of `make soak`.
    let [lost, duplicated, regressed, other] = after_clean;
    println!(
        "soak: kill ({}): {trials} trials (seed {seed}): {timed} killed at a random time, {during_writes} during the writes; \
         {killed_running} kills hit a running cycle, {diverged} left Salesforce behind CXone; \
         after the clean cycles: lost {lost}, duplicated {duplicated}, regressed {regressed}, other differences {other}",
        api.as_str()
    );
    // Evidence that the kills hit live runs that had work left, not finished ones.
    assert!(
        killed_running * 2 >= trials,
        "seed {seed}: only {killed_running} of {trials} kills hit a running cycle"
    );
    assert!(
        diverged > 0,
        "seed {seed}: no kill left Salesforce behind CXone"
    );
}
