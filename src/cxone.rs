//! The CXone side: where disposition codes come from.
//!
//! [`DispositionSource`] is what the sync engine needs. [`CxoneClient`] implements it for the API
//! described by the implementation guide (`GET /api/v2/dispositions`, page-number paging,
//! snake_case records, client-credentials OAuth). The real CXone Admin API differs in auth,
//! paging and field names; it will be a second implementation of the same trait.

use crate::config::Config;
use crate::domain::{Disposition, DispositionId, SourceRecord, format_ts};
use crate::http::{
    describe_transport_error, join, json_type, oauth_error, snippet, token_field, token_request,
};
use crate::retry::{self, Class};
use crate::secrets::ClientCredentials;
use crate::token::{AuthError, IssuedToken, TokenCache, TokenFetcher};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CxoneError {
    #[error("CXone authentication failed: {0}")]
    Auth(#[from] AuthError),
    #[error("CXone kept throttling (HTTP 429) after {waits} waits")]
    Throttled { waits: u32 },
    #[error("CXone unavailable after {attempts} attempts: {reason}")]
    Unavailable { attempts: u32, reason: String },
    #[error("CXone refused the request: HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("CXone sent an unreadable response: {0}")]
    BadResponse(String),
}

/// Where the engine reads disposition codes from.
#[async_trait]
pub trait DispositionSource: Send + Sync {
    /// Every code modified at or after `since` (every code when `None`), in any order; a code may
    /// appear more than once.
    async fn changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<SourceRecord>, CxoneError>;
    /// The current version of one code, `None` when CXone does not know it.
    async fn get(&self, id: &DispositionId) -> Result<Option<SourceRecord>, CxoneError>;
    /// HTTP requests sent so far (token requests included).
    fn requests(&self) -> u64;
    /// Time spent waiting because CXone throttled us, in milliseconds.
    fn throttled_ms(&self) -> u64;
}

/// How hard the client tries before giving up on a request.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts for transient failures (connection errors, timeouts, 5xx).
    pub transient_attempts: u32,
    /// First backoff step for transient failures (exponential with jitter).
    pub transient_base: Duration,
    /// How many 429s in a row one request may wait out.
    pub max_throttle_waits: u32,
    /// Wait after a 429 without `Retry-After`.
    pub default_retry_after: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            transient_attempts: 4,
            transient_base: config.retry_base_delay,
            max_throttle_waits: 5,
            default_retry_after: config.cxone_default_retry_after,
        }
    }
}

/// Client for the guide's CXone API.
pub struct CxoneClient {
    http: reqwest::Client,
    base: Url,
    page_size: u32,
    tokens: TokenCache,
    policy: RetryPolicy,
    requests: std::sync::Arc<AtomicU64>,
    throttled_ms: AtomicU64,
}

impl CxoneClient {
    pub fn new(config: &Config, http: reqwest::Client, credentials: ClientCredentials) -> Self {
        let requests = std::sync::Arc::new(AtomicU64::new(0));
        let fetcher = CxoneTokenFetcher {
            http: http.clone(),
            url: config.cxone_token_url.clone(),
            credentials,
            requests: requests.clone(),
        };
        Self {
            http,
            base: config.cxone_base_url.clone(),
            page_size: config.cxone_page_size,
            tokens: TokenCache::new(Box::new(fetcher), config.retry_base_delay),
            policy: RetryPolicy::from_config(config),
            requests,
            throttled_ms: AtomicU64::new(0),
        }
    }

