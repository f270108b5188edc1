//! Plumbing shared by the simulator binaries: stop signals, and the files and lines that tell a
//! waiting script the servers are up.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The end of a simulator binary's `main` (clap has already answered `--help` and bad flags):
/// a failed run prints its error, prefixed with the binary's `name`, and exits 1.
pub async fn main(name: &str, run: impl Future<Output = Result<(), String>>) -> ExitCode {
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT, listened for from the start so that a signal during start-up is not lost.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    pub fn listen() -> Result<Self, String> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())
                .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?,
            interrupt: signal(SignalKind::interrupt())
                .map_err(|e| format!("cannot listen for SIGINT: {e}"))?,
        })
    }

    /// Returns when either signal arrives.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Prints one line on stdout and flushes it, so a reader of a pipe sees it at once.
pub fn print_line(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

pub fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes through a temporary file in the same folder and a rename, so that a reader polling
/// for the file never sees it half-written.
pub fn write_atomically(path: &Path, contents: &str) -> Result<(), String> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, contents)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
}
