//! Domain types: values that cannot hold invalid data once constructed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The stable CXone identifier of a disposition code: the key of the Salesforce mirror.
///
/// Labels change; this never does. It is trimmed, non-empty and free of control characters, so
/// it can travel in a JSON body, a log line and an SQS message attribute unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DispositionId(String);

impl DispositionId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("id is empty".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("id contains control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DispositionId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DispositionId> for String {
    fn from(id: DispositionId) -> Self {
        id.0
    }
}

impl fmt::Display for DispositionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One disposition code as CXone describes it, after validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disposition {
    pub id: DispositionId,
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_active: bool,
    pub last_modified: DateTime<Utc>,
}

/// A record as CXone sent it, kept for its dead letter as one JSON string: a cycle holds every
/// record it read, and a parsed tree costs several allocations per field where this costs one.
/// Built from a parsed record (compact) or from JSON text as it came, so it always parses back
/// to the same JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord(Box<str>);

impl RawRecord {
    pub fn of(value: &serde_json::Value) -> Self {
        Self(value.to_string().into_boxed_str())
    }

    /// The record as it came, already JSON text: no tree is built.
    pub fn from_json(json: &serde_json::value::RawValue) -> Self {
        Self(json.get().into())
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record as JSON again, for a dead letter.
    pub fn to_value(&self) -> serde_json::Value {
        // The text is JSON by construction; `Null` only guards against the impossible.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

/// A record read from CXone: either a valid disposition or the raw JSON with why it was refused.
/// Malformed records are dead-lettered, never dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceRecord {
    Valid {
        disposition: Disposition,
        raw: RawRecord,
    },
    /// The source says what it could read of the record (its own field names are its business,
    /// not the engine's), so that the dead letter names the code and its version when it can.
    Malformed {
        raw: serde_json::Value,
        reason: String,
        external_id: Option<String>,
        last_modified: Option<DateTime<Utc>>,
    },
}

/// RFC 3339 in UTC with millisecond precision, the one timestamp format the product writes.
pub fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A value as an error message quotes it: at most a short prefix, so that a huge or hostile
/// value neither floods the log nor the response.
pub fn quote(value: &(impl Serialize + ?Sized)) -> String {
    const MAX: usize = 64;
    let text = serde_json::to_string(value).unwrap_or_default();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} characters)", &text[..cut], text.chars().count()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_record_is_compact_and_parses_back() {
        let value = serde_json::json!({"id": "a1", "n": [1, 2.5, null], "s": "é \" x"});
        let raw = RawRecord::of(&value);
        assert!(!raw.as_str().contains(": ") && !raw.as_str().contains(", "));
        assert_eq!(raw.to_value(), value);
    }

    #[test]
    fn ids_are_trimmed_and_never_empty() {
        assert_eq!(DispositionId::parse("  42 ").unwrap().as_str(), "42");
        assert!(DispositionId::parse("   ").is_err());
        assert!(DispositionId::parse("a\u{0}b").is_err());
    }
}
