//! A moto server process: DynamoDB, SQS and Secrets Manager on a loopback port, started for a test
//! (or the local world) and killed by PID when its handle is dropped.
//!
//! moto is a Python program, so it runs as a child process rather than in-process. The executable
//! is looked up in this order: the `MOTO_SERVER` environment variable, the workspace's
//! `.venv/bin/moto_server` (what `make setup` installs), then `moto_server` on `PATH`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long moto may take to answer its first request: usually well under a second, but Python
/// imports are slow on a machine busy compiling, and many tests start a server at once.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How many ports to try when another process takes the chosen port before moto binds it.
const PORT_ATTEMPTS: usize = 3;
const INSTALL_HINT: &str = "run `make setup` (or `pip install 'moto[server]==5.2.5'`), or set MOTO_SERVER to the moto_server executable";

/// Distinguishes the log folders of several servers started by one process.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running moto server on `127.0.0.1`. Dropping it kills the process (SIGKILL) and waits for it.
pub struct Moto {
    child: Child,
    port: u16,
    log_dir: PathBuf,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers `GET /moto-api/`.
    ///
    /// Blocks for up to 15 s; call it from `spawn_blocking` inside an async runtime.
    pub fn start() -> Result<Moto, String> {
        let executable = find_executable()?;
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match launch(&executable, free_port()?)? {
                Launch::Ready(moto) => return Ok(moto),
                Launch::PortTaken(error) => last_error = error,
            }
        }
        Err(format!(
            "moto server could not get a free port after {PORT_ATTEMPTS} attempts: {last_error}"
        ))
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL for every AWS service.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// moto's own output (stdout and stderr), removed when the handle is dropped.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join("moto.log")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

fn stop(child: &mut Child) {
    // Errors mean the process is already gone, which is the goal.
    let _ = child.kill();
    let _ = child.wait();
}

enum Launch {
    Ready(Moto),
    /// Another process bound the port between `free_port` and moto's bind.
    PortTaken(String),
}

fn launch(executable: &Path, port: u16) -> Result<Launch, String> {
    let log_dir = std::env::temp_dir().join(format!(
        "disposition-sim-moto-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
    let log_path = log_dir.join("moto.log");
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;

    let spawned = Command::new(executable)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&log_dir);
            return Err(format!(
                "moto server could not be started from {}: {e}; {INSTALL_HINT}",
                executable.display()
            ));
        }
    };
    let mut moto = Moto {
        child,
        port,
        log_dir,
    };

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            let tail = log_tail(&moto.log_path());
            let message = format!(
                "moto server ({}) exited with {status} before answering:\n{tail}",
                executable.display()
            );
            // Dropping `moto` removes the log folder; the tail is already in the message.
            return if tail.contains("Address already in use") {
                Ok(Launch::PortTaken(message))
            } else {
                Err(format!("{message}\n{INSTALL_HINT}"))
            };
        }
        // After the exit check: a moto that lost its port exits at once, so an answer here comes
        // from ours rather than from whoever took the port.
        if answers(port) {
            return Ok(Launch::Ready(moto));
        }
        if Instant::now() >= deadline {
            stop(&mut moto.child);
            return Err(format!(
                "moto server ({}) did not answer on {} within {} s:\n{}",
                executable.display(),
                moto.endpoint(),
                READY_TIMEOUT.as_secs(),
                log_tail(&moto.log_path())
            ));
        }
        sleep(Duration::from_millis(50));
    }
}

/// Whether `GET /moto-api/` on the port answers 200. A plain socket keeps an HTTP client out of
/// this crate's dependencies.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line).is_ok()
        && status_line.starts_with(b"HTTP/1.")
        && status_line.ends_with(b" 200")
}

/// A port that was free a moment ago. moto binds it itself, so another process may take it first;
/// [`Moto::start`] then tries again.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

fn find_executable() -> Result<PathBuf, String> {
    if let Some(configured) = std::env::var_os("MOTO_SERVER").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(configured);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "moto server not found: MOTO_SERVER={} is not a file; {INSTALL_HINT}",
                path.display()
            ))
        };
    }
    // This crate lives in `<workspace>/sim`.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sim/ has a parent");
    let venv = workspace.join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file());
    on_path.ok_or_else(|| {
        format!(
            "moto server not found: {INSTALL_HINT} (looked at MOTO_SERVER, {} and PATH)",
            venv.display()
        )
    })
}

/// The last lines of moto's log, for error messages.
fn log_tail(path: &Path) -> String {
    const LINES: usize = 20;
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => "(moto wrote nothing)".to_owned(),
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs moto installed (`make setup`); `make test` provides it.
    #[test]
    fn starts_answers_and_is_killed_on_drop() {
        let moto = Moto::start().unwrap();
        let port = moto.port;
        assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
        assert!(answers(port));
        let log_dir = moto.log_dir.clone();
        assert!(moto.log_path().is_file());
        drop(moto);
        assert!(!answers(port), "moto still answers after drop");
        assert!(!log_dir.exists());
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines() {
        let dir =
            std::env::temp_dir().join(format!("disposition-sim-moto-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("moto.log");
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            tail.starts_with("line 11\n") && tail.ends_with("line 30"),
            "{tail}"
        );
    }
}
