//! The API the implementation guide describes: `GET /api/v2/dispositions`, page-number paging,
//! snake_case records with string ids, client-credentials OAuth. No NICE source documents it; it
//! stays as a selectable second source (`CXONE_API=guide`), behaving as it always has, but for
//! reading the pages after the first several at once.

use super::gateway::{Gateway, Reply, tree};
use super::lanes::Lanes;
use super::{CxoneError, DispositionSource, Listing, MAX_PASSES, Moves};
use crate::config::{CxoneSettings, GuideApi, HttpSettings};
use crate::domain::{Disposition, DispositionId, RawRecord, SourceRecord, format_ts};
use crate::http::{client_credentials_token, join, json_type, token_field};
use crate::secrets::ClientCredentials;
use crate::token::{AuthError, IssuedToken, TokenFetcher};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::Url;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Client for the guide's CXone API.
pub struct GuideClient {
    gateway: Gateway,
    base: Url,
    page_size: u32,
    /// `CXONE_MAX_IN_FLIGHT`: list pages asked for at once.
    max_in_flight: u32,
}

/// What one pass over the listing has read so far.
#[derive(Default)]
struct Pass {
    records: Vec<SourceRecord>,
    moves: Moves,
    /// The first record of the last page taken, to notice a server that ignores `page`.
    previous_first: Option<Value>,
}

impl GuideClient {
    pub fn new(
        api: &GuideApi,
        config: &CxoneSettings,
        http_config: &HttpSettings,
        http: reqwest::Client,
        credentials: ClientCredentials,
    ) -> Self {
        let requests = Arc::new(AtomicU64::new(0));
        let fetcher = CxoneTokenFetcher {
            http: http.clone(),
            url: api.token_url.clone(),
            credentials,
            requests: requests.clone(),
        };
        Self {
            gateway: Gateway::new(http, Box::new(fetcher), requests, config, http_config),
            base: api.base_url.clone(),
            page_size: config.page_size,
            max_in_flight: config.max_in_flight,
        }
    }

    /// One pass over the listing; says whether it moved while it was read. The first page comes
    /// alone (a quiet delta is one request); after a full one, the pages behind it are asked for
    /// as many at once as `lanes` allow and taken in page order, up to the first short (or
    /// empty) page, which ends the listing: the few pages asked for past it are dropped unread.
    async fn list_once(
        &self,
        since: Option<DateTime<Utc>>,
        lanes: &Lanes<'_>,
    ) -> Result<(Vec<SourceRecord>, bool), CxoneError> {
        let mut pass = Pass::default();
        let first = self.page(since, 1).await?;
        if self.take(&mut pass, 1, first)? {
            let mut pages = futures::stream::iter(2u32..=u32::MAX)
                .map(|number| async move {
                    let _seat = lanes.seat().await;
                    Ok::<_, CxoneError>((number, self.page(since, number).await?))
                })
                .buffered(lanes.width());
            while let Some(fetched) = pages.next().await {
                let (number, items) = fetched?;
                if !self.take(&mut pass, number, items)? {
                    break;
                }
            }
        }
        Ok((pass.records, pass.moves.moved))
    }

    /// `GET /api/v2/dispositions?page=…`: the page's records, as sent.
    async fn page(
        &self,
        since: Option<DateTime<Utc>>,
        number: u32,
    ) -> Result<Vec<Value>, CxoneError> {
        let mut url = join(&self.base, "api/v2/dispositions");
        {
            let mut q = url.query_pairs_mut();
            if let Some(since) = since {
                q.append_pair("last_modified_date", &format_ts(since));
            }
            q.append_pair("page", &number.to_string());
            q.append_pair("pageSize", &self.page_size.to_string());
        }
        let no_listing = |reason: &str| CxoneError::NoListing {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let body = self
            .get_json(url.clone())
            .await?
            .ok_or_else(|| no_listing("HTTP 404"))?;
        page_items(body).map_err(|reason| no_listing(&reason))
    }

    /// Takes in page `number`, in page order; says whether it was full (more may follow).
    fn take(&self, pass: &mut Pass, number: u32, items: Vec<Value>) -> Result<bool, CxoneError> {
        // A server that ignores `page` would make us loop forever: stop on a repeated page.
        if !items.is_empty() && items.first() == pass.previous_first.as_ref() {
            return Err(CxoneError::BadResponse(format!(
                "page {number} repeats page {}: paging is ignored",
                number.saturating_sub(1)
            )));
        }
        pass.previous_first = items.first().cloned();
        for item in &items {
            pass.moves
                .note(item.get("id").map(Value::to_string).unwrap_or_default());
        }
        let full = items.len() >= self.page_size as usize;
        pass.records.extend(items.into_iter().map(parse_record));
        Ok(full)
    }

    /// GETs `url` with the retry rules; `Ok(None)` on 404, no records on 204.
    async fn get_json(&self, url: Url) -> Result<Option<Value>, CxoneError> {
        Ok(match self.gateway.get(&url).await? {
            Reply::Json(json) => Some(tree(&json)?),
            Reply::NoContent => Some(Value::Array(vec![])),
            Reply::NotFound => None,
        })
    }
}

#[async_trait]
impl DispositionSource for GuideClient {
    async fn changed_since(&self, since: Option<DateTime<Utc>>) -> Result<Listing, CxoneError> {
        let lanes = Lanes::new(&self.gateway, self.max_in_flight);
        let mut records = Vec::new();
        for pass in 1..=MAX_PASSES {
            let (read, moved) = self.list_once(since, &lanes).await?;
            records.extend(read);
            if !moved {
                return Ok(Listing {
                    records,
                    settled: true,
                });
            }
            tracing::info!(
                pass,
                "a code changed while the listing was read; reading it again"
            );
        }
        Ok(Listing {
            records,
            settled: false,
        })
    }

