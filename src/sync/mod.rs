//! The sync engine: one cycle from CXone into Salesforce. This file is the data path; each step
//! lives in its own module.
//!
//! 1. Read the state and take the [`lease`] (a conditional write), or skip.
//! 2. Decide the mode: a full snapshot, or a delta from `watermark − overlap`.
//! 3. Fetch from CXone, keep the newest version of each code, set aside malformed records. A full
//!    snapshot reads Salesforce's rows at the same time.
//! 4. [`plan`] what to write; the mass-change breaker may refuse the whole cycle here.
//! 5. Upsert with the [`writer`]: batches, several in flight, every per-record result read,
//!    transient failures retried.
//! 6. Dead-letter what cannot be written, then advance the watermark (see [`crate::watermark`])
//!    only over records that are in Salesforce or durably in the DLQ, with a write conditioned
//!    on the version the lease was taken at.
//!
//! The engine sees its edges only through the [`DispositionSource`], [`RecordSink`],
//! [`StateStore`] and [`DeadLetterQueue`] traits. The [`report`] is its response.

pub mod dry_run;
pub mod lease;
mod letters;
pub mod plan;
pub mod report;
pub mod writer;

use crate::cxone::{CxoneError, DispositionSource};
use crate::dlq::{DeadLetter, DeadLetterQueue, DlqError};
use crate::domain::{DispositionId, SourceRecord, format_ts};
use crate::mapping::RulesCache;
use crate::record::Target;
use crate::salesforce::RecordSink;
use crate::watermark::{StateStore, SyncState, Version, VersionMark, remember, safe_watermark};
use chrono::{DateTime, Utc};
use lease::{Held, Holder};
use plan::{Latest, Plan, Planner};
use report::{CycleReport, Mode, Reason, Status};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use writer::{Outcome, Write, Writer};

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
    /// `CLOCK_SKEW_SECONDS`: how far CXone's clock may run ahead of ours. The watermark never
    /// passes the cycle's start plus this, and state times beyond it are corrupt.
    pub clock_skew: Duration,
    /// `RETENTION_DAYS`: archived codes older than this are left purged by reconciliation.
    pub retention: chrono::Duration,
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        let (rules, sf) = (&c.sync, &c.salesforce);
        Self {
            sync_id: rules.sync_id.clone(),
            target: sf.target.clone(),
            overlap: rules.overlap,
            full_reconcile: rules.full_reconcile,
            batch_size: sf.batch_size,
            max_in_flight: sf.max_in_flight,
            record_max_attempts: rules.record_max_attempts,
            retry_base_delay: c.http.retry_base_delay,
            min_poll_interval: rules.min_poll_interval,
            api_budget_percent: sf.api_budget_percent,
            deadline_margin: c.http.timeout + Duration::from_secs(5),
            max_archive_percent: rules.max_archive_percent,
            clock_skew: rules.clock_skew,
            retention: chrono::Duration::days(rules.retention_days as i64),
        }
    }

    /// When to stop starting batches: the deadline less the time one request may take
    /// (`HTTP_TIMEOUT_SECONDS` + 5 s), but never more than a quarter of the invocation's time
    /// (from `started`), so that a short deadline still leaves most of its time to write.
    pub fn stop_at(
        &self,
        deadline: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
    ) -> Option<Instant> {
        deadline.map(|d| {
            let total = (d - started).to_std().unwrap_or_default();
            let margin = self.deadline_margin.min(total / 4);
            let left = (d - Utc::now()).to_std().unwrap_or_default();
            crate::deadline::after(left.saturating_sub(margin))
        })
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
    /// Take the lease even if another run holds it (an operator's explicit choice).
    pub take_over_lease: bool,
}

pub struct Engine<'a> {
    pub source: &'a dyn DispositionSource,
    pub sink: &'a dyn RecordSink,
    pub state: &'a dyn StateStore,
    pub dlq: &'a dyn DeadLetterQueue,
    pub rules: &'a RulesCache,
    pub settings: &'a Settings,
}

/// How a cycle ended: its status and, unless it ran to completion, why.
pub(crate) type Ending = (Status, Option<Reason>);

