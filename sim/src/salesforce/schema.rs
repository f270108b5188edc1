//! The simulated org's schema of the custom object: one list of field specs that drives the
//! describe answer, upsert validation and SOQL, so the three can never disagree.

use super::errors::RecordError;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Field types used by the object, named as describe reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Textarea,
    Picklist,
    Boolean,
    Datetime,
}

impl FieldType {
    /// The `type` value in a describe answer.
    pub fn api_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Datetime => "datetime",
        }
    }
}

/// One field of the object, with the describe properties the sync relies on.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    /// Maximum size in Unicode characters for text types (describe `length`), 0 for the others.
    pub length: usize,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub external_id: bool,
    pub unique: bool,
    pub case_sensitive: bool,
    pub id_lookup: bool,
    pub restricted_picklist: bool,
    /// Active values of a picklist, in display order; empty for other types.
    pub picklist_values: Vec<String>,
    /// The value a new record gets when the insert leaves the field out (the metadata's and
    /// describe's `defaultValue`): a checkbox's default, null for the other types.
    pub default_value: Value,
}

/// The external ID field of the default schema.
pub const DEFAULT_EXTERNAL_ID_FIELD: &str = "CXone_DispositionId__c";

/// The values of `Category__c` in a fresh org.
pub const DEFAULT_CATEGORIES: [&str; 8] = [
    "Sales",
    "Support",
    "Service",
    "Billing",
    "Collections",
    "Retention",
    "Technical",
    "General",
];

/// `Disposition__c` as the project's Salesforce metadata defines it.
pub fn default_schema() -> Vec<FieldSpec> {
    schema_with_external_id(DEFAULT_EXTERNAL_ID_FIELD)
}

/// The default schema with the external ID field renamed, for orgs configured differently.
pub fn schema_with_external_id(external_id_field: &str) -> Vec<FieldSpec> {
    let system = |name: &str, label: &str, field_type, length| FieldSpec {
        nillable: false,
        createable: false,
        updateable: false,
        ..field(name, label, field_type, length)
    };
    vec![
        FieldSpec {
            id_lookup: true,
            ..system("Id", "Record ID", FieldType::Id, 18)
        },
        // Name cannot be null, but an insert without it stores the record Id there.
        FieldSpec {
            nillable: false,
            ..field("Name", "Disposition Name", FieldType::String, 80)
        },
        FieldSpec {
            external_id: true,
            unique: true,
            id_lookup: true,
            ..field(
                external_id_field,
                "CXone Disposition ID",
                FieldType::String,
                50,
            )
        },
        field("Description__c", "Description", FieldType::Textarea, 2000),
        FieldSpec {
            restricted_picklist: true,
            picklist_values: DEFAULT_CATEGORIES.iter().map(|v| v.to_string()).collect(),
            ..field("Category__c", "Category", FieldType::Picklist, 255)
        },
        field("RawCategory__c", "Raw Category", FieldType::String, 255),
        FieldSpec {
            nillable: false,
            default_value: Value::Bool(true),
            ..field("IsActive__c", "Active", FieldType::Boolean, 0)
        },
        field(
            "LastModifiedCXone__c",
            "Last Modified in CXone",
            FieldType::Datetime,
            0,
        ),
        field("ArchivedDate__c", "Archived Date", FieldType::Datetime, 0),
        FieldSpec {
            nillable: false,
            ..field("NeedsReview__c", "Needs Review", FieldType::Boolean, 0)
        },
        field("ReviewReason__c", "Review Reason", FieldType::String, 255),
        system("CreatedDate", "Created Date", FieldType::Datetime, 0),
        system(
            "LastModifiedDate",
            "Last Modified Date",
            FieldType::Datetime,
            0,
        ),
        system("SystemModstamp", "System Modstamp", FieldType::Datetime, 0),
    ]
}

/// A writable, nillable custom field with no external ID or picklist settings; a checkbox
/// defaults to false.
fn field(name: &str, label: &str, field_type: FieldType, length: usize) -> FieldSpec {
    FieldSpec {
        name: name.to_string(),
        label: label.to_string(),
        field_type,
        length,
        nillable: true,
        createable: true,
        updateable: true,
        external_id: false,
        unique: false,
        case_sensitive: false,
        id_lookup: false,
        restricted_picklist: false,
        picklist_values: Vec::new(),
        default_value: if field_type == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        },
    }
}

/// Finds a field by API name; Salesforce field names are case-insensitive.
pub(crate) fn find<'a>(schema: &'a [FieldSpec], name: &str) -> Option<&'a FieldSpec> {
    schema.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

