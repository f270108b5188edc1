//! `disposition-sim`: runs the CXone and Salesforce simulators on 127.0.0.1 until SIGINT or
//! SIGTERM, and announces their URLs as one JSON line (on stdout and, optionally, in a file that
//! scripts can wait for).

use disposition_sim::cxone::{CxoneConfig, CxoneSim};
use disposition_sim::process::{StopSignals, print_line, remove_if_present, write_atomically};
use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: disposition-sim [--cxone-port P] [--sf-port Q] [--ready-file PATH]

Serves a simulated NICE CXone (the guide's dispositions API) and a simulated Salesforce org on
127.0.0.1, then prints {\"cxone_url\": ..., \"salesforce_url\": ...} as one JSON line.
  --cxone-port P     port for the CXone simulator (default 0: any free port)
  --sf-port Q        port for the Salesforce simulator (default 0: any free port)
  --ready-file PATH  also writes the JSON line to PATH once both are listening (atomically,
                     so a script can wait for the file to appear); removed on shutdown
Credentials: CXone cx-client / cx-secret, Salesforce sf-client / sf-secret. Both simulators
take seeding and fault commands under /_sim/. Runs until SIGINT or SIGTERM.";

#[derive(Debug, Default, PartialEq)]
struct Args {
    cxone_port: u16,
    sf_port: u16,
    ready_file: Option<PathBuf>,
}

/// `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--cxone-port" => parsed.cxone_port = port(&arg, &value()?)?,
            "--sf-port" => parsed.sf_port = port(&arg, &value()?)?,
            "--ready-file" => parsed.ready_file = Some(value()?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

fn port(flag: &str, raw: &str) -> Result<u16, String> {
    raw.parse()
        .map_err(|_| format!("{flag} expects a port number from 0 to 65535, got {raw:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = parse_args(std::env::args().skip(1));
    disposition_sim::process::main("disposition-sim", USAGE, parsed, run).await
}

async fn run(args: Args) -> Result<(), String> {
    let stop = StopSignals::listen()?;
    // A file left by a run that was killed outright would announce dead URLs to a waiting script.
    if let Some(path) = &args.ready_file {
        remove_if_present(path)?;
    }

    let cxone = CxoneSim::start_on(CxoneConfig::default(), args.cxone_port)
        .await
        .map_err(|e| {
            format!(
                "cannot start the CXone simulator on port {}: {e}",
                args.cxone_port
            )
        })?;
    let salesforce = SalesforceSim::start_on(SalesforceConfig::default(), args.sf_port)
        .await
        .map_err(|e| {
            format!(
                "cannot start the Salesforce simulator on port {}: {e}",
                args.sf_port
            )
        })?;
    let line = serde_json::json!({"cxone_url": cxone.url(), "salesforce_url": salesforce.url()})
        .to_string();

    // The file first: whoever reads the stdout line can then count on the file too.
    if let Some(path) = &args.ready_file {
        write_atomically(path, &format!("{line}\n"))?;
    }
    print_line(&line)?;
    eprintln!(
        "disposition-sim: CXone at {}, Salesforce at {}; stop with SIGINT or SIGTERM",
        cxone.url(),
        salesforce.url()
    );

    stop.wait().await;
    eprintln!("disposition-sim: stopping");
    if let Some(path) = &args.ready_file {
        remove_if_present(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments_are_parsed() {
        let args = parse(&[
            "--cxone-port",
            "8081",
            "--sf-port",
            "0",
            "--ready-file",
            "r.json",
        ]);
        assert_eq!(
            args.unwrap().unwrap(),
            Args {
                cxone_port: 8081,
                sf_port: 0,
                ready_file: Some("r.json".into())
            }
        );
        assert_eq!(parse(&[]).unwrap(), Some(Args::default()));
        assert_eq!(parse(&["-h"]).unwrap(), None);
        assert!(
            parse(&["--sf-port", "70000"])
                .unwrap_err()
                .contains("port number")
        );
        assert!(
            parse(&["--cxone-port"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&["--seed", "1"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
