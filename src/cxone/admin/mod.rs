//! The real CXone Admin API as a [`DispositionSource`].
//!
//! - **Discovery** ([`discovery`]): the issuer's OpenID configuration names the token endpoint;
//!   the access token's `tenantId` claim and the issuer's `cxone-configuration` name the tenant's
//!   API host (or `CXONE_API_ENDPOINT` does). Both are found once per client.
//! - **Token** ([`token`]): password grant with the API user's access key, HTTP Basic client
//!   authentication, `expires_in` for the refresh at 80 % of the lifetime.
//! - **List** ([`listing`]): `GET …/dispositions?skip&top&updatedSince&orderBy=lastUpdated`,
//!   paged until the server's own signals say the end is reached, the pages after the first
//!   several at once when `totalRecords` says how far the listing goes.
//! - **Records** ([`records`]): camelCase, integer ids, classification ids named through
//!   `GET …/dispositions/classifications` (read when a record first needs it and kept across
//!   warm invocations, read afresh by a full listing and when an unknown id appears); a list
//!   item without `isActive` is completed from `GET …/dispositions/{id}`.

mod discovery;
mod listing;
mod records;
mod token;

use super::gateway::{Gateway, Reply, tree};
use super::lanes::Lanes;
use super::{CxoneError, DispositionSource, Listing, MAX_PASSES, Written};
use crate::config::{AdminApi, CxoneSettings, HttpSettings};
use crate::domain::{DispositionId, SourceRecord, format_ts};
use crate::http::join;
use crate::secrets::AccessKeyCredentials;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use discovery::Discovery;
use futures::{StreamExt, TryStreamExt};
use listing::{ListPage, Paging, Step};
use records::Item;
use reqwest::Url;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::sync::{Mutex, OnceCell};

/// Most pages one listing reads: at a `top` of 100, a million rows.
const MAX_PAGES: u32 = 10_000;
/// The `top` asked for after the server refused a larger one: the largest page real clients
/// report for the Admin API's lists.
const FALLBACK_TOP: u32 = 100;
/// By-id requests in flight when list items lack `isActive`.
const BY_ID_IN_FLIGHT: usize = 4;

/// Client for the CXone Admin API.
pub struct AdminClient {
    gateway: Gateway,
    discovery: Discovery,
    /// `CXONE_PAGE_SIZE`, the `top` asked for, until the server refuses it with a 400: then
    /// [`FALLBACK_TOP`], for the rest of the container's life.
    page_size: AtomicU32,
    max_pages: u32,
    /// `CXONE_MAX_IN_FLIGHT`: list pages asked for at once.
    max_in_flight: u32,
    /// The last classifications table read: id → name.
    classifications: Mutex<Option<Arc<HashMap<u64, String>>>>,
}

impl AdminClient {
    pub fn new(
        api: &AdminApi,
        settings: &CxoneSettings,
        http_settings: &HttpSettings,
        http: reqwest::Client,
        credentials: AccessKeyCredentials,
    ) -> Self {
        let requests = Arc::new(AtomicU64::new(0));
        let token_endpoint = Arc::new(OnceCell::new());
        let fetcher = token::PasswordGrantFetcher {
            http: http.clone(),
            endpoint: token_endpoint.clone(),
            credentials,
            requests: requests.clone(),
        };
        Self {
            gateway: Gateway::new(http, Box::new(fetcher), requests, settings, http_settings),
            discovery: Discovery::new(
                api.issuer.clone(),
                api.api_endpoint.clone(),
                api.api_version,
                token_endpoint,
            ),
            page_size: AtomicU32::new(settings.page_size),
            max_pages: MAX_PAGES,
            max_in_flight: settings.max_in_flight,
            classifications: Mutex::new(None),
        }
    }

    /// Every list row modified at or after `since`, read as records, and whether the listing
    /// held still: it is read again (up to [`MAX_PASSES`] passes) while it moved.
    async fn list(
        &self,
        base: &Url,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<Item>, bool), CxoneError> {
        let lanes = Lanes::new(&self.gateway, self.max_in_flight);
        let mut items = Vec::new();
        for pass in 1..=MAX_PASSES {
            let (read, moved) = self.list_once(base, since, &lanes).await?;
            items.extend(read);
            if !moved {
                return Ok((items, true));
            }
            tracing::info!(
                pass,
                "a code changed while the listing was read; reading it again"
            );
        }
        Ok((items, false))
    }

