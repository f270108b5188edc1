//! The plan: what a cycle writes, decided before anything is written.
//!
//! In a delta, every version not written yet (the overlap re-reads some). In a full
//! reconciliation, whatever differs from what Salesforce holds, plus the review flags of stale
//! records. The mass-change breaker reads the plan and may refuse the whole cycle.

use super::Settings;
use super::report::{Reason, Reconcile};
use super::writer::Write;
use crate::domain::{Disposition, DispositionId, RawRecord};
use crate::mapping::{Mapped, Rules, RulesCache, to_salesforce};
use crate::record::{Row, columns};
use crate::salesforce::{RecordError, RecordSink, SalesforceError};
use crate::watermark::{SyncState, Version};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The newest version of one code that the fetch returned, with what CXone sent.
pub struct Latest {
    pub disposition: Disposition,
    pub raw: RawRecord,
}

impl Latest {
    pub fn version(&self) -> Version {
        Version {
            last_modified: self.disposition.last_modified,
            id: self.disposition.id.clone(),
        }
    }
}

/// A code the mapping refused (e.g. an external ID too long for its field).
pub struct Unmappable {
    pub latest: Latest,
    pub error: RecordError,
}

/// What the cycle will do.
#[derive(Default)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// Codes that need no write: Salesforce already matches, or the purge removed them.
    pub unchanged: HashSet<DispositionId>,
    /// Codes that cannot be mapped; dead-lettered before any write.
    pub unmappable: Vec<Unmappable>,
    /// What a full reconciliation found.
    pub reconcile: Option<Reconcile>,
    /// Records the writes would archive or flag as stale, and the number of records active in
    /// Salesforce (known only when something would be archived, or in a full reconciliation).
    pub archiving: usize,
    pub active_in_salesforce: Option<usize>,
    /// Writes whose category Salesforce does not allow, and the distinct values.
    pub unmapped_categories: usize,
    pub unmapped_category_values: BTreeSet<String>,
    /// Fields cut to their Salesforce length.
    pub truncated: usize,
    /// The Salesforce rows of the records to write, by external ID, as the reconciliation read
    /// them (a delta reads none: it writes without comparing). A dry run compares with them.
    pub rows: HashMap<String, Row>,
}

impl Plan {
    /// Adds the write of one mapped code, counting what the mapping had to do.
    fn add(&mut self, latest: Latest, mapped: Mapped, known_id: Option<String>) {
        if let Some(category) = mapped.unmapped_category {
            if self.unmapped_category_values.insert(category.clone()) {
                tracing::warn!(%category, "CXone category is not an allowed Salesforce picklist value; written to RawCategory__c and flagged for review");
            }
            self.unmapped_categories += 1;
        }
        self.truncated += mapped.truncated;
        self.writes.push(Write::Code {
            disposition: latest.disposition,
            raw: latest.raw,
            fields: mapped.fields,
            known_id,
        });
    }

    /// The mass-change breaker: a wrong tenant or a CXone outage returning an empty list must
    /// not archive or flag the mirror wholesale.
    pub fn breaker(&self, allow_mass_change: bool, max_percent: u32) -> Result<(), Reason> {
        match self.active_in_salesforce {
            Some(active)
                if !allow_mass_change
                    && active > 0
                    && self.archiving * 100 > active * max_percent as usize =>
            {
                Err(Reason::MassChange {
                    archiving: self.archiving,
                    active,
                    max_percent,
                })
            }
            _ => Ok(()),
        }
    }
}

pub struct Planner<'a> {
    pub sink: &'a dyn RecordSink,
    pub rules: &'a RulesCache,
    pub settings: &'a Settings,
}

/// What a full reconciliation compares the codes with: the object's rules, described afresh, and
/// every Salesforce row. The cycle reads it while CXone pages arrive.
pub struct Snapshot {
    rules: Rules,
    rows: HashMap<String, Row>,
}

