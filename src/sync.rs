//! The sync engine: one cycle from CXone into Salesforce.
//!
//! 1. Read the state and take the lease (a conditional write), or skip.
//! 2. Plan: full snapshot or delta from `watermark − overlap`.
//! 3. Fetch from CXone.
//! 4. Keep the newest version of each code; set aside malformed records for the DLQ.
//! 5. Decide what to write: in a delta, versions not written yet (the overlap re-reads some);
//!    in a full reconciliation, what differs from Salesforce, plus stale flags. The mass-change
//!    breaker may refuse the whole cycle here.
//! 6. Upsert in batches, several in flight, reading every per-record result; retry what is
//!    transient, dead-letter what keeps failing.
//! 7. Advance the watermark last, only over records that are in Salesforce or durably in the
//!    DLQ, with a write conditioned on the version the lease was taken at.
//!
//! The engine sees its edges only through the [`DispositionSource`], [`RecordSink`],
//! [`StateStore`] and [`DeadLetterQueue`] traits.

use crate::cxone::DispositionSource;
use crate::dlq::{DeadLetter, DeadLetterKind, DeadLetterQueue, RecordError, SCHEMA_VERSION};
use crate::domain::{Disposition, SourceRecord};
use crate::mapping::{self, Rules, STALE_REASON, Target, to_salesforce};
use crate::retry::{self, Class};
use crate::salesforce::{ApiUsage, ObjectSchema, RecordSink, SalesforceError, UpsertOutcome};
use crate::watermark::{Lease, StateError, StateStore, SyncState, VersionMark};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Most entries kept in the state's overlap memory; beyond it the oldest are re-sent (harmless:
/// upserts are idempotent) rather than letting the state item outgrow DynamoDB's 400 KB.
const MAX_RECENT: usize = 16_000;

/// The engine's settings (a subset of [`crate::config::Config`]).
#[derive(Clone, Debug)]
pub struct Settings {
    pub sync_id: String,
    pub target: Target,
    pub overlap: Duration,
    pub full_reconcile: Duration,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub record_max_attempts: u32,
    pub retry_base_delay: Duration,
    pub min_poll_interval: Duration,
    pub api_budget_percent: u32,
    /// Stop starting new batches when less than this is left before the deadline.
    pub deadline_margin: Duration,
    /// Refuse a cycle that would archive or flag more than this share of the active records.
    pub max_archive_percent: u32,
    pub category_aliases: BTreeMap<String, String>,
    /// `RETENTION_DAYS`: archived codes older than this are left purged by reconciliation.
    pub retention: chrono::Duration,
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            sync_id: c.sync_id.clone(),
            target: Target {
                object: c.sf_object.clone(),
                external_id_field: c.sf_external_id_field.clone(),
            },
            overlap: c.overlap,
            full_reconcile: c.full_reconcile,
            batch_size: c.sf_batch_size,
            max_in_flight: c.sf_max_in_flight,
            record_max_attempts: c.record_max_attempts,
            retry_base_delay: c.retry_base_delay,
            min_poll_interval: c.min_poll_interval,
            api_budget_percent: c.sf_api_budget_percent,
            deadline_margin: c.http_timeout + Duration::from_secs(5),
            max_archive_percent: c.max_archive_percent,
            category_aliases: c.category_aliases.clone(),
            retention: chrono::Duration::days(c.retention_days as i64),
        }
    }
}

/// What the invocation asks of the cycle.
#[derive(Clone, Debug, Default)]
pub struct CycleRequest {
    /// Force a full snapshot.
    pub full: bool,
    /// Let this one cycle pass the mass-change breaker.
    pub allow_mass_change: bool,
    /// A second attempt within the same invocation (after re-reading the credentials): the
    /// minimum poll interval does not apply to it.
    pub retry: bool,
    /// When the invocation must have returned (the Lambda deadline).
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Partial,
    Skipped,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Delta,
    Full,
}

/// The cycle's response, also logged as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CycleReport {
    pub status: Status,
    pub mode: Mode,
    pub cycle_id: String,
    pub fetched: usize,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub dead_lettered: usize,
    pub watermark_before: Option<String>,
    pub watermark_after: Option<String>,
    pub cxone_requests: u64,
    pub salesforce_requests: u64,
    pub duration_ms: u64,
    pub retries: u64,
    pub throttled_ms: u64,
    pub sf_api_usage: Option<ApiUsage>,
    /// Written records that are now archived (inactive).
    pub archived: usize,
    /// Records whose category Salesforce does not allow, and the distinct values.
    pub unmapped_categories: usize,
    pub unmapped_category_values: Vec<String>,
    /// Fields cut to their Salesforce length.
    pub truncated: usize,
    /// What a full reconciliation found (`null` for a delta).
    pub reconcile: Option<Reconcile>,
    /// Why the cycle was skipped, failed or stopped early; `null` when it ran to completion.
    pub reason: Option<String>,
}

