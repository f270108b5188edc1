//! The Salesforce side: where the mirror lives.
//!
//! [`RecordSink`] is what the sync engine needs. [`SalesforceClient`] implements it with the
//! OAuth client-credentials flow against the org's My Domain and sObject Collections upsert by
//! external ID (`PATCH /composite/sobjects/{object}/{field}`, up to 200 records a call), reading
//! every per-record result, because HTTP 200 does not mean the records were written.

use crate::config::{HttpSettings, SalesforceSettings};
use crate::deadline::DeadlineExceeded;
use crate::http::{
    check_transport, client_credentials_token, describe_transport_error, join, snippet, token_field,
};
use crate::record::SObject;
use crate::retry::{self, Class, Policy, Verdict};
use crate::secrets::ClientCredentials;
use crate::token::{AuthError, IssuedToken, TokenCache, TokenFetcher};
use async_trait::async_trait;
use reqwest::{Method, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The per-record result of an upsert.
#[derive(Clone, Debug, PartialEq)]
pub enum UpsertOutcome {
    /// Written as a new record; the record's Salesforce id, when the result gives it.
    Created(Option<String>),
    /// Written over an existing record.
    Updated(Option<String>),
    Failed(RecordError),
}

/// Failures of a whole request (per-record failures are [`UpsertOutcome::Failed`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    #[error("Salesforce authentication failed: {0}")]
    Auth(AuthError),
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
    #[error("Salesforce rejected the session even after a token refresh")]
    SessionRejected,
    #[error("Salesforce API request limit exceeded (REQUEST_LIMIT_EXCEEDED)")]
    RequestLimit,
    #[error("Salesforce request failed transiently: {0}")]
    Transient(String),
    #[error("Salesforce refused the request: HTTP {status} {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("Salesforce sent an unreadable response: {0}")]
    BadResponse(String),
}

impl From<AuthError> for SalesforceError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Deadline(d) => Self::Deadline(d),
            e => Self::Auth(e),
        }
    }
}

impl SalesforceError {
    pub fn class(&self) -> Class {
        match self {
            SalesforceError::Transient(_) => Class::Transient,
            _ => Class::Permanent,
        }
    }
}

/// The org's API usage as last reported in `Sforce-Limit-Info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=N/M`, tolerating the `; per-app-api-usage=...` and `; api-bursts=...` suffixes.
    pub fn parse(header: &str) -> Option<Self> {
        let part = header
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("api-usage="))?;
        let (used, max) = part.split_once('/')?;
        Some(Self {
            used: used.trim().parse().ok()?,
            max: max.trim().parse().ok()?,
        })
    }

    /// Percentage of the daily allowance used (may exceed 100 with burst allowance).
    pub fn percent(&self) -> f64 {
        if self.max == 0 {
            100.0
        } else {
            self.used as f64 * 100.0 / self.max as f64
        }
    }
}

/// Why Salesforce refused one record (or, in its terms, why the mapping could not build one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The body of an sObject Collections upsert.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CollectionsUpsert<'a> {
    all_or_none: bool,
    records: &'a [SObject<'a>],
}

/// Where the engine writes records.
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// Upserts up to 200 records by external ID; one outcome per record, in order.
    async fn upsert(&self, records: &[SObject<'_>]) -> Result<Vec<UpsertOutcome>, SalesforceError>;
    /// The object's field metadata (lengths, picklist values).
    async fn describe(&self) -> Result<ObjectSchema, SalesforceError>;
    /// Hands every row a SOQL query returns to `each`, page by page as `nextRecordsUrl` is
    /// followed, so that a caller keeps only what it needs of each row (not every page's JSON).
    async fn query_each(
        &self,
        soql: &str,
        each: &mut (dyn FnMut(Value) + Send),
    ) -> Result<(), SalesforceError>;
    /// Every row a SOQL query returns.
    async fn query(&self, soql: &str) -> Result<Vec<Value>, SalesforceError> {
        let mut rows = Vec::new();
        self.query_each(soql, &mut |row| rows.push(row)).await?;
        Ok(rows)
    }
    /// Deletes up to 200 records by Salesforce Id (only the retention purge does this).
    async fn delete(&self, ids: &[String])
    -> Result<Vec<Result<(), RecordError>>, SalesforceError>;
    /// HTTP requests sent so far (token requests included).
    fn requests(&self) -> u64;
    /// API usage as last seen.
    fn api_usage(&self) -> Option<ApiUsage>;
}

/// What the sync needs to know about one field of the object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldInfo {
    /// Maximum length in characters, for text fields.
    pub length: Option<usize>,
    /// Active picklist values, for picklists.
    pub picklist: Option<Vec<String>>,
    pub restricted: bool,
}

