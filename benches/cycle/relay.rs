//! A loopback TCP relay in front of moto that notes when the first connection arrived: the
//! first request a starting `disposition-sync` makes goes to AWS (the secret), so the time from
//! spawn to that connection is the process's start-up, measured from outside.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running relay. Dropping it stops accepting.
pub struct Relay {
    addr: SocketAddr,
    first: Arc<Mutex<Option<Instant>>>,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Relays `127.0.0.1:<free port>` to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let first = Arc::new(Mutex::new(None));
        let noted = first.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                lock(&noted).get_or_insert_with(Instant::now);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Relay {
            addr,
            first,
            accepting,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// When the first connection since the last reset arrived.
    pub fn first_connection(&self) -> Option<Instant> {
        *lock(&self.first)
    }

    pub fn reset(&self) {
        *lock(&self.first) = None;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

fn lock(slot: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
