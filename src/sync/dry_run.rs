//! The dry run (`{"action": "plan"}`): exactly what the next cycle would do, priced in API calls,
//! with nothing written.
//!
//! It runs the cycle's own steps 2 to 4 ([`Engine::prepare`]: mode, fetch, newest version of
//! each code, planner, breaker) on the state as stored, without the lease: no lease is taken, the
//! state item is not saved (future-time repairs are made on the copy in memory), nothing goes to
//! the DLQ and nothing to Salesforce. A delta plan then reads the Salesforce rows of the records
//! it would write, to tell a create from an update and to show the field changes.
//!
//! # Exactness
//! With no edits in between, the next cycle reports (see [`NextCycle`]):
//! - `created == would.create`
//! - `updated == would.update + would.archive + would.reactivate + would.flag_stale + would.clear_flag`
//! - `archived == next_cycle.archived`: the writes whose record ends inactive (the cycle counts
//!   [`Write::archives`]), which is `would.archive` plus the creates and re-writes of codes already
//!   inactive
//! - `dead_lettered == would.dead_letter`
//! - upsert calls `== ⌈writes / SF_BATCH_SIZE⌉`
//!
//! unless the breaker would trip (`breaker: "would_trip"`): then the cycle fails with the
//! mass-change reason and writes nothing. What a plan cannot predict: records Salesforce will
//! refuse (they are dead-lettered by the cycle), and edits made in CXone or Salesforce between
//! the plan and the cycle.

use super::plan::Plan;
use super::report::{CycleReport, Mode, Reason, Status};
use super::writer::Write;
use super::{CycleRequest, Engine, Prepared, lease};
use crate::domain::DispositionId;
use crate::record::{Fields, Row};
use crate::salesforce::SalesforceError;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tokio::time::Instant;

/// At most this many changes are listed; the counts cover all of them.
pub const MAX_CHANGES: usize = 200;
/// External IDs per `WHERE … IN (…)` query, and the most characters of one such list: a query
/// is a GET, and Salesforce refuses URIs beyond 16,384 characters.
const IDS_PER_QUERY: usize = 100;
const MAX_IN_LIST_CHARS: usize = 6_000;

/// What one write (or dead letter) would do to its Salesforce record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No Salesforce record yet.
    Create,
    /// Fields differ (or a version not written yet is written again), activity unchanged.
    Update,
    /// Active in Salesforce, inactive in CXone.
    Archive,
    /// Inactive in Salesforce, active in CXone.
    Reactivate,
    /// No CXone code matches the record: it is flagged for review.
    FlagStale,
    /// The record is flagged for review and its code no longer needs it: the flag is cleared.
    ClearFlag,
    /// Malformed or unmappable: it goes to the DLQ.
    DeadLetter,
}

/// How many records each action would touch, and how many codes need no write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Would {
    pub create: usize,
    pub update: usize,
    pub archive: usize,
    pub reactivate: usize,
    pub flag_stale: usize,
    pub clear_flag: usize,
    pub dead_letter: usize,
    pub unchanged: usize,
}

impl Would {
    fn count(&mut self, action: Action) {
        let n = match action {
            Action::Create => &mut self.create,
            Action::Update => &mut self.update,
            Action::Archive => &mut self.archive,
            Action::Reactivate => &mut self.reactivate,
            Action::FlagStale => &mut self.flag_stale,
            Action::ClearFlag => &mut self.clear_flag,
            Action::DeadLetter => &mut self.dead_letter,
        };
        *n += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Pass,
    WouldTrip,
}

/// What the cycle would send.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// The planner's reads as this plan sent them (token, describe, the reconciliation's or the
    /// breaker's query pages) plus the upsert calls.
    pub salesforce_requests: u64,
    /// The same listing the plan read: its request count is a good estimate of the cycle's.
    pub cxone_requests: u64,
    /// The Salesforce API usage once the cycle has sent its requests, from the latest
    /// `Sforce-Limit-Info` reading (0.0 when there is none).
    pub api_usage_percent_after: f64,
}

