//! The CXone side: where disposition codes come from.
//!
//! [`DispositionSource`] is what the sync engine needs: typed dispositions, and for a record
//! that is not one, whatever id and version the source could read of it. The engine knows no
//! source's field names. Two sources implement it:
//! - [`admin::AdminClient`]: the real CXone Admin API (OIDC discovery, password grant with an
//!   API user's access key, `skip`/`top` paging, camelCase records with integer ids). The default.
//! - [`guide::GuideClient`]: the API the implementation guide describes (`/api/v2/dispositions`,
//!   page-number paging, snake_case records, client-credentials OAuth).
//!
//! Both send every request through one [`gateway::Gateway`], which counts requests and applies
//! the one retry loop (401, 429, 5xx, timeouts) to each of them, and read list pages several at
//! once (`CXONE_MAX_IN_FLIGHT`) through [`lanes::Lanes`], one at a time after a 429. The pages
//! are requested from the invocation's own task (a buffered stream, not spawned tasks), so the
//! deadline scope bounds every one of them.

pub mod admin;
mod gateway;
pub mod guide;
mod lanes;

use crate::config::{CxoneApi, CxoneSettings, HttpSettings};
use crate::deadline::DeadlineExceeded;
use crate::domain::{DispositionId, SourceRecord};
use crate::secrets::CxoneCredentials;
use crate::token::AuthError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use admin::AdminClient;
pub use guide::GuideClient;

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
    /// The list endpoint is not there (404), or answers without the list: a wrong base URL or
    /// API version, which no retry fixes.
    #[error(
        "CXone has no dispositions listing at {url}: {reason}; check the configured URL and API version"
    )]
    NoListing { url: String, reason: String },
    /// Finding the token endpoint or the tenant's API host failed; `url` is the one that did.
    #[error("CXone discovery failed at {url}: {reason}")]
    Discovery { url: String, reason: String },
}

impl From<AuthError> for CxoneError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Deadline(d) => Self::Deadline(d),
            e => Self::Auth(e),
        }
    }
}

/// What one read of the listing returned.
#[derive(Debug, Default)]
pub struct Listing {
    pub records: Vec<SourceRecord>,
    /// Whether the listing held still while it was read. Both APIs page by offset over a listing
    /// ordered by modification time: a code edited between two page requests moves to the end,
    /// and the row behind its old place slips past a page boundary unseen. A source that sees a
    /// code move reads the listing again (a bounded number of times); `false` says it still
    /// moved, so the watermark must not advance past what may not have been read.
    pub settled: bool,
}

/// Where the engine reads disposition codes from.
#[async_trait]
pub trait DispositionSource: Send + Sync {
    /// Every code modified at or after `since` (every code when `None`), in any order; a code may
    /// appear more than once.
    async fn changed_since(&self, since: Option<DateTime<Utc>>) -> Result<Listing, CxoneError>;
    /// The same listing, for a delta that will not write the versions `written` says it already
    /// wrote: a source may leave what only a write needs (the Admin API's classification names)
    /// unread for them, so that a quiet delta costs one page. Those records come back with the
    /// fields a write needs possibly incomplete; the caller must not write them.
    async fn changed_since_unwritten(
        &self,
        since: DateTime<Utc>,
        written: &Written<'_>,
    ) -> Result<Listing, CxoneError> {
        let _ = written;
        self.changed_since(Some(since)).await
    }
    /// The current version of one code, `None` when CXone does not know it.
    async fn get(&self, id: &DispositionId) -> Result<Option<SourceRecord>, CxoneError>;
    /// HTTP requests sent so far (token and discovery requests included).
    fn requests(&self) -> u64;
    /// Time spent waiting because CXone throttled us, in milliseconds.
    fn throttled_ms(&self) -> u64;
}

/// Whether the caller wrote this version (id, modification time) already.
pub type Written<'a> = dyn for<'x> Fn(&'x DispositionId, DateTime<Utc>) -> bool + Sync + 'a;

/// Listings per cycle: the first, and more while a code moved as it was read.
pub(crate) const MAX_PASSES: u32 = 3;

/// Notices a listing that moved while one pass over it was read: an id read twice.
///
/// Both APIs order the listing by modification time, so an edit moves the code to the end and
/// every row behind its old place up one. Read one page after another, a row that slips past a
/// page boundary is always paired with the edited code read twice, in two versions. Pages read
/// at once are served in any order, and then the edited code may be read once only (its old
/// place served after the edit, the end before it) while a row still slips between a page
/// served before the edit and the next one served after it. Over a listing whose codes stay
/// the same, though, a pass that reads as many rows as there are codes and misses one must read
/// another one twice: so any id read twice, in any version, means a row may have been missed.
#[derive(Default)]
pub(crate) struct Moves {
    ids: std::collections::HashSet<String>,
    pub moved: bool,
}

impl Moves {
    /// Notes one row by its id as sent (rows without an id are ignored).
    pub fn note(&mut self, id: String) {
        if !id.is_empty() && !self.ids.insert(id) {
            self.moved = true;
        }
    }
}

/// The credentials in the secret do not fit the configured API (the secret is read in the
/// shape the configuration asks for, so this means the two were built from different settings).
#[derive(Debug, thiserror::Error)]
#[error("the CXone credentials do not fit CXONE_API={expected}")]
pub struct CredentialsMismatch {
    pub expected: &'static str,
}

/// The source `settings` name, with its credentials.
pub fn source(
    settings: &CxoneSettings,
    http_settings: &HttpSettings,
    http: reqwest::Client,
    credentials: CxoneCredentials,
) -> Result<Box<dyn DispositionSource>, CredentialsMismatch> {
    match (&settings.api, credentials) {
        (CxoneApi::Admin(api), CxoneCredentials::AccessKey(keys)) => Ok(Box::new(
            AdminClient::new(api, settings, http_settings, http, keys),
        )),
        (CxoneApi::Guide(api), CxoneCredentials::Client(client)) => Ok(Box::new(GuideClient::new(
            api,
            settings,
            http_settings,
            http,
            client,
        ))),
        (CxoneApi::Admin(_), _) => Err(CredentialsMismatch { expected: "admin" }),
        (CxoneApi::Guide(_), _) => Err(CredentialsMismatch { expected: "guide" }),
    }
}