/// The discrepancies a full reconciliation found between CXone and Salesforce.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Reconcile {
    pub cxone_active: usize,
    pub salesforce_active: usize,
    /// CXone codes with no Salesforce record.
    pub missing: usize,
    /// Salesforce records whose fields differ from CXone.
    pub different: usize,
    /// Salesforce records no CXone code matches (flagged for review, never deleted).
    pub stale: usize,
    /// Records written to repair the above.
    pub fixed: usize,
    /// Up to 50 external IDs of each kind, for the operator.
    pub missing_ids: Vec<String>,
    pub stale_ids: Vec<String>,
}

/// The object's schema, cached for the life of the execution environment and refreshed at each
/// full reconciliation and after a picklist error.
pub type SchemaCache = tokio::sync::Mutex<Option<ObjectSchema>>;

/// What step 5 decided.
#[derive(Default)]
struct Plan {
    items: Vec<Item>,
    /// Codes that need no write: Salesforce already matches, or the purge removed them.
    unchanged: HashSet<String>,
    /// Codes that cannot be mapped (e.g. an external ID too long), with their dead letters.
    unmappable: Vec<(String, DeadLetter)>,
    /// What a full reconciliation found.
    reconcile: Option<Reconcile>,
    /// Records the cycle would archive or flag as stale, for the mass-change breaker, and the
    /// number of records active in Salesforce (known only when something would be archived or
    /// in a full reconciliation).
    archiving: usize,
    active_in_salesforce: Option<usize>,
}

/// Why a cycle stopped sending before it was done.
#[derive(Clone, Debug, PartialEq)]
enum Stop {
    Deadline,
    Budget(String),
    Auth(String),
    Rejected(String),
}

pub struct Engine<'a> {
    pub source: &'a dyn DispositionSource,
    pub sink: &'a dyn RecordSink,
    pub state: &'a dyn StateStore,
    pub dlq: &'a dyn DeadLetterQueue,
    pub schema: &'a SchemaCache,
    pub settings: &'a Settings,
}

/// A record on its way to Salesforce: a CXone code, or the review flag of a stale record.
pub(crate) struct Item {
    pub(crate) external_id: String,
    /// The CXone code and its raw JSON; `None` for a stale flag.
    pub(crate) source: Option<(Disposition, Value)>,
    pub(crate) payload: Value,
}

/// One upsert call: the indexes it carried and its result (`None` when it was not sent because
/// the cycle was stopping).
type BatchResult = (
    Vec<usize>,
    Option<Result<Vec<UpsertOutcome>, SalesforceError>>,
);

/// What happened to the records of one write (indexes into the items written).
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) written: Vec<usize>,
    pub(crate) rejected: Vec<(usize, RecordError, u32)>,
    pub(crate) retries: u64,
    stop: Option<Stop>,
    /// Records left unsent after transient failures used up their attempts.
    pub(crate) exhausted: usize,
}