    /// GETs `url` with the retry rules; `Ok(None)` on 404.
    async fn get_json(&self, url: Url) -> Result<Option<Value>, CxoneError> {
        let mut transient_failures = 0;
        let mut throttle_waits = 0;
        let mut reauthenticated = false;
        loop {
            let token = self.tokens.get().await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(token.bearer())
                .header("accept", "application/json")
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    transient_failures += 1;
                    let reason = describe_transport_error(&e);
                    if transient_failures >= self.policy.transient_attempts {
                        return Err(CxoneError::Unavailable {
                            attempts: transient_failures,
                            reason,
                        });
                    }
                    tracing::warn!(%reason, attempt = transient_failures, "CXone request failed; retrying");
                    tokio::time::sleep(retry::exponential_jitter(
                        transient_failures,
                        self.policy.transient_base,
                        Duration::from_secs(20),
                    ))
                    .await;
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if reauthenticated {
                    // A token fresh from the token endpoint is refused too: an authentication
                    // failure (credentials revoked or rotated), not an outage.
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    return Err(CxoneError::Auth(AuthError::Rejected {
                        platform: "CXone",
                        status: 401,
                        error: oauth_error(&body),
                    }));
                }
                // The token expired or was revoked early: fetch a new one and retry once.
                tracing::info!("CXone answered 401; refreshing the token and retrying once");
                self.tokens.invalidate(&token).await;
                reauthenticated = true;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                throttle_waits += 1;
                if throttle_waits > self.policy.max_throttle_waits {
                    return Err(CxoneError::Throttled {
                        waits: throttle_waits - 1,
                    });
                }
                let wait = retry_after(&response).unwrap_or(self.policy.default_retry_after);
                tracing::warn!(
                    wait_ms = wait.as_millis() as u64,
                    "CXone throttled the request (429); waiting"
                );
                self.throttled_ms
                    .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status == StatusCode::NO_CONTENT {
                return Ok(Some(Value::Array(vec![])));
            }
            let body = response
                .text()
                .await
                .map_err(|e| CxoneError::BadResponse(e.to_string()))?;
            if status.is_success() {
                return serde_json::from_str(&body)
                    .map(Some)
                    .map_err(|e| CxoneError::BadResponse(format!("body is not JSON ({e})")));
            }
            if retry::http_status(status.as_u16()) == Class::Transient {
                transient_failures += 1;
                if transient_failures >= self.policy.transient_attempts {
                    return Err(CxoneError::Unavailable {
                        attempts: transient_failures,
                        reason: format!("HTTP {status}"),
                    });
                }
                tracing::warn!(%status, attempt = transient_failures, "CXone server error; retrying");
                tokio::time::sleep(retry::exponential_jitter(
                    transient_failures,
                    self.policy.transient_base,
                    Duration::from_secs(20),
                ))
                .await;
                continue;
            }
            return Err(CxoneError::Rejected {
                status: status.as_u16(),
                body: snippet(&body),
            });
        }
    }
}

#[async_trait]
impl DispositionSource for CxoneClient {
    async fn changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<SourceRecord>, CxoneError> {
        let mut out = Vec::new();
        let mut previous_first: Option<Value> = None;
        for page in 1u32.. {
            let mut url = join(&self.base, "api/v2/dispositions");
            {
                let mut q = url.query_pairs_mut();
                if let Some(since) = since {
                    q.append_pair("last_modified_date", &format_ts(since));
                }
                q.append_pair("page", &page.to_string());
                q.append_pair("pageSize", &self.page_size.to_string());
            }
            let body = self.get_json(url).await?.unwrap_or(Value::Array(vec![]));
            let items = page_items(body)?;
            // A server that ignores `page` would make us loop forever: stop on a repeated page.
            if !items.is_empty() && items.first() == previous_first.as_ref() {
                return Err(CxoneError::BadResponse(format!(
                    "page {page} repeats page {}: paging is ignored",
                    page - 1
                )));
            }
            previous_first = items.first().cloned();
            let count = items.len();
            out.extend(items.into_iter().map(parse_record));
            if count < self.page_size as usize {
                break;
            }
        }
        Ok(out)
    }

