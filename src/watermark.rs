//! The sync's durable state (watermark, last full snapshot, lease) and the store that holds it.
//!
//! Every write is conditional on the version read, so a cycle can only advance the watermark if
//! nobody else changed the item since it read it: the second phase of the two-phase advance.

use crate::domain::DispositionId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one sync remembers between cycles. Stored as one DynamoDB item keyed by `SYNC_ID`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncState {
    /// The newest CXone `last_modified_date` that is safely in Salesforce or in the DLQ.
    pub watermark: Option<DateTime<Utc>>,
    /// When the last full snapshot completed.
    pub last_full_sync: Option<DateTime<Utc>>,
    /// Versions already written (or dead-lettered) that lie inside the overlap window below the
    /// watermark, so that the overlap re-reads them without re-sending them: fingerprint →
    /// last_modified (the timestamp says when an entry leaves the window).
    pub recent: BTreeMap<VersionMark, DateTime<Utc>>,
    /// The cycle that currently owns the sync, if any.
    pub lease: Option<Lease>,
    /// When the last cycle started (enforces the minimum poll interval).
    pub last_cycle_started: Option<DateTime<Utc>>,
}

/// One version of one code in the overlap memory: a 64-bit FNV-1a fingerprint of the id and its
/// timestamp. Stored as 16 bytes with the timestamp, instead of the id's text, so the memory holds
/// tens of thousands of versions within DynamoDB's 400 KB item limit. (A false match would need
/// two 64-bit fingerprints to collide.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionMark(pub u64);

impl VersionMark {
    pub fn of(id: &str, last_modified: DateTime<Utc>) -> Self {
        let millis = last_modified.timestamp_millis().to_be_bytes();
        // The 0xff separator cannot occur in UTF-8, so no id/timestamp pair aliases another.
        let bytes = id.as_bytes().iter().chain(&[0xff]).chain(&millis);
        let hash = bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Self(hash)
    }
}

impl SyncState {
    /// Clears the times that lie in the future, which only a clock error or a corrupt item can
    /// put there: a watermark or full-sync time past `limit` (it would hide every later edit, or
    /// disable reconciliation), a cycle start past `limit` (it would skip every cycle), a lease
    /// expiring past `lease_limit` (no invocation runs that long). Returns what it cleared, in
    /// words, for the report.
    pub fn clear_future_times(
        &mut self,
        limit: DateTime<Utc>,
        lease_limit: DateTime<Utc>,
    ) -> Vec<String> {
        let mut cleared = Vec::new();
        let mut check = |name: &str, time: &mut Option<DateTime<Utc>>, limit: DateTime<Utc>| {
            if let Some(t) = *time
                && t > limit
            {
                cleared.push(format!(
                    "{name} {} lay in the future (after {}); treated as corrupt and cleared",
                    format_ts(t),
                    format_ts(limit)
                ));
                *time = None;
            }
        };
        check("watermark", &mut self.watermark, limit);
        check("last_full_sync", &mut self.last_full_sync, limit);
        check("last_cycle_started", &mut self.last_cycle_started, limit);
        let mut lease_expires = self.lease.as_ref().map(|l| l.expires);
        check("lease_expires", &mut lease_expires, lease_limit);
        if lease_expires.is_none() {
            self.lease = None;
        }
        for line in &cleared {
            tracing::error!(problem = %line, "the state item holds a time in the future");
        }
        cleared
    }

    /// Whether this version was already written (it is in the overlap memory).
    pub fn already_written(&self, version: &Version) -> bool {
        self.recent.contains_key(&version.mark())
    }
}

/// One version of one code, as the watermark sees it. Orders by time, then id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub last_modified: DateTime<Utc>,
    pub id: DispositionId,
}

impl Version {
    pub fn mark(&self) -> VersionMark {
        VersionMark::of(self.id.as_str(), self.last_modified)
    }
}

/// Most entries kept in the overlap memory; beyond it the oldest are re-sent (harmless: upserts
/// are idempotent) rather than letting the state item outgrow DynamoDB's 400 KB.
const MAX_RECENT: usize = 16_000;