impl FieldSpec {
    /// This field in a describe answer.
    pub fn describe(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist_values
            .iter()
            .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
            .collect();
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.field_type.api_name(),
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "idLookup": self.id_lookup,
            "restrictedPicklist": self.restricted_picklist,
            "picklistValues": picklist,
            "defaultValue": self.default_value,
        })
    }

    /// Written by the platform only (Id and the audit dates).
    pub(crate) fn is_system(&self) -> bool {
        !self.createable && !self.updateable
    }

    /// Long text areas (over 255 characters) cannot be filtered or sorted in SOQL.
    pub(crate) fn is_long_text(&self) -> bool {
        self.field_type == FieldType::Textarea && self.length > 255
    }

    /// The prefix of validation messages, e.g. `Category: bad value for restricted picklist field`.
    fn message_label(&self) -> &str {
        self.name.strip_suffix("__c").unwrap_or(&self.name)
    }

    /// Converts a JSON value from a request body into its stored form: empty strings become
    /// null (as Salesforce stores them), datetimes are normalised to the output format.
    /// A JSON type the field cannot take fails the whole request, so the error is the message
    /// of a request-level `JSON_PARSER_ERROR`.
    pub(crate) fn decode(&self, value: &Value) -> Result<Value, String> {
        let mismatch = |expected: &str| {
            format!(
                "Cannot deserialize instance of {expected} from {} value {value} or request may be missing a required field",
                json_token(value)
            )
        };
        match (self.field_type, value) {
            (_, Value::Null) => Ok(Value::Null),
            (
                FieldType::Id | FieldType::String | FieldType::Textarea | FieldType::Picklist,
                Value::String(s),
            ) => Ok(if s.is_empty() {
                Value::Null
            } else {
                value.clone()
            }),
            (FieldType::Boolean, Value::Bool(_)) => Ok(value.clone()),
            (FieldType::Datetime, Value::String(s)) => match parse_datetime(s) {
                Some(at) => Ok(Value::String(format_datetime(at))),
                None => Err(mismatch("datetime")),
            },
            (FieldType::Boolean, _) => Err(mismatch("boolean")),
            (FieldType::Datetime, _) => Err(mismatch("datetime")),
            _ => Err(mismatch("string")),
        }
    }

    /// The per-record checks Salesforce makes on a decoded value before writing it.
    pub(crate) fn check(&self, value: &Value) -> Option<RecordError> {
        let fields = vec![self.name.clone()];
        if self.is_system() {
            return Some(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    self.name
                ),
                fields,
            ));
        }
        match value {
            // A checkbox cannot hold null: writing null stores false.
            Value::Null if !self.nillable && self.field_type != FieldType::Boolean => {
                Some(RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", self.name),
                    fields,
                ))
            }
            Value::String(s) if self.length > 0 && s.chars().count() > self.length => {
                Some(RecordError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {s} (max length={})",
                        self.message_label(),
                        self.length
                    ),
                    fields,
                ))
            }
            Value::String(s) if self.restricted_picklist && !self.picklist_values.contains(s) => {
                Some(RecordError::new(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!(
                        "{}: bad value for restricted picklist field: {s}",
                        self.message_label()
                    ),
                    fields,
                ))
            }
            _ => None,
        }
    }
}

/// The Jackson token name Salesforce's JSON parser reports for a value.
fn json_token(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Number(n) if n.is_f64() => "VALUE_NUMBER_FLOAT",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Parses a dateTime as Salesforce accepts it: `yyyy-MM-ddTHH:mm:ss[.SSS]` followed by `Z`,
/// `+HH:mm` or `+HHmm`.
pub(crate) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let (date, time) = text.split_once('T')?;
    if date.len() != 10 || time.len() < 9 {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Formats a dateTime the way the REST API returns it: `2024-05-20T20:49:32.000+0000`.
pub fn format_datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_datetime_forms_and_normalises_them() {
        for text in [
            "2024-05-01T12:34:56Z",
            "2024-05-01T12:34:56.000Z",
            "2024-05-01T14:34:56+02:00",
            "2024-05-01T12:34:56.000+0000",
        ] {
            let at = parse_datetime(text).unwrap_or_else(|| panic!("{text} should parse"));
            assert_eq!(
                format_datetime(at),
                "2024-05-01T12:34:56.000+0000",
                "{text}"
            );
        }
        for text in [
            "2024-05-01",
            "2024-05-01 12:34:56Z",
            "yesterday",
            "2024-13-01T00:00:00Z",
        ] {
            assert!(parse_datetime(text).is_none(), "{text} should be rejected");
        }
    }

    #[test]
    fn string_length_counts_characters_not_bytes() {
        let name = find(&default_schema(), "Name").unwrap().clone();
        assert!(name.check(&json!("é".repeat(80))).is_none());
        let error = name
            .check(&json!("é".repeat(81)))
            .expect("81 characters are too many");
        assert_eq!(error.code, "STRING_TOO_LONG");
    }

    #[test]
    fn decode_rejects_wrong_json_types_and_blanks_empty_strings() {
        let schema = default_schema();
        let active = find(&schema, "IsActive__c").unwrap();
        assert!(
            active
                .decode(&json!("true"))
                .unwrap_err()
                .contains("boolean from VALUE_STRING")
        );
        let name = find(&schema, "name").unwrap();
        assert!(
            name.decode(&json!(12))
                .unwrap_err()
                .contains("string from VALUE_NUMBER_INT")
        );
        assert_eq!(name.decode(&json!("")).unwrap(), Value::Null);
    }
}
