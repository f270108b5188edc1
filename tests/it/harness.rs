//! Running the real `disposition-sync` binary against a local world, and reading back what it
//! left in DynamoDB and SQS.

use disposition_sim::world::LocalWorld;
use disposition_sync::dlq::DeadLetter;
use disposition_sync::watermark::{DynamoDbStateStore, StateStore, SyncState};
use serde_json::Value;
use std::process::Stdio;

/// What one `disposition-sync invoke` run produced.
pub struct Run {
    pub success: bool,
    pub response: Value,
    pub stderr: String,
}

/// Runs `disposition-sync invoke --event -` with `event` on stdin and the world's environment,
/// overridden by `extra`.
pub async fn invoke(world: &LocalWorld, event: &Value, extra: &[(&str, &str)]) -> Run {
    let (success, stdout, stderr) = invoke_with(world, event, &[], extra).await;
    let response = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    Run {
        success,
        response,
        stderr,
    }
}

/// Runs `disposition-sync invoke --event - <args>` like [`invoke`]; returns whether it
/// succeeded, its stdout and its stderr.
pub async fn invoke_with(
    world: &LocalWorld,
    event: &Value,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_disposition-sync"));
    cmd.args(["invoke", "--event", "-"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the disposition-sync binary starts");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(event.to_string().as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), stdout, stderr)
}

/// Runs a sync cycle (`{"action": "sync"}`, optionally full) and asserts the process succeeded.
pub async fn sync(world: &LocalWorld, full: bool, extra: &[(&str, &str)]) -> Value {
    let run = invoke(
        world,
        &serde_json::json!({"action": "sync", "full": full}),
        extra,
    )
    .await;
    assert!(
        run.success,
        "invoke failed: {}\n{}",
        run.response, run.stderr
    );
    run.response
}

/// The sync's state item as the binary left it.
pub async fn state(world: &LocalWorld) -> SyncState {
    let store = DynamoDbStateStore::new(
        aws_sdk_dynamodb::Client::new(&world.sdk),
        &world.aws.table,
        "dispositions",
    );
    store.load().await.expect("state readable").state
}

/// Every dead letter now in the DLQ (not consumed).
pub async fn dead_letters(world: &LocalWorld) -> Vec<DeadLetter> {
    disposition_sim::world::queue_bodies(&world.sdk, &world.aws.dlq_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("DLQ bodies are dead letters"))
        .collect()
}

/// The newest modification time in the CXone simulator.
pub fn newest_cxone_timestamp(world: &LocalWorld) -> chrono::DateTime<chrono::Utc> {
    world
        .cxone
        .codes()
        .iter()
        .map(|c| c.last_modified)
        .max()
        .expect("CXone has records")
}

/// Asserts that Salesforce mirrors every valid CXone code: same name, activity and timestamp,
/// one record per external ID.
pub fn assert_mirrored(world: &LocalWorld) {
    let records = world.salesforce.records();
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        let id = r.fields["CXone_DispositionId__c"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(seen.insert(id.clone()), "duplicate external id {id}");
    }
    for code in world.cxone.codes() {
        let id = &code.external_id;
        let row = world
            .salesforce
            .record(id)
            .unwrap_or_else(|| panic!("{id} missing in Salesforce"));
        assert_eq!(row.fields["Name"], code.name.as_str(), "{id} name");
        assert_eq!(row.fields["IsActive__c"], code.is_active, "{id} active");
    }
}
