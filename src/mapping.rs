//! CXone disposition → Salesforce record, with strict types so Salesforce's schema validation
//! has nothing to refuse that we could have caught.

use crate::domain::{Disposition, format_ts};
use serde_json::{Map, Value, json};

/// Names of the target object and its external ID field (`SF_OBJECT`, `SF_EXTERNAL_ID_FIELD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub object: String,
    pub external_id_field: String,
}

/// The sObject Collections record for `d`. Every field the sync owns is always present, so an
/// update also clears what CXone cleared (a removed description, an archive date on reactivation).
pub fn to_salesforce(d: &Disposition, target: &Target) -> Value {
    let mut record = Map::new();
    record.insert("attributes".into(), json!({ "type": target.object }));
    record.insert(target.external_id_field.clone(), json!(d.id.as_str()));
    record.insert("Name".into(), json!(d.name));
    record.insert("Description__c".into(), json!(d.description));
    record.insert("Category__c".into(), json!(d.category));
    record.insert("IsActive__c".into(), json!(d.is_active));
    record.insert("LastModifiedCXone__c".into(), json!(format_ts(d.last_modified)));
    // Archival is a soft delete: the archive date is the CXone time of the deactivating version,
    // so retries and re-syncs write the same value.
    let archived = (!d.is_active).then(|| format_ts(d.last_modified));
    record.insert("ArchivedDate__c".into(), json!(archived));
    Value::Object(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DispositionId;
    use chrono::{TimeZone, Utc};

    fn target() -> Target {
        Target { object: "Disposition__c".into(), external_id_field: "CXone_DispositionId__c".into() }
    }

    #[test]
    fn maps_the_guides_fields_and_archives_inactive_codes() {
        let mut d = Disposition {
            id: DispositionId::parse("a1").unwrap(),
            name: "Sale".into(),
            description: None,
            category: Some("Sales".into()),
            is_active: true,
            last_modified: Utc.with_ymd_and_hms(2024, 3, 15, 14, 32, 0).unwrap(),
        };
        let r = to_salesforce(&d, &target());
        assert_eq!(r["attributes"]["type"], "Disposition__c");
        assert_eq!(r["CXone_DispositionId__c"], "a1");
        assert_eq!(r["IsActive__c"], true);
        assert_eq!(r["Description__c"], Value::Null);
        assert_eq!(r["ArchivedDate__c"], Value::Null);
        assert_eq!(r["LastModifiedCXone__c"], "2024-03-15T14:32:00.000Z");
        d.is_active = false;
        assert_eq!(to_salesforce(&d, &target())["ArchivedDate__c"], "2024-03-15T14:32:00.000Z");
    }
}
