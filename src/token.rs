//! OAuth access tokens, cached in memory across warm invocations and refreshed before expiry.
//!
//! One cache per platform. Once 80% of a token's lifetime has passed (and at least 60 s before it
//! expires) one background task fetches the next token while requests keep using the current,
//! still valid one: no request waits for a refresh it did not need. Only when there is no usable
//! token (first use, after a 401, or a background refresh that failed until the token is about to
//! expire) do requests wait, and then for the one fetch in progress: every fetch runs under one
//! lock, so concurrent requests never start their own. A token endpoint that is briefly
//! unavailable (network error, 5xx) is tried again with backoff; a refusal is not.

use crate::deadline::DeadlineExceeded;
use crate::retry::{self, Credential, Policy, Verdict};
use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token as the platform issued it.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: SecretString,
    /// How long the platform says (or we assume) the token lives.
    pub lifetime: Duration,
    /// Salesforce's `instance_url`: the REST base for this token.
    pub instance_url: Option<Url>,
}

/// A cached token with its refresh deadline.
#[derive(Debug)]
pub struct Token {
    pub issued: IssuedToken,
    refresh_at: Instant,
    /// Past this a token is not handed out any more: too close to expiry to survive a request.
    usable_until: Instant,
    /// Distinguishes tokens, so that a 401 invalidates only the token that failed.
    generation: u64,
}

