//! CXone disposition → Salesforce record, with strict types and Salesforce's own rules applied
//! first, so that Salesforce has nothing to refuse that we could have caught:
//! - `Category__c` takes only values the picklist allows (from describe), after an optional
//!   alias map; anything else goes to `RawCategory__c` with the record flagged for review.
//! - Text longer than its field is truncated on a character boundary (and counted); an external
//!   ID longer than its field is an error, never truncated.

use crate::dlq::RecordError;
use crate::domain::{Disposition, format_ts};
use crate::salesforce::ObjectSchema;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Names of the target object and its external ID field (`SF_OBJECT`, `SF_EXTERNAL_ID_FIELD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub object: String,
    pub external_id_field: String,
}

/// The review reason prefix for codes whose category Salesforce does not allow.
pub const UNMAPPED_REASON: &str = "unmapped category";
/// The review reason of Salesforce records that no CXone code matches.
pub const STALE_REASON: &str = "stale: no matching CXone disposition";

/// What the mapping knows about Salesforce: the object's schema and the category aliases.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub schema: ObjectSchema,
    /// `CATEGORY_ALIASES`: CXone value → Salesforce value.
    pub aliases: BTreeMap<String, String>,
}

/// A record ready to send, and what the mapping had to do to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    pub payload: Value,
    /// The CXone category when Salesforce does not allow it.
    pub unmapped_category: Option<String>,
    /// How many fields were cut to their Salesforce length.
    pub truncated: usize,
}

impl Rules {
    /// The picklist value for a CXone category: exact match after trimming (through the alias
    /// map first), then case-insensitive. `None` when the restricted picklist has no such value.
    pub fn category(&self, raw: &str) -> Option<String> {
        let trimmed = raw.trim();
        let aliased = self
            .aliases
            .get(trimmed)
            .or_else(|| {
                self.aliases
                    .iter()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(trimmed))
                    .map(|(_, v)| v)
            })
            .map(|v| v.trim())
            .unwrap_or(trimmed);
        let field = self.schema.field("Category__c");
        let Some(allowed) = field.and_then(|f| f.picklist.as_ref()) else {
            return Some(aliased.to_owned());
        };
        if let Some(v) = allowed.iter().find(|v| v.as_str() == aliased) {
            return Some(v.clone());
        }
        if let Some(v) = allowed.iter().find(|v| v.eq_ignore_ascii_case(aliased)) {
            return Some(v.clone());
        }
        if field.is_some_and(|f| f.restricted) {
            None
        } else {
            Some(aliased.to_owned())
        }
    }

    fn max_len(&self, field: &str) -> Option<usize> {
        self.schema.field(field).and_then(|f| f.length)
    }
}

/// The sObject Collections record for `d`. Every field the sync owns is always present, so an
/// update also clears what CXone cleared (a removed description, an archive date on
/// reactivation, a review flag that no longer applies).
pub fn to_salesforce(
    d: &Disposition,
    target: &Target,
    rules: &Rules,
) -> Result<Mapped, RecordError> {
    let external_id = d.id.as_str();
    if let Some(max) = rules.max_len(&target.external_id_field)
        && external_id.chars().count() > max
    {
        return Err(RecordError {
            code: "EXTERNAL_ID_TOO_LONG".into(),
            message: format!(
                "external ID is {} characters; {} allows {max}",
                external_id.chars().count(),
                target.external_id_field
            ),
            fields: vec![target.external_id_field.clone()],
        });
    }
    let mut truncated = 0;
    let mut text = |field: &str, value: Option<&str>| -> Value {
        match (value, rules.max_len(field)) {
            (Some(v), Some(max)) if v.chars().count() > max => {
                truncated += 1;
                json!(v.chars().take(max).collect::<String>())
            }
            (v, _) => json!(v),
        }
    };
    let (category, raw_category, unmapped) = match d.category.as_deref() {
        None => (None, None, None),
        Some(raw) => match rules.category(raw) {
            Some(value) => (Some(value), None, None),
            None => (None, Some(raw.to_owned()), Some(raw.to_owned())),
        },
    };
    let review_reason = unmapped.as_ref().map(|c| format!("{UNMAPPED_REASON}: {c}"));

    let mut record = Map::new();
    record.insert("attributes".into(), json!({ "type": target.object }));
    record.insert(target.external_id_field.clone(), json!(external_id));
    record.insert("Name".into(), text("Name", Some(&d.name)));
    record.insert(
        "Description__c".into(),
        text("Description__c", d.description.as_deref()),
    );
    record.insert("Category__c".into(), json!(category));
    record.insert(
        "RawCategory__c".into(),
        text("RawCategory__c", raw_category.as_deref()),
    );
    record.insert("IsActive__c".into(), json!(d.is_active));
    record.insert(
        "LastModifiedCXone__c".into(),
        json!(format_ts(d.last_modified)),
    );
    // Archival is a soft delete: the archive date is the CXone time of the deactivating version,
    // so retries and re-syncs write the same value.
    let archived = (!d.is_active).then(|| format_ts(d.last_modified));
    record.insert("ArchivedDate__c".into(), json!(archived));
    record.insert("NeedsReview__c".into(), json!(unmapped.is_some()));
    record.insert(
        "ReviewReason__c".into(),
        text("ReviewReason__c", review_reason.as_deref()),
    );
    Ok(Mapped {
        payload: Value::Object(record),
        unmapped_category: unmapped,
        truncated,
    })
}

/// The record that flags a Salesforce row no CXone code matches: only the review fields, so
/// nothing else about it changes (it is not deactivated, and never deleted).
pub fn stale_flag(external_id: &str, target: &Target) -> Value {
    json!({
        "attributes": { "type": target.object },
        target.external_id_field.clone(): external_id,
        "NeedsReview__c": true,
        "ReviewReason__c": STALE_REASON,
    })
}

/// Whether Salesforce's `row` already holds every field of `payload` (timestamps compared as
/// instants, since Salesforce answers `...000+0000` for what we sent as `...000Z`).
pub fn matches(payload: &Value, row: &Value) -> bool {
    let Some(fields) = payload.as_object() else {
        return false;
    };
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes")
        .all(|(k, want)| {
            let have = row.get(k).unwrap_or(&Value::Null);
            match (want, have) {
                (Value::String(a), Value::String(b)) => a == b || same_instant(a, b),
                (a, b) => a == b,
            }
        })
}

fn same_instant(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
    };
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DispositionId;
    use crate::salesforce::FieldInfo;
    use chrono::{TimeZone, Utc};

    fn target() -> Target {
        Target {
            object: "Disposition__c".into(),
            external_id_field: "CXone_DispositionId__c".into(),
        }
    }

    fn rules() -> Rules {
        let mut schema = ObjectSchema::default();
        schema.fields.insert(
            "Name".into(),
            FieldInfo {
                length: Some(80),
                ..Default::default()
            },
        );
        schema.fields.insert(
            "CXone_DispositionId__c".into(),
            FieldInfo {
                length: Some(50),
                ..Default::default()
            },
        );
        schema.fields.insert(
            "Category__c".into(),
            FieldInfo {
                picklist: Some(vec!["Sales".into(), "Support".into()]),
                restricted: true,
                ..Default::default()
            },
        );
        Rules {
            schema,
            aliases: BTreeMap::from([("Customer Care".to_string(), "Support".to_string())]),
        }
    }

    fn code(category: Option<&str>) -> Disposition {
        Disposition {
            id: DispositionId::parse("a1").unwrap(),
            name: "Sale".into(),
            description: None,
            category: category.map(str::to_owned),
            is_active: true,
            last_modified: Utc.with_ymd_and_hms(2024, 3, 15, 14, 32, 0).unwrap(),
        }
    }

    #[test]
    fn maps_the_guides_fields_and_archives_inactive_codes() {
        let mut d = code(Some("Sales"));
        let r = to_salesforce(&d, &target(), &rules()).unwrap().payload;
        assert_eq!(r["attributes"]["type"], "Disposition__c");
        assert_eq!(r["CXone_DispositionId__c"], "a1");
        assert_eq!(
            (r["IsActive__c"].clone(), r["NeedsReview__c"].clone()),
            (json!(true), json!(false))
        );
        assert_eq!(
            (r["Description__c"].clone(), r["ArchivedDate__c"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(r["LastModifiedCXone__c"], "2024-03-15T14:32:00.000Z");
        d.is_active = false;
        assert_eq!(
            to_salesforce(&d, &target(), &rules()).unwrap().payload["ArchivedDate__c"],
            "2024-03-15T14:32:00.000Z"
        );
    }

    #[test]
    fn categories_match_exactly_then_by_alias_then_case_insensitively() {
        let r = rules();
        assert_eq!(r.category(" Sales "), Some("Sales".into()));
        assert_eq!(r.category("customer care"), Some("Support".into()));
        assert_eq!(r.category("SUPPORT"), Some("Support".into()));
        assert_eq!(r.category("Compliance Review"), None);
    }

    #[test]
    fn unmapped_categories_fall_back_to_raw_category_and_are_flagged() {
        let m = to_salesforce(&code(Some("Compliance Review")), &target(), &rules()).unwrap();
        assert_eq!(m.unmapped_category.as_deref(), Some("Compliance Review"));
        assert_eq!(m.payload["Category__c"], Value::Null);
        assert_eq!(m.payload["RawCategory__c"], "Compliance Review");
        assert_eq!(m.payload["NeedsReview__c"], true);
        assert_eq!(
            m.payload["ReviewReason__c"],
            "unmapped category: Compliance Review"
        );
    }

    #[test]
    fn long_text_is_truncated_on_char_boundaries_and_long_ids_are_errors() {
        let mut d = code(None);
        d.name = "é".repeat(100);
        let m = to_salesforce(&d, &target(), &rules()).unwrap();
        assert_eq!(m.payload["Name"].as_str().unwrap().chars().count(), 80);
        assert_eq!(m.truncated, 1);
        d.id = DispositionId::parse(&"x".repeat(51)).unwrap();
        assert_eq!(
            to_salesforce(&d, &target(), &rules()).unwrap_err().code,
            "EXTERNAL_ID_TOO_LONG"
        );
    }

    #[test]
    fn rows_match_payloads_across_datetime_formats() {
        let payload = to_salesforce(&code(Some("Sales")), &target(), &rules())
            .unwrap()
            .payload;
        let mut row = payload.clone();
        row["LastModifiedCXone__c"] = json!("2024-03-15T14:32:00.000+0000");
        row["Id"] = json!("a0B000000000001AAA");
        assert!(matches(&payload, &row));
        row["Name"] = json!("Other");
        assert!(!matches(&payload, &row));
    }
}
