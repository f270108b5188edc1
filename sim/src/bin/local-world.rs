//! `local-world`: runs the local world (moto with the state table, queues and secret, plus the
//! CXone and Salesforce simulators, all on 127.0.0.1) until SIGINT or SIGTERM, and publishes the
//! environment that points `disposition-sync` at it. Used by `make demo` and `make local-invoke`.

use disposition_sim::process::{StopSignals, print_line, write_atomically};
use disposition_sim::world::LocalWorld;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: local-world [--env-file PATH] [--ready-file PATH] [--seed N]

Starts moto (DynamoDB state table, SQS queues, credentials secret) and the CXone and Salesforce
simulators on 127.0.0.1, then:
  --seed N           adds N disposition codes to the CXone simulator (default 0)
  --env-file PATH    writes the environment disposition-sync needs, as shell-sourceable
                     KEY='VALUE' lines
  --ready-file PATH  creates this file once everything is up and the env file is written
The same environment is printed on stdout as one JSON object. Runs until SIGINT or SIGTERM,
then stops everything (moto included) and removes the ready file.";

/// AWS resource names start with this.
const PREFIX: &str = "local";

#[derive(Debug, Default, PartialEq)]
struct Args {
    env_file: Option<PathBuf>,
    ready_file: Option<PathBuf>,
    seed: usize,
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--env-file" => parsed.env_file = Some(value()?.into()),
            "--ready-file" => parsed.ready_file = Some(value()?.into()),
            "--seed" => {
                let raw = value()?;
                parsed.seed = raw
                    .parse()
                    .map_err(|_| format!("--seed expects a whole number, got {raw:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = parse_args(std::env::args().skip(1));
    disposition_sim::process::main("local-world", USAGE, parsed, run).await
}

async fn run(args: Args) -> Result<(), String> {
    let stop = StopSignals::listen()?;

    let world = LocalWorld::start(PREFIX).await?;
    if args.seed > 0 {
        world.cxone.seed(args.seed);
    }
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
        "local-world: ready (moto pid {} at {}, log {}; CXone at {}; Salesforce at {}; {} codes seeded); \
         stop with SIGINT or SIGTERM",
        world.moto.pid(),
        world.moto.endpoint(),
        world.moto.log_path().display(),
        world.cxone.url(),
        world.salesforce.url(),
        args.seed
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

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments_are_parsed() {
        let args = parse(&["--seed", "300", "--env-file", "a.env", "--ready-file", "r"])
            .unwrap()
            .unwrap();
        assert_eq!(
            args,
            Args {
                env_file: Some("a.env".into()),
                ready_file: Some("r".into()),
                seed: 300
            }
        );
        assert_eq!(parse(&[]).unwrap(), Some(Args::default()));
        assert_eq!(parse(&["--help"]).unwrap(), None);
        assert!(
            parse(&["--seed", "many"])
                .unwrap_err()
                .contains("whole number")
        );
        assert!(parse(&["--seed"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--port", "1"])
                .unwrap_err()
                .contains("unknown argument")
        );
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
