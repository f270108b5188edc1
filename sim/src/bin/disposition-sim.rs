//! `disposition-sim`: runs the CXone and Salesforce simulators on 127.0.0.1 until SIGINT or
//! SIGTERM, and announces their URLs as one JSON line (on stdout and, optionally, in a file that
//! scripts can wait for). `--help` lists the control routes.

use clap::Parser;
use disposition_sim::cxone::{CxoneApi, CxoneConfig, CxoneSim};
use disposition_sim::process::{StopSignals, print_line, remove_if_present, write_atomically};
use disposition_sim::salesforce::{SalesforceConfig, SalesforceSim};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Serves a simulated NICE CXone and a simulated Salesforce org on 127.0.0.1, then prints
/// {"cxone_api", "cxone_url", "cxone_admin_url", "salesforce_url"} as one JSON line.
///
/// CXone serves both APIs from one store; --cxone-api picks the one the control routes speak
/// (ids and record shapes). The Admin API's issuer (discovery, /auth/token) is cxone_url, its
/// dispositions API (api_endpoint) cxone_admin_url; the guide's API is at cxone_url.
///
/// Credentials: CXone client cx-client / cx-secret; Admin API access key id
/// SIMKEYID4FAKE7TENANT2DISPOSITIONSYNCQ6KNZ3Q==== with secret
/// c2ltdWxhdGVkK2FjY2Vzcy9rZXkgc2VjcmV0IQ+/9a== (both form-encode their `=`, `+` and `/`);
/// Salesforce sf-client / sf-secret. Runs until SIGINT or SIGTERM.
#[derive(Debug, PartialEq, Parser)]
// A repeated flag takes its last value instead of being refused.
#[command(name = "disposition-sim", args_override_self = true, after_long_help = CONTROL_ROUTES)]
struct Args {
    /// The CXone API the control routes speak
    #[arg(long, value_enum, value_name = "API", default_value_t = CxoneApi::Admin)]
    cxone_api: CxoneApi,
    /// Port for the CXone issuer origin (0: any free port)
    #[arg(long, value_name = "P", default_value_t = 0)]
    cxone_port: u16,
    /// Port for the CXone Admin API origin (0: any free port)
    #[arg(long, value_name = "P", default_value_t = 0)]
    cxone_admin_port: u16,
    /// Port for the Salesforce simulator (0: any free port)
    #[arg(long, value_name = "Q", default_value_t = 0)]
    sf_port: u16,
    /// Delays every API request to either simulator by MS milliseconds of round trip, paid
    /// concurrently as over a real network (0: none)
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Also writes the JSON line to PATH once both are listening (atomically, so a script can
    /// wait for the file to appear); removed on shutdown
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// Shown by `--help`.
const CONTROL_ROUTES: &str = "\
CXone control routes (on cxone_url, no auth; ids and shapes are those of --cxone-api):
  POST /_sim/seed {\"count\": n}                  seed n codes -> {\"ids\": [...]}
  GET  /_sim/codes                               every code, shape-neutral
  POST /_sim/codes {\"name\", \"category\", ...}     add a code -> it, shape-neutral
  GET  /_sim/dispositions                        every record as the list serves it
  POST /_sim/dispositions {record}               upsert a record in the API's shape
  POST /_sim/dispositions/{id}/rename {\"name\"}    rename
  POST /_sim/dispositions/{id}/deactivate        deactivate (also .../reactivate)
  POST /_sim/dispositions/{id}/category {\"category\"}  re-categorise
  GET  /_sim/counts                              API requests per endpoint
  POST /_sim/faults {\"endpoint\", \"status\", \"retry_after\", \"skip\", \"times\"}
  POST /_sim/latency {\"endpoint\", \"millis\"}
        endpoints: token list get (guide); openid-configuration cxone-configuration
        admin-token admin-list classifications admin-get (Admin API)
  GET|PUT /_sim/admin-modes {\"precision\": 0|3|7, \"zone\": \"Z\"|\"+02:00\"|\"none\",
        \"classification_id_as_string\", \"disposition_id_as_string\",
        \"list_without_is_active\", \"get_wrapped\", \"empty_page_as_200\", \"page_cap\": n, \"max_top\": n}
  POST /_sim/expire-tokens                       expire every access token
Salesforce control routes are under /_sim/ on salesforce_url.";

impl Default for Args {
    fn default() -> Self {
        Args {
            cxone_api: CxoneApi::Admin,
            cxone_port: 0,
            cxone_admin_port: 0,
            sf_port: 0,
            latency_ms: 0,
            ready_file: None,
        }
    }
}

/// The line that tells scripts where everything listens.
#[derive(serde::Serialize)]
struct Announcement {
    cxone_api: CxoneApi,
    cxone_url: String,
    cxone_admin_url: String,
    salesforce_url: String,
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

    let cxone = CxoneSim::start_on(
        CxoneConfig::for_api(args.cxone_api),
        args.cxone_port,
        args.cxone_admin_port,
    )
    .await
    .map_err(|e| {
        format!(
            "cannot start the CXone simulator on ports {} and {}: {e}",
            args.cxone_port, args.cxone_admin_port
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
    let round_trip = Duration::from_millis(args.latency_ms);
    cxone.network().set_round_trip(round_trip);
    salesforce.network().set_round_trip(round_trip);
    let line = serde_json::to_string(&Announcement {
        cxone_api: args.cxone_api,
        cxone_url: cxone.url(),
        cxone_admin_url: cxone.admin_url(),
        salesforce_url: salesforce.url(),
    })
    .map_err(|e| format!("cannot write the announcement: {e}"))?;

    // The file first: whoever reads the stdout line can then count on the file too.
    if let Some(path) = &args.ready_file {
        write_atomically(path, &format!("{line}\n"))?;
    }
    print_line(&line)?;
    eprintln!(
        "disposition-sim: CXone ({} API) at {} (Admin API at {}), Salesforce at {}; stop with SIGINT or SIGTERM",
        args.cxone_api.as_str(),
        cxone.url(),
        cxone.admin_url(),
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
            "--latency-ms",
            "20",
        ]);
        assert_eq!(
            args.unwrap(),
            Args {
                cxone_port: 8081,
                sf_port: 0,
                ready_file: Some("r.json".into()),
                latency_ms: 20,
                ..Args::default()
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
        assert_eq!(
            parse(&["--cxone-api", "guide"]).unwrap().cxone_api,
            CxoneApi::Guide
        );
        assert_refused(
            &["--cxone-api", "v2"],
            ErrorKind::InvalidValue,
            "--cxone-api",
        );
        assert_refused(
            &["--sf-port", "70000"],
            ErrorKind::ValueValidation,
            "--sf-port",
        );
        assert_refused(&["--cxone-port"], ErrorKind::InvalidValue, "--cxone-port");
        assert_refused(&["--seed", "1"], ErrorKind::UnknownArgument, "--seed");
        assert_refused(
            &["--latency-ms", "slow"],
            ErrorKind::ValueValidation,
            "--latency-ms",
        );
    }

    #[test]
    fn the_flags_are_well_formed() {
        Args::command().debug_assert();
    }
}
