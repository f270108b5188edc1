//! The files shipped next to the code agree with it: the Salesforce metadata of `Disposition__c`
//! with the object the simulator describes (so the tests run against the object that gets
//! deployed), the integration permission set with the fields the sync writes, and the sample
//! events in `events/` with the event parser and the dead-letter format.

use disposition_sim::salesforce::{FieldSpec, FieldType, default_schema};
use disposition_sync::dlq::DeadLetter;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The text of the first `<name>` element of `xml`. The metadata files are flat, machine-written
/// XML without attributes on these elements, so plain string search is enough.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].trim())
}

/// Every `<name>` element of `xml`, in order.
fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(inner) = tag(rest, name) {
        found.push(inner);
        let consumed = rest.find(&format!("</{name}>")).expect("tag found it") + name.len() + 3;
        rest = &rest[consumed..];
    }
    found
}

fn flag(xml: &str, name: &str) -> bool {
    match tag(xml, name) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => panic!("<{name}> is {other:?}, not a boolean"),
    }
}

/// A field as the metadata defines it, in the terms of a describe answer.
#[derive(Debug, PartialEq)]
struct Expected {
    label: String,
    field_type: FieldType,
    length: usize,
    nillable: bool,
    external_id: bool,
    unique: bool,
    case_sensitive: bool,
    restricted_picklist: bool,
    picklist_values: Vec<String>,
    default_value: Value,
}

impl Expected {
    fn of(spec: &FieldSpec) -> Self {
        Self {
            label: spec.label.clone(),
            field_type: spec.field_type,
            length: spec.length,
            nillable: spec.nillable,
            external_id: spec.external_id,
            unique: spec.unique,
            case_sensitive: spec.case_sensitive,
            restricted_picklist: spec.restricted_picklist,
            picklist_values: spec.picklist_values.clone(),
            default_value: spec.default_value.clone(),
        }
    }
}

/// How describe reports a `CustomField` file: metadata type → describe type and length
/// (picklists report 255, checkboxes and datetimes 0), `required` → not nillable (checkboxes are
/// never nillable), `defaultValue` → the checkbox default.
fn from_field_file(xml: &str) -> (String, Expected) {
    // The picklist's values have their own <fullName> and <label>; read the field's first.
    let (head, value_set) = match xml.find("<valueSet>") {
        Some(at) => xml.split_at(at),
        None => (xml, ""),
    };
    let name = tag(head, "fullName")
        .expect("a field names itself")
        .to_owned();
    let metadata_type = tag(head, "type").unwrap_or_else(|| panic!("{name} has no <type>"));
    let length = || {
        tag(head, "length")
            .unwrap_or_else(|| panic!("{name} has no <length>"))
            .parse::<usize>()
            .unwrap()
    };
    let (field_type, length) = match metadata_type {
        "Text" => (FieldType::String, length()),
        "LongTextArea" => (FieldType::Textarea, length()),
        "Picklist" => (FieldType::Picklist, 255),
        "Checkbox" => (FieldType::Boolean, 0),
        "DateTime" => (FieldType::Datetime, 0),
        other => panic!("{name}: metadata type {other} has no mapping in this test; add it"),
    };
    let default_value = match field_type {
        FieldType::Boolean => json!(flag(head, "defaultValue")),
        _ => Value::Null,
    };
    let picklist_values = tags(value_set, "value")
        .iter()
        .map(|v| tag(v, "fullName").expect("a value has a name").to_owned())
        .collect();
    let expected = Expected {
        label: tag(head, "label")
            .unwrap_or_else(|| panic!("{name} has no <label>"))
            .to_owned(),
        field_type,
        length,
        nillable: field_type != FieldType::Boolean && !flag(head, "required"),
        external_id: flag(head, "externalId"),
        unique: flag(head, "unique"),
        case_sensitive: flag(head, "caseSensitive"),
        restricted_picklist: flag(value_set, "restricted"),
        picklist_values,
        default_value,
    };
    (name, expected)
}

const OBJECT_DIR: &str = "salesforce/force-app/main/default/objects/Disposition__c";

