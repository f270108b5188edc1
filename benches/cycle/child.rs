//! One measured run of the release `disposition-sync` binary as a child process: wall time from
//! spawn to exit, and its peak resident set size as the kernel accounted it (`wait4`'s
//! `ru_maxrss`, exact, where polling /proc could miss a short peak).
//!
//! The binary is started through a launcher: this bench executable again, in launcher mode,
//! which starts the binary, waits for it and reports. Linux counts into a process's `ru_maxrss`
//! the peak of the address space it was started from (the parent's, for a vfork-style spawn),
//! so a binary started straight from the bench, which holds whole simulated worlds, would report
//! the bench's peak. The launcher is small and fresh, so what it reports is the binary's own
//! (never less than the launcher's few MiB).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The child being waited for (0: none), so that an interrupted bench can kill it by its id.
static CURRENT: AtomicI32 = AtomicI32::new(0);

/// A run that takes longer than this is killed and reported as failed.
const WATCHDOG: Duration = Duration::from_secs(300);

/// What one run did.
pub struct Run {
    /// When the child was spawned.
    pub spawned: Instant,
    /// From spawn to exit.
    pub wall: Duration,
    /// Peak resident set size, in KiB.
    pub peak_rss_kib: u64,
    /// Exit code 0.
    pub success: bool,
    /// What it printed on stdout: the handler's JSON response.
    pub stdout: String,
    /// Where its log (stderr) went.
    pub log: PathBuf,
}

/// Set (to the report file's path) in the launcher's environment.
const LAUNCHER: &str = "DISPOSITION_BENCH_LAUNCHER_REPORT";

/// Runs `binary` with `args` and exactly the environment `env` (nothing of this process's own),
/// writing its output to `dir/{name}.out` and `dir/{name}.log`.
pub async fn run(
    binary: &Path,
    args: &[&str],
    env: &[(String, String)],
    dir: &Path,
    name: &str,
) -> Result<Run, String> {
    let out_path = dir.join(format!("{name}.out"));
    let log = dir.join(format!("{name}.log"));
    let report = dir.join(format!("{name}.rusage"));
    let create = |path: &Path| {
        File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let launcher =
        std::env::current_exe().map_err(|e| format!("cannot find the bench executable: {e}"))?;
    let mut command = Command::new(launcher);
    command
        .arg(binary)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(LAUNCHER, &report)
        .stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&log)?)
        // Its own process group, so that an interrupted bench kills the binary with it.
        .process_group(0);
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the launcher: {e}"))?;
    let pid = i32::try_from(child.id()).map_err(|_| "a child id out of range".to_owned())?;
    CURRENT.store(pid, Ordering::SeqCst);
    let mut waiting = tokio::task::spawn_blocking(move || child.wait());
    let waited = match tokio::time::timeout(WATCHDOG, &mut waiting).await {
        Ok(waited) => waited,
        Err(_) => {
            kill_current();
            waiting.await
        }
    };
    CURRENT.store(0, Ordering::SeqCst);
    waited
        .map_err(|e| format!("waiting for the launcher: {e}"))?
        .map_err(|e| format!("waiting for the launcher: {e}"))?;
    let reported = std::fs::read_to_string(&report)
        .map_err(|e| format!("the launcher reported nothing ({}): {e}", report.display()))?;
    let (status, wall, peak_rss_kib) = parse_report(&reported)
        .ok_or_else(|| format!("the launcher's report is garbled: {reported:?}"))?;
    let stdout = std::fs::read_to_string(&out_path)
        .map_err(|e| format!("cannot read {}: {e}", out_path.display()))?;
    Ok(Run {
        spawned,
        wall,
        peak_rss_kib,
        success: status == 0,
        stdout,
        log,
    })
}

/// `exit-code wall-nanoseconds maxrss-kib`; an exit code of -1 stands for a death by signal.
fn parse_report(text: &str) -> Option<(i32, Duration, u64)> {
    let mut fields = text.split_whitespace();
    let status = fields.next()?.parse().ok()?;
    let wall = Duration::from_nanos(fields.next()?.parse().ok()?);
    let rss = fields.next()?.parse().ok()?;
    Some((status, wall, rss))
}

/// Launcher mode, when this executable was started by [`run`]: starts the binary named by the
/// first argument with the rest, waits for it, writes the report and exits with its exit code.
/// `None` in the bench itself.
pub fn launcher() -> Option<ExitCode> {
    let report = std::env::var_os(LAUNCHER)?;
    let mut args = std::env::args_os().skip(1);
    let Some(binary) = args.next() else {
        eprintln!("launcher: no binary to run");
        return Some(ExitCode::FAILURE);
    };
    let started = Instant::now();
    let child = Command::new(&binary)
        .args(args)
        .env_remove(LAUNCHER)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!("launcher: cannot start {}: {e}", binary.to_string_lossy());
            return Some(ExitCode::FAILURE);
        }
    };
    let Ok(pid) = i32::try_from(child.id()) else {
        return Some(ExitCode::FAILURE);
    };
    // Reaped by wait4, never through `child`, which only closes its handles when dropped.
    drop(child);
    let (status, rss) = match wait(pid) {
        Ok(waited) => waited,
        Err(e) => {
            eprintln!("launcher: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let wall = started.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let line = format!("{code} {} {rss}\n", wall.as_nanos());
    if let Err(e) = std::fs::write(&report, line) {
        eprintln!("launcher: cannot write {}: {e}", report.to_string_lossy());
        return Some(ExitCode::FAILURE);
    }
    Some(u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from))
}

/// Kills the child being waited for, if any (on Ctrl-C, SIGTERM or the watchdog).
pub fn kill_current() {
    let pid = CURRENT.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) of the process group of a launcher this process spawned and has not
        // reaped yet: the launcher and the binary it started.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Waits for `pid` to exit: its wait status and `ru_maxrss` (KiB on Linux).
fn wait(pid: i32) -> Result<(i32, u64), String> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4(2) with valid pointers to locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 on child {pid}: {error}"));
        }
    }
}