/// The newest timestamp the watermark may take: it advances over whole groups of versions with
/// the same timestamp, in time order, and stops before the first group with a version not done
/// or later than `limit` (the time the cycle observed: a future-dated record must not hide the
/// edits made before its time). It never moves backwards.
pub fn safe_watermark(
    sorted: &[Version],
    current: Option<DateTime<Utc>>,
    limit: DateTime<Utc>,
    done: impl Fn(&Version) -> bool,
) -> Option<DateTime<Utc>> {
    let mut watermark = current;
    for group in sorted.chunk_by(|a, b| a.last_modified == b.last_modified) {
        if group[0].last_modified > limit || !group.iter().all(&done) {
            break;
        }
        let ts = group[0].last_modified;
        watermark = Some(watermark.map_or(ts, |w| w.max(ts)));
    }
    watermark
}

/// The overlap memory after a cycle: the versions the next cycle's overlap window will see
/// again (at or after `watermark − overlap`: the listing is inclusive), newest first, at most
/// [`MAX_RECENT`].
pub fn remember<'a>(
    previous: &BTreeMap<VersionMark, DateTime<Utc>>,
    done: impl Iterator<Item = &'a Version>,
    watermark: Option<DateTime<Utc>>,
    overlap: Duration,
) -> BTreeMap<VersionMark, DateTime<Utc>> {
    let Some(watermark) = watermark else {
        return BTreeMap::new();
    };
    let horizon = watermark - chrono::Duration::from_std(overlap).unwrap_or_default();
    let mut merged = previous.clone();
    merged.extend(done.map(|v| (v.mark(), v.last_modified)));
    let mut kept: Vec<(VersionMark, DateTime<Utc>)> = merged
        .into_iter()
        .filter(|(_, lm)| *lm >= horizon)
        .collect();
    kept.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    kept.truncate(MAX_RECENT);
    kept.into_iter().collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub expires: DateTime<Utc>,
}

/// A state read together with the version to condition the next write on (0 = no item yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Versioned {
    pub state: SyncState,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state item changed since it was read (expected version {expected})")]
    Conflict { expected: u64 },
    #[error("state item is malformed: {0}")]
    Malformed(String),
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// Reads the state with a strongly consistent read.
    async fn load(&self) -> Result<Versioned, StateError>;
    /// Writes `state` only if the stored version is still `expected`; returns the new version.
    async fn save(&self, state: &SyncState, expected: u64) -> Result<u64, StateError>;
}

// ---------------------------------------------------------------------------------------------
// The DynamoDB store.

use crate::domain::format_ts;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Attribute names of the state item. The item is read by people during incidents, so the names
/// say what they hold.
mod attr {
    pub const PK: &str = "pk";
    pub const VERSION: &str = "version";
    pub const WATERMARK: &str = "watermark";
    pub const LAST_FULL_SYNC: &str = "last_full_sync";
    pub const RECENT: &str = "recent";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_EXPIRES: &str = "lease_expires";
    pub const LAST_CYCLE_STARTED: &str = "last_cycle_started";
    pub const UPDATED_AT: &str = "updated_at";
}

pub(crate) type Item = HashMap<String, AttributeValue>;

/// [`StateStore`] on one DynamoDB item whose `pk` is the sync id.
///
/// Every save replaces the whole item with `version = expected + 1`, conditional on the stored
/// version still being `expected`, so a cycle working from a stale read gets
/// [`StateError::Conflict`] instead of overwriting a newer watermark. Timestamps are stored as
/// RFC 3339 UTC strings with millisecond precision (finer precision is not kept).
pub struct DynamoDbStateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    sync_id: String,
}

impl DynamoDbStateStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        sync_id: impl Into<String>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            sync_id: sync_id.into(),
        }
    }
}

#[async_trait]
impl StateStore for DynamoDbStateStore {
    async fn load(&self) -> Result<Versioned, StateError> {
        match get_item(&self.client, &self.table, &self.sync_id).await? {
            None => Ok(Versioned::default()),
            Some(item) => item_to_state(&item),
        }
    }

    async fn save(&self, state: &SyncState, expected: u64) -> Result<u64, StateError> {
        let version = expected + 1;
        let item = state_to_item(&self.sync_id, state, version, Utc::now());
        put_item(&self.client, &self.table, item, expected).await?;
        Ok(version)
    }
}

/// The item under `pk`, read consistently (the state item, or another item of the sync's).
pub(crate) async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Result<Option<Item>, StateError> {
    let output = client
        .get_item()
        .table_name(table)
        .key(attr::PK, AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StateError::Unavailable(DisplayErrorContext(&e).to_string()))?;
    Ok(output.item)
}