/// The counters the next cycle's response would show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NextCycle {
    pub status: Status,
    pub created: usize,
    pub updated: usize,
    pub archived: usize,
    pub dead_lettered: usize,
    pub upsert_calls: usize,
}

/// One field that would change, by its Salesforce name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    pub from: Value,
    pub to: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub external_id: Option<String>,
    pub action: Action,
    pub fields: BTreeMap<String, FieldChange>,
    /// Why a record would be dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The response to `{"action": "plan"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanReport {
    pub status: Status,
    pub mode: &'static str,
    pub full: bool,
    pub would: Would,
    pub breaker: Breaker,
    pub cost: Cost,
    pub next_cycle: NextCycle,
    pub changes: Vec<Change>,
    pub changes_truncated: bool,
    /// The plan's own requests.
    pub cxone_requests: u64,
    pub salesforce_requests: u64,
    pub duration_ms: u64,
    /// Why the plan failed, or why the breaker would trip; `null` otherwise.
    pub reason: Option<Reason>,
    /// The run that holds the lease now, if any: the plan ran anyway, and wrote nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_held_by: Option<String>,
    /// Times in the state item that lie in the future: the cycle will clear them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_repairs: Vec<String>,
}

impl PlanReport {
    fn new(full: bool) -> Self {
        Self {
            status: Status::Ok,
            mode: "plan",
            full,
            would: Would::default(),
            breaker: Breaker::Pass,
            cost: Cost::default(),
            next_cycle: NextCycle {
                status: Status::Ok,
                created: 0,
                updated: 0,
                archived: 0,
                dead_lettered: 0,
                upsert_calls: 0,
            },
            changes: vec![],
            changes_truncated: false,
            cxone_requests: 0,
            salesforce_requests: 0,
            duration_ms: 0,
            reason: None,
            lease_held_by: None,
            state_repairs: vec![],
        }
    }

    fn push(&mut self, change: Change) {
        self.would.count(change.action);
        if self.changes.len() < MAX_CHANGES {
            self.changes.push(change);
        } else {
            self.changes_truncated = true;
        }
    }
}

