//! The dispositions of one simulated tenant, and the timestamp rules every API shape needs: an
//! edit gets a `last_modified_date` strictly after every date already stored.
//!
//! Records are kept in the guide's shape (snake_case JSON, as tests and the guide router have
//! always seen them); each also has a stable insertion number and an Admin API id
//! (`ADMIN_ID_BASE` + that number, unless a test chose one), plus the Admin-only fields a test
//! set. A raw Admin record (`insert_raw` in an Admin world) is kept verbatim instead and served
//! only by the Admin API. The store is addressed by the external ids of the world's API: the
//! guide's `id` strings, or the Admin API's decimal `dispositionId`s.

use super::modes::parse_instant;
use super::{CATEGORIES, CxoneApi};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::Duration;

/// The first Admin id is one more than this: real ids are four-digit integers such as 6985.
pub const ADMIN_ID_BASE: i64 = 6000;

/// Guide field for each Admin field that has one; the others live in `AdminView::Projected`.
const ADMIN_TO_GUIDE: [(&str, &str); 4] = [
    ("dispositionName", "name"),
    ("notes", "description"),
    ("isActive", "is_active"),
    ("lastUpdated", "last_modified_date"),
];

/// How the Admin API sees one record.
pub enum AdminView {
    /// Projected from the guide-shaped record; these Admin fields (set by a test) win over the
    /// projection.
    Projected(Map<String, Value>),
    /// A raw Admin record, served exactly as given.
    Verbatim(Value),
}

/// One stored record.
pub struct Entry {
    /// Insertion number, stable across replacements.
    pub seq: u64,
    /// The Admin API's `dispositionId`; `None` only for a raw Admin record without a readable one.
    pub admin_id: Option<i64>,
    /// The guide-shaped record (`Value::Null` for a raw Admin record, which the guide never sees).
    pub record: Value,
    pub admin: AdminView,
}

impl Entry {
    /// When the record was last modified, as the Admin API filters and sorts it.
    pub fn admin_modified(&self) -> Option<DateTime<Utc>> {
        let text = match &self.admin {
            AdminView::Verbatim(raw) => raw.get("lastUpdated"),
            AdminView::Projected(overrides) => overrides
                .get("lastUpdated")
                .or_else(|| self.record.get("last_modified_date")),
        };
        parse_instant(text?.as_str()?)
    }
}

/// Classification ids and names, one per category name ever used. The seeded categories come
/// first (ids 1..=8); a new name gets the next id the first time a record uses it.
pub struct Classifications {
    names: Vec<String>,
}

impl Default for Classifications {
    fn default() -> Self {
        Classifications {
            names: CATEGORIES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

impl Classifications {
    /// The id of `name`, registering it if new.
    pub fn id_of(&mut self, name: &str) -> i64 {
        let index = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
        };
        index as i64 + 1
    }

    /// The id of `name`, if a record has used it.
    pub fn find(&self, name: &str) -> Option<i64> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as i64 + 1)
    }

    pub fn name_of(&self, id: i64) -> Option<&str> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.names.get(index).map(String::as_str)
    }

    /// `(id, name)` in id order.
    pub fn all(&self) -> Vec<(i64, String)> {
        (1..).zip(self.names.iter().cloned()).collect()
    }
}

/// The dispositions of one tenant.
pub struct Store {
    api: CxoneApi,
    entries: Vec<Entry>,
    next_seq: u64,
    next_admin_id: i64,
    /// How many codes `seed` has numbered so far.
    seeded: usize,
    /// The newest modification time ever stored. Fresh times go after it, so every edit sorts
    /// after everything a client may already have seen, even after removals.
    newest: Option<DateTime<Utc>>,
    pub classifications: Classifications,
    /// Counts changes (see [`Store::generation`]).
    generation: u64,
}

impl Store {
    pub fn new(api: CxoneApi) -> Store {
        Store {
            api,
            entries: Vec::new(),
            next_seq: 0,
            next_admin_id: ADMIN_ID_BASE + 1,
            seeded: 0,
            newest: None,
            classifications: Classifications::default(),
            generation: 0,
        }
    }

    /// Differs after any change: what is derived from the store stays valid while it is equal.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Notes a change; the store's guard calls it on every mutable use.
    pub fn changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The external id of an entry in this world's API.
    pub fn external_id(&self, entry: &Entry) -> Option<String> {
        match self.api {
            CxoneApi::Guide => entry.record.get("id")?.as_str().map(str::to_owned),
            CxoneApi::Admin => entry.admin_id.map(|id| id.to_string()),
        }
    }

    pub fn find(&self, id: &str) -> Option<&Entry> {
        self.position(id).map(|i| &self.entries[i])
    }

