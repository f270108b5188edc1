//! `local-world`: runs the local world (moto with the state table, queues and secret, plus the
//! CXone and Salesforce simulators, all on 127.0.0.1) until SIGINT or SIGTERM, and publishes the
//! environment that points `disposition-sync` at it. Used by `make demo` and `make local-invoke`.

use clap::Parser;
use disposition_sim::cxone::CxoneApi;
use disposition_sim::process::{StopSignals, print_line, write_atomically};
use disposition_sim::world::LocalWorld;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// AWS resource names start with this.
const PREFIX: &str = "local";

/// Starts moto (DynamoDB state table, SQS queues, credentials secret) and the CXone and
/// Salesforce simulators on 127.0.0.1, for disposition-sync to run against.
///
/// The environment that points disposition-sync at them is printed on stdout as one JSON
/// object. Runs until SIGINT or SIGTERM, then stops everything (moto included) and removes the
/// ready file.
#[derive(Debug, PartialEq, Parser)]
// A repeated flag takes its last value instead of being refused.
#[command(name = "local-world", args_override_self = true)]
struct Args {
    /// The CXone API the world speaks: the environment and secret are that source's
    #[arg(long, value_enum, value_name = "API", default_value_t = CxoneApi::Admin)]
    cxone_api: CxoneApi,
    /// Adds N disposition codes to the CXone simulator
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: usize,
    /// Delays every API request to either simulator by MS milliseconds of round trip, paid
    /// concurrently as over a real network (0: none)
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Writes the environment disposition-sync needs, as shell-sourceable KEY='VALUE' lines
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Creates this file once everything is up and the env file is written
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            cxone_api: CxoneApi::Admin,
            seed: 0,
            latency_ms: 0,
            env_file: None,
            ready_file: None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    disposition_sim::process::main("local-world", run(Args::parse())).await
}

async fn run(args: Args) -> Result<(), String> {
    let stop = StopSignals::listen()?;

    let world = LocalWorld::start(PREFIX, args.cxone_api).await?;
    if args.seed > 0 {
        world.cxone.seed(args.seed);
    }
    world.set_round_trip(Duration::from_millis(args.latency_ms));
    let env = world.env();
    if let Some(path) = &args.env_file {
        write_atomically(path, &env_file(&env))?;
    }
    let json: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    print_line(&serde_json::Value::Object(json).to_string())?;
    if let Some(path) = &args.ready_file {
        write_atomically(path, "")?;
    }
    eprintln!(
        "local-world: ready (moto pid {} at {}, log {}; CXone {} API at {}, Admin API host {}; \
         Salesforce at {}; {} codes seeded; {} ms round trip); stop with SIGINT or SIGTERM",
        world.moto.pid(),
        world.moto.endpoint(),
        world.moto.log_path().display(),
        world.cxone.api().as_str(),
        world.cxone.url(),
        world.cxone.admin_url(),
        world.salesforce.url(),
        args.seed,
        args.latency_ms
    );

    stop.wait().await;
    eprintln!("local-world: stopping");
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    drop(world);
    Ok(())
}

/// `KEY='VALUE'` lines: single quotes keep every character literal in a POSIX shell, and a single
/// quote inside a value is written as `'\''`.
fn env_file(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(name, value)| format!("{name}='{}'\n", value.replace('\'', r"'\''")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(["local-world"].iter().chain(args))
    }

    /// A refusal of kind `kind`, exit code 2, whose message names `flag`.
    fn assert_refused(args: &[&str], kind: ErrorKind, flag: &str) {
        let error = parse(args).unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        assert_eq!(error.exit_code(), 2, "{error}");
        assert!(error.to_string().contains(flag), "{error}");
    }

    #[test]
    fn arguments_are_parsed() {
        let args = parse(&[
            "--seed",
            "300",
            "--latency-ms",
            "20",
            "--env-file",
            "a.env",
            "--ready-file",
            "r",
        ])
        .unwrap();
        assert_eq!(
            args,
            Args {
                cxone_api: CxoneApi::Admin,
                env_file: Some("a.env".into()),
                ready_file: Some("r".into()),
                seed: 300,
                latency_ms: 20,
            }
        );
        assert_eq!(parse(&[]).unwrap(), Args::default());
        assert_eq!(parse(&["--seed", "1", "--seed", "2"]).unwrap().seed, 2);
        assert_eq!(
            parse(&["--cxone-api", "guide"]).unwrap().cxone_api,
            CxoneApi::Guide
        );
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
        assert_refused(&["--seed", "many"], ErrorKind::ValueValidation, "--seed");
        assert_refused(&["--seed"], ErrorKind::InvalidValue, "--seed");
        assert_refused(&["--latency-ms", "-1"], ErrorKind::UnknownArgument, "-1");
        assert_refused(
            &["--latency-ms", "fast"],
            ErrorKind::ValueValidation,
            "--latency-ms",
        );
        assert_refused(&["--port", "1"], ErrorKind::UnknownArgument, "--port");
    }

    #[test]
    fn the_flags_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_env_file_survives_a_shell() {
        let env = vec![
            ("PLAIN".to_owned(), "http://127.0.0.1:5000".to_owned()),
            ("TRICKY".to_owned(), "it's $HOME `x` \"q\"".to_owned()),
        ];
        let dir = std::env::temp_dir().join(format!("local-world-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("world.env");
        write_atomically(&path, &env_file(&env)).unwrap();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#". "$1" && printf '%s\n%s' "$PLAIN" "$TRICKY""#)
            .arg("sh")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "http://127.0.0.1:5000\nit's $HOME `x` \"q\""
        );
    }
}