impl Engine<'_> {
    /// Plans the next cycle without running it. `request.full` and `request.allow_mass_change`
    /// mean what they mean for a sync; the lease and the minimum poll interval are not checked.
    pub async fn dry_run(&self, request: &CycleRequest) -> PlanReport {
        let started = Instant::now();
        let (cx0, sf0) = (self.source.requests(), self.sink.requests());
        let mut report = PlanReport::new(request.full);
        if let Err((status, reason)) = self.dry_run_into(request, &mut report).await {
            report.status = status;
            report.reason = reason;
        }
        report.cxone_requests = self.source.requests() - cx0;
        report.salesforce_requests = self.sink.requests() - sf0;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    async fn dry_run_into(
        &self,
        request: &CycleRequest,
        report: &mut PlanReport,
    ) -> Result<(), super::Ending> {
        let now = Utc::now();
        let stored = self.state.load().await.map_err(|e| {
            (
                Status::Failed,
                Some(Reason::StateUnavailable(e.to_string())),
            )
        })?;
        let mut before = stored.state;
        report.state_repairs = lease::repair(&mut before, now, self.settings.clock_skew);
        report.lease_held_by = before
            .lease
            .as_ref()
            .filter(|l| l.expires > now)
            .map(|l| l.owner.clone());
        let cx0 = self.source.requests();
        // The cycle's own computation, on a scratch report (it records the mode and the fetch).
        let mut scratch = CycleReport::new(String::from("plan"), Mode::Delta);
        let Prepared {
            full,
            codes,
            set_aside,
            mut plan,
            planning_requests,
            ..
        } = self.prepare(request, &before, now, &mut scratch).await?;
        report.full = full;
        report.cost.cxone_requests = self.source.requests() - cx0;
        if !full {
            self.read_rows_to_write(&mut plan).await.map_err(|e| {
                (
                    Status::Failed,
                    Some(Reason::salesforce(
                        "reading the Salesforce records the delta would write failed",
                        &e,
                    )),
                )
            })?;
        }
        let tripped = plan
            .breaker(request.allow_mass_change, self.settings.max_archive_percent)
            .err();
        let code_writes = plan
            .writes
            .iter()
            .filter(|w| matches!(w, Write::Code { .. }))
            .count();
        report.would.unchanged = codes.saturating_sub(code_writes + plan.unmappable.len());
        for write in &plan.writes {
            report.push(change(write, plan.rows.get(write.external_id().as_str())));
        }
        // Dead letters go out after the writes, malformed records first, as the cycle sends them.
        for letter in &set_aside.letters {
            report.push(dead_letter(
                letter.external_id.clone(),
                &letter.error.message,
            ));
        }
        for u in &plan.unmappable {
            report.push(dead_letter(
                Some(u.latest.disposition.id.to_string()),
                &u.error.message,
            ));
        }
        let batch = self.settings.batch_size.max(1);
        let upsert_calls = plan.writes.len().div_ceil(batch);
        let w = &report.would;
        report.next_cycle = match &tripped {
            Some(_) => NextCycle {
                status: Status::Failed,
                created: 0,
                updated: 0,
                archived: 0,
                dead_lettered: 0,
                upsert_calls: 0,
            },
            None => NextCycle {
                status: if w.dead_letter > 0 {
                    Status::Partial
                } else {
                    Status::Ok
                },
                created: w.create,
                updated: w.update + w.archive + w.reactivate + w.flag_stale + w.clear_flag,
                archived: plan.writes.iter().filter(|w| w.archives()).count(),
                dead_lettered: w.dead_letter,
                upsert_calls,
            },
        };
        report.cost.salesforce_requests = planning_requests + report.next_cycle.upsert_calls as u64;
        report.cost.api_usage_percent_after = match self.sink.api_usage() {
            Some(u) if u.max > 0 => {
                let after =
                    (u.used + report.cost.salesforce_requests) as f64 * 100.0 / u.max as f64;
                (after * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        if let Some(reason) = tripped {
            report.breaker = Breaker::WouldTrip;
            report.reason = Some(reason);
        }
        Ok(())
    }

    /// A delta writes without comparing; the plan reads the rows of the records it would write
    /// (`WHERE <external id> IN (…)`, in chunks) to tell creates from updates.
    async fn read_rows_to_write(&self, plan: &mut Plan) -> Result<(), SalesforceError> {
        let planner = super::plan::Planner {
            sink: self.sink,
            rules: self.rules,
            settings: self.settings,
        };
        let ids: Vec<&DispositionId> = plan.writes.iter().map(Write::external_id).collect();
        let field = &self.settings.target.external_id_field;
        for chunk in in_lists(&ids) {
            let rows = planner.rows(Some(&format!("{field} IN ({chunk})"))).await?;
            plan.rows.extend(rows);
        }
        Ok(())
    }
}

/// The external IDs as SOQL string literals, joined into lists of at most [`IDS_PER_QUERY`] IDs
/// and about [`MAX_IN_LIST_CHARS`] characters.
fn in_lists(ids: &[&DispositionId]) -> Vec<String> {
    let mut lists = Vec::new();
    let (mut list, mut n) = (String::new(), 0);
    for id in ids {
        let literal = soql_literal(id.as_str());
        if n > 0 && (n == IDS_PER_QUERY || list.len() + literal.len() + 2 > MAX_IN_LIST_CHARS) {
            lists.push(std::mem::take(&mut list));
            n = 0;
        }
        if n > 0 {
            list.push_str(", ");
        }
        list.push_str(&literal);
        n += 1;
    }
    if n > 0 {
        lists.push(list);
    }
    lists
}

/// A SOQL string literal: quoted, with backslashes and quotes escaped.
fn soql_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// What one write would do to `row`, the record as Salesforce holds it now.
fn change(write: &Write, row: Option<&Row>) -> Change {
    let external_id = Some(write.external_id().to_string());
    let (action, fields) = match write {
        Write::StaleFlag { .. } => (
            Action::FlagStale,
            diff(row.map(|r| &r.fields), &Fields::stale_flag(), true),
        ),
        Write::Code { fields, .. } => {
            let action = match row {
                None => Action::Create,
                Some(r) => {
                    let (was, is) = (r.fields.is_active, fields.is_active);
                    if was == Some(true) && is == Some(false) {
                        Action::Archive
                    } else if was == Some(false) && is == Some(true) {
                        Action::Reactivate
                    } else if r.fields.needs_review == Some(true)
                        && fields.needs_review != Some(true)
                    {
                        Action::ClearFlag
                    } else {
                        Action::Update
                    }
                }
            };
            (action, diff(row.map(|r| &r.fields), fields, false))
        }
    };
    Change {
        external_id,
        action,
        fields,
        reason: None,
    }
}

fn dead_letter(external_id: Option<String>, reason: &str) -> Change {
    Change {
        external_id,
        action: Action::DeadLetter,
        fields: BTreeMap::new(),
        reason: Some(reason.to_owned()),
    }
}

/// The owned fields whose value would change, by Salesforce name. With `only_set`, the fields
/// the write leaves out (a review flag sends only the review fields) are not compared.
fn diff(old: Option<&Fields>, new: &Fields, only_set: bool) -> BTreeMap<String, FieldChange> {
    let as_map = |f: &Fields| match serde_json::to_value(f) {
        Ok(Value::Object(map)) => map.into_iter().collect::<HashMap<_, _>>(),
        _ => HashMap::new(),
    };
    let before = old.map(as_map).unwrap_or_default();
    as_map(new)
        .into_iter()
        .filter(|(_, to)| !(only_set && to.is_null()))
        .filter_map(|(name, to)| {
            let from = before.get(&name).cloned().unwrap_or(Value::Null);
            (from != to).then_some((name, FieldChange { from, to }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_escape_and_split() {
        let ids: Vec<DispositionId> = (0..250)
            .map(|i| DispositionId::parse(&format!("id'{i}\\")).unwrap())
            .collect();
        let refs: Vec<&DispositionId> = ids.iter().collect();
        let lists = in_lists(&refs);
        assert_eq!(lists.len(), 3);
        assert!(
            lists[0].starts_with(r"'id\'0\\', 'id\'1\\'"),
            "{}",
            lists[0]
        );
        assert_eq!(
            lists
                .iter()
                .map(|l| l.matches(", ").count() + 1)
                .sum::<usize>(),
            250
        );
        let long: Vec<DispositionId> = (0..100)
            .map(|i| DispositionId::parse(&format!("{i}{}", "x".repeat(200))).unwrap())
            .collect();
        let refs: Vec<&DispositionId> = long.iter().collect();
        assert!(in_lists(&refs).iter().all(|l| l.len() <= MAX_IN_LIST_CHARS));
    }

    #[test]
    fn a_create_shows_every_set_field_from_null_and_a_flag_only_the_review_fields() {
        let new = Fields {
            name: Some("Sale".into()),
            is_active: Some(true),
            ..Fields::default()
        };
        let d = diff(None, &new, false);
        assert_eq!(
            d["Name"],
            FieldChange {
                from: Value::Null,
                to: "Sale".into()
            }
        );
        assert!(!d.contains_key("Description__c"));
        let d = diff(Some(&new), &Fields::stale_flag(), true);
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            ["NeedsReview__c", "ReviewReason__c"]
        );
    }
}
