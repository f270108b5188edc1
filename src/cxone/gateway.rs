//! Every HTTP request to CXone, for both sources: counted, carrying the cached token (or none,
//! for discovery documents), and tried again as the one retry loop ([`retry::run`]) decides after
//! a 401, a 429, a 5xx, a timeout or a reset.

use super::CxoneError;
use crate::config::{CxoneSettings, HttpSettings};
use crate::http::{describe_transport_error, oauth_error, snippet};
use crate::retry::{self, Class, Credential, Policy, Throttle, Verdict};
use crate::token::{AuthError, TokenCache, TokenFetcher};
use reqwest::{Response, StatusCode, Url};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tries per request while CXone fails transiently (connection errors, timeouts, 5xx).
pub(super) const ATTEMPTS: u32 = 4;
/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// How many 429s in a row one request may wait out.
const THROTTLE_WAITS: u32 = 5;

/// What CXone answered to one GET, once the retry loop is done with it.
#[derive(Debug)]
pub(super) enum Reply {
    /// The body, checked to be JSON but not parsed into a tree: each caller reads it into the
    /// typed shape it expects ([`Reply::tree`] for those that want a tree).
    Json(Box<RawValue>),
    /// 204: nothing to return.
    NoContent,
    /// 404: no such resource.
    NotFound,
}

pub(super) struct Gateway {
    http: reqwest::Client,
    tokens: TokenCache,
    /// First backoff step when a request fails transiently.
    retry_base: Duration,
    throttle: Throttle,
    /// Shared with the source's token fetcher, so that token requests are counted too.
    requests: Arc<AtomicU64>,
    /// 429 answers so far: a listing reads one page at a time once this moves.
    throttles: AtomicU64,
}

impl Gateway {
    /// `requests` is the counter the token fetcher behind `tokens` also adds to.
    /// A gateway whose tokens come from `fetcher`; `requests` counts every request, the
    /// fetcher's included.
    pub fn new(
        http: reqwest::Client,
        fetcher: Box<dyn TokenFetcher>,
        requests: Arc<AtomicU64>,
        settings: &CxoneSettings,
        http_settings: &HttpSettings,
    ) -> Self {
        let retry_base = http_settings.retry_base_delay;
        Self {
            http,
            tokens: TokenCache::new(fetcher, retry_base),
            retry_base,
            throttle: Throttle::new(THROTTLE_WAITS, settings.default_retry_after),
            requests,
            throttles: AtomicU64::new(0),
        }
    }

    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn throttled_ms(&self) -> u64 {
        self.throttle.waited_ms()
    }

    /// How many 429s CXone answered so far.
    pub fn throttles(&self) -> u64 {
        self.throttles.load(Ordering::Relaxed)
    }

    /// GETs `url` with the cached bearer token.
    pub async fn get(&self, url: &Url) -> Result<Reply, CxoneError> {
        self.send(url, &self.tokens).await
    }

    /// GETs `url` without a token (discovery documents are public).
    pub async fn get_public(&self, url: &Url) -> Result<Reply, CxoneError> {
        self.send(url, &Anonymous).await
    }

    async fn send<C>(&self, url: &Url, credential: &C) -> Result<Reply, CxoneError>
    where
        C: Credential,
        C::Token: Bearer,
    {
        let policy = Policy {
            service: "CXone",
            attempts: ATTEMPTS,
            backoff_base: self.retry_base,
            backoff_cap: MAX_BACKOFF,
            throttle: Some(&self.throttle),
        };
        retry::run(&policy, credential, |token| async move {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .get(url.clone())
                .header("accept", "application/json");
            if let Some(bearer) = token.bearer() {
                request = request.bearer_auth(bearer);
            }
            let verdict = classify(request.send().await).await;
            if matches!(verdict, Verdict::Throttled { .. }) {
                self.throttles.fetch_add(1, Ordering::Relaxed);
            }
            verdict
        })
        .await
    }
}

/// A JSON body as a tree, for the few answers read that way.
pub(super) fn tree(json: &RawValue) -> Result<Value, CxoneError> {
    serde_json::from_str(json.get())
        .map_err(|e| CxoneError::BadResponse(format!("body is not JSON ({e})")))
}

/// What a try presents in its `Authorization` header, if anything.
trait Bearer {
    fn bearer(&self) -> Option<&str>;
}

impl Bearer for Arc<crate::token::Token> {
    fn bearer(&self) -> Option<&str> {
        Some(crate::token::Token::bearer(self))
    }
}

impl Bearer for () {
    fn bearer(&self) -> Option<&str> {
        None
    }
}

/// No token: for the public discovery documents.
struct Anonymous;

impl Credential for Anonymous {
    type Token = ();

    fn current(&self) -> impl Future<Output = Result<(), AuthError>> + Send {
        std::future::ready(Ok(()))
    }

    fn refused(&self, _: &()) {}
}

/// What CXone's answer to one GET means: a reply, or a failure for the retry loop to act on.
async fn classify(sent: reqwest::Result<Response>) -> Verdict<Reply, CxoneError> {
    let response = match sent {
        Ok(response) => response,
        Err(e) => return transient(describe_transport_error(&e)),
    };
    let status = response.status();
    match status {
        StatusCode::UNAUTHORIZED => {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Verdict::Unauthorized(CxoneError::Auth(AuthError::Rejected {
                platform: "CXone",
                status: 401,
                error: oauth_error(&body),
            }));
        }
        StatusCode::TOO_MANY_REQUESTS => {
            return Verdict::Throttled {
                retry_after: retry_after(&response),
                exhausted: CxoneError::Throttled {
                    waits: THROTTLE_WAITS,
                },
            };
        }
        StatusCode::NOT_FOUND => return Verdict::Done(Reply::NotFound),
        StatusCode::NO_CONTENT => return Verdict::Done(Reply::NoContent),
        _ => {}
    }
    let body = match response.text().await {
        // A body cut off mid-way is a reset: worth another try.
        Err(e) => return transient(describe_transport_error(&e)),
        Ok(body) => body,
    };
    if status.is_success() {
        return match serde_json::from_str::<Box<RawValue>>(&body) {
            Ok(json) => Verdict::Done(Reply::Json(json)),
            Err(e) => Verdict::Failed(CxoneError::BadResponse(format!("body is not JSON ({e})"))),
        };
    }
    if retry::http_status(status.as_u16()) == Class::Transient {
        return transient(format!("HTTP {status}"));
    }
    Verdict::Failed(CxoneError::Rejected {
        status: status.as_u16(),
        body: snippet(&body),
    })
}

/// A failure worth another try; once no try is left, CXone counts as unavailable.
fn transient<T>(reason: String) -> Verdict<T, CxoneError> {
    Verdict::Transient {
        exhausted: CxoneError::Unavailable {
            attempts: ATTEMPTS,
            reason: reason.clone(),
        },
        reason,
    }
}

/// Seconds from a `Retry-After` header (the HTTP-date form is rare for APIs and treated as absent).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
