//! The Admin API's access tokens: the OAuth password grant with the API user's access key, the
//! registered client authenticating with HTTP Basic, posted to the discovered token endpoint.
//! A refresh is a new password grant (always accepted; the refresh token is not needed).

use crate::http::{token_field, token_response};
use crate::secrets::AccessKeyCredentials;
use crate::token::{AuthError, IssuedToken, TokenFetcher};
use async_trait::async_trait;
use reqwest::Url;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

const PLATFORM: &str = "CXone";

/// The lifetime assumed when the token endpoint names none (CXone's tokens live an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest lifetime believed: a token is refreshed at least daily whatever it claims.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The form body. Access keys end in `=` padding; form encoding sends it as `%3D`.
#[derive(Serialize)]
struct PasswordGrant<'a> {
    grant_type: &'static str,
    username: &'a str,
    password: &'a str,
}

pub(super) struct PasswordGrantFetcher {
    pub http: reqwest::Client,
    /// Filled by discovery before the first token is asked for.
    pub endpoint: Arc<OnceCell<Url>>,
    pub credentials: AccessKeyCredentials,
    pub requests: Arc<AtomicU64>,
}

#[async_trait]
impl TokenFetcher for PasswordGrantFetcher {
    async fn fetch(&self) -> Result<IssuedToken, AuthError> {
        let url = self.endpoint.get().ok_or(AuthError::Unavailable {
            platform: PLATFORM,
            reason: "the token endpoint has not been discovered".into(),
        })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let keys = &self.credentials;
        let request = self
            .http
            .post(url.clone())
            .basic_auth(
                &keys.client.client_id,
                Some(keys.client.client_secret.expose_secret()),
            )
            .header("accept", "application/json")
            .form(&PasswordGrant {
                grant_type: "password",
                username: keys.access_key_id.expose_secret(),
                password: keys.access_key_secret.expose_secret(),
            });
        let body = match token_response(request, PLATFORM).await {
            // Throttled: worth another try after a pause, like an outage.
            Err(AuthError::Rejected {
                status: 429, error, ..
            }) => {
                return Err(AuthError::Unavailable {
                    platform: PLATFORM,
                    reason: format!("HTTP 429: {error}"),
                });
            }
            other => other?,
        };
        let access_token = token_field(&body, "access_token", PLATFORM)?;
        Ok(IssuedToken {
            access_token: access_token.into(),
            lifetime: lifetime(&body),
            instance_url: None,
        })
    }
}

/// `expires_in` in seconds (a number or a numeric string), within sane bounds.
fn lifetime(body: &Value) -> Duration {
    let seconds = match body.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME)
        .min(MAX_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `expires_in` sets the lifetime; a missing or unreadable one means an hour; no token is
    /// believed to live longer than a day.
    #[test]
    fn the_lifetime_comes_from_expires_in() {
        assert_eq!(
            lifetime(&json!({"expires_in": 120})),
            Duration::from_secs(120)
        );
        assert_eq!(
            lifetime(&json!({"expires_in": "900"})),
            Duration::from_secs(900)
        );
        assert_eq!(lifetime(&json!({})), DEFAULT_LIFETIME);
        assert_eq!(lifetime(&json!({"expires_in": -5})), DEFAULT_LIFETIME);
        assert_eq!(lifetime(&json!({"expires_in": u64::MAX})), MAX_LIFETIME);
    }

    /// The form encodes the `=` padding of access keys as `%3D`.
    #[test]
    fn access_keys_are_form_encoded() {
        let body = serde_urlencoded_form(&PasswordGrant {
            grant_type: "password",
            username: "AKID==",
            password: "s+c/r=",
        });
        assert_eq!(
            body,
            "grant_type=password&username=AKID%3D%3D&password=s%2Bc%2Fr%3D"
        );
    }

    fn serde_urlencoded_form(form: &PasswordGrant) -> String {
        let request = reqwest::Client::new()
            .post("http://127.0.0.1:1/")
            .form(form)
            .build()
            .unwrap();
        String::from_utf8(request.body().unwrap().as_bytes().unwrap().to_vec()).unwrap()
    }
}
