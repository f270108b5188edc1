//! The `disposition-sync` binary: the Lambda function, or one local invocation of it.

use disposition_sync::config::Config;
use disposition_sync::handler::App;
use std::io::Read;
use std::process::ExitCode;

const HELP: &str = "\
disposition-sync: mirrors NICE CXone disposition codes into Salesforce.

USAGE:
    disposition-sync                      Run as an AWS Lambda function (when AWS_LAMBDA_RUNTIME_API is set)
    disposition-sync invoke --event FILE [--timeout-seconds N]
                                          Run the handler once on the event in FILE (`-` for stdin), print its
                                          JSON response on stdout, log on stderr; exit 0 when the handler
                                          returned Ok, 1 otherwise. --timeout-seconds gives the run a deadline
                                          like a Lambda timeout (default: none; the lease then lasts 15 min)
    disposition-sync --help               Show this help

Configuration comes from environment variables (SECRET_ID, STATE_TABLE, DLQ_URL, SF_LOGIN_URL, ...; see the
README). AWS endpoints and region come from the SDK's standard settings (AWS_REGION, AWS_ENDPOINT_URL).";

#[tokio::main]
async fn main() -> ExitCode {
    disposition_sync::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && args.is_empty() {
        return run_lambda().await;
    }
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--help"] | ["-h"] | ["help"] => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        ["invoke", "--event", path] => invoke(path, None).await,
        ["invoke", "--event", path, "--timeout-seconds", secs]
        | ["invoke", "--timeout-seconds", secs, "--event", path] => match secs.parse::<u64>() {
            Ok(secs) if secs > 0 => invoke(path, Some(secs)).await,
            _ => {
                eprintln!(
                    "--timeout-seconds needs a whole number of seconds above 0, got {secs:?}"
                );
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{HELP}");
            ExitCode::from(2)
        }
    }
}

async fn run_lambda() -> ExitCode {
    let app = match start().await {
        Ok(app) => app,
        Err(message) => {
            tracing::error!(%message, "startup failed");
            return ExitCode::FAILURE;
        }
    };
    let app = &app;
    let handler = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            // A deadline already in the past is not a real one (local emulators send placeholders such
            // as 600000 ms after the epoch): run without one rather than stop before starting.
            let deadline = chrono::DateTime::from_timestamp_millis(event.context.deadline as i64)
                .filter(|d| *d > chrono::Utc::now());
            app.handle(event.payload, &event.context.request_id, deadline)
                .await
        },
    );
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// Runs the same handler once, as the Lambda runtime would with a default context.
async fn invoke(path: &str, timeout_seconds: Option<u64>) -> ExitCode {
    let deadline =
        timeout_seconds.map(|s| chrono::Utc::now() + chrono::Duration::seconds(s as i64));
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    let event = match text
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}")))
    {
        Ok(event) => event,
        Err(e) => {
            eprintln!("cannot read the event {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match start().await {
        Ok(app) => app,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    match app.handle(event, &request_id, deadline).await {
        Ok(response) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response).expect("JSON serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let diagnostic = lambda_runtime::Diagnostic::from(e);
            let body = serde_json::json!({"errorType": diagnostic.error_type, "errorMessage": diagnostic.error_message});
            println!(
                "{}",
                serde_json::to_string_pretty(&body).expect("JSON serializes")
            );
            ExitCode::FAILURE
        }
    }
}

async fn start() -> Result<App, String> {
    let config = Config::from_env().map_err(|e| format!("configuration error: {e}"))?;
    App::new(config)
        .await
        .map_err(|e| format!("startup error: {e}"))
}