/// What the fetch set aside because it is not a valid disposition: the letters to send, and the
/// versions they stand for, so that a record that stays malformed is dead-lettered once.
#[derive(Default)]
pub(crate) struct SetAside {
    pub letters: Vec<DeadLetter>,
    /// Versions with a readable id and time: done once their letter is durable, like a write.
    placed: Vec<Version>,
    /// Records without one, remembered by a fingerprint of what CXone sent.
    unplaced: Vec<VersionMark>,
}

/// Steps 2 to 4 of a cycle, computed and not yet acted on.
pub(crate) struct Prepared {
    pub full: bool,
    /// Whether the listing held still while it was read (see [`crate::cxone::Listing`]).
    pub settled: bool,
    /// Distinct valid codes fetched.
    pub codes: usize,
    pub versions: Vec<Version>,
    pub set_aside: SetAside,
    pub plan: Plan,
    /// Salesforce requests the planner sent (token, describe, queries).
    pub planning_requests: u64,
}

/// The overlap memory's mark for a record without a readable id and time: a fingerprint of
/// what CXone sent.
fn unplaced(raw: &serde_json::Value) -> VersionMark {
    VersionMark::of(&raw.to_string(), DateTime::UNIX_EPOCH)
}

/// A cycle that holds the lease.
struct Leased {
    held: Held,
    /// The state to write when letting go without advancing.
    released: SyncState,
    now: DateTime<Utc>,
    full: bool,
    /// Whether the listing held still while it was read (see [`crate::cxone::Listing`]).
    settled: bool,
}

impl Leased {
    /// The state the cycle leaves: the watermark advanced over the versions that are `done`
    /// (held where it was when `hold`), the overlap memory, and the time of a complete full
    /// snapshot.
    fn next_state(
        self,
        versions: &[Version],
        done: &HashSet<DispositionId>,
        unplaced: &[VersionMark],
        hold: bool,
        complete: bool,
        settings: &Settings,
    ) -> SyncState {
        let before = &self.held.before;
        let observed =
            self.now + chrono::Duration::from_std(settings.clock_skew).unwrap_or_default();
        let watermark = if hold || !self.settled {
            before.watermark
        } else {
            safe_watermark(versions, before.watermark, observed, |v| {
                before.already_written(v) || done.contains(&v.id)
            })
        };
        let mut next = self.released;
        next.watermark = watermark;
        next.recent = remember(
            &before.recent,
            versions.iter().filter(|v| done.contains(&v.id)),
            watermark,
            settings.overlap,
        );
        // Kept while the overlap window still reaches the cycle's start.
        next.recent
            .extend(unplaced.iter().map(|mark| (*mark, self.now)));
        if self.full && complete {
            next.last_full_sync = Some(self.now);
        }
        next
    }
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
        let mode = if request.full {
            Mode::Full
        } else {
            Mode::Delta
        };
        let mut report = CycleReport::new(cycle_id, mode);
        let (status, reason) = self.cycle(&request, &mut report).await;
        report.conclude(status, reason);
        report.cxone_requests = self.source.requests() - cx0;
        report.salesforce_requests = self.sink.requests() - sf0;
        report.throttled_ms = self.source.throttled_ms() - throttle0;
        report.sf_api_usage = self.sink.api_usage();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    async fn cycle(&self, request: &CycleRequest, report: &mut CycleReport) -> Ending {
        let now = Utc::now();
        // 1. State and lease.
        let held = match self.lease(request, now, report).await {
            Ok(held) => held,
            Err(ending) => return ending,
        };
        report.state_repairs = held.repairs.clone();
        // What the item holds once this cycle lets go: no lease (a stale one taken over included).
        let mut released = held.before.clone();
        released.lease = None;
        released.last_cycle_started = Some(now);

        // 2 to 4: mode, fetch, plan: the same computation a dry run makes.
        let prepared = match self.prepare(request, &held.before, now, report).await {
            Ok(prepared) => prepared,
            Err(ending) => {
                lease::release(self.state, &released, held.version).await;
                return ending;
            }
        };
        let Prepared {
            full,
            settled,
            versions,
            set_aside,
            plan,
            ..
        } = prepared;
        if let Err(reason) =
            plan.breaker(request.allow_mass_change, self.settings.max_archive_percent)
        {
            lease::release(self.state, &released, held.version).await;
            if let Some(reconcile) = plan.reconcile {
                reconcile.log();
                report.reconcile = Some(reconcile);
            }
            return (Status::Failed, Some(reason));
        }

        // 5 and 6.
        let leased = Leased {
            held,
            released,
            now,
            full,
            settled,
        };
        self.apply(leased, plan, versions, set_aside, request.deadline, report)
            .await
    }

