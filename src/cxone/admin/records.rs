//! Admin API records as they arrive (camelCase, integer ids that may come as strings, booleans
//! that may come as `"True"`), and how one becomes a [`SourceRecord`]: `dispositionId` → id,
//! `dispositionName` → name, `notes` → description, the classification's name → category,
//! `isActive`, `lastUpdated` → last modified.

use crate::domain::{Disposition, DispositionId, RawRecord, SourceRecord};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// A whole number sent as a JSON number or a numeric string (NICE's own SDK expects both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "NumberOrString")]
pub(super) struct WireInt(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

impl TryFrom<NumberOrString> for WireInt {
    type Error = String;
    fn try_from(value: NumberOrString) -> Result<Self, String> {
        match value {
            NumberOrString::Number(n) => Ok(Self(n)),
            NumberOrString::String(s) => s
                .trim()
                .parse::<u64>()
                .map(Self)
                .map_err(|_| format!("expected a whole number, got {s:?}")),
        }
    }
}

/// A boolean sent as JSON `true`/`false` or as the string `"true"`/`"false"` in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BoolOrString")]
struct WireBool(bool);

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    String(String),
}

impl TryFrom<BoolOrString> for WireBool {
    type Error = String;
    fn try_from(value: BoolOrString) -> Result<Self, String> {
        match value {
            BoolOrString::Bool(b) => Ok(Self(b)),
            BoolOrString::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Self(true)),
            BoolOrString::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Self(false)),
            BoolOrString::String(s) => Err(format!("expected true or false, got {s:?}")),
        }
    }
}

/// One disposition as the list and by-id endpoints send it; the fields the sync reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDisposition {
    disposition_id: WireInt,
    disposition_name: String,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    classification_id: Option<WireInt>,
    #[serde(default)]
    classification_name: Option<String>,
    /// Absent from the list on older API versions.
    #[serde(default)]
    is_active: Option<WireBool>,
    last_updated: String,
}

/// How a record names its classification.
#[derive(Clone, Debug, PartialEq)]
enum Classification {
    None,
    Named(String),
    Id(u64),
}

impl Classification {
    /// A name the record carries wins over its id.
    fn of(name: Option<String>, id: Option<WireInt>) -> Self {
        match (name, id) {
            (Some(name), _) if !name.trim().is_empty() => Self::Named(name),
            (_, Some(WireInt(id))) => Self::Id(id),
            _ => Self::None,
        }
    }
}

/// A record read as far as it goes without the classifications table.
#[derive(Debug)]
pub(super) enum Item {
    /// Everything is there but the classification's name, perhaps.
    Complete(Complete),
    /// No `isActive`: it must be read by id, never guessed.
    WithoutActive { id: DispositionId, raw: Value },
    /// Not a disposition; final.
    Malformed(SourceRecord),
}

#[derive(Debug)]
pub(super) struct Complete {
    id: DispositionId,
    name: String,
    description: Option<String>,
    classification: Classification,
    is_active: bool,
    last_modified: DateTime<Utc>,
    /// What CXone sent, as one string.
    raw: RawRecord,
}

impl Complete {
    /// The classification id whose name the table must give, if any.
    /// The version this record is of.
    pub fn version(&self) -> (&DispositionId, DateTime<Utc>) {
        (&self.id, self.last_modified)
    }

    pub fn classification_id(&self) -> Option<u64> {
        match self.classification {
            Classification::Id(id) => Some(id),
            _ => None,
        }
    }

    /// The finished record, its category named through `names`. An id the table does not know
    /// (even after a fresh read) still reaches Salesforce as a visible raw category, flagged for
    /// review, rather than as a silently empty one.
    pub fn finish(self, names: &HashMap<u64, String>) -> SourceRecord {
        let category = match self.classification {
            Classification::None => None,
            Classification::Named(name) => Some(name),
            Classification::Id(id) => Some(
                names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("classificationId {id}")),
            ),
        };
        SourceRecord::Valid {
            disposition: Disposition {
                id: self.id,
                name: self.name,
                description: self.description,
                category: category.filter(|c| !c.trim().is_empty()),
                is_active: self.is_active,
                last_modified: self.last_modified,
            },
            raw: self.raw,
        }
    }
}