/// Writes a whole versioned item (its `version` is `expected + 1`), on the condition that the
/// stored one is still at `expected`: [`StateError::Conflict`] when somebody wrote in between.
pub(crate) async fn put_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
    expected: u64,
) -> Result<(), StateError> {
    let put = client.put_item().table_name(table).set_item(Some(item));
    // Version 0 means "no item yet": the first write must not replace one somebody else
    // created in the meantime.
    let put = if expected == 0 {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("#version = :expected")
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
    };
    match put.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Err(StateError::Conflict { expected })
        }
        Err(e) => Err(StateError::Unavailable(DisplayErrorContext(&e).to_string())),
    }
}

/// The whole item for `state` at `version`. Unset fields are left out rather than stored empty,
/// so that an item written by hand or by an older version reads the same way.
fn state_to_item(sync_id: &str, state: &SyncState, version: u64, now: DateTime<Utc>) -> Item {
    let ts = |t: DateTime<Utc>| AttributeValue::S(format_ts(t));
    let mut item = Item::new();
    item.insert(attr::PK.into(), AttributeValue::S(sync_id.to_owned()));
    item.insert(attr::VERSION.into(), AttributeValue::N(version.to_string()));
    item.insert(attr::UPDATED_AT.into(), ts(now));
    if let Some(t) = state.watermark {
        item.insert(attr::WATERMARK.into(), ts(t));
    }
    if let Some(t) = state.last_full_sync {
        item.insert(attr::LAST_FULL_SYNC.into(), ts(t));
    }
    if !state.recent.is_empty() {
        // 16 bytes per version: the fingerprint, then the timestamp in ms (both big-endian).
        let bytes: Vec<u8> = state
            .recent
            .iter()
            .flat_map(|(mark, t)| {
                mark.0
                    .to_be_bytes()
                    .into_iter()
                    .chain(t.timestamp_millis().to_be_bytes())
            })
            .collect();
        item.insert(
            attr::RECENT.into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes)),
        );
    }
    if let Some(lease) = &state.lease {
        item.insert(
            attr::LEASE_OWNER.into(),
            AttributeValue::S(lease.owner.clone()),
        );
        item.insert(attr::LEASE_EXPIRES.into(), ts(lease.expires));
    }
    if let Some(t) = state.last_cycle_started {
        item.insert(attr::LAST_CYCLE_STARTED.into(), ts(t));
    }
    item
}

