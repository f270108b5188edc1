//! Serving a simulator on 127.0.0.1 and counting what it was asked.

use axum::Router;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A running server. Dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `router` on `127.0.0.1:port` (0 = a free port) on the current tokio runtime.
pub async fn serve(router: Router, port: u16) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Running {
        addr,
        stop: Some(stop),
    })
}

/// One request as the simulator saw it, for assertions about what the client sent.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Endpoint name, e.g. `token`, `upsert`, `query`, `list`.
    pub endpoint: String,
    pub method: String,
    /// Path and query string.
    pub uri: String,
    /// The body, when it was JSON or form text.
    pub body: Option<String>,
}

/// Request counts per endpoint plus the full request log.
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestLog {
    pub fn record(&self, request: RecordedRequest) {
        self.inner.lock().unwrap().push(request);
    }
    /// How many requests reached `endpoint`.
    pub fn count(&self, endpoint: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count()
    }
    /// Requests per endpoint.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.inner.lock().unwrap().iter() {
            *out.entry(r.endpoint.clone()).or_default() += 1;
        }
        out
    }
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.inner.lock().unwrap().clear();
    }
}
