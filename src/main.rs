//! The `disposition-sync` binary: the Lambda function, or one local invocation of it.

use clap::{Parser, Subcommand, ValueEnum};
use disposition_sync::config::Config;
use disposition_sync::handler::App;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// disposition-sync: mirrors NICE CXone disposition codes into Salesforce.
#[derive(Parser)]
#[command(
    override_usage = "disposition-sync             Run as an AWS Lambda function (when AWS_LAMBDA_RUNTIME_API is set)\n       \
                      disposition-sync <COMMAND>",
    flatten_help = true,
    arg_required_else_help = true,
    after_help = "Configuration comes from environment variables (SECRET_ID, STATE_TABLE, DLQ_URL, \
                  SF_LOGIN_URL, ...; see the README). AWS endpoints and region come from the SDK's \
                  standard settings (AWS_REGION, AWS_ENDPOINT_URL)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the handler once on the event, as the Lambda runtime would: its JSON response goes to
    /// stdout, the log to stderr; exits 0 when the handler returned Ok, 1 otherwise
    Invoke {
        /// The event: a JSON file, or `-` for stdin
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// Give the run a deadline like a Lambda timeout (default: none; the lease then lasts 15 min)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout_seconds: Option<u64>,
        /// Take the sync's lease even if another run holds it: after a local run was killed
        /// mid-cycle, instead of waiting for its lease to expire. The other run, if it is still
        /// alive, then fails its final write rather than overwriting this one's
        #[arg(long)]
        take_over_lease: bool,
        /// How to print the response: the JSON the Lambda would return, or a short human summary
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Text,
}

/// One thread: the work is waiting on the network, concurrency comes from async requests in
/// flight, and a second worker thread would only add its stack and allocator arena to the
/// memory every cycle pays for (measured in `make bench`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    disposition_sync::telemetry::init();
    // Lambda starts the binary without arguments; anywhere else a bare run prints the help.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1 {
        return run_lambda().await;
    }
    match Cli::parse().command {
        Command::Invoke {
            event,
            timeout_seconds,
            take_over_lease,
            format,
        } => invoke(&event, timeout_seconds, take_over_lease, format).await,
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
        move |event: lambda_runtime::LambdaEvent<Box<serde_json::value::RawValue>>| async move {
            // A deadline already in the past is not a real one (local emulators send placeholders such
            // as 600000 ms after the epoch): run without one rather than stop before starting.
            let deadline = chrono::DateTime::from_timestamp_millis(event.context.deadline as i64)
                .filter(|d| *d > chrono::Utc::now());
            // The payload is read here rather than by the runtime, so that a duplicate key is an
            // error instead of last-one-wins.
            let payload = disposition_sync::event::read(event.payload.get())
                .map_err(disposition_sync::handler::HandlerError::from)?;
            app.handle(payload, &event.context.request_id, deadline)
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
async fn invoke(
    path: &Path,
    timeout_seconds: Option<u64>,
    take_over_lease: bool,
    format: Format,
) -> ExitCode {
    let deadline =
        timeout_seconds.map(|s| chrono::Utc::now() + chrono::Duration::seconds(s as i64));
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    let event = match text
        .map_err(|e| e.to_string())
        .and_then(|t| disposition_sync::event::read(&t).map_err(|e| e.to_string()))
    {
        Ok(event) => event,
        Err(e) => {
            eprintln!("cannot read the event {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let app = match start().await {
        Ok(app) if take_over_lease => app.take_over_lease(),
        Ok(app) => app,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    // An error prints the body Lambda reports for a failed invocation ({errorType, errorMessage}).
    let (body, code) = match app.handle(event, &request_id, deadline).await {
        Ok(response) => (response, ExitCode::SUCCESS),
        Err(e) => (
            serde_json::to_value(lambda_runtime::Diagnostic::from(e)).expect("JSON serializes"),
            ExitCode::FAILURE,
        ),
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&body).expect("JSON serializes")
        ),
        Format::Text => print!("{}", disposition_sync::text::render(&body)),
    }
    code
}

async fn start() -> Result<App, String> {
    let config = Config::from_env().map_err(|e| format!("configuration error: {e}"))?;
    App::new(config)
        .await
        .map_err(|e| format!("startup error: {e}"))
}