impl Engine<'_> {
    pub async fn run(&self, request: CycleRequest) -> CycleReport {
        let started = Instant::now();
        let cycle_id = uuid::Uuid::new_v4().to_string();
        tracing::Span::current().record("cycle_id", cycle_id.as_str());
        let (cx0, sf0, throttle0) = (
            self.source.requests(),
            self.sink.requests(),
            self.source.throttled_ms(),
        );
        let mut report = CycleReport {
            status: Status::Failed,
            mode: if request.full {
                Mode::Full
            } else {
                Mode::Delta
            },
            cycle_id: cycle_id.clone(),
            fetched: 0,
            created: 0,
            updated: 0,
            failed: 0,
            dead_lettered: 0,
            watermark_before: None,
            watermark_after: None,
            cxone_requests: 0,
            salesforce_requests: 0,
            duration_ms: 0,
            retries: 0,
            throttled_ms: 0,
            sf_api_usage: None,
            archived: 0,
            unmapped_categories: 0,
            unmapped_category_values: vec![],
            truncated: 0,
            reconcile: None,
            reason: None,
        };
        self.cycle(&request, &cycle_id, &mut report).await;
        report.cxone_requests = self.source.requests() - cx0;
        report.salesforce_requests = self.sink.requests() - sf0;
        report.throttled_ms = self.source.throttled_ms() - throttle0;
        report.sf_api_usage = self.sink.api_usage();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    async fn cycle(&self, request: &CycleRequest, cycle_id: &str, report: &mut CycleReport) {
        let s = self.settings;
        let now = Utc::now();

        // 1. State and lease.
        let Some((before, leased_version)) = self.acquire(request, cycle_id, now, report).await
        else {
            return;
        };

        // 2. Plan.
        let full = request.full
            || before.watermark.is_none()
            || before.last_full_sync.is_none_or(|t| {
                now.signed_duration_since(t)
                    >= chrono::Duration::from_std(s.full_reconcile).unwrap_or_default()
            });
        report.mode = if full { Mode::Full } else { Mode::Delta };

        // What the item holds once this cycle lets go: no lease (a stale one taken over included).
        let mut released = before.clone();
        released.lease = None;
        released.last_cycle_started = Some(now);

        // 3. Fetch.
        let since = if full {
            None
        } else {
            before
                .watermark
                .map(|w| w - chrono::Duration::from_std(s.overlap).unwrap_or_default())
        };
        let fetched = match self.source.changed_since(since).await {
            Ok(records) => records,
            Err(e) => {
                self.release(&released, leased_version).await;
                let kind = if matches!(e, crate::cxone::CxoneError::Auth(_)) {
                    "auth_unavailable"
                } else {
                    "cxone_unavailable"
                };
                return fail(report, format!("{kind}: {e}"));
            }
        };
        report.fetched = fetched.len();

        // 4. Newest version per code; set aside what cannot be mapped.
        let mut letters = Vec::new();
        let mut latest: HashMap<String, (Disposition, Value)> = HashMap::new();
        for record in fetched {
            match record {
                SourceRecord::Valid { disposition, raw } => {
                    let key = disposition.id.as_str().to_owned();
                    if latest
                        .get(&key)
                        .is_none_or(|(d, _)| d.last_modified <= disposition.last_modified)
                    {
                        latest.insert(key, (disposition, raw));
                    }
                }
                SourceRecord::Malformed { raw, reason } => letters.push(self.unmappable(
                    cycle_id,
                    raw,
                    RecordError {
                        code: "UNMAPPABLE_RECORD".into(),
                        message: reason,
                        fields: vec![],
                    },
                )),
            }
        }
        let mut all: Vec<Disposition> = latest.values().map(|(d, _)| d.clone()).collect();
        all.sort_by(|a, b| (a.last_modified, &a.id).cmp(&(b.last_modified, &b.id)));

        // 5. Decide what to write: in a delta, every version not written yet; in a full
        // reconciliation, whatever differs from what Salesforce holds, plus stale flags.
        let already = |d: &Disposition| {
            before
                .recent
                .contains_key(&VersionMark::of(d.id.as_str(), d.last_modified))
        };
        let plan = match self
            .plan(cycle_id, &all, latest, &already, full, now, report)
            .await
        {
            Ok(plan) => plan,
            Err(reason) => {
                self.release(&released, leased_version).await;
                return fail(report, reason);
            }
        };
        let Plan {
            mut items,
            unchanged,
            unmappable,
            mut reconcile,
            archiving,
            active_in_salesforce,
        } = plan;
        let unmappable_ids: Vec<String> = unmappable.iter().map(|(id, _)| id.clone()).collect();
        letters.extend(unmappable.into_iter().map(|(_, letter)| letter));

        // The mass-change breaker: a wrong tenant or a CXone outage returning an empty list must
        // not archive or flag the mirror wholesale.
        if let Some(active) = active_in_salesforce
            && !request.allow_mass_change
            && active > 0
            && archiving * 100 > active * s.max_archive_percent as usize
        {
            self.release(&released, leased_version).await;
            if let Some(reconcile) = reconcile {
                log_reconcile(&reconcile);
                report.reconcile = Some(reconcile);
            }
            return fail(
                report,
                format!(
                    "mass_change: the cycle would archive or flag {archiving} of {active} active records, more than MAX_ARCHIVE_PERCENT={}%; nothing was written. \
                     If this is intended, invoke {{\"action\": \"sync\", \"full\": true, \"allow_mass_change\": true}}",
                    s.max_archive_percent
                ),
            );
        }
        tracing::info!(cycle_id, mode = ?report.mode, fetched = report.fetched, to_write = items.len(), malformed = letters.len(), "cycle planned");

        // 6. Write.
        let stop_at = request.deadline.map(|d| {
            let left = (d - Utc::now()).to_std().unwrap_or_default();
            Instant::now() + left.saturating_sub(s.deadline_margin)
        });
        // A warm environment remembers the last `Sforce-Limit-Info` reading. If it says we are
        // over budget, read it afresh (describe is one cheap call) before believing it: usage falls
        // as the rolling 24 h window moves, and without a call we would never see it fall.
        if !items.is_empty()
            && matches!(self.should_stop(None), Some(Stop::Budget(_)))
            && let Err(e) = self.rules(true).await
        {
            tracing::warn!(error = %e, "could not refresh the Salesforce API usage reading");
        }
        let outcome = self.write(&mut items, stop_at).await;
        report.created = outcome.created;
        report.updated = outcome.updated;
        report.retries = outcome.retries;
        report.archived = outcome
            .written
            .iter()
            .filter(|&&i| items[i].payload.get("IsActive__c") == Some(&Value::Bool(false)))
            .count();
        if let Some(mut reconcile) = reconcile.take() {
            reconcile.fixed = outcome.written.len();
            log_reconcile(&reconcile);
            report.reconcile = Some(reconcile);
        }
        for (index, error, attempts) in &outcome.rejected {
            letters.push(self.rejected(cycle_id, &items[*index], error.clone(), *attempts));
        }

        // Dead letters go out before the watermark moves: a record may be passed only once it is
        // durably somewhere.
        let dlq_result = self.dlq.send(&letters).await;
        let dlq_ok = dlq_result.is_ok();
        report.dead_lettered = if dlq_ok { letters.len() } else { 0 };
        report.failed =
            letters.len() + (items.len() - outcome.written.len() - outcome.rejected.len());

        // 7. Advance.
        let mut done: HashSet<&str> = outcome
            .written
            .iter()
            .map(|&i| items[i].external_id.as_str())
            .collect();
        if dlq_ok {
            done.extend(
                outcome
                    .rejected
                    .iter()
                    .map(|(i, _, _)| items[*i].external_id.as_str()),
            );
            done.extend(unmappable_ids.iter().map(String::as_str));
        }
        done.extend(unchanged.iter().map(String::as_str));
        let watermark = if dlq_ok {
            safe_watermark(&all, before.watermark, |d| {
                already(d) || done.contains(d.id.as_str())
            })
        } else {
            before.watermark
        };
        let mut next = released.clone();
        next.watermark = watermark;
        next.recent = remember(
            &before.recent,
            all.iter().filter(|d| done.contains(d.id.as_str())),
            watermark,
            s.overlap,
        );
        let complete = dlq_ok
            && outcome.stop.is_none()
            && outcome.exhausted == 0
            && report.failed == report.dead_lettered;
        if full && complete {
            next.last_full_sync = Some(now);
        }
        match self.state.save(&next, leased_version).await {
            Ok(_) => report.watermark_after = watermark.map(crate::domain::format_ts),
            Err(e) => {
                return fail(
                    report,
                    format!("state_conflict: the watermark was not advanced: {e}"),
                );
            }
        }

        conclude(
            report,
            dlq_result,
            outcome.stop,
            outcome.exhausted,
            s.record_max_attempts,
        );
    }

    /// Step 1: reads the state and takes the lease with a conditional write. Returns the state
    /// as it was and the version the cycle's final write is conditioned on, or `None` when the
    /// cycle must not run (the report then says why).
    async fn acquire(
        &self,
        request: &CycleRequest,
        cycle_id: &str,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Option<(SyncState, u64)> {
        let s = self.settings;
        let stored = match self.state.load().await {
            Ok(v) => v,
            Err(e) => {
                fail(report, format!("state_unavailable: {e}"));
                return None;
            }
        };
        let before = stored.state;
        report.watermark_before = before.watermark.map(crate::domain::format_ts);
        report.watermark_after = report.watermark_before.clone();
        if let Some(lease) = &before.lease
            && lease.expires > now
        {
            let reason = format!(
                "another cycle ({}) holds the lease until {}",
                lease.owner,
                crate::domain::format_ts(lease.expires)
            );
            skip(report, reason);
            return None;
        }
        if let Some(last) = before.last_cycle_started
            && !request.retry
            && !s.min_poll_interval.is_zero()
            && now.signed_duration_since(last)
                < chrono::Duration::from_std(s.min_poll_interval).unwrap_or_default()
        {
            let reason = format!(
                "the previous cycle started at {}; the minimum poll interval is {} s",
                crate::domain::format_ts(last),
                s.min_poll_interval.as_secs()
            );
            skip(report, reason);
            return None;
        }
        let mut leased = before.clone();
        leased.lease = Some(Lease {
            owner: cycle_id.to_owned(),
            expires: request
                .deadline
                .unwrap_or(now + chrono::Duration::minutes(15)),
        });
        leased.last_cycle_started = Some(now);
        match self.state.save(&leased, stored.version).await {
            Ok(version) => Some((before, version)),
            Err(StateError::Conflict { .. }) => {
                skip(report, "another invocation took the lease first".into());
                None
            }
            Err(e) => {
                fail(report, format!("state_unavailable: {e}"));
                None
            }
        }
    }

    /// Step 5: maps the newest version of each code and decides what to write. In a delta that
    /// is every version not written yet; in a full reconciliation, what differs from Salesforce
    /// plus the review flags of stale records. Also counts what the breaker needs. Errors are
    /// the failure reason of the cycle.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        cycle_id: &str,
        all: &[Disposition],
        mut latest: HashMap<String, (Disposition, Value)>,
        already: &dyn Fn(&Disposition) -> bool,
        full: bool,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Result<Plan, String> {
        let s = self.settings;
        let rules = self
            .rules(full)
            .await
            .map_err(|e| format!("{}: describe failed: {e}", failure_kind(&e)))?;
        let sf_rows = if full {
            Some(self.salesforce_rows().await.map_err(|e| {
                format!(
                    "{}: reading Salesforce for the reconciliation failed: {e}",
                    failure_kind(&e)
                )
            })?)
        } else {
            None
        };
        let mut plan = Plan::default();
        let mut reconcile = Reconcile::default();
        let mut unmapped = BTreeSet::new();
        // Inactive codes in a delta; they archive something only if Salesforce has them active.
        let mut deactivating: Vec<String> = Vec::new();
        for d in all {
            if sf_rows.is_none() && already(d) {
                continue;
            }
            let id = d.id.as_str().to_owned();
            let (disposition, raw) = latest.remove(&id).expect("every code has a latest version");
            let mapped = match to_salesforce(&disposition, &s.target, &rules) {
                Ok(m) => m,
                Err(e) => {
                    // Dead-lettered before any write; once durably in the DLQ it is done, or
                    // the watermark would stop before it and every cycle dead-letter it again.
                    plan.unmappable
                        .push((id, self.unmappable(cycle_id, raw, e)));
                    continue;
                }
            };
            if let Some(rows) = &sf_rows {
                match rows.get(&id) {
                    Some(row) if mapping::matches(&mapped.payload, row) => {
                        plan.unchanged.insert(id);
                        continue;
                    }
                    Some(row) => {
                        reconcile.different += 1;
                        if row.get("IsActive__c") == Some(&Value::Bool(true))
                            && !disposition.is_active
                        {
                            plan.archiving += 1;
                        }
                    }
                    // Archived longer than the retention period: the purge removed it on
                    // purpose, so reconciliation must not bring it back.
                    None if !disposition.is_active
                        && now.signed_duration_since(disposition.last_modified) > s.retention =>
                    {
                        plan.unchanged.insert(id);
                        continue;
                    }
                    None => {
                        reconcile.missing += 1;
                        if reconcile.missing_ids.len() < 50 {
                            reconcile.missing_ids.push(id.clone());
                        }
                    }
                }
            } else if !disposition.is_active {
                deactivating.push(id.clone());
            }
            if let Some(c) = &mapped.unmapped_category {
                report.unmapped_categories += 1;
                unmapped.insert(c.clone());
            }
            report.truncated += mapped.truncated;
            plan.items.push(Item {
                external_id: id,
                source: Some((disposition, raw)),
                payload: mapped.payload,
            });
        }
        for value in &unmapped {
            tracing::warn!(category = %value, "CXone category is not an allowed Salesforce picklist value; written to RawCategory__c and flagged for review");
        }
        report.unmapped_category_values = unmapped.into_iter().collect();

        match &sf_rows {
            Some(rows) => {
                let codes: HashSet<&str> = all.iter().map(|d| d.id.as_str()).collect();
                reconcile.cxone_active = all.iter().filter(|d| d.is_active).count();
                reconcile.salesforce_active = rows
                    .values()
                    .filter(|r| r.get("IsActive__c") == Some(&Value::Bool(true)))
                    .count();
                for (external_id, row) in rows {
                    if codes.contains(external_id.as_str()) {
                        continue;
                    }
                    reconcile.stale += 1;
                    if reconcile.stale_ids.len() < 50 {
                        reconcile.stale_ids.push(external_id.clone());
                    }
                    let flagged = row.get("NeedsReview__c") == Some(&Value::Bool(true))
                        && row.get("ReviewReason__c").and_then(Value::as_str) == Some(STALE_REASON);
                    if !flagged {
                        if row.get("IsActive__c") == Some(&Value::Bool(true)) {
                            plan.archiving += 1;
                        }
                        plan.items.push(Item {
                            external_id: external_id.clone(),
                            source: None,
                            payload: mapping::stale_flag(external_id, &s.target),
                        });
                    }
                }
                reconcile.stale_ids.sort();
                plan.active_in_salesforce = Some(reconcile.salesforce_active);
                plan.reconcile = Some(reconcile);
            }
            None if !deactivating.is_empty() => {
                let active = self.active_ids().await.map_err(|e| {
                    format!("{}: counting active records failed: {e}", failure_kind(&e))
                })?;
                plan.archiving = deactivating
                    .iter()
                    .filter(|id| active.contains(id.as_str()))
                    .count();
                plan.active_in_salesforce = Some(active.len());
            }
            None => {}
        }
        Ok(plan)
    }

    /// Releases the lease after a failure, keeping the watermark. Best effort: if this write fails
    /// the lease expires at the deadline anyway.
    pub(crate) async fn release(&self, state: &SyncState, version: u64) {
        if let Err(e) = self.state.save(state, version).await {
            tracing::warn!(error = %e, "could not release the lease; it expires at the invocation deadline");
        }
    }

    /// Upserts `items` in batches with up to `record_max_attempts` attempts per record.
    pub(crate) async fn write(&self, items: &mut [Item], stop_at: Option<Instant>) -> Outcome {
        let s = self.settings;
        let mut outcome = Outcome::default();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let stop: Mutex<Option<Stop>> = Mutex::new(None);
        for attempt in 1..=s.record_max_attempts {
            if pending.is_empty() {
                break;
            }
            let batches: Vec<Vec<usize>> = pending
                .chunks(s.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
            let shared: &[Item] = items;
            let results: Vec<BatchResult> = futures::stream::iter(batches)
                .map(|batch| {
                    let stop = &stop;
                    async move {
                        if let Some(reason) = self.should_stop(stop_at) {
                            stop.lock().unwrap().get_or_insert(reason);
                        }
                        if stop.lock().unwrap().is_some() {
                            return (batch, None);
                        }
                        let payloads: Vec<Value> =
                            batch.iter().map(|&i| shared[i].payload.clone()).collect();
                        let result = self.sink.upsert(&payloads).await;
                        match &result {
                            Err(SalesforceError::RequestLimit) => {
                                stop.lock().unwrap().get_or_insert(Stop::Budget(
                                    "Salesforce answered 403 REQUEST_LIMIT_EXCEEDED".into(),
                                ));
                            }
                            Err(
                                e @ (SalesforceError::Auth(_) | SalesforceError::SessionRejected),
                            ) => {
                                stop.lock()
                                    .unwrap()
                                    .get_or_insert(Stop::Auth(e.to_string()));
                            }
                            Err(e @ SalesforceError::Rejected { .. }) => {
                                stop.lock()
                                    .unwrap()
                                    .get_or_insert(Stop::Rejected(e.to_string()));
                            }
                            _ => {}
                        }
                        (batch, Some(result))
                    }
                })
                .buffer_unordered(s.max_in_flight.max(1))
                .collect()
                .await;

            let mut retry_next = Vec::new();
            let mut remap = Vec::new();
            let mut request_failed = false;
            for (batch, result) in results {
                match result {
                    None => {}
                    Some(Ok(outcomes)) => {
                        for (&i, o) in batch.iter().zip(outcomes) {
                            match o {
                                UpsertOutcome::Created => {
                                    outcome.created += 1;
                                    outcome.written.push(i);
                                }
                                UpsertOutcome::Updated => {
                                    outcome.updated += 1;
                                    outcome.written.push(i);
                                }
                                UpsertOutcome::Failed(e)
                                    if retry::salesforce_code(&e.code) == Class::Transient
                                        && attempt < s.record_max_attempts =>
                                {
                                    retry_next.push(i)
                                }
                                // The picklist changed since describe was cached: refresh it
                                // and map the record again (it falls back to RawCategory__c).
                                UpsertOutcome::Failed(e)
                                    if e.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                                        && attempt < s.record_max_attempts
                                        && shared[i].source.is_some() =>
                                {
                                    remap.push(i)
                                }
                                UpsertOutcome::Failed(e) => {
                                    tracing::warn!(external_id = %shared[i].external_id, code = %e.code, attempt, "record rejected by Salesforce");
                                    outcome.rejected.push((i, e, attempt));
                                }
                            }
                        }
                    }
                    Some(Err(e))
                        if e.class() == Class::Transient
                            || matches!(e, SalesforceError::BadResponse(_)) =>
                    {
                        tracing::warn!(error = %e, attempt, records = batch.len(), "upsert request failed");
                        request_failed = true;
                        if attempt < s.record_max_attempts {
                            retry_next.extend(batch);
                        } else {
                            outcome.exhausted += batch.len();
                        }
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, records = batch.len(), "upsert request refused; stopping")
                    }
                }
            }
            if !remap.is_empty() {
                match self.rules(true).await {
                    Ok(rules) => {
                        for i in remap {
                            let (disposition, _) = items[i]
                                .source
                                .as_ref()
                                .expect("only CXone codes are remapped");
                            match to_salesforce(disposition, &s.target, &rules) {
                                Ok(mapped) => {
                                    items[i].payload = mapped.payload;
                                    retry_next.push(i);
                                }
                                Err(e) => outcome.rejected.push((i, e, attempt)),
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "describe failed while refreshing the picklist");
                        retry_next.extend(remap);
                    }
                }
            }
            if stop.lock().unwrap().is_some() || retry_next.is_empty() {
                break;
            }
            outcome.retries += retry_next.len() as u64;
            retry_next.sort_unstable();
            pending = retry_next;
            // Records Salesforce refused back off linearly; a failed request (5xx, timeout, reset)
            // points at an unhealthy service, so it backs off exponentially, with jitter.
            let pause = if request_failed {
                retry::exponential_jitter(attempt, s.retry_base_delay, Duration::from_secs(30))
                    .max(retry::linear(attempt, s.retry_base_delay))
            } else {
                retry::linear(attempt, s.retry_base_delay)
            };
            tokio::time::sleep(pause).await;
        }
        outcome.stop = stop.into_inner().unwrap();
        outcome
    }

    fn should_stop(&self, stop_at: Option<Instant>) -> Option<Stop> {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            return Some(Stop::Deadline);
        }
        let usage = self.sink.api_usage()?;
        (usage.percent() >= self.settings.api_budget_percent as f64).then(|| {
            Stop::Budget(format!(
                "Salesforce API usage {}/{} is at or above the budget of {}%",
                usage.used, usage.max, self.settings.api_budget_percent
            ))
        })
    }

    fn unmappable(&self, cycle_id: &str, raw: Value, error: RecordError) -> DeadLetter {
        let external_id = match raw.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let last_modified = raw
            .get("last_modified_date")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        tracing::warn!(external_id = ?external_id, code = %error.code, reason = %error.message, "CXone record cannot be mapped; dead-lettering it");
        DeadLetter {
            schema_version: SCHEMA_VERSION,
            sync_id: self.settings.sync_id.clone(),
            cycle_id: cycle_id.to_owned(),
            kind: DeadLetterKind::Unmappable,
            external_id,
            last_modified,
            payload: None,
            source: raw,
            error,
            attempts: 1,
            failed_at: Utc::now(),
            redrive_attempts: 0,
        }
    }

    fn rejected(
        &self,
        cycle_id: &str,
        item: &Item,
        error: RecordError,
        attempts: u32,
    ) -> DeadLetter {
        DeadLetter {
            schema_version: SCHEMA_VERSION,
            sync_id: self.settings.sync_id.clone(),
            cycle_id: cycle_id.to_owned(),
            kind: DeadLetterKind::Rejected,
            external_id: Some(item.external_id.clone()),
            last_modified: item.source.as_ref().map(|(d, _)| d.last_modified),
            payload: Some(item.payload.clone()),
            source: item
                .source
                .as_ref()
                .map(|(_, raw)| raw.clone())
                .unwrap_or(Value::Null),
            error,
            attempts,
            failed_at: Utc::now(),
            redrive_attempts: 0,
        }
    }

    /// The mapping rules, describing the object on first use (once per execution environment)
    /// or when `refresh` asks for the current picklist.
    pub(crate) async fn rules(&self, refresh: bool) -> Result<Rules, SalesforceError> {
        let mut cached = self.schema.lock().await;
        if refresh || cached.is_none() {
            *cached = Some(self.sink.describe().await?);
        }
        Ok(Rules {
            schema: cached.clone().unwrap_or_default(),
            aliases: self.settings.category_aliases.clone(),
        })
    }

    /// Every Salesforce record of the object by external ID, with the fields the sync owns.
    async fn salesforce_rows(&self) -> Result<HashMap<String, Value>, SalesforceError> {
        let t = &self.settings.target;
        let soql = format!(
            "SELECT Id, {}, Name, Description__c, Category__c, RawCategory__c, IsActive__c, LastModifiedCXone__c, \
             ArchivedDate__c, NeedsReview__c, ReviewReason__c FROM {}",
            t.external_id_field, t.object
        );
        let rows = self.sink.query(&soql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((row.get(&t.external_id_field)?.as_str()?.to_owned(), row)))
            .collect())
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

/// The reason prefix for a Salesforce failure outside the write phase.
fn failure_kind(e: &SalesforceError) -> &'static str {
    match e {
        SalesforceError::Auth(_) | SalesforceError::SessionRejected => "auth_unavailable",
        SalesforceError::RequestLimit => "api_budget",
        _ => "salesforce_unavailable",
    }
}

/// The cycle's status, from what stopped it (if anything) and what it dead-lettered.
fn conclude(
    report: &mut CycleReport,
    dlq_result: Result<(), crate::dlq::DlqError>,
    stop: Option<Stop>,
    exhausted: usize,
    max_attempts: u32,
) {
    if let Err(e) = dlq_result {
        return fail(
            report,
            format!("dlq_unavailable: {e}; the watermark was not advanced"),
        );
    }
    match stop {
        Some(Stop::Auth(m)) => return fail(report, format!("auth_unavailable: {m}")),
        Some(Stop::Rejected(m)) => return fail(report, format!("salesforce_rejected: {m}")),
        Some(Stop::Budget(m)) => return skip(report, format!("api_budget: {m}")),
        Some(Stop::Deadline) => {
            report.status = Status::Partial;
            report.reason = Some("deadline: stopped starting batches before the invocation deadline; the next cycle continues".into());
            return;
        }
        None => {}
    }
    if exhausted > 0 {
        return fail(
            report,
            format!(
                "salesforce_unavailable: {exhausted} records were not written after {max_attempts} attempts"
            ),
        );
    }
    report.status = if report.dead_lettered > 0 {
        Status::Partial
    } else {
        Status::Ok
    };
}

/// The one structured log line of a full reconciliation.
fn log_reconcile(reconcile: &Reconcile) {
    tracing::info!(target: "reconcile", reconcile = %serde_json::to_string(reconcile).unwrap_or_default(), "full reconciliation compared CXone and Salesforce");
}

fn fail(report: &mut CycleReport, reason: String) {
    tracing::error!(%reason, "cycle failed");
    report.status = Status::Failed;
    report.reason = Some(reason);
}

fn skip(report: &mut CycleReport, reason: String) {
    tracing::info!(%reason, "cycle skipped");
    report.status = Status::Skipped;
    report.reason = Some(reason);
}

/// The newest timestamp the watermark may take: it advances over whole groups of records with
/// the same timestamp, in time order, and stops before the first group with a record not done.
/// It never moves backwards.
pub fn safe_watermark(
    sorted: &[Disposition],
    current: Option<DateTime<Utc>>,
    done: impl Fn(&Disposition) -> bool,
) -> Option<DateTime<Utc>> {
    let mut watermark = current;
    let mut i = 0;
    while i < sorted.len() {
        let ts = sorted[i].last_modified;
        let group_end = sorted[i..]
            .iter()
            .position(|d| d.last_modified != ts)
            .map_or(sorted.len(), |p| i + p);
        if !sorted[i..group_end].iter().all(&done) {
            break;
        }
        watermark = Some(watermark.map_or(ts, |w| w.max(ts)));
        i = group_end;
    }
    watermark
}

/// The versions to remember as already written: those the next cycle's overlap window will see
/// again (newer than `watermark − overlap`), newest first, at most [`MAX_RECENT`].
fn remember<'a>(
    previous: &BTreeMap<VersionMark, DateTime<Utc>>,
    done: impl Iterator<Item = &'a Disposition>,
    watermark: Option<DateTime<Utc>>,
    overlap: Duration,
) -> BTreeMap<VersionMark, DateTime<Utc>> {
    let Some(watermark) = watermark else {
        return BTreeMap::new();
    };
    let horizon = watermark - chrono::Duration::from_std(overlap).unwrap_or_default();
    let mut merged = previous.clone();
    for d in done {
        merged.insert(
            VersionMark::of(d.id.as_str(), d.last_modified),
            d.last_modified,
        );
    }
    let mut kept: Vec<(VersionMark, DateTime<Utc>)> =
        merged.into_iter().filter(|(_, lm)| *lm > horizon).collect();
    kept.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    kept.truncate(MAX_RECENT);
    kept.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DispositionId;
    use chrono::TimeZone;

    fn d(id: &str, secs: i64) -> Disposition {
        Disposition {
            id: DispositionId::parse(id).unwrap(),
            name: id.into(),
            description: None,
            category: None,
            is_active: true,
            last_modified: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn watermark_stops_before_the_first_unfinished_timestamp() {
        let records = vec![d("a", 1), d("b", 2), d("c", 2), d("e", 3)];
        let all = safe_watermark(&records, None, |_| true);
        assert_eq!(all, Some(records[3].last_modified));
        // "c" shares its timestamp with "b": neither may be passed.
        let partial = safe_watermark(&records, None, |x| x.id.as_str() != "c");
        assert_eq!(partial, Some(records[0].last_modified));
        let none = safe_watermark(&records, Some(records[0].last_modified), |x| {
            x.id.as_str() != "a"
        });
        assert_eq!(
            none,
            Some(records[0].last_modified),
            "never moves backwards, never passes a"
        );
    }

    #[test]
    fn recent_keeps_only_the_overlap_window() {
        let records = [d("a", 0), d("b", 50), d("c", 100)];
        let kept = remember(
            &BTreeMap::new(),
            records.iter(),
            Some(records[2].last_modified),
            Duration::from_secs(60),
        );
        let expected: BTreeMap<_, _> = records[1..]
            .iter()
            .map(|r| {
                (
                    VersionMark::of(r.id.as_str(), r.last_modified),
                    r.last_modified,
                )
            })
            .collect();
        assert_eq!(kept, expected);
    }
}