/// The object's fields by API name, from describe.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectSchema {
    pub fields: std::collections::HashMap<String, FieldInfo>,
}

impl ObjectSchema {
    /// Reads the `fields` array of a describe response.
    pub fn from_describe(body: &Value) -> Result<Self, String> {
        let fields = body
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("describe has no `fields` array")?;
        let mut out = std::collections::HashMap::new();
        for f in fields {
            let Some(name) = f.get("name").and_then(Value::as_str) else {
                continue;
            };
            let kind = f.get("type").and_then(Value::as_str).unwrap_or_default();
            let length = match kind {
                "string" | "textarea" | "email" | "url" | "phone" => f
                    .get("length")
                    .and_then(Value::as_u64)
                    .filter(|l| *l > 0)
                    .map(|l| l as usize),
                _ => None,
            };
            let picklist = (kind == "picklist" || kind == "multipicklist").then(|| {
                f.get("picklistValues")
                    .and_then(Value::as_array)
                    .map(|values| {
                        values
                            .iter()
                            .filter(|v| v.get("active").and_then(Value::as_bool).unwrap_or(true))
                            .filter_map(|v| {
                                v.get("value").and_then(Value::as_str).map(str::to_owned)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
            let restricted = f
                .get("restrictedPicklist")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.insert(
                name.to_owned(),
                FieldInfo {
                    length,
                    picklist,
                    restricted,
                },
            );
        }
        Ok(Self { fields: out })
    }

    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.get(name)
    }
}

pub struct SalesforceClient {
    http: reqwest::Client,
    api_version: String,
    object: String,
    external_id_field: String,
    tokens: TokenCache,
    /// First backoff step when a read fails transiently.
    retry_base: Duration,
    requests: std::sync::Arc<AtomicU64>,
    usage: Mutex<Option<ApiUsage>>,
}

/// Tries per read (GET: describe, query pages) when Salesforce fails transiently. Writes are not
/// retried here: the engine retries them per record, and counts it.
const READ_ATTEMPTS: u32 = 3;
/// The most pages one query may have: a million rows at the smallest page size Salesforce uses.
const MAX_QUERY_PAGES: usize = 5_000;
/// The longest wait between two tries of a read.
const READ_MAX_WAIT: Duration = Duration::from_secs(10);

impl SalesforceClient {
    pub fn new(
        config: &SalesforceSettings,
        http_config: &HttpSettings,
        http: reqwest::Client,
        credentials: ClientCredentials,
    ) -> Self {
        let requests = std::sync::Arc::new(AtomicU64::new(0));
        let fetcher = SalesforceTokenFetcher {
            http: http.clone(),
            url: join(&config.login_url, "services/oauth2/token"),
            credentials,
            ttl: config.token_ttl,
            requests: requests.clone(),
        };
        let retry_base = http_config.retry_base_delay;
        Self {
            http,
            api_version: config.api_version.clone(),
            object: config.target.object.clone(),
            external_id_field: config.target.external_id_field.clone(),
            tokens: TokenCache::new(Box::new(fetcher), retry_base),
            retry_base,
            requests,
            usage: Mutex::new(None),
        }
    }

    /// Sends one REST call to `{instance_url}/services/data/v{ver}/{path}`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<(StatusCode, String), SalesforceError> {
        let versioned = format!("services/data/v{}/{}", self.api_version, path);
        self.call_url(method, |instance| join(instance, &versioned), body)
            .await
    }

    /// Sends one REST call to the URL `url` builds from the instance URL, refreshing the token
    /// and retrying once on 401, and retrying a read (GET) that fails transiently with
    /// exponential backoff and jitter, up to [`READ_ATTEMPTS`] tries. Returns the status and the
    /// body text.
    async fn call_url(
        &self,
        method: Method,
        url: impl Fn(&Url) -> Url,
        body: Option<&str>,
    ) -> Result<(StatusCode, String), SalesforceError> {
        let policy = Policy {
            service: "Salesforce",
            attempts: if method == Method::GET {
                READ_ATTEMPTS
            } else {
                1
            },
            backoff_base: self.retry_base,
            backoff_cap: READ_MAX_WAIT,
            throttle: None,
        };
        let url = &url;
        retry::run(&policy, &self.tokens, |token| {
            let method = method.clone();
            async move {
                let Some(instance) = &token.issued.instance_url else {
                    return Verdict::Failed(SalesforceError::BadResponse(
                        "token has no instance_url".into(),
                    ));
                };
                let mut request = self
                    .http
                    .request(method, url(instance))
                    .bearer_auth(token.bearer())
                    .header("accept", "application/json");
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_owned());
                }
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.classify(request.send().await).await
            }
        })
        .await
    }

    /// What Salesforce's answer to one call means: the status and body of a success, or a
    /// failure for the retry loop to act on. Notes the API usage the answer reports.
    async fn classify(
        &self,
        sent: reqwest::Result<Response>,
    ) -> Verdict<(StatusCode, String), SalesforceError> {
        let response = match sent {
            Ok(response) => response,
            Err(e) => return transient(describe_transport_error(&e)),
        };
        if let Some(usage) = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)
        {
            *self.usage.lock().unwrap() = Some(usage);
        }
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return transient(describe_transport_error(&e)),
        };
        if status == StatusCode::UNAUTHORIZED {
            return Verdict::Unauthorized(SalesforceError::SessionRejected);
        }
        if status.is_success() {
            return Verdict::Done((status, text));
        }
        let (code, message) = request_error(&text);
        if status == StatusCode::FORBIDDEN && code == "REQUEST_LIMIT_EXCEEDED" {
            return Verdict::Failed(SalesforceError::RequestLimit);
        }
        if retry::http_status(status.as_u16()) != Class::Transient
            && retry::salesforce_code(&code) != Class::Transient
        {
            return Verdict::Failed(SalesforceError::Rejected {
                status: status.as_u16(),
                code,
                message,
            });
        }
        transient(format!("HTTP {status} {code}: {message}"))
    }
}

