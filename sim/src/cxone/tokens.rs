//! Issued tokens and when each stops working: the guide's opaque access tokens, and the Admin
//! API's JWT access and refresh tokens. Validity is tracked here by instant rather than read
//! from a JWT's `exp`, so that `expire_tokens` and sub-second lifetimes work the same for both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Tokens {
    access: HashMap<String, Instant>,
    refresh: HashMap<String, Instant>,
}

impl Tokens {
    /// A new opaque access token valid for `ttl`.
    pub fn issue(&mut self, ttl: Duration) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.register_access(token.clone(), ttl);
        token
    }

    /// Accepts `token` as an access token for `ttl`.
    pub fn register_access(&mut self, token: String, ttl: Duration) {
        self.access.insert(token, Instant::now() + ttl);
    }

    pub fn register_refresh(&mut self, token: String, ttl: Duration) {
        self.refresh.insert(token, Instant::now() + ttl);
    }

    pub fn is_valid(&self, token: &str) -> bool {
        live(&self.access, token)
    }

    pub fn is_valid_refresh(&self, token: &str) -> bool {
        live(&self.refresh, token)
    }

    /// Every access token issued so far, expired ones included.
    pub fn issued(&self) -> Vec<String> {
        self.access.keys().cloned().collect()
    }

    /// Every refresh token issued so far, expired ones included.
    pub fn issued_refresh(&self) -> Vec<String> {
        self.refresh.keys().cloned().collect()
    }

    /// Expires every access token issued so far. Refresh tokens stay valid: a client that
    /// answers a 401 by refreshing should succeed.
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for expiry in self.access.values_mut() {
            *expiry = now;
        }
    }
}

fn live(tokens: &HashMap<String, Instant>, token: &str) -> bool {
    tokens
        .get(token)
        .is_some_and(|expiry| Instant::now() < *expiry)
}