impl Planner<'_> {
    /// Describes the object afresh and reads every Salesforce row of it, keeping of each row only
    /// the fields the sync owns.
    pub async fn snapshot(&self) -> Result<Snapshot, Reason> {
        let rules = self
            .rules
            .get(self.sink, true)
            .await
            .map_err(|e| Reason::salesforce("describe failed", &e))?;
        let rows = self.rows(None).await.map_err(|e| {
            Reason::salesforce("reading Salesforce for the reconciliation failed", &e)
        })?;
        Ok(Snapshot { rules, rows })
    }

    /// Plans the writes for `codes` (the newest version of each code fetched, in version order):
    /// against the `snapshot` in a full reconciliation, or as a delta without one.
    pub async fn plan(
        &self,
        codes: Vec<Latest>,
        before: &SyncState,
        snapshot: Option<Snapshot>,
        now: DateTime<Utc>,
    ) -> Result<Plan, Reason> {
        if let Some(Snapshot { rules, rows }) = snapshot {
            return Ok(self.reconcile(codes, &rules, rows, now));
        }
        // A delta writes only versions not written yet: a quiet one asks Salesforce nothing.
        let new: Vec<Latest> = codes
            .into_iter()
            .filter(|latest| !before.already_written(&latest.version()))
            .collect();
        let mut plan = Plan::default();
        if new.is_empty() {
            return Ok(plan);
        }
        let rules = self
            .rules
            .get(self.sink, false)
            .await
            .map_err(|e| Reason::salesforce("describe failed", &e))?;
        let mut deactivating = Vec::new();
        for latest in new {
            match to_salesforce(&latest.disposition, &self.settings.target, &rules) {
                Ok(mapped) => {
                    if !latest.disposition.is_active {
                        deactivating.push(latest.disposition.id.clone());
                    }
                    plan.add(latest, mapped, None);
                }
                Err(error) => plan.unmappable.push(Unmappable { latest, error }),
            }
        }
        // Inactive codes in a delta archive something only if Salesforce has them active.
        if !deactivating.is_empty() {
            let active = self
                .active_ids()
                .await
                .map_err(|e| Reason::salesforce("counting active records failed", &e))?;
            plan.archiving = deactivating
                .iter()
                .filter(|id| active.contains(id.as_str()))
                .count();
            plan.active_in_salesforce = Some(active.len());
        }
        Ok(plan)
    }

    /// A full reconciliation: each code compared with its Salesforce row, and every row that
    /// no code matches flagged for review.
    fn reconcile(
        &self,
        codes: Vec<Latest>,
        rules: &Rules,
        mut rows: HashMap<String, Row>,
        now: DateTime<Utc>,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut reconcile = Reconcile {
            cxone_active: codes.iter().filter(|c| c.disposition.is_active).count(),
            salesforce_active: rows
                .values()
                .filter(|r| r.fields.is_active == Some(true))
                .count(),
            ..Reconcile::default()
        };
        for latest in codes {
            let d = &latest.disposition;
            let row = rows.remove(d.id.as_str());
            let mapped = match to_salesforce(d, &self.settings.target, rules) {
                Ok(mapped) => mapped,
                Err(error) => {
                    plan.unmappable.push(Unmappable { latest, error });
                    continue;
                }
            };
            let known_id = row.as_ref().and_then(|r| r.id.clone());
            match row {
                Some(row) if row.fields == mapped.fields => {
                    plan.unchanged.insert(d.id.clone());
                    continue;
                }
                Some(row) => {
                    reconcile.different += 1;
                    if row.fields.is_active == Some(true) && !d.is_active {
                        plan.archiving += 1;
                    }
                    plan.rows.insert(row.external_id.clone(), row);
                }
                // Archived longer than the retention period: the purge removed it on purpose,
                // so reconciliation must not bring it back.
                None if !d.is_active
                    && now.signed_duration_since(d.last_modified) > self.settings.retention =>
                {
                    plan.unchanged.insert(d.id.clone());
                    continue;
                }
                None => {
                    reconcile.missing += 1;
                    if reconcile.missing_ids.len() < 50 {
                        reconcile.missing_ids.push(d.id.to_string());
                    }
                }
            }
            plan.add(latest, mapped, known_id);
        }
        // What is left matches no CXone code: stale.
        flag_stale(rows, &mut plan, &mut reconcile);
        reconcile.stale_ids.sort();
        plan.active_in_salesforce = Some(reconcile.salesforce_active);
        plan.reconcile = Some(reconcile);
        plan
    }

    /// The Salesforce records of the object that `filter` (a SOQL condition) selects, every
    /// one without it, by external ID, with the fields the sync owns.
    pub async fn rows(
        &self,
        filter: Option<&str>,
    ) -> Result<HashMap<String, Row>, SalesforceError> {
        let t = &self.settings.target;
        let mut soql = format!("SELECT {} FROM {}", columns(t), t.object);
        if let Some(filter) = filter {
            soql = format!("{soql} WHERE {filter}");
        }
        let mut rows = HashMap::new();
        self.sink
            .query_each(&soql, &mut |row| {
                if let Some(row) = Row::parse(&row, t) {
                    rows.insert(row.external_id.clone(), row);
                }
            })
            .await?;
        Ok(rows)
    }

    /// The external IDs of the records active in Salesforce (for the breaker of a delta).
    async fn active_ids(&self) -> Result<HashSet<String>, SalesforceError> {
        let t = &self.settings.target;
        let rows = self
            .sink
            .query(&format!(
                "SELECT {} FROM {} WHERE IsActive__c = true",
                t.external_id_field, t.object
            ))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get(&t.external_id_field)?.as_str().map(str::to_owned))
            .collect())
    }
}

/// Counts the rows no CXone code matches and flags the ones not flagged yet, for review (never
/// deleted).
fn flag_stale(rows: HashMap<String, Row>, plan: &mut Plan, reconcile: &mut Reconcile) {
    for (external_id, row) in rows {
        reconcile.stale += 1;
        if reconcile.stale_ids.len() < 50 {
            reconcile.stale_ids.push(external_id.clone());
        }
        if row.fields.is_flagged_stale() {
            continue;
        }
        let Ok(external_id) = DispositionId::parse(&external_id) else {
            tracing::warn!(%external_id, "stale Salesforce record has an external ID no CXone code can have; not flagged");
            continue;
        };
        if row.fields.is_active == Some(true) {
            plan.archiving += 1;
        }
        plan.rows.insert(row.external_id.clone(), row);
        plan.writes.push(Write::StaleFlag { external_id });
    }
}