/// A failure worth another try (of a read); the last one is the request's failure.
fn transient<T>(reason: String) -> Verdict<T, SalesforceError> {
    Verdict::Transient {
        exhausted: SalesforceError::Transient(reason.clone()),
        reason,
    }
}

#[async_trait]
impl RecordSink for SalesforceClient {
    async fn upsert(&self, records: &[SObject<'_>]) -> Result<Vec<UpsertOutcome>, SalesforceError> {
        let path = format!(
            "composite/sobjects/{}/{}",
            self.object, self.external_id_field
        );
        let body = serde_json::to_string(&CollectionsUpsert {
            all_or_none: false,
            records,
        })
        .map_err(|e| SalesforceError::BadResponse(format!("the upsert body: {e}")))?;
        let (_, text) = self.call(Method::PATCH, &path, Some(&body)).await?;
        let results: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
            SalesforceError::BadResponse(format!("upsert result is not a JSON array ({e})"))
        })?;
        if results.len() != records.len() {
            return Err(SalesforceError::BadResponse(format!(
                "{} results for {} records",
                results.len(),
                records.len()
            )));
        }
        Ok(results.iter().map(upsert_outcome).collect())
    }

    async fn describe(&self) -> Result<ObjectSchema, SalesforceError> {
        let (_, text) = self
            .call(
                Method::GET,
                &format!("sobjects/{}/describe", self.object),
                None,
            )
            .await?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| SalesforceError::BadResponse(format!("describe is not JSON ({e})")))?;
        ObjectSchema::from_describe(&body).map_err(SalesforceError::BadResponse)
    }

    async fn query_each(
        &self,
        soql: &str,
        each: &mut (dyn FnMut(Value) + Send),
    ) -> Result<(), SalesforceError> {
        let query_path = format!("services/data/v{}/query", self.api_version);
        let (_, text) = self
            .call_url(
                Method::GET,
                |instance| {
                    let mut url = join(instance, &query_path);
                    url.query_pairs_mut().append_pair("q", soql);
                    url
                },
                None,
            )
            .await?;
        let mut page: Value = serde_json::from_str(&text)
            .map_err(|e| SalesforceError::BadResponse(format!("query result is not JSON ({e})")))?;
        // A server whose pages never end must not hold the cycle: a page URL seen twice or more
        // pages than any object of ours can fill is a bad answer (the deadline bounds the rest).
        let mut seen = std::collections::HashSet::new();
        loop {
            match page.get_mut("records").map(Value::take) {
                Some(Value::Array(records)) => records.into_iter().for_each(&mut *each),
                _ => {
                    return Err(SalesforceError::BadResponse(
                        "query result has no `records` array".into(),
                    ));
                }
            }
            let done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
            let next = page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let (false, Some(next)) = (done, next) else {
                break;
            };
            // `nextRecordsUrl` is a path on the instance; refuse anything that would leave it.
            if !next.starts_with("/services/data/") {
                return Err(SalesforceError::BadResponse(format!(
                    "unexpected nextRecordsUrl {next:?}"
                )));
            }
            if !seen.insert(next.clone()) || seen.len() > MAX_QUERY_PAGES {
                return Err(SalesforceError::BadResponse(format!(
                    "the query's pages do not end (nextRecordsUrl {} after {} pages)",
                    crate::http::snippet(&next),
                    seen.len()
                )));
            }
            let (_, text) = self
                .call_url(Method::GET, |instance| join(instance, &next), None)
                .await?;
            page = serde_json::from_str(&text).map_err(|e| {
                SalesforceError::BadResponse(format!("query page is not JSON ({e})"))
            })?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        ids: &[String],
    ) -> Result<Vec<Result<(), RecordError>>, SalesforceError> {
        let path = format!("services/data/v{}/composite/sobjects", self.api_version);
        let joined = ids.join(",");
        let (_, text) = self
            .call_url(
                Method::DELETE,
                |instance| {
                    let mut url = join(instance, &path);
                    url.query_pairs_mut()
                        .append_pair("ids", &joined)
                        .append_pair("allOrNone", "false");
                    url
                },
                None,
            )
            .await?;
        let results: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
            SalesforceError::BadResponse(format!("delete result is not a JSON array ({e})"))
        })?;
        if results.len() != ids.len() {
            return Err(SalesforceError::BadResponse(format!(
                "{} results for {} deletes",
                results.len(),
                ids.len()
            )));
        }
        Ok(results
            .iter()
            .map(|r| match upsert_outcome(r) {
                UpsertOutcome::Failed(e) => Err(e),
                _ => Ok(()),
            })
            .collect())
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn api_usage(&self) -> Option<ApiUsage> {
        *self.usage.lock().unwrap()
    }
}

