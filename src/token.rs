//! OAuth access tokens, cached in memory across warm invocations and refreshed before expiry.
//!
//! One cache per platform. A token is refreshed once 80% of its lifetime has passed (and at
//! least 60 s before it expires), so requests never carry a token that is about to die. The
//! refresh happens under a lock: concurrent requests wait for the one refresh in progress and
//! never start their own.

use crate::secrets::SecretString;
use async_trait::async_trait;
use reqwest::Url;
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
    /// Distinguishes tokens, so that a 401 invalidates only the token that failed.
    generation: u64,
}

impl Token {
    pub fn bearer(&self) -> &str {
        self.issued.access_token.expose()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint answered and refused (bad client, grant or scope).
    #[error("{platform} refused the credentials: HTTP {status} {error}")]
    Rejected { platform: &'static str, status: u16, error: String },
    /// The token endpoint could not be reached or answered with a server error.
    #[error("{platform} token endpoint unavailable: {reason}")]
    Unavailable { platform: &'static str, reason: String },
}

/// Asks a platform's token endpoint for a new token.
#[async_trait]
pub trait TokenFetcher: Send + Sync {
    async fn fetch(&self) -> Result<IssuedToken, AuthError>;
}

pub struct TokenCache {
    fetcher: Box<dyn TokenFetcher>,
    current: Mutex<Option<Arc<Token>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub fn new(fetcher: Box<dyn TokenFetcher>) -> Self {
        Self { fetcher, current: Mutex::new(None), generation: Default::default() }
    }

    /// A token that is valid and not due for refresh, fetching one if needed.
    pub async fn get(&self) -> Result<Arc<Token>, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let issued = self.fetcher.fetch().await?;
        let token = Arc::new(self.wrap(issued));
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` after the platform rejected it (401). A newer token fetched meanwhile by
    /// another request is kept.
    pub async fn invalidate(&self, stale: &Token) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.generation == stale.generation) {
            *current = None;
        }
    }

    fn wrap(&self, issued: IssuedToken) -> Token {
        let now = Instant::now();
        let lifetime = issued.lifetime;
        // Refresh at 80% of the lifetime, and never later than 60 s before expiry.
        let at_80 = lifetime.mul_f64(0.8);
        let refresh_after = at_80.min(lifetime.saturating_sub(Duration::from_secs(60)));
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Token { refresh_at: now + refresh_after, generation, issued }
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
            Ok(IssuedToken { access_token: SecretString::new(format!("t{n}")), lifetime: self.1, instance_url: None })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_at_80_percent_and_only_once_for_concurrent_callers() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = Arc::new(TokenCache::new(Box::new(Counting(calls.clone(), Duration::from_secs(3600)))));
        let many = futures::future::join_all((0..10).map(|_| {
            let c = cache.clone();
            async move { c.get().await.unwrap().bearer().to_owned() }
        }))
        .await;
        assert!(many.iter().all(|t| t == "t1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(Duration::from_secs(2879)).await; // just under 80%
        assert_eq!(cache.get().await.unwrap().bearer(), "t1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lifetimes_refresh_at_least_60_seconds_early_and_invalidate_only_the_stale_token() {
        let calls = Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(Box::new(Counting(calls.clone(), Duration::from_secs(200))));
        let first = cache.get().await.unwrap();
        tokio::time::advance(Duration::from_secs(141)).await; // 200 - 60 = 140 < 160 (80%)
        let second = cache.get().await.unwrap();
        assert_eq!(second.bearer(), "t2");
        cache.invalidate(&first).await; // stale: must not drop t2
        assert_eq!(cache.get().await.unwrap().bearer(), "t2");
        cache.invalidate(&second).await;
        assert_eq!(cache.get().await.unwrap().bearer(), "t3");
    }
}