    /// The guide-shaped record with this guide `id`, whatever API the world speaks.
    pub fn get_guide(&self, id: &str) -> Option<Value> {
        self.position_guide(id)
            .map(|i| &self.entries[i].record)
            .filter(|record| !record.is_null())
            .cloned()
    }

    /// The entry with this Admin id.
    pub fn find_admin(&self, admin_id: i64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.admin_id == Some(admin_id))
    }

    /// max(now, newest + 1 ms): strictly after every stored date, and never in the past.
    fn fresh_time(&mut self) -> DateTime<Utc> {
        let now = now_ms();
        let at = match self.newest {
            Some(newest) if newest + TimeDelta::milliseconds(1) > now => {
                newest + TimeDelta::milliseconds(1)
            }
            _ => now,
        };
        self.newest = Some(at);
        at
    }

    /// Notes a date a record was given. A date in the future (a clock error, a bad import, set
    /// by a test) does not move the tenant's clock: later edits still get present times, which
    /// sort before it, as on a real tenant.
    fn note_date(&mut self, date: Option<DateTime<Utc>>) {
        if let Some(date) = date
            && date <= now_ms() + TimeDelta::minutes(1)
        {
            self.newest = Some(self.newest.map_or(date, |newest| newest.max(date)));
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        match self.api {
            CxoneApi::Guide => self.position_guide(id),
            CxoneApi::Admin => {
                let admin_id = id.trim().parse::<i64>().ok()?;
                self.entries
                    .iter()
                    .position(|e| e.admin_id == Some(admin_id))
            }
        }
    }

    fn position_guide(&self, id: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.record.get("id").and_then(Value::as_str) == Some(id))
    }

    fn allocate_admin_id(&mut self) -> i64 {
        let id = self.next_admin_id;
        self.next_admin_id += 1;
        id
    }

    /// Appends a new entry; returns its index.
    fn push(&mut self, admin_id: Option<i64>, record: Value, admin: AdminView) -> usize {
        if let Some(id) = admin_id
            && id >= self.next_admin_id
        {
            self.next_admin_id = id.saturating_add(1);
        }
        self.entries.push(Entry {
            seq: self.next_seq,
            admin_id,
            record,
            admin,
        });
        self.next_seq += 1;
        self.note_date(self.entries.last().and_then(Entry::admin_modified));
        self.entries.len() - 1
    }

    /// Stores a guide-shaped `record`, replacing the entry with the same string id (keeping its
    /// numbers).
    fn put_guide(&mut self, record: Value) {
        self.note_date(modified_at(&record));
        self.register_category(&record);
        let existing = record
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| self.position_guide(id));
        match existing {
            Some(i) => self.entries[i].record = record,
            None => self.push_guide(record),
        }
    }

    /// Appends a guide-shaped `record` whose id no entry has, with a new Admin id.
    fn push_guide(&mut self, record: Value) {
        let admin_id = self.allocate_admin_id();
        self.push(Some(admin_id), record, AdminView::Projected(Map::new()));
    }

    /// Gives a new category name its classification id now, so ids follow first use.
    fn register_category(&mut self, record: &Value) {
        if let Some(category) = record.get("category").and_then(Value::as_str) {
            self.classifications.id_of(category);
        }
    }

    /// Seeds `n` codes ending at or before `now`, or says how long to wait until that is
    /// possible without going back past the newest stored date. Returns their external ids.
    pub fn try_seed(&mut self, n: usize, now: DateTime<Utc>) -> Result<Vec<String>, Duration> {
        self.try_seed_spaced(n, now, TimeDelta::milliseconds(1))
    }

    /// [`Store::try_seed`] with the codes' modification times `step` apart (at least 1 ms).
    pub fn try_seed_spaced(
        &mut self,
        n: usize,
        now: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<Vec<String>, Duration> {
        let step = step.max(TimeDelta::milliseconds(1));
        let span = i32::try_from(n)
            .ok()
            .and_then(|n| step.checked_mul(n))
            .unwrap_or(TimeDelta::MAX);
        // The first date when the batch ends exactly at `now`.
        let mut first = now
            .checked_sub_signed(span - step)
            .expect("seeded codes fit in the calendar");
        if let Some(newest) = self.newest
            && first <= newest
        {
            first = newest + step;
            let last = first + span - step;
            if n > 0 && last > now {
                return Err((last - now).to_std().unwrap_or_default());
            }
        }
        // Looked up once rather than per code, so that seeding 100,000 codes takes moments.
        let taken: HashSet<String> = self
            .entries
            .iter()
            .filter_map(|e| e.record.get("id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let number = self.seeded + i + 1;
            let id = seeded_id(number);
            let modified = first + step * i32::try_from(i).unwrap_or(i32::MAX);
            let replaces = taken.contains(&id);
            let record = json!({
                "id": id,
                "name": format!("Code {number:03}"),
                "description": format!("Seeded disposition code {number:03}"),
                "category": CATEGORIES[(number - 1) % CATEGORIES.len()],
                "is_active": true,
                "last_modified_date": timestamp(modified),
                "created_date": timestamp(modified - TimeDelta::days(30)),
            });
            if replaces {
                self.put_guide(record);
            } else {
                self.note_date(modified_at(&record));
                self.register_category(&record);
                self.push_guide(record);
            }
            let position = if replaces {
                self.position_guide(&id)
            } else {
                self.entries.len().checked_sub(1)
            };
            let entry = &self.entries[position.expect("a record was just stored")];
            ids.push(self.external_id(entry).expect("seeded records have ids"));
        }
        self.seeded += n;
        Ok(ids)
    }

    /// Inserts or replaces a record given in the world's shape; returns its external id.
    pub fn upsert(&mut self, record: Value) -> Result<String, String> {
        match self.api {
            CxoneApi::Guide => self.upsert_guide(record),
            CxoneApi::Admin => self.upsert_admin(record),
        }
    }

    fn upsert_guide(&mut self, mut record: Value) -> Result<String, String> {
        let Some(id) = record.get("id").and_then(Value::as_str).map(str::to_owned) else {
            return Err("the record needs a string \"id\"".into());
        };
        let previous_created = self
            .position_guide(&id)
            .and_then(|i| self.entries[i].record.get("created_date").cloned());
        let modified = match record.get("last_modified_date") {
            Some(date) => date.clone(),
            None => json!(timestamp(self.fresh_time())),
        };
        if record.get("created_date").is_none() {
            record["created_date"] = previous_created.unwrap_or_else(|| modified.clone());
        }
        record["last_modified_date"] = modified;
        self.put_guide(record);
        Ok(id)
    }

    /// An Admin-shaped record: its `dispositionId` (integer or numeric string) picks the record
    /// to replace, or the id of a new one; without one the record gets the next id. Fields with
    /// a guide equivalent are stored as such, `classificationName` (or a known
    /// `classificationId`) as the category, anything else as an Admin-only field.
    fn upsert_admin(&mut self, record: Value) -> Result<String, String> {
        let Value::Object(fields) = record else {
            return Err("the record must be a JSON object".into());
        };
        let admin_id = match fields.get("dispositionId") {
            None => None,
            Some(value) => Some(
                integer(value).ok_or_else(|| format!("dispositionId {value} is not an integer"))?,
            ),
        };
        let existing = admin_id.and_then(|id| self.position(&id.to_string()));
        let (guide_id, created) = match existing {
            Some(i) => (
                self.entries[i].record.get("id").cloned(),
                self.entries[i].record.get("created_date").cloned(),
            ),
            None => (None, None),
        };
        let admin_id = match admin_id {
            Some(id) => id,
            None => self.allocate_admin_id(),
        };
        let mut guide = Map::new();
        let mut overrides = Map::new();
        for (key, value) in fields {
            if key == "dispositionId" {
                continue;
            }
            match self.guide_field(&key, &value) {
                Some((guide_key, guide_value)) => {
                    guide.insert(guide_key.to_owned(), guide_value);
                }
                None => {
                    overrides.insert(key, value);
                }
            }
        }
        let modified = match guide.get("last_modified_date") {
            Some(date) => date.clone(),
            None => json!(timestamp(self.fresh_time())),
        };
        guide.insert(
            "id".into(),
            guide_id.unwrap_or_else(|| json!(admin_id.to_string())),
        );
        guide.insert("last_modified_date".into(), modified.clone());
        guide.insert("created_date".into(), created.unwrap_or(modified));
        let record = Value::Object(guide);
        self.note_date(modified_at(&record));
        self.register_category(&record);
        match existing {
            Some(i) => {
                self.entries[i].record = record;
                self.entries[i].admin = AdminView::Projected(overrides);
            }
            None => {
                self.push(Some(admin_id), record, AdminView::Projected(overrides));
            }
        }
        Ok(admin_id.to_string())
    }

    /// The guide field an Admin field is stored as, if it has one.
    fn guide_field(&self, key: &str, value: &Value) -> Option<(&'static str, Value)> {
        if let Some((_, guide_key)) = ADMIN_TO_GUIDE.iter().find(|(admin, _)| *admin == key) {
            return Some((guide_key, value.clone()));
        }
        match key {
            "classificationName" if value.is_string() => Some(("category", value.clone())),
            "classificationId" => {
                let name = self.classifications.name_of(integer(value)?)?;
                Some(("category", json!(name)))
            }
            _ => None,
        }
    }

    /// Sets `key` (a field of the world's shape) and bumps the modification time, except when
    /// `key` is the time itself: then `value` stands. False if `id` is unknown.
    pub fn edit(&mut self, id: &str, key: &str, value: Value) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        if let AdminView::Verbatim(raw) = &self.entries[i].admin {
            let mut raw = raw.clone();
            let modified = if key == "lastUpdated" {
                value
            } else {
                raw[key] = value;
                json!(timestamp(self.fresh_time()))
            };
            raw["lastUpdated"] = modified;
            self.entries[i].admin = AdminView::Verbatim(raw);
            self.note_date(self.entries[i].admin_modified());
            return true;
        }
        let guide = match self.api {
            CxoneApi::Guide => Some((key, value.clone())),
            CxoneApi::Admin => self.guide_field(key, &value),
        };
        let Some((guide_key, guide_value)) = guide else {
            // An Admin-only field (or an unknown classification id): served over the projection.
            if let AdminView::Projected(overrides) = &mut self.entries[i].admin {
                overrides.insert(key.to_owned(), value);
            }
            let fresh = json!(timestamp(self.fresh_time()));
            self.entries[i].record["last_modified_date"] = fresh;
            return true;
        };
        if let AdminView::Projected(overrides) = &mut self.entries[i].admin {
            // The stored field now decides what is served.
            overrides.remove(key);
            if guide_key == "category" {
                overrides.remove("classificationId");
                overrides.remove("classificationName");
            }
        }
        // Records found by id are objects, so indexing by key inserts rather than panics.
        let modified = if guide_key == "last_modified_date" {
            guide_value
        } else {
            self.entries[i].record[guide_key] = guide_value;
            json!(timestamp(self.fresh_time()))
        };
        self.entries[i].record["last_modified_date"] = modified;
        let record = self.entries[i].record.clone();
        self.register_category(&record);
        self.note_date(self.entries[i].admin_modified());
        true
    }

    /// Stores `raw` exactly as given. In a guide world a raw record with a string `"id"` replaces
    /// the one with that id; in an Admin world one with a readable `dispositionId` does.
    pub fn insert_raw(&mut self, raw: Value) {
        match self.api {
            CxoneApi::Guide => self.put_guide(raw),
            CxoneApi::Admin => {
                let admin_id = raw.get("dispositionId").and_then(integer);
                let existing = admin_id.and_then(|id| self.position(&id.to_string()));
                match existing {
                    Some(i) => {
                        self.entries[i].record = Value::Null;
                        self.entries[i].admin = AdminView::Verbatim(raw);
                        self.note_date(self.entries[i].admin_modified());
                    }
                    None => {
                        self.push(admin_id, Value::Null, AdminView::Verbatim(raw));
                    }
                }
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.position(id) else {
            return false;
        };
        self.entries.remove(i);
        true
    }

    /// Guide-shaped records modified at or after `since` (all when `None`), sorted by (date, id).
    /// Records whose date cannot be read are always included, last: the simulator cannot filter
    /// them, and a client has to cope with them either way. Raw Admin records are left out.
    pub fn modified_since(&self, since: Option<DateTime<Utc>>) -> Vec<Value> {
        let mut keyed: Vec<_> = self
            .entries
            .iter()
            .filter(|e| !matches!(e.admin, AdminView::Verbatim(_)))
            .map(|e| (modified_at(&e.record), e))
            .filter(|(date, _)| match (date, since) {
                (Some(date), Some(since)) => *date >= since,
                _ => true,
            })
            .collect();
        keyed.sort_by_cached_key(|(date, e)| (date.is_none(), *date, id_key(&e.record), e.seq));
        keyed.into_iter().map(|(_, e)| e.record.clone()).collect()
    }
}

/// An integer, or a string holding one (the Admin API's ids come both ways).
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The record's `last_modified_date`, if it is a readable RFC 3339 time.
pub fn modified_at(record: &Value) -> Option<DateTime<Utc>> {
    let text = record.get("last_modified_date")?.as_str()?;
    Some(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc))
}

/// The id as a sort key; raw records may have a non-string id or none.
fn id_key(record: &Value) -> String {
    match record.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A UUID-shaped (version 4) id derived from the seed number, so ids are deterministic but do
/// not sort in seed order: a client that orders by id instead of date would show it.
fn seeded_id(number: usize) -> String {
    // splitmix64: a fixed, well-mixed function of the number.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let high = mix(number as u64);
    let low = mix(high);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// RFC 3339 UTC with milliseconds and `Z`, e.g. `2024-03-15T14:32:00.123Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