/// Reads one record of the list or by-id endpoint.
pub(super) fn read(raw: Value) -> Item {
    let wire: WireDisposition = match serde_path_to_error::deserialize(&raw) {
        Ok(wire) => wire,
        Err(e) => {
            let reason = match e.path().to_string().as_str() {
                "." => e.inner().to_string(),
                path => format!("{path}: {}", e.inner()),
            };
            return Item::Malformed(malformed(raw, reason));
        }
    };
    let id = match DispositionId::parse(&wire.disposition_id.0.to_string()) {
        Ok(id) => id,
        Err(reason) => return Item::Malformed(malformed(raw, format!("dispositionId: {reason}"))),
    };
    if wire.disposition_name.trim().is_empty() {
        return Item::Malformed(malformed(raw, "dispositionName is empty".into()));
    }
    let last_modified = match parse_timestamp(&wire.last_updated) {
        Ok(t) => t,
        Err(reason) => return Item::Malformed(malformed(raw, format!("lastUpdated: {reason}"))),
    };
    let Some(WireBool(is_active)) = wire.is_active else {
        return Item::WithoutActive { id, raw };
    };
    Item::Complete(Complete {
        id,
        classification: Classification::of(wire.classification_name, wire.classification_id),
        name: wire.disposition_name,
        description: wire.notes,
        is_active,
        last_modified,
        raw: RawRecord::of(&raw),
    })
}

/// Reads one row of a list page from its text, typed straight from it with no tree in between.
/// A row that is not a complete, valid record (rare) is read again as a tree by [`read`], which
/// says why and keeps it for the dead letter exactly as it always has.
pub(super) fn read_listed(row: &RawValue) -> Item {
    if let Ok(wire) = serde_json::from_str::<WireDisposition>(row.get())
        && let Ok(id) = DispositionId::parse(&wire.disposition_id.0.to_string())
        && !wire.disposition_name.trim().is_empty()
        && let Ok(last_modified) = parse_timestamp(&wire.last_updated)
        && let Some(WireBool(is_active)) = wire.is_active
    {
        return Item::Complete(Complete {
            id,
            classification: Classification::of(wire.classification_name, wire.classification_id),
            name: wire.disposition_name,
            description: wire.notes,
            is_active,
            last_modified,
            raw: RawRecord::from_json(row),
        });
    }
    match serde_json::from_str::<Value>(row.get()) {
        Ok(tree) => read(tree),
        // The page it came in was read as JSON, so its rows are JSON too.
        Err(e) => Item::Malformed(malformed(Value::Null, format!("unreadable row ({e})"))),
    }
}

/// A record the sync cannot use, with the id and version read from it when they can be.
pub(super) fn malformed(raw: Value, reason: String) -> SourceRecord {
    let external_id = raw
        .get("dispositionId")
        .and_then(|v| serde_json::from_value::<WireInt>(v.clone()).ok())
        .map(|id| id.0.to_string());
    let last_modified = raw
        .get("lastUpdated")
        .and_then(Value::as_str)
        .and_then(|s| parse_timestamp(s).ok());
    SourceRecord::Malformed {
        raw,
        reason,
        external_id,
        last_modified,
    }
}

/// `lastUpdated`: ISO 8601 with 0 to 9 fractional digits, and `Z`, an offset, or no zone at all,
/// which is read as UTC (CXone's clocks and other timestamps are UTC).
pub(super) fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| format!("{s:?} is not an ISO 8601 timestamp"))
}

/// `GET …/dispositions/classifications`: `{"classificationResults": [{"classificationId",
/// "classificationName", …}]}`. Entries without a usable id or name are skipped.
pub(super) fn classification_names(body: &Value) -> Result<HashMap<u64, String>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        classification_id: Option<WireInt>,
        classification_name: Option<String>,
    }
    let Some(results) = body.get("classificationResults") else {
        return Err("no classificationResults".into());
    };
    let entries = match results {
        Value::Array(entries) => entries,
        Value::Null => return Ok(HashMap::new()),
        _ => return Err("classificationResults is not an array".into()),
    };
    Ok(entries
        .iter()
        .filter_map(|e| serde_json::from_value::<Entry>(e.clone()).ok())
        .filter_map(|e| Some((e.classification_id?.0, e.classification_name?)))
        .collect())
}

