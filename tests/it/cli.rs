//! The binary's command line: help, the `invoke` command's flags, and what is refused.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_disposition-sync"))
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("the disposition-sync binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every way of asking for help prints it on stdout and succeeds; it names both modes, the
/// flags and where the configuration comes from.
#[test]
fn help_explains_both_modes_and_the_configuration() {
    for ask in ["--help", "-h", "help"] {
        let out = run(&[ask]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{ask}: {help}");
        for needle in [
            "AWS_LAMBDA_RUNTIME_API",
            "invoke",
            "--event",
            "--timeout-seconds",
            "SECRET_ID",
            "AWS_ENDPOINT_URL",
        ] {
            assert!(help.contains(needle), "{ask}: no {needle:?} in\n{help}");
        }
    }
}

/// Outside Lambda, no arguments, unknown commands and malformed flags exit 2 with the usage or
/// a message naming the flag.
#[test]
fn bad_command_lines_exit_2() {
    for (args, needle) in [
        (&[][..], "usage"),
        (&["sync"][..], "usage"),
        (&["invoke"][..], "--event"),
        (
            &["invoke", "--event", "-", "--timeout-seconds", "0"][..],
            "--timeout-seconds",
        ),
        (
            &["invoke", "--event", "-", "--timeout-seconds", "soon"][..],
            "--timeout-seconds",
        ),
        (
            &[
                "invoke",
                "--event",
                "-",
                "--timeout-seconds",
                "9223372036854775807",
            ][..],
            "--timeout-seconds",
        ),
    ] {
        let out = run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(needle),
            "{args:?}: no {needle:?} in\n{stderr}"
        );
    }
}

/// An event that cannot be read is the run's failure (exit 1), not a usage error.
#[test]
fn an_unreadable_event_exits_1() {
    let out = run(&["invoke", "--event", "/nonexistent/event.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot read the event"));
}

/// An event with the same key twice (`{"action":"sync","action":"purge"}`) is refused before
/// anything runs, naming the key, instead of running whichever came last.
#[test]
fn an_event_with_a_duplicate_key_is_refused() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_disposition-sync"))
        .args(["invoke", "--event", "-"])
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the disposition-sync binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"action": "sync", "action": "purge", "dry_run": false}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(r#"the key "action" appears twice"#),
        "{}",
        text(&out.stderr)
    );
}
