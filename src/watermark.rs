//! The sync's durable state (watermark, last full snapshot, lease) and the store that holds it.
//!
//! Every write is conditional on the version read, so a cycle can only advance the watermark if
//! nobody else changed the item since it read it: the second phase of the two-phase advance.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What one sync remembers between cycles. Stored as one DynamoDB item keyed by `SYNC_ID`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncState {
    /// The newest CXone `last_modified_date` that is safely in Salesforce or in the DLQ.
    pub watermark: Option<DateTime<Utc>>,
    /// When the last full snapshot completed.
    pub last_full_sync: Option<DateTime<Utc>>,
    /// Versions already written that lie inside the overlap window below the watermark
    /// (id → last_modified), so that the overlap re-reads them without re-sending them.
    pub recent: BTreeMap<String, DateTime<Utc>>,
    /// The cycle that currently owns the sync, if any.
    pub lease: Option<Lease>,
    /// When the last cycle started (enforces the minimum poll interval).
    pub last_cycle_started: Option<DateTime<Utc>>,
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

type Item = HashMap<String, AttributeValue>;

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
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(self.sync_id.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        match output.item() {
            None => Ok(Versioned::default()),
            Some(item) => item_to_state(item),
        }
    }

    async fn save(&self, state: &SyncState, expected: u64) -> Result<u64, StateError> {
        let version = expected + 1;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(state_to_item(
                &self.sync_id,
                state,
                version,
                Utc::now(),
            )));
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
            Ok(_) => Ok(version),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StateError::Conflict { expected })
            }
            Err(e) => Err(StateError::Unavailable(DisplayErrorContext(&e).to_string())),
        }
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
        let recent = state
            .recent
            .iter()
            .map(|(id, t)| (id.clone(), ts(*t)))
            .collect();
        item.insert(attr::RECENT.into(), AttributeValue::M(recent));
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
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(id, value)| {
                let name = format!("{}.{id}", attr::RECENT);
                match value {
                    AttributeValue::S(s) => parse_ts(&name, s).map(|t| (id.clone(), t)),
                    _ => Err(StateError::Malformed(format!(
                        "`{name}` is not a string (S)"
                    ))),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(StateError::Malformed(format!(
                "`{}` is not a map (M)",
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
                ("101".to_owned(), at("2024-05-01T11:59:30.500Z")),
                ("102".to_owned(), at("2024-05-01T12:00:00.123Z")),
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
        let recent = item["recent"].as_m().unwrap();
        assert_eq!(recent["101"], s("2024-05-01T11:59:30.500Z"));
        assert_eq!(recent.len(), 2);
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
                AttributeValue::M(HashMap::from([("101".into(), s("soon"))])),
            );
        });
        assert!(message.contains("`recent.101`"), "{message}");

        let message = malformed(|item| {
            item.insert("recent".into(), AttributeValue::L(vec![]));
        });
        assert!(message.contains("`recent` is not a map"), "{message}");

        let message = malformed(|item| {
            item.remove("lease_expires");
        });
        assert!(
            message.contains("`lease_owner` is set without `lease_expires`"),
            "{message}"
        );
    }
}