/// The fields the deployed object will have: its name field and every custom field file.
fn metadata_fields() -> BTreeMap<String, Expected> {
    let object = read(&repo_path(&format!(
        "{OBJECT_DIR}/Disposition__c.object-meta.xml"
    )));
    let name_field = tag(&object, "nameField").expect("the object has a name field");
    assert_eq!(
        tag(name_field, "type"),
        Some("Text"),
        "an Auto Number name would not be writable"
    );
    let mut fields = BTreeMap::from([(
        "Name".to_owned(),
        Expected {
            label: tag(name_field, "label")
                .expect("the name field has a label")
                .to_owned(),
            field_type: FieldType::String,
            // A custom object's Text name field always holds up to 80 characters.
            length: 80,
            nillable: false,
            external_id: false,
            unique: false,
            case_sensitive: false,
            restricted_picklist: false,
            picklist_values: vec![],
            default_value: Value::Null,
        },
    )]);
    let dir = repo_path(&format!("{OBJECT_DIR}/fields"));
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (name, expected) = from_field_file(&read(&path));
        assert_eq!(
            file_name,
            format!("{name}.field-meta.xml"),
            "a field file is named after its field"
        );
        fields.insert(name, expected);
    }
    fields
}

/// Every field of `Disposition__c` in the Salesforce metadata is in the simulator's describe with
/// the same label, type, length, nillability, external-ID and uniqueness flags, default and
/// picklist values (restricted, in order), and the simulator has no writable field the metadata
/// lacks.
#[test]
fn the_simulated_object_is_the_object_the_metadata_deploys() {
    let metadata = metadata_fields();
    let simulated: BTreeMap<String, Expected> = default_schema()
        .iter()
        .filter(|f| f.createable)
        .map(|f| (f.name.clone(), Expected::of(f)))
        .collect();
    assert_eq!(
        metadata.keys().collect::<Vec<_>>(),
        simulated.keys().collect::<Vec<_>>(),
        "the metadata and the simulator define different fields"
    );
    for (name, expected) in &metadata {
        assert_eq!(
            &simulated[name], expected,
            "{name}: simulator (left) and metadata (right) differ"
        );
    }
    // The external ID is what every upsert is keyed on: make its settings explicit.
    let key = &metadata["CXone_DispositionId__c"];
    assert!(
        key.external_id && key.unique && !key.case_sensitive,
        "{key:?}"
    );
    assert!(metadata["Category__c"].restricted_picklist);
}

/// The integration user's permission set can read and edit every field the sync writes, and
/// the object permissions allow create and edit but never delete.
#[test]
fn the_integration_permission_set_covers_every_written_field() {
    let xml = read(&repo_path(
        "salesforce/force-app/main/default/permissionsets/Disposition_Sync_Integration.permissionset-meta.xml",
    ));
    let granted: BTreeMap<&str, (bool, bool)> = tags(&xml, "fieldPermissions")
        .into_iter()
        .map(|p| {
            (
                tag(p, "field").expect("a field permission names its field"),
                (flag(p, "readable"), flag(p, "editable")),
            )
        })
        .collect();
    // Name is a standard field: object edit access covers it, and permission sets cannot list it.
    for field in default_schema()
        .iter()
        .filter(|f| f.createable && f.name != "Name")
    {
        let key = format!("Disposition__c.{}", field.name);
        assert_eq!(
            granted.get(key.as_str()),
            Some(&(true, true)),
            "{key} must be readable and editable"
        );
    }
    let object = tag(&xml, "objectPermissions").expect("object permissions");
    assert_eq!(tag(object, "object"), Some("Disposition__c"));
    assert!(flag(object, "allowRead") && flag(object, "allowCreate") && flag(object, "allowEdit"));
    assert!(
        !flag(object, "allowDelete"),
        "the sync never deletes; only the purge permission set may"
    );
}

/// Every sample event in `events/` is one the handler accepts (`env.json` holds `sam local`
/// variables, not an event), and the bodies of the SQS sample are dead letters as the DLQ holds
/// them.
#[test]
fn every_sample_event_parses() {
    let dir = repo_path("events");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "env.json" {
            continue;
        }
        let event: Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        if let Err(e) = disposition_sync::event::parse(&event) {
            panic!("{name} is refused by the event parser: {e}");
        }
        seen.push(name);
    }
    assert!(
        seen.len() >= 8,
        "the sample events are missing: only {seen:?}"
    );

    let sqs: Value = serde_json::from_str(&read(&dir.join("sqs-redrive.json"))).unwrap();
    let records = sqs["Records"].as_array().expect("an SQS event has Records");
    assert!(!records.is_empty());
    for record in records {
        let body = record["body"].as_str().expect("an SQS record has a body");
        let letter: DeadLetter = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{}: not a dead letter: {e}", record["messageId"]));
        assert_eq!(
            record["messageAttributes"]["external_id"]["stringValue"].as_str(),
            letter.external_id.as_deref()
        );
    }
}
