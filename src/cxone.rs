//! The CXone side: where disposition codes come from.
//!
//! [`DispositionSource`] is what the sync engine needs. [`CxoneClient`] implements it for the API
//! described by the implementation guide (`GET /api/v2/dispositions`, page-number paging,
//! snake_case records, client-credentials OAuth). The real CXone Admin API differs in auth,
//! paging and field names; it will be a second implementation of the same trait.

use crate::config::{CxoneSettings, HttpSettings};
use crate::deadline::DeadlineExceeded;
use crate::domain::{Disposition, DispositionId, SourceRecord, format_ts};
use crate::http::{
    describe_transport_error, join, json_type, oauth_error, snippet, token_field, token_request,
};
use crate::retry::{self, Class, Policy, Throttle, Verdict};
use crate::secrets::ClientCredentials;
use crate::token::{AuthError, IssuedToken, TokenCache, TokenFetcher};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CxoneError {
    #[error("CXone authentication failed: {0}")]
    Auth(AuthError),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
    #[error("CXone kept throttling (HTTP 429) after {waits} waits")]
    Throttled { waits: u32 },
    #[error("CXone unavailable after {attempts} attempts: {reason}")]
    Unavailable { attempts: u32, reason: String },
    #[error("CXone refused the request: HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("CXone sent an unreadable response: {0}")]
    BadResponse(String),
}

impl From<AuthError> for CxoneError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Deadline(d) => Self::Deadline(d),
            e => Self::Auth(e),
        }
    }
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

/// Tries per request while CXone fails transiently (connection errors, timeouts, 5xx).
const ATTEMPTS: u32 = 4;
/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// How many 429s in a row one request may wait out.
const THROTTLE_WAITS: u32 = 5;

/// Client for the guide's CXone API.
pub struct CxoneClient {
    http: reqwest::Client,
    base: Url,
    page_size: u32,
    tokens: TokenCache,
    /// First backoff step when a request fails transiently.
    retry_base: Duration,
    throttle: Throttle,
    requests: std::sync::Arc<AtomicU64>,
}

impl CxoneClient {
    pub fn new(
        config: &CxoneSettings,
        http_config: &HttpSettings,
        http: reqwest::Client,
        credentials: ClientCredentials,
    ) -> Self {
        let requests = std::sync::Arc::new(AtomicU64::new(0));
        let fetcher = CxoneTokenFetcher {
            http: http.clone(),
            url: config.token_url.clone(),
            credentials,
            requests: requests.clone(),
        };
        let retry_base = http_config.retry_base_delay;
        Self {
            http,
            base: config.base_url.clone(),
            page_size: config.page_size,
            tokens: TokenCache::new(Box::new(fetcher), retry_base),
            retry_base,
            throttle: Throttle::new(THROTTLE_WAITS, config.default_retry_after),
            requests,
        }
    }

    /// GETs `url` with the retry rules; `Ok(None)` on 404.
    async fn get_json(&self, url: Url) -> Result<Option<Value>, CxoneError> {
        let policy = Policy {
            service: "CXone",
            attempts: ATTEMPTS,
            backoff_base: self.retry_base,
            backoff_cap: MAX_BACKOFF,
            throttle: Some(&self.throttle),
        };
        retry::run(&policy, &self.tokens, |token| {
            let url = url.clone();
            async move {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let sent = self
                    .http
                    .get(url)
                    .bearer_auth(token.bearer())
                    .header("accept", "application/json")
                    .send()
                    .await;
                classify(sent).await
            }
        })
        .await
    }
}

/// What CXone's answer to one GET means: the JSON body (`None` for 404, no records for 204), or
/// a failure for the retry loop to act on.
async fn classify(sent: reqwest::Result<Response>) -> Verdict<Option<Value>, CxoneError> {
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
        StatusCode::NOT_FOUND => return Verdict::Done(None),
        StatusCode::NO_CONTENT => return Verdict::Done(Some(Value::Array(vec![]))),
        _ => {}
    }
    let body = match response.text().await {
        Ok(body) => body,
        Err(e) => return Verdict::Failed(CxoneError::BadResponse(e.to_string())),
    };
    if status.is_success() {
        return match serde_json::from_str(&body) {
            Ok(json) => Verdict::Done(Some(json)),
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
        self.throttle.waited_ms()
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
fn retry_after(response: &Response) -> Option<Duration> {
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
