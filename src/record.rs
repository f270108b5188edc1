//! The Salesforce side of a disposition: the fields the sync owns on the object, typed.
//!
//! [`Fields`] is the one table of Salesforce field names: the upsert body ([`SObject`]), the
//! SOQL column list ([`columns`]) and the comparison with a queried row ([`Row`]) all come from
//! its serde names, so a field added there is written, read and compared everywhere at once.

use crate::domain::{DispositionId, format_ts};
use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::sync::LazyLock;

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

/// The fields the sync owns, as Salesforce names them. `None` is sent as `null`, which clears
/// the field: an update also clears what CXone cleared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fields {
    #[serde(rename = "Name")]
    pub name: Option<String>,
    #[serde(rename = "Description__c")]
    pub description: Option<String>,
    #[serde(rename = "Category__c")]
    pub category: Option<String>,
    #[serde(rename = "RawCategory__c")]
    pub raw_category: Option<String>,
    #[serde(rename = "IsActive__c")]
    pub is_active: Option<bool>,
    #[serde(rename = "LastModifiedCXone__c", with = "datetime")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(rename = "ArchivedDate__c", with = "datetime")]
    pub archived: Option<DateTime<Utc>>,
    #[serde(rename = "NeedsReview__c")]
    pub needs_review: Option<bool>,
    #[serde(rename = "ReviewReason__c")]
    pub review_reason: Option<String>,
}

impl Fields {
    /// The review flag of a record no CXone code matches: only the review fields, so that
    /// nothing else about the record changes (it is not deactivated, and never deleted).
    pub fn stale_flag() -> Self {
        Self {
            needs_review: Some(true),
            review_reason: Some(STALE_REASON.into()),
            ..Self::default()
        }
    }

    /// Whether this is the review flag of a stale record.
    pub fn is_flagged_stale(&self) -> bool {
        self.needs_review == Some(true) && self.review_reason.as_deref() == Some(STALE_REASON)
    }
}

/// The columns a query selects to compare rows with [`Fields`]: `Id`, the external ID field and
/// every owned field.
pub fn columns(target: &Target) -> String {
    static OWNED: LazyLock<String> =
        LazyLock::new(|| match serde_json::to_value(Fields::default()) {
            Ok(Value::Object(map)) => map.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => unreachable!("Fields serializes as a JSON object"),
        });
    format!("Id, {}, {}", target.external_id_field, *OWNED)
}

/// One record of an sObject Collections upsert: the object type, the external ID and the fields.
/// With `only_set`, fields that are `None` are left out instead of cleared (a review flag).
pub struct SObject<'a> {
    pub target: &'a Target,
    pub external_id: &'a DispositionId,
    pub fields: &'a Fields,
    pub only_set: bool,
}

impl Serialize for SObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Attributes<'a> {
            #[serde(rename = "type")]
            object: &'a str,
        }
        let fields = match serde_json::to_value(self.fields).map_err(serde::ser::Error::custom)? {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "attributes",
            &Attributes {
                object: &self.target.object,
            },
        )?;
        map.serialize_entry(&self.target.external_id_field, self.external_id)?;
        for (name, value) in fields {
            if !(self.only_set && value.is_null()) {
                map.serialize_entry(&name, &value)?;
            }
        }
        map.end()
    }
}

/// A record as a SOQL query returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The Salesforce record id.
    pub id: Option<String>,
    pub external_id: String,
    pub fields: Fields,
}

impl Row {
    /// Reads a query row; `None` when it has no external ID. A field Salesforce returned in an
    /// unexpected shape reads as unknown, so the row differs and is written again.
    pub fn parse(row: &Value, target: &Target) -> Option<Self> {
        let external_id = row.get(&target.external_id_field)?.as_str()?.to_owned();
        let fields = Fields::deserialize(row).unwrap_or_else(|e| {
            tracing::warn!(%external_id, error = %e, "Salesforce row has an unexpected field value");
            Fields::default()
        });
        Some(Self {
            id: row.get("Id").and_then(Value::as_str).map(str::to_owned),
            external_id,
            fields,
        })
    }
}

/// Salesforce datetimes: written as RFC 3339 UTC with milliseconds; read in either of the
/// forms Salesforce answers (`…Z` or `…+0000`). An unreadable value reads as unknown.
mod datetime {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => serializer.serialize_str(&format_ts(*t)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Value>::deserialize(deserializer)?
            .as_ref()
            .and_then(Value::as_str)
            .and_then(parse))
    }
}

/// A Salesforce datetime in either form it answers (`…Z` or `…+0000`).
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> Target {
        Target {
            object: "Disposition__c".into(),
            external_id_field: "CXone_DispositionId__c".into(),
        }
    }

    #[test]
    fn the_column_list_names_every_owned_field() {
        let columns = columns(&target());
        for name in [
            "Id",
            "CXone_DispositionId__c",
            "Name",
            "Description__c",
            "Category__c",
            "RawCategory__c",
            "IsActive__c",
            "LastModifiedCXone__c",
            "ArchivedDate__c",
            "NeedsReview__c",
            "ReviewReason__c",
        ] {
            assert!(columns.split(", ").any(|c| c == name), "{name}: {columns}");
        }
    }

    #[test]
    fn a_review_flag_sends_only_the_review_fields_and_a_code_clears_what_is_unset() {
        let id = DispositionId::parse("a1").unwrap();
        let t = target();
        let flag = Fields::stale_flag();
        let sent = serde_json::to_value(SObject {
            target: &t,
            external_id: &id,
            fields: &flag,
            only_set: true,
        })
        .unwrap();
        assert_eq!(
            sent,
            json!({"attributes": {"type": "Disposition__c"}, "CXone_DispositionId__c": "a1",
                   "NeedsReview__c": true, "ReviewReason__c": STALE_REASON})
        );
        let code = Fields {
            name: Some("Sale".into()),
            ..Fields::default()
        };
        let sent = serde_json::to_value(SObject {
            target: &t,
            external_id: &id,
            fields: &code,
            only_set: false,
        })
        .unwrap();
        assert_eq!(sent["Name"], "Sale");
        assert_eq!(sent["Description__c"], Value::Null);
    }

    #[test]
    fn rows_read_back_in_either_datetime_form_and_compare_as_instants() {
        let row = json!({"Id": "a0B1", "CXone_DispositionId__c": "a1", "Name": "Sale",
                         "LastModifiedCXone__c": "2024-03-15T14:32:00.000+0000", "IsActive__c": true});
        let parsed = Row::parse(&row, &target()).unwrap();
        assert_eq!(parsed.id.as_deref(), Some("a0B1"));
        assert_eq!(
            parsed.fields.last_modified,
            parse("2024-03-15T14:32:00.000Z")
        );
        let odd = json!({"CXone_DispositionId__c": "a1", "Name": 5});
        assert_eq!(
            Row::parse(&odd, &target()).unwrap().fields,
            Fields::default()
        );
        assert!(Row::parse(&json!({"Name": "x"}), &target()).is_none());
    }
}