impl Token {
    pub fn bearer(&self) -> &str {
        self.issued.access_token.expose_secret()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint answered and refused (bad client, grant or scope).
    #[error("{platform} refused the credentials: HTTP {status} {error}")]
    Rejected {
        platform: &'static str,
        status: u16,
        error: String,
    },
    /// The token endpoint could not be reached or answered with a server error.
    #[error("{platform} token endpoint unavailable: {reason}")]
    Unavailable {
        platform: &'static str,
        reason: String,
    },
    /// No token before the invocation's deadline: not an authentication failure.
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

/// Asks a platform's token endpoint for a new token.
#[async_trait]
pub trait TokenFetcher: Send + Sync {
    async fn fetch(&self) -> Result<IssuedToken, AuthError>;
}

/// The longest lifetime a token is trusted for, whatever its `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// How close to expiry a token stops being handed out.
const EXPIRY_GUARD: Duration = Duration::from_secs(5);

/// Tries per token fetch while the endpoint is unavailable: a blip there must cost a short wait,
/// not the cycle (and not a re-read of the credentials, which are fine).
const FETCH_ATTEMPTS: u32 = 3;
/// The longest wait between two tries of a token fetch.
const FETCH_MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Box<dyn TokenFetcher>,
    /// First backoff step between tries of an unavailable token endpoint.
    retry_base: Duration,
    current: std::sync::Mutex<Option<Arc<Token>>>,
    /// Held for the whole of every fetch: at most one refresh at a time.
    fetching: Mutex<()>,
    /// Whether a background refresh has been started and not finished.
    refreshing: std::sync::atomic::AtomicBool,
    generation: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    /// `retry_base` is the first backoff step when the token endpoint is unavailable.
    pub fn new(fetcher: Box<dyn TokenFetcher>, retry_base: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetcher,
                retry_base,
                current: std::sync::Mutex::new(None),
                fetching: Mutex::new(()),
                refreshing: Default::default(),
                generation: Default::default(),
            }),
        }
    }

    /// A valid token; starts a background refresh when the current one is due, and fetches one
    /// (waiting for it) only when there is no usable token.
    pub async fn get(&self) -> Result<Arc<Token>, AuthError> {
        use std::sync::atomic::Ordering;
        if let Some(token) = self.inner.usable() {
            if Instant::now() >= token.refresh_at
                && !self.inner.refreshing.swap(true, Ordering::AcqRel)
            {
                let (inner, due) = (self.inner.clone(), token.generation);
                tokio::spawn(async move {
                    if let Err(e) = inner.refresh(Some(due)).await {
                        tracing::warn!(error = %e, "background token refresh failed; the next request retries");
                    }
                    inner.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(token);
        }
        self.inner.refresh(None).await
    }

    /// Forgets `stale` after the platform rejected it (401). A newer token fetched meanwhile by
    /// another request is kept.
    pub fn invalidate(&self, stale: &Token) {
        let mut current = self.inner.current.lock().unwrap();
        if current
            .as_ref()
            .is_some_and(|t| t.generation == stale.generation)
        {
            *current = None;
        }
    }
}

/// Requests to a platform carry the cached token; a 401 invalidates it.
impl Credential for TokenCache {
    type Token = Arc<Token>;

    fn current(&self) -> impl Future<Output = Result<Arc<Token>, AuthError>> + Send {
        self.get()
    }

    fn refused(&self, token: &Arc<Token>) {
        self.invalidate(token);
    }
}

/// The token request itself carries no token.
struct NoToken;

impl Credential for NoToken {
    type Token = ();

    fn current(&self) -> impl Future<Output = Result<(), AuthError>> + Send {
        std::future::ready(Ok(()))
    }

    fn refused(&self, _: &()) {}
}

impl Inner {
    fn usable(&self) -> Option<Arc<Token>> {
        self.current
            .lock()
            .unwrap()
            .as_ref()
            .filter(|t| Instant::now() < t.usable_until)
            .cloned()
    }

    /// Fetches a new token under the fetch lock. `replacing` names the token a background refresh
    /// was started for; if someone replaced it meanwhile there is nothing to do. A foreground
    /// call first checks whether the fetch it waited for already produced a usable token.
    async fn refresh(&self, replacing: Option<u64>) -> Result<Arc<Token>, AuthError> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(token) = self.usable() {
            let still_due = replacing.is_some_and(|g| g == token.generation);
            if !still_due {
                return Ok(token);
            }
        }
        let issued = self.fetch().await?;
        let token = Arc::new(self.wrap(issued));
        *self.current.lock().unwrap() = Some(token.clone());
        Ok(token)
    }

    /// One fetch, tried up to [`FETCH_ATTEMPTS`] times with exponential backoff and jitter while
    /// the endpoint is unavailable. A refusal is returned at once: trying again cannot fix it.
    async fn fetch(&self) -> Result<IssuedToken, AuthError> {
        let policy = Policy {
            service: "token endpoint",
            attempts: FETCH_ATTEMPTS,
            backoff_base: self.retry_base,
            backoff_cap: FETCH_MAX_WAIT,
            throttle: None,
        };
        retry::run(&policy, &NoToken, |()| async move {
            match self.fetcher.fetch().await {
                Ok(issued) => Verdict::Done(issued),
                Err(e @ AuthError::Unavailable { .. }) => Verdict::Transient {
                    reason: e.to_string(),
                    exhausted: e,
                },
                Err(refused) => Verdict::Failed(refused),
            }
        })
        .await
    }

    fn wrap(&self, issued: IssuedToken) -> Token {
        let now = Instant::now();
        // A lifetime is remote input: no token is trusted for longer than a day.
        let lifetime = issued.lifetime.min(MAX_LIFETIME);
        // Refresh at 80% of the lifetime, and never later than 60 s before expiry.
        let at_80 = lifetime.mul_f64(0.8);
        let refresh_after = at_80.min(lifetime.saturating_sub(Duration::from_secs(60)));
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        Token {
            refresh_at: now + refresh_after,
            usable_until: now + lifetime.saturating_sub(EXPIRY_GUARD),
            generation,
            issued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>, Duration);

    #[async_trait]
    impl TokenFetcher for Counting {
        async fn fetch(&self) -> Result<IssuedToken, AuthError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(IssuedToken {
                access_token: format!("t{n}").into(),
                lifetime: self.1,
                instance_url: None,
            })
        }
    }

    /// An absurd `expires_in` (remote input) neither panics nor keeps a token for ever.
    #[tokio::test(start_paused = true)]
    async fn an_absurd_lifetime_is_capped_at_a_day() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Box::new(Counting(calls.clone(), Duration::from_secs(u64::MAX))),
            Duration::ZERO,
        );
        assert_eq!(cache.get().await.unwrap().bearer(), "t1");
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
    }

    #[tokio::test(start_paused = true)]
    async fn one_fetch_serves_concurrent_callers_and_the_refresh_at_80_percent_runs_in_the_background()
     {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Box::new(Counting(calls.clone(), Duration::from_secs(3600))),
            Duration::ZERO,
        );
        let many = futures::future::join_all((0..10).map(|_| {
            let c = cache.clone();
            async move { c.get().await.unwrap().bearer().to_owned() }
        }))
        .await;
        assert!(many.iter().all(|t| t == "t1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(Duration::from_secs(2879)).await; // just under 80%
        assert_eq!(cache.get().await.unwrap().bearer(), "t1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        // Due: callers keep the valid token while one background fetch runs.
        let due = futures::future::join_all((0..5).map(|_| {
            let c = cache.clone();
            async move { c.get().await.unwrap().bearer().to_owned() }
        }))
        .await;
        assert!(due.iter().all(|t| t == "t1"), "{due:?}");
        tokio::time::sleep(Duration::from_millis(50)).await; // the fetch takes 10 ms
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lifetimes_refresh_at_least_60_seconds_early_and_invalidate_only_the_stale_token()
    {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Box::new(Counting(calls.clone(), Duration::from_secs(200))),
            Duration::ZERO,
        );
        let first = cache.get().await.unwrap();
        tokio::time::advance(Duration::from_secs(141)).await; // 200 - 60 = 140 < 160 (80%)
        assert_eq!(
            cache.get().await.unwrap().bearer(),
            "t1",
            "still valid while the refresh runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = cache.get().await.unwrap();
        assert_eq!(second.bearer(), "t2");
        cache.invalidate(&first); // stale: must not drop t2
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
        cache.invalidate(&second);
        assert_eq!(cache.get().await.unwrap().bearer(), "t3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_about_to_expire_is_never_handed_out() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Box::new(Counting(calls.clone(), Duration::from_secs(100))),
            Duration::ZERO,
        );
        cache.get().await.unwrap();
        // Skip the background refresh window entirely (the process was frozen, say).
        tokio::time::advance(Duration::from_secs(97)).await;
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
    }

    /// Fails with the scripted errors first, then issues tokens.
    struct Scripted(std::sync::Mutex<Vec<AuthError>>, Arc<AtomicU32>);

    #[async_trait]
    impl TokenFetcher for Scripted {
        async fn fetch(&self) -> Result<IssuedToken, AuthError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            match self.0.lock().unwrap().pop() {
                Some(e) => Err(e),
                None => Ok(IssuedToken {
                    access_token: "t".into(),
                    lifetime: Duration::from_secs(3600),
                    instance_url: None,
                }),
            }
        }
    }

    fn down() -> AuthError {
        AuthError::Unavailable {
            platform: "Test",
            reason: "HTTP 503".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_token_endpoint_is_tried_again_and_a_refusal_is_not() {
        let calls = Arc::new(AtomicU32::new(0));
        let blip = TokenCache::new(
            Box::new(Scripted(
                std::sync::Mutex::new(vec![down(), down()]),
                calls.clone(),
            )),
            Duration::from_millis(100),
        );
        assert_eq!(blip.get().await.unwrap().bearer(), "t");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = Arc::new(AtomicU32::new(0));
        let outage = TokenCache::new(
            Box::new(Scripted(
                std::sync::Mutex::new(vec![down(), down(), down()]),
                calls.clone(),
            )),
            Duration::from_millis(100),
        );
        assert!(matches!(
            outage.get().await,
            Err(AuthError::Unavailable { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), FETCH_ATTEMPTS);

        let calls = Arc::new(AtomicU32::new(0));
        let refused = AuthError::Rejected {
            platform: "Test",
            status: 400,
            error: "invalid_client".into(),
        };
        let rejected = TokenCache::new(
            Box::new(Scripted(
                std::sync::Mutex::new(vec![refused]),
                calls.clone(),
            )),
            Duration::from_millis(100),
        );
        assert!(matches!(
            rejected.get().await,
            Err(AuthError::Rejected { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
