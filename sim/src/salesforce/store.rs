//! The org's rows of the custom object and the primitive writes on them (create, update,
//! delete), including record Ids and the audit dates Salesforce maintains.

use super::SfRow;
use super::schema::{FieldSpec, FieldType, format_datetime};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Leading characters of the object's record Ids: the key prefix `a0B` (custom objects start with
/// `a`) and a pod identifier.
pub(crate) const RECORD_ID_PREFIX: &str = "a0B5g0000";

/// All rows plus the Id sequence. Cloned to stage an `allOrNone` request and dropped on rollback.
#[derive(Clone, Default)]
pub(crate) struct Store {
    pub rows: Vec<SfRow>,
    next_id: u64,
    /// Positions by external ID, so that an upsert of 200 records into an org of 100,000 does
    /// not scan every row per record: benchmarks must measure the client, not this simulator.
    index: RefCell<ExternalIdIndex>,
}

/// The first row holding each value of one field, valid while `rows` has `len` rows and no row
/// changed that field behind the store's back (see [`Store::position_by_external_id`]).
#[derive(Clone, Default)]
struct ExternalIdIndex {
    field: String,
    len: usize,
    positions: HashMap<String, usize>,
}

impl Store {
    /// The first row whose external ID equals `value` exactly (matching is case-sensitive).
    ///
    /// Answered from the index. Rows are removed from `rows` directly, which changes its length
    /// and so invalidates the index; [`Store::create`] and [`Store::update`] keep it up to date.
    /// A hit is checked against the row all the same, and a stale one rebuilds the index.
    pub fn position_by_external_id(&self, external_id_field: &str, value: &str) -> Option<usize> {
        let holds = |position: usize| {
            self.rows.get(position).is_some_and(|row| {
                row.fields.get(external_id_field).and_then(Value::as_str) == Some(value)
            })
        };
        let mut index = self.index.borrow_mut();
        if index.field != external_id_field || index.len != self.rows.len() {
            *index = ExternalIdIndex::build(&self.rows, external_id_field);
        }
        match index.positions.get(value).copied() {
            Some(position) if holds(position) => Some(position),
            None => None,
            Some(_) => {
                *index = ExternalIdIndex::build(&self.rows, external_id_field);
                index.positions.get(value).copied()
            }
        }
    }

    /// The row with this Id, given in its 15- or 18-character form.
    pub fn position_by_id(&self, id: &str) -> Option<usize> {
        if !looks_like_id(id) {
            return None;
        }
        self.rows.iter().position(|row| row.id[..15] == id[..15])
    }

    /// Inserts a row: unset fields take their defaults and a missing Name becomes the Id.
    pub fn create(
        &mut self,
        schema: &[FieldSpec],
        values: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> String {
        self.next_id += 1;
        let id = record_id(RECORD_ID_PREFIX, self.next_id);
        let mut fields: Map<String, Value> = schema
            .iter()
            .filter(|f| !f.is_system())
            .map(|f| (f.name.clone(), f.default_value.clone()))
            .collect();
        apply(schema, &mut fields, values);
        if fields.get("Name").is_none_or(Value::is_null) {
            fields.insert("Name".into(), Value::String(id.clone()));
        }
        self.index.get_mut().add(self.rows.len(), &fields);
        self.rows.push(SfRow {
            id: id.clone(),
            fields,
            created_date: now,
            last_modified_date: now,
        });
        id
    }

    /// Updates the fields present in `values` (PATCH semantics) and stamps the row as modified,
    /// even when no value changed, as Salesforce does.
    pub fn update(
        &mut self,
        schema: &[FieldSpec],
        position: usize,
        values: Map<String, Value>,
        now: DateTime<Utc>,
    ) {
        let row = &mut self.rows[position];
        let index = self.index.get_mut();
        let before = row.fields.get(&index.field).cloned();
        apply(schema, &mut row.fields, values);
        row.last_modified_date = now;
        if row.fields.get(&index.field) != before.as_ref() {
            // Rare (an update by Id that rewrites the external ID): rebuilt on the next lookup.
            index.len = usize::MAX;
        }
    }
}

impl ExternalIdIndex {
    fn build(rows: &[SfRow], field: &str) -> Self {
        let mut positions = HashMap::with_capacity(rows.len());
        for (position, row) in rows.iter().enumerate() {
            if let Some(value) = row.fields.get(field).and_then(Value::as_str) {
                positions.entry(value.to_owned()).or_insert(position);
            }
        }
        ExternalIdIndex {
            field: field.to_owned(),
            len: rows.len(),
            positions,
        }
    }

    /// Notes a row about to be appended at `position`, if the index is current.
    fn add(&mut self, position: usize, fields: &Map<String, Value>) {
        if self.len != position {
            return;
        }
        self.len += 1;
        if let Some(value) = fields.get(&self.field).and_then(Value::as_str) {
            self.positions.entry(value.to_owned()).or_insert(position);
        }
    }
}

/// Writes decoded values; null on a checkbox stores false.
fn apply(schema: &[FieldSpec], fields: &mut Map<String, Value>, values: Map<String, Value>) {
    for (name, value) in values {
        let is_checkbox = schema
            .iter()
            .any(|f| f.name == name && f.field_type == FieldType::Boolean);
        let value = if is_checkbox && value.is_null() {
            Value::Bool(false)
        } else {
            value
        };
        fields.insert(name, value);
    }
}

/// A field of a row as the API shows it, system fields included.
pub(crate) fn field_value(row: &SfRow, name: &str) -> Value {
    match name {
        "Id" => Value::String(row.id.clone()),
        "CreatedDate" => Value::String(format_datetime(row.created_date)),
        "LastModifiedDate" | "SystemModstamp" => {
            Value::String(format_datetime(row.last_modified_date))
        }
        _ => row.fields.get(name).cloned().unwrap_or(Value::Null),
    }
}

/// The row with every field, the form of the `/_sim/records` answer.
pub(crate) fn row_json(row: &SfRow) -> Value {
    let mut out = Map::new();
    for name in ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        out.insert(name.into(), field_value(row, name));
    }
    out.extend(row.fields.clone());
    Value::Object(out)
}

/// True for a 15- or 18-character alphanumeric Salesforce Id.
pub(crate) fn looks_like_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An 18-character Id: the prefix, then `serial` in base 62 padded to 15 characters, then the
/// case-safe checksum suffix real Ids carry.
pub(crate) fn record_id(prefix: &str, serial: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    let mut n = serial;
    while n > 0 {
        digits.push(DIGITS[(n % 62) as usize]);
        n /= 62;
    }
    let width = 15 - prefix.len();
    let mut id = String::from(prefix);
    id.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    id.extend(digits.iter().rev().map(|&d| d as char));
    long_id(&id)
}

/// The 18-character form of a 15-character Id.
pub(crate) fn long_id(id15: &str) -> String {
    format!("{id15}{}", checksum(id15))
}

/// The three characters that turn a 15-character Id into its 18-character form: one per block of
/// five, encoding which characters of the block are upper case.
fn checksum(id15: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .map(|block| {
            let flags = block
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0, |acc, (i, _)| acc | (1 << i));
            ALPHABET[flags] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_carry_the_real_checksum_suffix() {
        // The 18-character form of 001A0000006Vm9r is 001A0000006Vm9rIAC.
        assert_eq!(checksum("001A0000006Vm9r"), "IAC");
        let id = record_id(RECORD_ID_PREFIX, 63);
        assert_eq!(id, "a0B5g0000000011EAA");
        assert!(looks_like_id(&id));
    }
}
