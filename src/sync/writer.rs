//! The writer: upserts planned writes in batches, several in flight, reads every per-record
//! result, retries what is transient and reports what Salesforce kept refusing.
//!
//! Shared by the cycle and the redrive. It stops starting batches when the deadline nears, when
//! the API usage reaches the budget, or when Salesforce refuses a whole request (auth, limits,
//! configuration); what it did not send is left for the caller's watermark rules.

use super::Settings;
use super::report::Reason;
use crate::domain::{Disposition, DispositionId, RawRecord};
use crate::mapping::{RulesCache, to_salesforce};
use crate::record::{Fields, SObject, Target};
use crate::retry::{self, Class};
use crate::salesforce::{RecordError, RecordSink, SalesforceError, UpsertOutcome};
use futures::StreamExt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A record on its way to Salesforce.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every write is a code; boxing each would cost an allocation for nothing"
)]
pub enum Write {
    /// A CXone code, mapped; `raw` is what CXone sent, kept for its dead letter.
    Code {
        disposition: Disposition,
        raw: RawRecord,
        fields: Fields,
        /// The record's Salesforce id, when a query just read it: an update's result must name
        /// the same record.
        known_id: Option<String>,
    },
    /// The review flag of a Salesforce record that no CXone code matches.
    StaleFlag { external_id: DispositionId },
}

impl Write {
    pub fn external_id(&self) -> &DispositionId {
        match self {
            Self::Code { disposition, .. } => &disposition.id,
            Self::StaleFlag { external_id } => external_id,
        }
    }

    /// The record as sObject Collections takes it.
    pub fn sobject<'a>(&'a self, target: &'a Target) -> SObject<'a> {
        static STALE: std::sync::LazyLock<Fields> = std::sync::LazyLock::new(Fields::stale_flag);
        match self {
            Self::Code { fields, .. } => SObject {
                target,
                external_id: self.external_id(),
                fields,
                only_set: false,
            },
            Self::StaleFlag { external_id } => SObject {
                target,
                external_id,
                fields: &STALE,
                only_set: true,
            },
        }
    }

    /// Whether writing this archives the record (a soft delete).
    pub fn archives(&self) -> bool {
        matches!(self, Self::Code { fields, .. } if fields.is_active == Some(false))
    }
}

/// A record Salesforce (or the mapping, on a retry) refused for good.
pub struct Rejection {
    /// Index into the writes.
    pub index: usize,
    pub error: RecordError,
    pub attempts: u32,
}

/// What happened to the records of one [`Writer::write`] (indexes into its writes).
#[derive(Default)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub written: Vec<usize>,
    pub rejected: Vec<Rejection>,
    pub retries: u64,
    /// Why the writer stopped starting batches, if it did.
    pub stop: Option<Reason>,
    /// Records left unsent after transient failures used up their attempts.
    pub exhausted: usize,
}

/// One upsert call: the indexes it carried and its result (`None` when it was not sent because
/// the writer was stopping).
type BatchResult = (
    Vec<usize>,
    Option<Result<Vec<UpsertOutcome>, SalesforceError>>,
);

/// What one round of batches left to do next.
#[derive(Default)]
struct Round {
    attempt: u32,
    /// No attempt follows this one.
    last: bool,
    /// Records to send again.
    next: Vec<usize>,
    /// Records to map again with a fresh picklist, then send again.
    remap: Vec<usize>,
    /// Whether a whole request failed (5xx, timeout, reset), not just records.
    request_failed: bool,
}