    async fn get(&self, id: &DispositionId) -> Result<Option<SourceRecord>, CxoneError> {
        let mut url = join(&self.base, "api/v2/dispositions");
        url.path_segments_mut()
            .expect("base URL can have path segments")
            .push(id.as_str());
        Ok(self.get_json(url).await?.map(parse_record))
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn throttled_ms(&self) -> u64 {
        self.throttled_ms.load(Ordering::Relaxed)
    }
}

/// A page is a bare JSON array or an object with a `dispositions` array.
fn page_items(body: Value) -> Result<Vec<Value>, CxoneError> {
    match body {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => match map.remove("dispositions") {
            Some(Value::Array(items)) => Ok(items),
            Some(Value::Null) | None => Ok(vec![]),
            Some(_) => Err(CxoneError::BadResponse(
                "`dispositions` is not an array".into(),
            )),
        },
        _ => Err(CxoneError::BadResponse(
            "expected a JSON array or an object with `dispositions`".into(),
        )),
    }
}

/// Validates one record of the guide's shape. Anything unexpected makes it `Malformed`, with
/// the raw JSON kept for the dead-letter queue.
pub fn parse_record(raw: Value) -> SourceRecord {
    match validate(&raw) {
        Ok(disposition) => SourceRecord::Valid { disposition, raw },
        Err(reason) => SourceRecord::Malformed { raw, reason },
    }
}

fn validate(raw: &Value) -> Result<Disposition, String> {
    let obj = raw.as_object().ok_or("record is not a JSON object")?;
    let id = match obj.get("id") {
        Some(Value::String(s)) => DispositionId::parse(s).map_err(|e| format!("id: {e}"))?,
        Some(Value::Number(n)) if n.is_u64() => DispositionId::parse(&n.to_string())?,
        Some(Value::Null) | None => return Err("id is missing".into()),
        Some(other) => return Err(format!("id has the wrong type ({})", json_type(other))),
    };
    let text = |key: &str, required: bool| -> Result<Option<String>, String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Null) | None if !required => Ok(None),
            Some(Value::Null) | None => Err(format!("{key} is missing")),
            Some(other) => Err(format!("{key} has the wrong type ({})", json_type(other))),
        }
    };
    let name = text("name", true)?.unwrap_or_default();
    if name.trim().is_empty() {
        return Err("name is empty".into());
    }
    let is_active = match obj.get("is_active") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) | None => return Err("is_active is missing".into()),
        Some(other) => {
            return Err(format!(
                "is_active has the wrong type ({})",
                json_type(other)
            ));
        }
    };
    let last_modified = match text("last_modified_date", true)? {
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map_err(|e| format!("last_modified_date {s:?} is not an RFC 3339 timestamp ({e})"))?
            .with_timezone(&Utc),
        None => unreachable!("required"),
    };
    Ok(Disposition {
        id,
        name,
        description: text("description", false)?,
        category: text("category", false)?.filter(|c| !c.trim().is_empty()),
        is_active,
        last_modified,
    })
}

/// Fetches CXone tokens with the client-credentials grant the guide describes.
struct CxoneTokenFetcher {
    http: reqwest::Client,
    url: Url,
    credentials: ClientCredentials,
    requests: std::sync::Arc<AtomicU64>,
}

const CXONE_SCOPE: &str = "disposition:view disposition:edit";

#[async_trait]
impl TokenFetcher for CxoneTokenFetcher {
    async fn fetch(&self) -> Result<IssuedToken, AuthError> {
        const PLATFORM: &str = "CXone";
        self.requests.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.credentials.client_id.as_str()),
            (
                "client_secret",
                self.credentials.client_secret.expose_secret(),
            ),
            ("scope", CXONE_SCOPE),
        ];
        let body = token_request(&self.http, &self.url, PLATFORM, &form).await?;
        let access_token = token_field(&body, "access_token", PLATFORM)?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        Ok(IssuedToken {
            access_token: access_token.into(),
            lifetime: Duration::from_secs(lifetime),
            instance_url: None,
        })
    }
}

/// Seconds from a `Retry-After` header (the HTTP-date form is rare for APIs and treated as absent).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"id": "a1", "name": "Sale", "description": "d", "category": "Sales", "is_active": true,
               "last_modified_date": "2024-03-15T14:32:00Z", "created_date": "2023-11-01T09:00:00Z"})
    }

    #[test]
    fn valid_records_parse() {
        let SourceRecord::Valid { disposition, .. } = parse_record(good()) else {
            panic!()
        };
        assert_eq!(disposition.id.as_str(), "a1");
        assert_eq!(
            format_ts(disposition.last_modified),
            "2024-03-15T14:32:00.000Z"
        );
    }

    #[test]
    fn malformed_records_say_why() {
        let cases = [
            ("id", Value::Null, "id is missing"),
            ("id", json!(""), "id: id is empty"),
            ("id", json!({"x": 1}), "id has the wrong type"),
            ("last_modified_date", json!("yesterday"), "not an RFC 3339"),
            ("is_active", json!("yes"), "is_active has the wrong type"),
            ("name", json!(12), "name has the wrong type"),
        ];
        for (key, value, expected) in cases {
            let mut raw = good();
            raw[key] = value;
            match parse_record(raw) {
                SourceRecord::Malformed { reason, .. } => {
                    assert!(reason.contains(expected), "{key}: {reason}")
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_record(json!([1])),
            SourceRecord::Malformed { .. }
        ));
    }

    #[test]
    fn pages_are_arrays_or_wrapped() {
        assert_eq!(page_items(json!([1, 2])).unwrap().len(), 2);
        assert_eq!(page_items(json!({"dispositions": [1]})).unwrap().len(), 1);
        assert!(page_items(json!({"dispositions": 3})).is_err());
        assert!(page_items(json!("x")).is_err());
    }
}
