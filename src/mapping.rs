//! CXone disposition → Salesforce record, with strict types and Salesforce's own rules applied
//! first, so that Salesforce has nothing to refuse that we could have caught:
//! - `Category__c` takes only values the picklist allows (from describe), after an optional
//!   alias map; anything else goes to `RawCategory__c` with the record flagged for review.
//! - Text longer than its field is truncated on a character boundary (and counted); an external
//!   ID longer than its field is an error, never truncated.

use crate::domain::Disposition;
use crate::record::{Fields, Target, UNMAPPED_REASON};
use crate::salesforce::{ObjectSchema, RecordError, RecordSink, SalesforceError};
use chrono::SubsecRound;
use std::collections::BTreeMap;

/// What the mapping knows about Salesforce: the object's schema and the category aliases.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub schema: ObjectSchema,
    /// `CATEGORY_ALIASES`: CXone value → Salesforce value.
    pub aliases: BTreeMap<String, String>,
}

/// The rules, kept for the life of the execution environment: the object is described on first
/// use, and again when a caller asks for the current picklist (each full reconciliation, after a
/// picklist error).
pub struct RulesCache {
    schema: tokio::sync::Mutex<Option<ObjectSchema>>,
    aliases: BTreeMap<String, String>,
}

impl RulesCache {
    pub fn new(aliases: BTreeMap<String, String>) -> Self {
        Self {
            schema: tokio::sync::Mutex::new(None),
            aliases,
        }
    }

    /// The rules, describing the object first when there is no schema yet or `refresh` asks.
    pub async fn get(
        &self,
        sink: &dyn RecordSink,
        refresh: bool,
    ) -> Result<Rules, SalesforceError> {
        let mut cached = self.schema.lock().await;
        let schema = match cached.as_ref() {
            Some(schema) if !refresh => schema.clone(),
            _ => cached.insert(sink.describe().await?).clone(),
        };
        Ok(Rules {
            schema,
            aliases: self.aliases.clone(),
        })
    }
}

/// A record ready to send, and what the mapping had to do to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    pub fields: Fields,
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
    let mut text = |field: &str, value: Option<&str>| -> Option<String> {
        let value = value?;
        match rules.max_len(field) {
            Some(max) if value.chars().count() > max => {
                truncated += 1;
                Some(value.chars().take(max).collect())
            }
            _ => Some(value.to_owned()),
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
    // Salesforce keeps milliseconds: what is sent is what a later query reads back.
    let last_modified = d.last_modified.trunc_subsecs(3);
    let fields = Fields {
        name: text("Name", Some(&d.name)),
        description: text("Description__c", d.description.as_deref()),
        category,
        raw_category: text("RawCategory__c", raw_category.as_deref()),
        is_active: Some(d.is_active),
        last_modified: Some(last_modified),
        // Archival is a soft delete: the archive date is the CXone time of the deactivating
        // version, so retries and re-syncs write the same value.
        archived: (!d.is_active).then_some(last_modified),
        needs_review: Some(unmapped.is_some()),
        review_reason: text("ReviewReason__c", review_reason.as_deref()),
    };
    Ok(Mapped {
        fields,
        unmapped_category: unmapped,
        truncated,
    })
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
        let f = to_salesforce(&d, &target(), &rules()).unwrap().fields;
        assert_eq!((f.is_active, f.needs_review), (Some(true), Some(false)));
        assert_eq!((f.description, f.archived), (None, None));
        assert_eq!(f.last_modified, Some(d.last_modified));
        d.is_active = false;
        assert_eq!(
            to_salesforce(&d, &target(), &rules())
                .unwrap()
                .fields
                .archived,
            Some(d.last_modified)
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
        assert_eq!(m.fields.category, None);
        assert_eq!(m.fields.raw_category.as_deref(), Some("Compliance Review"));
        assert_eq!(m.fields.needs_review, Some(true));
        assert_eq!(
            m.fields.review_reason.as_deref(),
            Some("unmapped category: Compliance Review")
        );
    }

    #[test]
    fn long_text_is_truncated_on_char_boundaries_and_long_ids_are_errors() {
        let mut d = code(None);
        d.name = "é".repeat(100);
        let m = to_salesforce(&d, &target(), &rules()).unwrap();
        assert_eq!(m.fields.name.unwrap().chars().count(), 80);
        assert_eq!(m.truncated, 1);
        d.id = DispositionId::parse(&"x".repeat(51)).unwrap();
        assert_eq!(
            to_salesforce(&d, &target(), &rules()).unwrap_err().code,
            "EXTERNAL_ID_TOO_LONG"
        );
    }

    #[test]
    fn what_is_sent_compares_equal_to_what_salesforce_reads_back() {
        let mut d = code(Some("Sales"));
        // CXone may send sub-millisecond precision; Salesforce keeps milliseconds.
        d.last_modified += chrono::Duration::microseconds(1_234);
        let sent = to_salesforce(&d, &target(), &rules()).unwrap().fields;
        let mut row = serde_json::to_value(&sent).unwrap();
        row["LastModifiedCXone__c"] = serde_json::json!("2024-03-15T14:32:00.001+0000");
        row["CXone_DispositionId__c"] = serde_json::json!("a1");
        let read = crate::record::Row::parse(&row, &target()).unwrap();
        assert_eq!(read.fields, sent);
        row["Name"] = serde_json::json!("Other");
        assert_ne!(
            crate::record::Row::parse(&row, &target()).unwrap().fields,
            sent
        );
    }
}