impl Round {
    /// Reads one batch's result into `outcome` and what to try next.
    fn read(
        &mut self,
        writes: &[Write],
        batch: Vec<usize>,
        result: Option<Result<Vec<UpsertOutcome>, SalesforceError>>,
        outcome: &mut Outcome,
    ) {
        let result = result.map(|r| r.and_then(|results| in_order(writes, &batch, results)));
        match result {
            None => {}
            Some(Ok(results)) => {
                for (&i, result) in batch.iter().zip(results) {
                    self.read_record(writes, i, result, outcome);
                }
            }
            Some(Err(e))
                if e.class() == Class::Transient
                    || matches!(e, SalesforceError::BadResponse(_)) =>
            {
                tracing::warn!(error = %e, attempt = self.attempt, records = batch.len(), "upsert request failed");
                self.request_failed = true;
                if self.last {
                    outcome.exhausted += batch.len();
                } else {
                    self.next.extend(batch);
                }
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, records = batch.len(), "upsert request refused; stopping")
            }
        }
    }

    fn read_record(
        &mut self,
        writes: &[Write],
        i: usize,
        result: UpsertOutcome,
        outcome: &mut Outcome,
    ) {
        match result {
            UpsertOutcome::Created(_) => {
                outcome.created += 1;
                outcome.written.push(i);
            }
            UpsertOutcome::Updated(_) => {
                outcome.updated += 1;
                outcome.written.push(i);
            }
            UpsertOutcome::Failed(e)
                if retry::salesforce_code(&e.code) == Class::Transient && !self.last =>
            {
                self.next.push(i)
            }
            // The picklist changed since describe was cached: refresh it and map the record
            // again (it falls back to RawCategory__c).
            UpsertOutcome::Failed(e)
                if e.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                    && !self.last
                    && matches!(writes[i], Write::Code { .. }) =>
            {
                self.remap.push(i)
            }
            UpsertOutcome::Failed(error) => {
                tracing::warn!(external_id = %writes[i].external_id(), code = %error.code, attempt = self.attempt, "record rejected by Salesforce");
                outcome.rejected.push(Rejection {
                    index: i,
                    error,
                    attempts: self.attempt,
                });
            }
        }
    }
}

/// Salesforce documents that collection results come back in request order. Checks what can be
/// checked: an update's result must name the record a query just read under that external ID.
/// A mismatch makes the whole call a bad answer (retried), never a success of the wrong record.
fn in_order(
    writes: &[Write],
    batch: &[usize],
    results: Vec<UpsertOutcome>,
) -> Result<Vec<UpsertOutcome>, SalesforceError> {
    for (n, (&i, result)) in batch.iter().zip(&results).enumerate() {
        if let (
            UpsertOutcome::Updated(Some(got)),
            Write::Code {
                known_id: Some(known),
                ..
            },
        ) = (result, &writes[i])
            && got != known
        {
            return Err(SalesforceError::BadResponse(format!(
                "upsert result {n} names record {got}, but {} is record {known}: the results are not in request order",
                writes[i].external_id()
            )));
        }
    }
    Ok(results)
}

pub struct Writer<'a> {
    pub sink: &'a dyn RecordSink,
    pub rules: &'a RulesCache,
    pub settings: &'a Settings,
}