    /// One pass over the listing. The first page comes alone: it says how many rows there are
    /// (`totalRecords`) and how many a page really holds (a server may cap `top` silently).
    /// With both known, the remaining offsets are asked for at once, as many as `lanes` allow,
    /// and taken in offset order; without `totalRecords`, or once a page comes short of that
    /// stride, the listing is read on one page at a time from where it stands. Every page, in
    /// whichever way it was asked for, goes through the same end rules ([`Paging`]); a page
    /// asked for past the end is dropped unread.
    async fn list_once(
        &self,
        base: &Url,
        since: Option<DateTime<Utc>>,
        lanes: &Lanes<'_>,
    ) -> Result<(Vec<Item>, bool), CxoneError> {
        let first = match self.page(base, since, 0).await {
            Err(CxoneError::Rejected { status: 400, body }) if self.fall_back() => {
                tracing::warn!(refused = %body, top = FALLBACK_TOP, "CXone refused the page size CXONE_PAGE_SIZE asks for; asking for 100 rows a page from now on");
                self.page(base, since, 0).await?
            }
            first => first?,
        };
        let mut paging = Paging::new(self.page_size.load(Ordering::Relaxed), self.max_pages);
        let mut items = Vec::new();
        let total = first.as_ref().and_then(|p| p.total_records).map(|t| t.0);
        let stride = first.as_ref().map_or(0, ListPage::rows) as u64;
        let mut step = take(&mut paging, &mut items, first)?;
        if let (Step::Next { skip: start }, Some(total)) = (step, total)
            && stride > 0
            && lanes.width() > 1
        {
            let offsets = (0u64..)
                .map_while(move |k| k.checked_mul(stride)?.checked_add(start))
                .take_while(move |offset| *offset < total);
            let mut pages = futures::stream::iter(offsets)
                .map(|offset| async move {
                    let _seat = lanes.seat().await;
                    Ok::<_, CxoneError>((offset, self.page(base, since, offset).await?))
                })
                .buffered(lanes.width());
            while let Step::Next { skip } = step {
                let Some(fetched) = pages.next().await else {
                    break;
                };
                let (offset, page) = fetched?;
                if offset != skip {
                    // The page before came short: read on from where it ended.
                    break;
                }
                step = take(&mut paging, &mut items, page)?;
            }
        }
        while let Step::Next { skip } = step {
            let page = self.page(base, since, skip).await?;
            step = take(&mut paging, &mut items, page)?;
        }
        Ok((items, paging.moved()))
    }

    /// Lowers the page size to [`FALLBACK_TOP`] after a 400, if it was larger: whether there is
    /// anything left to try.
    fn fall_back(&self) -> bool {
        self.page_size.fetch_min(FALLBACK_TOP, Ordering::Relaxed) > FALLBACK_TOP
    }

    /// `GET …/dispositions?skip=…`: the page, `None` for 204.
    async fn page(
        &self,
        base: &Url,
        since: Option<DateTime<Utc>>,
        skip: u64,
    ) -> Result<Option<ListPage>, CxoneError> {
        let mut url = join(base, "dispositions");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("skip", &skip.to_string());
            q.append_pair("top", &self.page_size.load(Ordering::Relaxed).to_string());
            if let Some(since) = since {
                q.append_pair("updatedSince", &format_ts(since));
            }
            q.append_pair("orderBy", "lastUpdated");
        }
        let no_listing = |reason: &str| CxoneError::NoListing {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        match self.gateway.get(&url).await? {
            Reply::Json(body) => {
                let page = serde_json::from_str::<ListPage>(body.get()).map_err(|e| {
                    CxoneError::BadResponse(format!("dispositions page at skip={skip}: {e}"))
                })?;
                if page.dispositions.is_none() {
                    return Err(no_listing("the answer has no `dispositions` array"));
                }
                Ok(Some(page))
            }
            // Nothing (more) at this `skip`.
            Reply::NoContent => Ok(None),
            // A wrong base path or version: no retry fixes it.
            Reply::NotFound => Err(no_listing("HTTP 404")),
        }
    }

    /// `GET …/dispositions/{id}`: the object (bare or wrapped), `None` on 404 or for an id that
    /// cannot be an Admin API id (they are integers).
    async fn fetch_by_id(
        &self,
        base: &Url,
        id: &DispositionId,
    ) -> Result<Option<Value>, CxoneError> {
        if !id.as_str().bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let url = join(base, &format!("dispositions/{}", id.as_str()));
        Ok(match self.gateway.get(&url).await? {
            Reply::Json(body) => records::unwrap_by_id(tree(&body)?),
            Reply::NotFound | Reply::NoContent => None,
        })
    }

    /// The classifications table: read afresh when `fresh`, otherwise the last one read (read
    /// now if there is none).
    async fn classifications(
        &self,
        base: &Url,
        fresh: bool,
    ) -> Result<Arc<HashMap<u64, String>>, CxoneError> {
        let mut cached = self.classifications.lock().await;
        if let Some(table) = cached.as_ref()
            && !fresh
        {
            return Ok(table.clone());
        }
        let url = join(base, "dispositions/classifications");
        let table = match self.gateway.get(&url).await? {
            Reply::Json(body) => records::classification_names(&tree(&body)?)
                .map_err(|e| CxoneError::BadResponse(format!("{url}: {e}")))?,
            Reply::NoContent | Reply::NotFound => HashMap::new(),
        };
        let table = Arc::new(table);
        *cached = Some(table.clone());
        Ok(table)
    }