/// Reads one entry of a Collections result; `id`/`created` may be missing or null.
fn upsert_outcome(result: &Value) -> UpsertOutcome {
    if result.get("success").and_then(Value::as_bool) == Some(true) {
        let id = result.get("id").and_then(Value::as_str).map(str::to_owned);
        return if result.get("created").and_then(Value::as_bool) == Some(true) {
            UpsertOutcome::Created(id)
        } else {
            UpsertOutcome::Updated(id)
        };
    }
    let first = result
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first());
    let text = |key: &str| {
        first
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    UpsertOutcome::Failed(RecordError {
        code: text("statusCode")
            .or_else(|| text("errorCode"))
            .unwrap_or_else(|| "UNKNOWN_ERROR".into()),
        message: text("message")
            .unwrap_or_else(|| "Salesforce reported a failure without a message".into()),
        fields: first
            .and_then(|e| e.get("fields"))
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// `errorCode` and `message` of a request-level error: an array of errors, or (seen in the wild)
/// a single object.
fn request_error(text: &str) -> (String, String) {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let first = match &value {
        Value::Array(items) => items.first(),
        Value::Object(_) => Some(&value),
        _ => None,
    };
    let code = first
        .and_then(|e| e.get("errorCode"))
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN_ERROR")
        .to_owned();
    let message = first
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| snippet(text));
    (code, message)
}

/// Fetches tokens with the client-credentials flow on the org's My Domain. The response has no
/// `expires_in`: the lifetime is the configured `SF_TOKEN_TTL_SECONDS`.
struct SalesforceTokenFetcher {
    http: reqwest::Client,
    url: Url,
    credentials: ClientCredentials,
    ttl: Duration,
    requests: std::sync::Arc<AtomicU64>,
}

#[async_trait]
impl TokenFetcher for SalesforceTokenFetcher {
    async fn fetch(&self) -> Result<IssuedToken, AuthError> {
        const PLATFORM: &str = "Salesforce";
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body =
            client_credentials_token(&self.http, &self.url, PLATFORM, &self.credentials, None)
                .await?;
        let access_token = token_field(&body, "access_token", PLATFORM)?;
        let instance_url = token_field(&body, "instance_url", PLATFORM)?;
        let instance_url = Url::parse(instance_url).map_err(|e| AuthError::Unavailable {
            platform: PLATFORM,
            reason: format!("instance_url is not a URL: {e}"),
        })?;
        // The REST base comes from the platform at run time: hold it to the same HTTPS rule.
        check_transport(&instance_url).map_err(|reason| AuthError::Unavailable {
            platform: PLATFORM,
            reason,
        })?;
        Ok(IssuedToken {
            access_token: access_token.into(),
            lifetime: self.ttl,
            instance_url: Some(instance_url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_header_forms() {
        assert_eq!(
            ApiUsage::parse("api-usage=10018/100000"),
            Some(ApiUsage {
                used: 10018,
                max: 100000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=17/250; per-app-api-usage=17/250(appName=x)"),
            Some(ApiUsage { used: 17, max: 250 })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=110018/100000; api-bursts=1/750")
                .unwrap()
                .percent()
                .round(),
            110.0
        );
        assert_eq!(ApiUsage::parse("nonsense"), None);
    }

    #[test]
    fn outcomes_tolerate_missing_fields() {
        assert_eq!(
            upsert_outcome(&json!({"id": "a", "success": true, "errors": [], "created": true})),
            UpsertOutcome::Created(Some("a".into()))
        );
        assert_eq!(
            upsert_outcome(&json!({"success": true, "errors": []})),
            UpsertOutcome::Updated(None)
        );
        let failed = upsert_outcome(&json!({"id": null, "success": false,
            "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]}));
        assert!(matches!(failed, UpsertOutcome::Failed(e) if e.code == "UNABLE_TO_LOCK_ROW"));
    }

    #[test]
    fn request_errors_are_arrays_or_objects() {
        assert_eq!(
            request_error(r#"[{"message":"m","errorCode":"INVALID_FIELD"}]"#).0,
            "INVALID_FIELD"
        );
        assert_eq!(
            request_error(r#"{"message":"m","errorCode":"INVALID_FIELD"}"#).0,
            "INVALID_FIELD"
        );
        assert_eq!(request_error("<html>").0, "UNKNOWN_ERROR");
    }
}