    /// Steps 2 to 4 on the state `before`: the mode, the fetch (the newest version of each code,
    /// malformed records set aside; a full snapshot reads Salesforce's rows at the same time)
    /// and the plan. The cycle and the dry run both call this, so a dry run predicts exactly
    /// what the next cycle does; it writes nothing. The breaker is the caller's: a cycle
    /// refuses, a dry run reports.
    pub(crate) async fn prepare(
        &self,
        request: &CycleRequest,
        before: &SyncState,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Result<Prepared, Ending> {
        // 2. Mode.
        let full = request.full || self.reconciliation_due(before, now);
        report.mode = if full { Mode::Full } else { Mode::Delta };

        // 3. Fetch; a full snapshot reads Salesforce's rows while the CXone pages arrive.
        let planner = Planner {
            sink: self.sink,
            rules: self.rules,
            settings: self.settings,
        };
        let sf0 = self.sink.requests();
        let since = (!full)
            .then_some(before.watermark)
            .flatten()
            .map(|w| w - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default());
        // The first failure ends both: a CXone outage stops the Salesforce read, and back.
        // A delta never writes a version it wrote already, so the source need not complete them.
        let written = |id: &DispositionId, last_modified| {
            before.already_written(&Version {
                last_modified,
                id: id.clone(),
            })
        };
        let fetch = async {
            let listing = match since {
                Some(since) => self.source.changed_since_unwritten(since, &written).await,
                None => self.source.changed_since(None).await,
            };
            listing.map_err(|e| (Status::Failed, Some(fetch_failure(e))))
        };
        let read = async {
            if !full {
                return Ok(None);
            }
            planner.snapshot().await.map(Some).map_err(plan_failure)
        };
        let (fetched, snapshot) = tokio::try_join!(fetch, read)?;
        report.fetched = fetched.records.len();
        let settled = fetched.settled;
        if !settled {
            tracing::warn!(
                "the listing kept changing while it was read; the watermark holds, and the next cycle reads it again"
            );
            report.listing_changed = true;
        }
        let (codes, set_aside) = self.newest(fetched.records, &report.cycle_id, before);
        let versions: Vec<Version> = codes.iter().map(Latest::version).collect();

        // 4. Plan.
        let plan = planner
            .plan(codes, before, snapshot, now)
            .await
            .map_err(plan_failure)?;
        Ok(Prepared {
            full,
            settled,
            codes: versions.len(),
            versions,
            set_aside,
            plan,
            planning_requests: self.sink.requests() - sf0,
        })
    }

    /// Step 1: reads the state and takes the lease, or says how the cycle ends without running.
    async fn lease(
        &self,
        request: &CycleRequest,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Result<Held, Ending> {
        let stored = self.state.load().await.map_err(|e| {
            (
                Status::Failed,
                Some(Reason::StateUnavailable(e.to_string())),
            )
        })?;
        report.watermark_before = stored.state.watermark.map(format_ts);
        report.watermark_after = report.watermark_before.clone();
        let holder = Holder::Cycle {
            id: &report.cycle_id,
            min_poll_interval: (!request.retry).then_some(self.settings.min_poll_interval),
            take_over: request.take_over_lease,
        };
        let skew = self.settings.clock_skew;
        lease::take(self.state, stored, holder, now, request.deadline, skew)
            .await
            .map_err(|reason| match reason {
                Reason::StateUnavailable(_) => (Status::Failed, Some(reason)),
                _ => (Status::Skipped, Some(reason)),
            })
    }

    /// Step 2: a full reconciliation is due on the first cycle and every `FULL_RECONCILE_HOURS`.
    fn reconciliation_due(&self, before: &SyncState, now: DateTime<Utc>) -> bool {
        let every = chrono::Duration::from_std(self.settings.full_reconcile).unwrap_or_default();
        before.watermark.is_none()
            || before
                .last_full_sync
                .is_none_or(|t| now.signed_duration_since(t) >= every)
    }

    /// Steps 5 and 6: writes the plan, dead-letters what cannot be written, and advances the
    /// watermark over what is safely somewhere.
    async fn apply(
        &self,
        leased: Leased,
        plan: Plan,
        mut versions: Vec<Version>,
        set_aside: SetAside,
        deadline: Option<DateTime<Utc>>,
        report: &mut CycleReport,
    ) -> Ending {
        let Plan {
            mut writes,
            unchanged,
            unmappable,
            reconcile,
            unmapped_categories,
            unmapped_category_values,
            truncated,
            ..
        } = plan;
        report.unmapped_categories = unmapped_categories;
        report.unmapped_category_values = unmapped_category_values.into_iter().collect();
        report.truncated = truncated;
        // Codes in Salesforce already, and codes that will be once their letter is sent.
        let mut done: HashSet<DispositionId> = unchanged;
        let mut dead: HashSet<DispositionId> = HashSet::new();
        let SetAside {
            mut letters,
            placed,
            unplaced,
        } = set_aside;
        dead.extend(placed.iter().map(|v| v.id.clone()));
        versions.extend(placed);
        versions.sort();
        for u in unmappable {
            dead.insert(u.latest.disposition.id.clone());
            letters.push(self.letter_unmappable(&report.cycle_id, u.latest, u.error));
        }
        tracing::info!(cycle_id = %report.cycle_id, mode = ?report.mode, fetched = report.fetched, to_write = writes.len(), malformed = letters.len(), "cycle planned");

        let outcome = self.write(&mut writes, deadline, leased.now).await;
        report.record_writes(&outcome, &writes, reconcile);
        for r in &outcome.rejected {
            dead.insert(writes[r.index].external_id().clone());
            letters.push(self.letter_rejected(&report.cycle_id, &writes[r.index], r));
        }

        // Dead letters go out before the watermark moves: a record may be passed only once it
        // is durably somewhere.
        let dlq_result = self.dlq.send(&letters).await;
        let dlq_ok = dlq_result.is_ok();
        report.dead_lettered = if dlq_ok { letters.len() } else { 0 };
        report.failed =
            letters.len() + (writes.len() - outcome.written.len() - outcome.rejected.len());
        done.extend(
            outcome
                .written
                .iter()
                .map(|&i| writes[i].external_id().clone()),
        );
        if dlq_ok {
            done.extend(dead);
        }
        let complete = dlq_ok
            && outcome.stop.is_none()
            && outcome.exhausted == 0
            && report.failed == report.dead_lettered;
        let version = leased.held.version;
        let unplaced = if dlq_ok { unplaced } else { vec![] };
        let next = leased.next_state(
            &versions,
            &done,
            &unplaced,
            !dlq_ok,
            complete,
            self.settings,
        );
        let watermark = next.watermark;
        if let Err(e) = self.state.save(&next, version).await {
            let reason = format!("the watermark was not advanced: {e}");
            return (Status::Failed, Some(Reason::StateConflict(reason)));
        }
        report.watermark_after = watermark.map(format_ts);
        let dlq_failure = dlq_result.err().map(|e| match e {
            DlqError::Unavailable(m) => {
                Reason::DlqUnavailable(format!("{m}; the watermark was not advanced"))
            }
            DlqError::Refused(m) => {
                Reason::DlqRejected(format!("{m}; the watermark was not advanced"))
            }
        });
        conclude(
            report,
            dlq_failure,
            outcome,
            self.settings.record_max_attempts,
        )
    }

    /// Step 3: the newest version of each code, in version order, and the records that are not
    /// valid dispositions, set aside for the DLQ. A set-aside version the overlap memory
    /// already holds, or whose time the watermark already passed (its letter went out then), is
    /// not dead-lettered again.
    fn newest(
        &self,
        fetched: Vec<SourceRecord>,
        cycle_id: &str,
        before: &SyncState,
    ) -> (Vec<Latest>, SetAside) {
        let mut set_aside = SetAside::default();
        let mut latest: BTreeMap<DispositionId, Latest> = BTreeMap::new();
        for record in fetched {
            match record {
                SourceRecord::Valid { disposition, raw } => {
                    let newer = latest
                        .get(&disposition.id)
                        .is_none_or(|l| l.disposition.last_modified <= disposition.last_modified);
                    if newer {
                        latest.insert(disposition.id.clone(), Latest { disposition, raw });
                    }
                }
                SourceRecord::Malformed {
                    raw,
                    reason,
                    external_id,
                    last_modified,
                } => {
                    let placed = external_id
                        .as_deref()
                        .and_then(|id| DispositionId::parse(id).ok())
                        .zip(last_modified)
                        .map(|(id, last_modified)| Version { last_modified, id });
                    let mark = placed
                        .as_ref()
                        .map_or_else(|| unplaced(&raw), Version::mark);
                    let lettered = before.recent.contains_key(&mark)
                        || placed
                            .as_ref()
                            .zip(before.watermark)
                            .is_some_and(|(v, w)| v.last_modified <= w);
                    if lettered {
                        tracing::info!(external_id = ?external_id, "malformed CXone record already dead-lettered; not again");
                    } else {
                        set_aside.letters.push(self.letter_malformed(
                            cycle_id,
                            raw,
                            reason,
                            external_id,
                            last_modified,
                        ));
                    }
                    match placed {
                        Some(v) => set_aside.placed.push(v),
                        None => set_aside.unplaced.push(mark),
                    }
                }
            }
        }
        let mut codes: Vec<Latest> = latest.into_values().collect();
        codes.sort_by_key(Latest::version);
        (codes, set_aside)
    }

    /// Step 5: the writer, after making sure a warm environment's API usage reading is current.
    async fn write(
        &self,
        writes: &mut [Write],
        deadline: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
    ) -> Outcome {
        let writer = Writer {
            sink: self.sink,
            rules: self.rules,
            settings: self.settings,
        };
        let stop_at = self.settings.stop_at(deadline, started);
        // A warm environment remembers the last `Sforce-Limit-Info` reading. If it says we are
        // over budget, read it afresh (describe is one cheap call) before believing it: usage falls
        // as the rolling 24 h window moves, and without a call we would never see it fall.
        if !writes.is_empty()
            && matches!(writer.should_stop(None), Some(Reason::ApiBudget(_)))
            && let Err(e) = self.rules.get(self.sink, true).await
        {
            tracing::warn!(error = %e, "could not refresh the Salesforce API usage reading");
        }
        writer.write(writes, stop_at).await
    }
}

/// Why fetching from CXone failed.
fn fetch_failure(e: CxoneError) -> Reason {
    match e {
        CxoneError::Auth(_) => Reason::AuthUnavailable(e.to_string()),
        CxoneError::Deadline(_) => Reason::Deadline(format!(
            "reading CXone stopped: {e}; nothing was written, the next cycle starts over"
        )),
        _ => Reason::CxoneUnavailable(e.to_string()),
    }
}

/// How a cycle ends when planning failed. A spent API budget is, like the same answer to an
/// upsert, a skip, not a fault.
fn plan_failure(reason: Reason) -> Ending {
    match reason {
        Reason::ApiBudget(_) => (Status::Skipped, Some(reason)),
        _ => (Status::Failed, Some(reason)),
    }
}

/// The cycle's status, from what stopped the writer (if anything) and what it dead-lettered.
fn conclude(
    report: &CycleReport,
    dlq_failure: Option<Reason>,
    outcome: Outcome,
    max_attempts: u32,
) -> Ending {
    if let Some(reason) = dlq_failure {
        return (Status::Failed, Some(reason));
    }
    match outcome.stop {
        Some(reason @ Reason::ApiBudget(_)) => return (Status::Skipped, Some(reason)),
        Some(reason @ Reason::Deadline(_)) => {
            tracing::info!(%reason, "cycle stopped early");
            return (Status::Partial, Some(reason));
        }
        Some(reason) => return (Status::Failed, Some(reason)),
        None => {}
    }
    if outcome.exhausted > 0 {
        let detail = format!(
            "{} records were not written after {max_attempts} attempts",
            outcome.exhausted
        );
        return (Status::Failed, Some(Reason::SalesforceUnavailable(detail)));
    }
    let status = if report.dead_lettered > 0 {
        Status::Partial
    } else {
        Status::Ok
    };
    (status, None)
}