    /// Finishes records read from the API: completes those without `isActive` from the by-id
    /// endpoint and names classifications (the table read afresh when `fresh_table`, and once
    /// more if it does not know an id). Versions `written` says are written already need no
    /// names: when only they have classifications, the table is not read.
    async fn finish(
        &self,
        base: &Url,
        items: Vec<Item>,
        fresh_table: bool,
        written: &Written<'_>,
    ) -> Result<Vec<SourceRecord>, CxoneError> {
        let items: Vec<Item> = futures::stream::iter(items)
            .map(|item| async move {
                match item {
                    Item::WithoutActive { id, raw } => self.complete_by_id(base, id, raw).await,
                    done => Ok(done),
                }
            })
            .buffered(BY_ID_IN_FLIGHT)
            .try_collect()
            .await?;
        let wanted: Vec<u64> = items
            .iter()
            .filter_map(|item| match item {
                Item::Complete(c) if !written(c.version().0, c.version().1) => {
                    c.classification_id()
                }
                _ => None,
            })
            .collect();
        let mut table = Arc::new(HashMap::new());
        if !wanted.is_empty() {
            table = self.classifications(base, fresh_table).await?;
            if wanted.iter().any(|id| !table.contains_key(id)) {
                tracing::info!("a classification id is not in the table; reading the table again");
                table = self.classifications(base, true).await?;
            }
        }
        Ok(items
            .into_iter()
            .map(|item| match item {
                Item::Complete(c) => c.finish(&table),
                Item::Malformed(record) => record,
                Item::WithoutActive { raw, .. } => unknown_active(raw),
            })
            .collect())
    }

    /// A list item without `isActive`, completed from the code's by-id record (never guessed).
    async fn complete_by_id(
        &self,
        base: &Url,
        id: DispositionId,
        listed: Value,
    ) -> Result<Item, CxoneError> {
        Ok(match self.fetch_by_id(base, &id).await? {
            None => Item::Malformed(records::malformed(
                listed,
                "isActive is missing from the list, and the code is not found by id".into(),
            )),
            Some(raw) => match records::read(raw) {
                done @ (Item::Complete(_) | Item::Malformed(_)) => done,
                Item::WithoutActive { raw, .. } => Item::Malformed(unknown_active(raw)),
            },
        })
    }
}

/// Takes in one page: the end rules decide what follows, and its rows become records at once,
/// so that no page's parsed tree outlives it.
fn take(
    paging: &mut Paging,
    items: &mut Vec<Item>,
    page: Option<ListPage>,
) -> Result<Step, CxoneError> {
    let step = paging
        .after(page.as_ref())
        .map_err(CxoneError::BadResponse)?;
    let rows = page.and_then(|p| p.dispositions).unwrap_or_default();
    items.extend(rows.iter().map(|row| records::read_listed(row)));
    Ok(step)
}

/// A record whose `isActive` neither the list nor the by-id endpoint gives.
fn unknown_active(raw: Value) -> SourceRecord {
    records::malformed(raw, "isActive is missing from the list and by id".into())
}

#[async_trait]
impl DispositionSource for AdminClient {
    async fn changed_since(&self, since: Option<DateTime<Utc>>) -> Result<Listing, CxoneError> {
        let base = self.discovery.api_base(&self.gateway).await?;
        let (items, settled) = self.list(&base, since).await?;
        // The table is kept across warm invocations: a delta names classifications through the
        // last one read (read again if it does not know an id), and a full listing, which
        // rewrites every code, reads it afresh so that a renamed classification reaches them.
        let records = self
            .finish(&base, items, since.is_none(), &|_, _| false)
            .await?;
        Ok(Listing { records, settled })
    }

    async fn changed_since_unwritten(
        &self,
        since: DateTime<Utc>,
        written: &Written<'_>,
    ) -> Result<Listing, CxoneError> {
        let base = self.discovery.api_base(&self.gateway).await?;
        let (items, settled) = self.list(&base, Some(since)).await?;
        let records = self.finish(&base, items, false, written).await?;
        Ok(Listing { records, settled })
    }

    async fn get(&self, id: &DispositionId) -> Result<Option<SourceRecord>, CxoneError> {
        let base = self.discovery.api_base(&self.gateway).await?;
        let Some(raw) = self.fetch_by_id(&base, id).await? else {
            return Ok(None);
        };
        let item = match records::read(raw) {
            Item::WithoutActive { raw, .. } => Item::Malformed(unknown_active(raw)),
            other => other,
        };
        Ok(self
            .finish(&base, vec![item], false, &|_, _| false)
            .await?
            .pop())
    }

    fn requests(&self) -> u64 {
        self.gateway.requests()
    }

    fn throttled_ms(&self) -> u64 {
        self.gateway.throttled_ms()
    }
}

#[cfg(test)]
mod tests;