impl Writer<'_> {
    /// Upserts `writes` with up to `RECORD_MAX_ATTEMPTS` attempts per record, starting no batch
    /// after `stop_at`.
    pub async fn write(&self, writes: &mut [Write], stop_at: Option<Instant>) -> Outcome {
        let s = self.settings;
        let mut outcome = Outcome::default();
        let mut pending: Vec<usize> = (0..writes.len()).collect();
        for attempt in 1..=s.record_max_attempts {
            if pending.is_empty() {
                break;
            }
            let results = self
                .send(writes, &pending, stop_at, &mut outcome.stop)
                .await;
            let mut round = Round {
                attempt,
                last: attempt == s.record_max_attempts,
                ..Round::default()
            };
            for (batch, result) in results {
                round.read(writes, batch, result, &mut outcome);
            }
            let Round {
                mut next,
                remap,
                request_failed,
                ..
            } = round;
            self.remap(writes, remap, attempt, &mut next, &mut outcome)
                .await;
            if outcome.stop.is_some() || next.is_empty() {
                break;
            }
            let pause = self.pause(attempt, request_failed);
            if stop_at.is_some_and(|t| Instant::now() + pause >= t)
                || crate::deadline::check_wait(pause, "the writer's retry").is_err()
            {
                // The records left would be sent after the deadline: leave them for the next
                // cycle (the watermark does not pass them).
                tracing::warn!(
                    pause_ms = pause.as_millis() as u64,
                    records = next.len(),
                    "no time left to retry before the deadline"
                );
                outcome.stop = Some(Reason::batches_stopped());
                break;
            }
            outcome.retries += next.len() as u64;
            next.sort_unstable();
            pending = next;
            tokio::time::sleep(pause).await;
        }
        outcome
    }

    /// Sends one round: the `pending` writes in batches, at most `SF_MAX_IN_FLIGHT` at once.
    /// Records in `stop` why it stopped starting batches.
    async fn send(
        &self,
        writes: &[Write],
        pending: &[usize],
        stop_at: Option<Instant>,
        stop: &mut Option<Reason>,
    ) -> Vec<BatchResult> {
        let s = self.settings;
        let stopping: Mutex<Option<Reason>> = Mutex::new(stop.take());
        let batches: Vec<Vec<usize>> = pending
            .chunks(s.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let results = futures::stream::iter(batches)
            .map(|batch| {
                let stopping = &stopping;
                async move {
                    if let Some(reason) = self.should_stop(stop_at) {
                        stopping.lock().unwrap().get_or_insert(reason);
                    }
                    if stopping.lock().unwrap().is_some() {
                        return (batch, None);
                    }
                    let records: Vec<SObject> = batch
                        .iter()
                        .map(|&i| writes[i].sobject(&s.target))
                        .collect();
                    let result = self.sink.upsert(&records).await;
                    let refusal = match &result {
                        Err(SalesforceError::RequestLimit) => Some(Reason::ApiBudget(
                            "Salesforce answered 403 REQUEST_LIMIT_EXCEEDED".into(),
                        )),
                        Err(e @ (SalesforceError::Auth(_) | SalesforceError::SessionRejected)) => {
                            Some(Reason::AuthUnavailable(e.to_string()))
                        }
                        Err(e @ SalesforceError::Rejected { .. }) => {
                            Some(Reason::SalesforceRejected(e.to_string()))
                        }
                        Err(SalesforceError::Deadline(_)) => Some(Reason::batches_stopped()),
                        _ => None,
                    };
                    if let Some(reason) = refusal {
                        stopping.lock().unwrap().get_or_insert(reason);
                    }
                    (batch, Some(result))
                }
            })
            .buffer_unordered(s.max_in_flight.max(1))
            .collect()
            .await;
        *stop = stopping.into_inner().unwrap();
        results
    }

    /// Maps the `remap` writes again with a freshly described picklist and queues them in
    /// `next`; one that still cannot be mapped is rejected.
    async fn remap(
        &self,
        writes: &mut [Write],
        remap: Vec<usize>,
        attempt: u32,
        next: &mut Vec<usize>,
        outcome: &mut Outcome,
    ) {
        if remap.is_empty() {
            return;
        }
        let rules = match self.rules.get(self.sink, true).await {
            Ok(rules) => rules,
            Err(e) => {
                tracing::warn!(error = %e, "describe failed while refreshing the picklist");
                next.extend(remap);
                return;
            }
        };
        for i in remap {
            let Write::Code {
                disposition,
                fields,
                ..
            } = &mut writes[i]
            else {
                continue;
            };
            match to_salesforce(disposition, &self.settings.target, &rules) {
                Ok(mapped) => {
                    *fields = mapped.fields;
                    next.push(i);
                }
                Err(error) => outcome.rejected.push(Rejection {
                    index: i,
                    error,
                    attempts: attempt,
                }),
            }
        }
    }

    /// The pause before the next round. Records Salesforce refused back off linearly; a failed
    /// request (5xx, timeout, reset) points at an unhealthy service, so it backs off
    /// exponentially, with jitter.
    fn pause(&self, attempt: u32, request_failed: bool) -> Duration {
        let base = self.settings.retry_base_delay;
        if request_failed {
            retry::exponential_jitter(attempt, base, Duration::from_secs(30))
                .max(retry::linear(attempt, base))
        } else {
            retry::linear(attempt, base)
        }
    }

    /// Why no further batch may start now, if any: the deadline, or the API budget.
    pub fn should_stop(&self, stop_at: Option<Instant>) -> Option<Reason> {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            return Some(Reason::batches_stopped());
        }
        let usage = self.sink.api_usage()?;
        let budget = self.settings.api_budget_percent;
        (usage.percent() >= budget as f64).then(|| {
            Reason::ApiBudget(format!(
                "Salesforce API usage {}/{} is at or above the budget of {budget}%",
                usage.used, usage.max
            ))
        })
    }
}