/// Reads an item back. Absent attributes are unset fields; a present attribute of the wrong type
/// or with an unparsable value is [`StateError::Malformed`] naming it, because guessing a
/// watermark could skip or replay records.
fn item_to_state(item: &Item) -> Result<Versioned, StateError> {
    // Without a version no conditional write could ever succeed, so a missing one is an error
    // rather than 0.
    let version = match item.get(attr::VERSION) {
        None => {
            return Err(StateError::Malformed(format!(
                "`{}` is missing",
                attr::VERSION
            )));
        }
        Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| {
            StateError::Malformed(format!(
                "`{}` is not a non-negative whole number: {n:?}",
                attr::VERSION
            ))
        })?,
        Some(_) => {
            return Err(StateError::Malformed(format!(
                "`{}` is not a number (N)",
                attr::VERSION
            )));
        }
    };

    let recent = match item.get(attr::RECENT) {
        None => BTreeMap::new(),
        Some(AttributeValue::B(blob)) if blob.as_ref().len() % 16 == 0 => blob
            .as_ref()
            .chunks_exact(16)
            .map(|entry| {
                let mark = u64::from_be_bytes(entry[..8].try_into().expect("8 bytes"));
                let millis = i64::from_be_bytes(entry[8..].try_into().expect("8 bytes"));
                DateTime::from_timestamp_millis(millis)
                    .map(|t| (VersionMark(mark), t))
                    .ok_or_else(|| {
                        StateError::Malformed(format!(
                            "`{}` holds a timestamp out of range",
                            attr::RECENT
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(AttributeValue::B(_)) => {
            return Err(StateError::Malformed(format!(
                "`{}` is not a whole number of 16-byte entries",
                attr::RECENT
            )));
        }
        Some(_) => {
            return Err(StateError::Malformed(format!(
                "`{}` is not binary (B)",
                attr::RECENT
            )));
        }
    };

    let lease = match (
        string(item, attr::LEASE_OWNER)?,
        timestamp(item, attr::LEASE_EXPIRES)?,
    ) {
        (None, None) => None,
        (Some(owner), Some(expires)) => Some(Lease {
            owner: owner.to_owned(),
            expires,
        }),
        (Some(_), None) => {
            return Err(StateError::Malformed(format!(
                "`{}` is set without `{}`",
                attr::LEASE_OWNER,
                attr::LEASE_EXPIRES
            )));
        }
        (None, Some(_)) => {
            return Err(StateError::Malformed(format!(
                "`{}` is set without `{}`",
                attr::LEASE_EXPIRES,
                attr::LEASE_OWNER
            )));
        }
    };

    let state = SyncState {
        watermark: timestamp(item, attr::WATERMARK)?,
        last_full_sync: timestamp(item, attr::LAST_FULL_SYNC)?,
        recent,
        lease,
        last_cycle_started: timestamp(item, attr::LAST_CYCLE_STARTED)?,
    };
    Ok(Versioned { state, version })
}

fn string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StateError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(_) => Err(StateError::Malformed(format!(
            "`{name}` is not a string (S)"
        ))),
    }
}

fn timestamp(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StateError> {
    string(item, name)?.map(|s| parse_ts(name, s)).transpose()
}

fn parse_ts(name: &str, raw: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            StateError::Malformed(format!("`{name}` is not an RFC 3339 timestamp: {raw:?}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn full_state() -> SyncState {
        SyncState {
            watermark: Some(at("2024-05-01T12:00:00.123Z")),
            last_full_sync: Some(at("2024-05-01T00:00:00.000Z")),
            recent: BTreeMap::from([
                (
                    VersionMark::of("101", at("2024-05-01T11:59:30.500Z")),
                    at("2024-05-01T11:59:30.500Z"),
                ),
                (
                    VersionMark::of("102", at("2024-05-01T12:00:00.123Z")),
                    at("2024-05-01T12:00:00.123Z"),
                ),
            ]),
            lease: Some(Lease {
                owner: "cycle-7".into(),
                expires: at("2024-05-01T12:05:00.000Z"),
            }),
            last_cycle_started: Some(at("2024-05-01T12:00:01.000Z")),
        }
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.into())
    }

    #[test]
    fn a_full_state_survives_the_round_trip() {
        let state = full_state();
        let item = state_to_item("dispositions", &state, 8, at("2024-05-01T12:00:02Z"));
        assert_eq!(
            item_to_state(&item).unwrap(),
            Versioned { state, version: 8 }
        );
    }

    #[test]
    fn the_item_uses_the_documented_attributes_and_formats() {
        let item = state_to_item("dispositions", &full_state(), 3, at("2024-05-01T12:00:02Z"));
        assert_eq!(item["pk"], s("dispositions"));
        assert_eq!(item["version"], AttributeValue::N("3".into()));
        assert_eq!(item["watermark"], s("2024-05-01T12:00:00.123Z"));
        assert_eq!(item["last_full_sync"], s("2024-05-01T00:00:00.000Z"));
        assert_eq!(item["lease_owner"], s("cycle-7"));
        assert_eq!(item["lease_expires"], s("2024-05-01T12:05:00.000Z"));
        assert_eq!(item["last_cycle_started"], s("2024-05-01T12:00:01.000Z"));
        assert_eq!(item["updated_at"], s("2024-05-01T12:00:02.000Z"));
        let recent = item["recent"].as_b().unwrap().as_ref();
        assert_eq!(recent.len(), 32, "16 bytes per remembered version");
    }

    #[test]
    fn an_empty_state_stores_only_key_version_and_update_time() {
        let item = state_to_item(
            "dispositions",
            &SyncState::default(),
            1,
            at("2024-05-01T12:00:02Z"),
        );
        let mut names: Vec<_> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["pk", "updated_at", "version"]);
        assert_eq!(
            item_to_state(&item).unwrap(),
            Versioned {
                state: SyncState::default(),
                version: 1
            }
        );
    }

    #[test]
    fn timestamps_with_an_offset_are_read_as_utc() {
        let mut item = state_to_item("dispositions", &SyncState::default(), 1, Utc::now());
        item.insert("watermark".into(), s("2024-05-01T14:00:00.000+02:00"));
        assert_eq!(
            item_to_state(&item).unwrap().state.watermark,
            Some(at("2024-05-01T12:00:00Z"))
        );
    }

    fn malformed(mutate: impl FnOnce(&mut Item)) -> String {
        let mut item = state_to_item("dispositions", &full_state(), 4, Utc::now());
        mutate(&mut item);
        match item_to_state(&item) {
            Err(StateError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_attribute_is_malformed_and_named() {
        let message = malformed(|item| {
            item.insert("watermark".into(), s("yesterday"));
        });
        assert!(
            message.contains("`watermark`") && message.contains("yesterday"),
            "{message}"
        );

        let message = malformed(|item| {
            item.insert(
                "last_full_sync".into(),
                AttributeValue::N("1714560000".into()),
            );
        });
        assert!(
            message.contains("`last_full_sync` is not a string"),
            "{message}"
        );

        let message = malformed(|item| {
            item.insert("version".into(), AttributeValue::N("-1".into()));
        });
        assert!(message.contains("`version`"), "{message}");

        let message = malformed(|item| {
            item.remove("version");
        });
        assert!(message.contains("`version` is missing"), "{message}");

        let message = malformed(|item| {
            item.insert(
                "recent".into(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0; 15])),
            );
        });
        assert!(message.contains("16-byte entries"), "{message}");

        let message = malformed(|item| {
            item.insert("recent".into(), AttributeValue::L(vec![]));
        });
        assert!(message.contains("`recent` is not binary"), "{message}");

        let message = malformed(|item| {
            item.remove("lease_expires");
        });
        assert!(
            message.contains("`lease_owner` is set without `lease_expires`"),
            "{message}"
        );
    }
}

#[cfg(test)]
mod version_mark_tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_both_id_and_timestamp_and_are_stable() {
        let t = DateTime::from_timestamp_millis(1_714_564_800_123).unwrap();
        let later = DateTime::from_timestamp_millis(1_714_564_800_124).unwrap();
        assert_eq!(VersionMark::of("101", t), VersionMark::of("101", t));
        assert_ne!(VersionMark::of("101", t), VersionMark::of("101", later));
        assert_ne!(VersionMark::of("101", t), VersionMark::of("102", t));
        // Stored in DynamoDB: the value must never change between releases.
        assert_eq!(VersionMark::of("101", t).0, 0xda16_491f_b236_ce9d);
    }
}

#[cfg(test)]
mod advance_tests {
    use super::*;
    use chrono::TimeZone;

    fn v(id: &str, secs: i64) -> Version {
        Version {
            id: DispositionId::parse(id).unwrap(),
            last_modified: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn watermark_stops_before_the_first_unfinished_timestamp() {
        let records = vec![v("a", 1), v("b", 2), v("c", 2), v("e", 3)];
        let end = records[3].last_modified;
        let all = safe_watermark(&records, None, end, |_| true);
        assert_eq!(all, Some(records[3].last_modified));
        // "c" shares its timestamp with "b": neither may be passed.
        let partial = safe_watermark(&records, None, end, |x| x.id.as_str() != "c");
        assert_eq!(partial, Some(records[0].last_modified));
        let none = safe_watermark(&records, Some(records[0].last_modified), end, |x| {
            x.id.as_str() != "a"
        });
        assert_eq!(
            none,
            Some(records[0].last_modified),
            "never moves backwards, never passes a"
        );
    }

    #[test]
    fn watermark_never_passes_the_time_the_cycle_observed() {
        let records = vec![v("a", 1), v("b", 2), v("future", 1_000_000)];
        let observed = records[1].last_modified;
        assert_eq!(
            safe_watermark(&records, None, observed, |_| true),
            Some(observed)
        );
    }

    #[test]
    fn times_in_the_future_are_cleared_and_named() {
        let now = v("x", 0).last_modified;
        let far = now + chrono::Duration::days(3000);
        let mut state = SyncState {
            watermark: Some(far),
            last_full_sync: Some(now),
            lease: Some(Lease {
                owner: "ghost".into(),
                expires: far,
            }),
            ..SyncState::default()
        };
        let cleared = state.clear_future_times(now, now + chrono::Duration::minutes(20));
        assert_eq!(cleared.len(), 2, "{cleared:?}");
        assert!(cleared[0].starts_with("watermark") && cleared[1].starts_with("lease_expires"));
        assert_eq!(
            (state.watermark, state.lease, state.last_full_sync),
            (None, None, Some(now))
        );
    }

    #[test]
    fn recent_keeps_only_the_overlap_window() {
        let records = [v("a", 0), v("b", 40), v("c", 100)];
        let kept = remember(
            &BTreeMap::new(),
            records.iter(),
            Some(records[2].last_modified),
            // "b" lies exactly on the window's inclusive edge: the next listing returns it.
            Duration::from_secs(60),
        );
        let expected: BTreeMap<_, _> = records[1..]
            .iter()
            .map(|r| (r.mark(), r.last_modified))
            .collect();
        assert_eq!(kept, expected);
    }
}
