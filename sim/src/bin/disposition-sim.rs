//! `disposition-sim`: runs the CXone and Salesforce simulators on 127.0.0.1 until SIGINT or
//! SIGTERM, and announces their URLs as one JSON line (on stdout and, optionally, in a file that
//! scripts can wait for).

use clap::Parser;
use disposition_sim::cxone::{CxoneConfig, CxoneSim};
use disposition_sim::process::{StopSignals, print_line, remove_if_present, write_atomically};
use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serves a simulated NICE CXone (the guide's dispositions API) and a simulated Salesforce org on
/// 127.0.0.1, then prints {"cxone_url": ..., "salesforce_url": ...} as one JSON line.
///
/// Credentials: CXone cx-client / cx-secret, Salesforce sf-client / sf-secret. Both simulators
/// take seeding and fault commands under /_sim/. Runs until SIGINT or SIGTERM.
#[derive(Debug, Default, PartialEq, Parser)]
// A repeated flag takes its last value instead of being refused.
#[command(name = "disposition-sim", args_override_self = true)]
struct Args {
    /// Port for the CXone simulator (0: any free port)
    #[arg(long, value_name = "P", default_value_t = 0)]
    cxone_port: u16,
    /// Port for the Salesforce simulator (0: any free port)
    #[arg(long, value_name = "Q", default_value_t = 0)]
    sf_port: u16,
    /// Also writes the JSON line to PATH once both are listening (atomically, so a script can
    /// wait for the file to appear); removed on shutdown
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    disposition_sim::process::main("disposition-sim", run(Args::parse())).await
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
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(["disposition-sim"].iter().chain(args))
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
            "--cxone-port",
            "8081",
            "--sf-port",
            "0",
            "--ready-file",
            "r.json",
        ]);
        assert_eq!(
            args.unwrap(),
            Args {
                cxone_port: 8081,
                sf_port: 0,
                ready_file: Some("r.json".into())
            }
        );
        assert_eq!(parse(&[]).unwrap(), Args::default());
        assert_eq!(
            parse(&["--sf-port", "1", "--sf-port", "2"])
                .unwrap()
                .sf_port,
            2
        );
        assert_eq!(parse(&["-h"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_refused(
            &["--sf-port", "70000"],
            ErrorKind::ValueValidation,
            "--sf-port",
        );
        assert_refused(&["--cxone-port"], ErrorKind::InvalidValue, "--cxone-port");
        assert_refused(&["--seed", "1"], ErrorKind::UnknownArgument, "--seed");
    }

    #[test]
    fn the_flags_are_well_formed() {
        Args::command().debug_assert();
    }
}