/// A by-id answer: the object itself, or (as some Admin endpoints answer) wrapped as
/// `{"dispositions": [obj]}`. `None` when the wrapper is empty.
pub(super) fn unwrap_by_id(body: Value) -> Option<Value> {
    match body {
        Value::Object(mut map) if !map.contains_key("dispositionId") => {
            match map.remove("dispositions") {
                Some(Value::Array(items)) => items.into_iter().next(),
                Some(other) => Some(other),
                None => Some(Value::Object(map)),
            }
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::format_ts;
    use serde_json::json;

    fn good() -> Value {
        json!({"dispositionId": 6985, "dispositionName": "AU: Asset", "notes": "n",
               "lastUpdated": "2024-05-01T12:34:56.789Z", "classificationId": 1,
               "systemOutcome": "", "isActive": true, "isPreviewDisposition": false})
    }

    fn complete(raw: Value) -> Complete {
        match read(raw) {
            Item::Complete(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// A list item maps field by field; the classification id is named through the table.
    #[test]
    fn a_list_item_maps_to_a_disposition() {
        let names = HashMap::from([(1, "Positive w/Amount".to_owned())]);
        let SourceRecord::Valid { disposition, raw } = complete(good()).finish(&names) else {
            panic!()
        };
        assert_eq!(raw.to_value(), good());
        assert_eq!(disposition.id.as_str(), "6985");
        assert_eq!(disposition.name, "AU: Asset");
        assert_eq!(disposition.description.as_deref(), Some("n"));
        assert_eq!(disposition.category.as_deref(), Some("Positive w/Amount"));
        assert!(disposition.is_active);
        assert_eq!(
            format_ts(disposition.last_modified),
            "2024-05-01T12:34:56.789Z"
        );
    }

    /// A list row read from its text becomes the same record as the same row read as a tree,
    /// and one that is not a complete record is read as a tree, for the same reason.
    #[test]
    fn a_row_read_from_its_text_is_the_row_read_as_a_tree() {
        let text = |v: &Value| RawValue::from_string(v.to_string()).unwrap();
        let mut rows = vec![good()];
        let mut named = good();
        named["classificationName"] = json!("Sales");
        rows.push(named);
        for (key, value) in [
            ("dispositionId", json!("abc")),
            ("lastUpdated", json!("soon")),
            ("dispositionName", json!(" ")),
        ] {
            let mut row = good();
            row[key] = value;
            rows.push(row);
        }
        let mut without_active = good();
        without_active.as_object_mut().unwrap().remove("isActive");
        rows.push(without_active);
        let names = HashMap::from([(1, "None".to_owned())]);
        let done = |item: Item| match item {
            Item::Complete(c) => c.finish(&names),
            Item::Malformed(record) => record,
            Item::WithoutActive { id, .. } => panic!("{id} asks for its record by id"),
        };
        for row in rows {
            let listed = read_listed(&text(&row));
            let tree = read(row.clone());
            if matches!(tree, Item::WithoutActive { .. }) {
                assert!(matches!(listed, Item::WithoutActive { .. }), "{row}");
                continue;
            }
            let (listed, tree) = (done(listed), done(tree));
            match (&listed, &tree) {
                (
                    SourceRecord::Valid { disposition, raw },
                    SourceRecord::Valid {
                        disposition: d,
                        raw: r,
                    },
                ) => {
                    assert_eq!((disposition, raw.to_value()), (d, r.to_value()), "{row}");
                    assert_eq!(raw.to_value(), row);
                }
                _ => assert_eq!(listed, tree, "{row}"),
            }
        }
    }

    /// Ids and booleans sent as strings, and a classification id as a string, are read.
    #[test]
    fn numeric_strings_and_string_booleans_are_read() {
        let mut raw = good();
        raw["dispositionId"] = json!(" 42 ");
        raw["isActive"] = json!("False");
        raw["classificationId"] = json!("7");
        let c = complete(raw);
        assert_eq!(c.classification_id(), Some(7));
        let SourceRecord::Valid { disposition, .. } = c.finish(&HashMap::new()) else {
            panic!()
        };
        assert_eq!(disposition.id.as_str(), "42");
        assert!(!disposition.is_active);
        // Unknown even after a refresh: visible, never silently empty.
        assert_eq!(disposition.category.as_deref(), Some("classificationId 7"));
    }

    /// A name the record carries wins over the table; no classification means no category.
    #[test]
    fn a_carried_classification_name_needs_no_table() {
        let mut raw = good();
        raw["classificationName"] = json!("Negative - DNC - Skill");
        let c = complete(raw);
        assert_eq!(c.classification_id(), None);
        let SourceRecord::Valid { disposition, .. } = c.finish(&HashMap::new()) else {
            panic!()
        };
        assert_eq!(
            disposition.category.as_deref(),
            Some("Negative - DNC - Skill")
        );
        let mut raw = good();
        raw.as_object_mut().unwrap().remove("classificationId");
        let SourceRecord::Valid { disposition, .. } = complete(raw).finish(&HashMap::new()) else {
            panic!()
        };
        assert_eq!(disposition.category, None);
    }

    /// `lastUpdated` with 0 to 7 fractional digits, `Z`, an offset, or no zone (UTC).
    #[test]
    fn timestamps_in_every_shape_seen() {
        for (text, expected) in [
            ("2024-05-01T12:34:56Z", "2024-05-01T12:34:56.000Z"),
            ("2024-05-01T12:34:56.3560573Z", "2024-05-01T12:34:56.356Z"),
            ("2024-05-01T14:34:56.789+02:00", "2024-05-01T12:34:56.789Z"),
            ("2024-05-01T07:34:56-05:00", "2024-05-01T12:34:56.000Z"),
            ("2024-05-01T12:34:56.1234567", "2024-05-01T12:34:56.123Z"),
            ("2024-05-01T12:34:56", "2024-05-01T12:34:56.000Z"),
        ] {
            assert_eq!(
                format_ts(parse_timestamp(text).unwrap()),
                expected,
                "{text}"
            );
        }
        let seven = parse_timestamp("2021-07-21T13:38:15.3560573Z").unwrap();
        assert_eq!(seven.timestamp_subsec_nanos(), 356_057_300);
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2024-05-01").is_err());
    }

    /// A list item without `isActive` is neither valid nor malformed: it must be read by id.
    #[test]
    fn a_missing_is_active_asks_for_the_record_by_id() {
        let mut raw = good();
        raw.as_object_mut().unwrap().remove("isActive");
        match read(raw) {
            Item::WithoutActive { id, .. } => assert_eq!(id.as_str(), "6985"),
            other => panic!("{other:?}"),
        }
    }

    /// Malformed records say which field is wrong, and keep the id and version when readable.
    #[test]
    fn malformed_records_say_why_and_keep_what_could_be_read() {
        let cases = [
            ("dispositionId", json!(null), "dispositionId", false),
            ("dispositionId", json!(-3), "dispositionId", false),
            ("dispositionId", json!("abc"), "dispositionId", false),
            ("dispositionName", json!(12), "dispositionName", true),
            (
                "dispositionName",
                json!("  "),
                "dispositionName is empty",
                true,
            ),
            ("isActive", json!("maybe"), "isActive", true),
            ("lastUpdated", json!("soon"), "lastUpdated", true),
            ("classificationId", json!("x"), "classificationId", true),
        ];
        for (key, value, expected, id_readable) in cases {
            let mut raw = good();
            raw[key] = value;
            let Item::Malformed(SourceRecord::Malformed {
                reason,
                external_id,
                last_modified,
                ..
            }) = read(raw)
            else {
                panic!("{key}")
            };
            assert!(reason.contains(expected), "{key}: {reason}");
            assert_eq!(external_id.is_some(), id_readable, "{key}");
            assert_eq!(last_modified.is_some(), key != "lastUpdated", "{key}");
        }
        let mut raw = good();
        raw["dispositionId"] = json!("77");
        raw["isActive"] = json!(3);
        let Item::Malformed(SourceRecord::Malformed { external_id, .. }) = read(raw) else {
            panic!()
        };
        assert_eq!(external_id.as_deref(), Some("77"));
        assert!(matches!(read(json!([1])), Item::Malformed(_)));
    }

    /// The classifications table maps ids to names; unusable entries are skipped.
    #[test]
    fn classifications_map_ids_to_names() {
        let body = json!({"totalRecords": 3, "businessUnitId": 1, "classificationResults": [
            {"classificationId": 1, "classificationName": "None"},
            {"classificationId": "2", "classificationName": "Positive w/Amount"},
            {"classificationName": "no id"}]});
        let names = classification_names(&body).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(names[&2], "Positive w/Amount");
        assert!(classification_names(&json!({"other": []})).is_err());
    }

    /// By id, the object comes bare or wrapped in `dispositions`.
    #[test]
    fn by_id_answers_are_bare_or_wrapped() {
        assert_eq!(unwrap_by_id(good()), Some(good()));
        assert_eq!(
            unwrap_by_id(json!({"dispositions": [good()]})),
            Some(good())
        );
        assert_eq!(unwrap_by_id(json!({"dispositions": []})), None);
    }
}