    async fn get(&self, id: &DispositionId) -> Result<Option<SourceRecord>, CxoneError> {
        let mut url = join(&self.base, "api/v2/dispositions");
        url.path_segments_mut()
            .map_err(|()| CxoneError::BadResponse(format!("{} cannot take a path", self.base)))?
            .push(id.as_str());
        Ok(self.get_json(url).await?.map(parse_record))
    }

    fn requests(&self) -> u64 {
        self.gateway.requests()
    }

    fn throttled_ms(&self) -> u64 {
        self.gateway.throttled_ms()
    }
}

/// A page is a bare JSON array or an object with a `dispositions` array.
/// The records of one page: a bare array, or an object's `dispositions` array. An object
/// without that array is not a listing (a wrong path answering something else).
fn page_items(body: Value) -> Result<Vec<Value>, String> {
    match body {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => match map.remove("dispositions") {
            Some(Value::Array(items)) => Ok(items),
            Some(Value::Null) => Ok(vec![]),
            Some(_) => Err("`dispositions` is not an array".into()),
            None => Err("the answer has no `dispositions` array".into()),
        },
        other => Err(format!(
            "expected a JSON array or an object with `dispositions`, got a JSON {}",
            crate::http::json_type(&other)
        )),
    }
}

/// Validates one record of the guide's shape. Anything unexpected makes it `Malformed`, with
/// the raw JSON kept for the dead-letter queue and the id and version when they can be read.
pub fn parse_record(raw: Value) -> SourceRecord {
    match validate(&raw) {
        Ok(disposition) => SourceRecord::Valid {
            disposition,
            raw: RawRecord::of(&raw),
        },
        Err(reason) => {
            let external_id = match raw.get("id") {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            let last_modified = raw
                .get("last_modified_date")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc));
            SourceRecord::Malformed {
                raw,
                reason,
                external_id,
                last_modified,
            }
        }
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
    let stamp = text("last_modified_date", true)?.unwrap_or_default();
    let last_modified = DateTime::parse_from_rfc3339(&stamp)
        .map_err(|e| format!("last_modified_date {stamp:?} is not an RFC 3339 timestamp ({e})"))?
        .with_timezone(&Utc);
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
        let body = client_credentials_token(
            &self.http,
            &self.url,
            PLATFORM,
            &self.credentials,
            Some(CXONE_SCOPE),
        )
        .await?;
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

    /// A malformed record still names its id and version when those fields can be read.
    #[test]
    fn malformed_records_keep_what_could_be_read() {
        let mut raw = good();
        raw["is_active"] = json!("yes");
        let SourceRecord::Malformed {
            external_id,
            last_modified,
            ..
        } = parse_record(raw)
        else {
            panic!()
        };
        assert_eq!(external_id.as_deref(), Some("a1"));
        assert_eq!(
            last_modified.map(format_ts).as_deref(),
            Some("2024-03-15T14:32:00.000Z")
        );
        let mut raw = good();
        raw["id"] = json!(null);
        raw["last_modified_date"] = json!("yesterday");
        let SourceRecord::Malformed {
            external_id,
            last_modified,
            ..
        } = parse_record(raw)
        else {
            panic!()
        };
        assert_eq!((external_id, last_modified), (None, None));
    }

    #[test]
    fn pages_are_arrays_or_wrapped() {
        assert_eq!(page_items(json!([1, 2])).unwrap().len(), 2);
        assert_eq!(page_items(json!({"dispositions": [1]})).unwrap().len(), 1);
        assert!(page_items(json!({"dispositions": 3})).is_err());
        assert!(page_items(json!("x")).is_err());
    }
}
