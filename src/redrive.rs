//! Dead-letter redrive: replays failed records once an operator has fixed the cause.
//!
//! Two paths share one decision ([`Engine::redrive`]): the SQS event source on the DLQ (Lambda
//! deletes what we do not report as failed) and the manual `{"action": "redrive"}` invocation
//! (we receive and delete ourselves). The decision never writes a stale payload: it re-reads
//! each code from CXone, compares with what Salesforce holds, and writes the current version,
//! so a replay can only move Salesforce forward.
//!
//! A message that fails again keeps its history. On the manual path its body is re-sent with
//! `redrive_attempts` incremented and the new error, and the old message deleted; on the SQS
//! path it stays in the queue (reported in `batchItemFailures`) and SQS's receive count is its
//! attempt count. After `REDRIVE_MAX_ATTEMPTS` it moves to the parking queue when `PARKING_URL`
//! is set, and otherwise stays where it is, reported on every run: never dropped.

use crate::dlq::{
    DeadLetter, DeadLetterInbox, DeadLetterQueue, Received, RecordError, SCHEMA_VERSION,
};
use crate::domain::{DispositionId, SourceRecord};
use crate::mapping::{self, STALE_REASON, to_salesforce};
use crate::sync::{Engine, Item, Status};
use crate::watermark::{Lease, StateError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// One DLQ message, from either path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub message_id: String,
    pub body: String,
    /// SQS's `ApproximateReceiveCount` (this delivery included).
    pub receive_count: u32,
}

impl From<&Received> for Incoming {
    fn from(r: &Received) -> Self {
        Self {
            message_id: r.message_id.clone(),
            body: r.body.clone(),
            receive_count: r.receive_count,
        }
    }
}

/// What the redrive decided for one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// The current version of the record is now in Salesforce.
    Written,
    /// Nothing to write: Salesforce already holds this version or a newer one, or the code is gone.
    Superseded,
    /// Still failing: the letter with its updated error.
    FailedAgain(Box<DeadLetter>),
    /// Not one of our dead letters.
    Invalid(String),
    /// Not attempted this time (another cycle holds the lease, CXone or Salesforce unavailable,
    /// the deadline): left for a later run unchanged.
    Deferred(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageNote {
    pub message_id: String,
    pub reason: String,
}

/// The redrive's response (manual path) and log line (both paths).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RedriveReport {
    pub status: Option<Status>,
    pub mode: &'static str,
    pub received: usize,
    pub written: usize,
    pub superseded: usize,
    pub failed_again: usize,
    pub parked: usize,
    pub invalid: usize,
    pub deferred: usize,
    pub salesforce_requests: u64,
    pub duration_ms: u64,
    /// Messages that are not ours, and messages that reached the attempt limit, by id.
    pub invalid_messages: Vec<MessageNote>,
    pub parked_messages: Vec<MessageNote>,
    pub reason: Option<String>,
}

impl Engine<'_> {
    /// Decides and carries out the write for each message; one fate per message, in order.
    /// Takes the sync's lease, so a redrive and a cycle never write at the same time.
    pub async fn redrive(
        &self,
        messages: &[Incoming],
        deadline: Option<DateTime<Utc>>,
    ) -> Vec<Fate> {
        let owner = format!("redrive-{}", uuid::Uuid::new_v4());
        let now = Utc::now();
        let stored = match self.state.load().await {
            Ok(v) => v,
            Err(e) => return defer_all(messages, format!("state_unavailable: {e}")),
        };
        if let Some(lease) = &stored.state.lease
            && lease.expires > now
        {
            return defer_all(
                messages,
                format!("another cycle ({}) holds the lease", lease.owner),
            );
        }
        let mut leased = stored.state.clone();
        leased.lease = Some(Lease {
            owner,
            expires: deadline.unwrap_or(now + chrono::Duration::minutes(15)),
        });
        let version = match self.state.save(&leased, stored.version).await {
            Ok(v) => v,
            Err(StateError::Conflict { .. }) => {
                return defer_all(messages, "another invocation took the lease first".into());
            }
            Err(e) => return defer_all(messages, format!("state_unavailable: {e}")),
        };
        let fates = self.redrive_leased(messages, deadline).await;
        // Release the lease, keeping everything else the cycle owns (the redrive never moves the
        // watermark: replayed records are older than it by construction).
        let mut released = stored.state;
        released.lease = None;
        self.release(&released, version).await;
        fates
    }

    async fn redrive_leased(
        &self,
        messages: &[Incoming],
        deadline: Option<DateTime<Utc>>,
    ) -> Vec<Fate> {
        let mut fates: Vec<Option<Fate>> = vec![None; messages.len()];
        // Parse, and group the valid letters by code: duplicates collapse into one write.
        let mut letters: Vec<Option<DeadLetter>> = Vec::with_capacity(messages.len());
        let mut by_code: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, m) in messages.iter().enumerate() {
            match self.parse_letter(&m.body) {
                Ok(letter) => {
                    match &letter.external_id {
                        Some(id) => by_code.entry(id.clone()).or_default().push(i),
                        None => {
                            fates[i] = Some(failed(
                                &letter,
                                "NO_EXTERNAL_ID",
                                "the record has no CXone id, so it cannot be re-read; fix it in CXone",
                            ))
                        }
                    }
                    letters.push(Some(letter));
                }
                Err(reason) => {
                    tracing::warn!(message_id = %m.message_id, %reason, "DLQ message is not a dead letter of this sync");
                    fates[i] = Some(Fate::Invalid(reason));
                    letters.push(None);
                }
            }
        }

        // Re-read every code from CXone: the current version is what gets written.
        let rules = match self.rules(false).await {
            Ok(r) => r,
            Err(e) => {
                return finish(
                    fates,
                    &format!("salesforce_unavailable: describe failed: {e}"),
                );
            }
        };
        let mut items: Vec<Item> = Vec::new();
        let mut item_code: Vec<String> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        for (code, indexes) in &by_code {
            let Ok(id) = DispositionId::parse(code) else {
                set_all(&mut fates, indexes, |i| {
                    failed(
                        letters[i].as_ref().unwrap(),
                        "INVALID_EXTERNAL_ID",
                        "the external id is empty or invalid",
                    )
                });
                continue;
            };
            match self.source.get(&id).await {
                Err(e) => set_all(&mut fates, indexes, |_| {
                    Fate::Deferred(format!("cxone_unavailable: {e}"))
                }),
                Ok(None) => gone.push(code.clone()),
                Ok(Some(SourceRecord::Malformed { reason, .. })) => {
                    set_all(&mut fates, indexes, |i| {
                        failed(letters[i].as_ref().unwrap(), "UNMAPPABLE_RECORD", &reason)
                    })
                }
                Ok(Some(SourceRecord::Valid { disposition, raw })) => {
                    match to_salesforce(&disposition, &self.settings.target, &rules) {
                        Ok(mapped) => {
                            items.push(Item {
                                external_id: code.clone(),
                                source: Some((disposition, raw)),
                                payload: mapped.payload,
                            });
                            item_code.push(code.clone());
                        }
                        Err(e) => set_all(&mut fates, indexes, |i| {
                            failed(letters[i].as_ref().unwrap(), &e.code, &e.message)
                        }),
                    }
                }
            }
        }

        // Compare with Salesforce: never write a version older than, or equal to, what it holds.
        let mut wanted: Vec<String> = item_code.clone();
        wanted.extend(gone.iter().cloned());
        let rows = match self.rows_for(&wanted).await {
            Ok(rows) => rows,
            Err(e) => {
                for code in &wanted {
                    set_all(&mut fates, &by_code[code], |_| {
                        Fate::Deferred(format!("salesforce_unavailable: {e}"))
                    });
                }
                return finish(fates, "");
            }
        };
        let mut to_write: Vec<Item> = Vec::new();
        for item in items {
            let (d, _) = item.source.as_ref().expect("redrive items come from CXone");
            let superseded = rows.get(&item.external_id).is_some_and(|row| {
                mapping::matches(&item.payload, row)
                    || row_modified(row).is_some_and(|held| held > d.last_modified)
            });
            if superseded {
                set_all(&mut fates, &by_code[&item.external_id], |_| {
                    Fate::Superseded
                });
            } else {
                to_write.push(item);
            }
        }
        // A code CXone no longer has is handled as the archival rules say: flagged as stale for
        // review if Salesforce has it, never resurrected from the old payload.
        for code in gone {
            match rows.get(&code) {
                Some(row)
                    if row.get("ReviewReason__c").and_then(Value::as_str) != Some(STALE_REASON) =>
                {
                    to_write.push(Item {
                        external_id: code.clone(),
                        source: None,
                        payload: mapping::stale_flag(&code, &self.settings.target),
                    });
                }
                _ => set_all(&mut fates, &by_code[&code], |_| Fate::Superseded),
            }
        }

        let stop_at = deadline.map(|d| {
            Instant::now()
                + (d - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .saturating_sub(self.settings.deadline_margin)
        });
        let outcome = self.write(&mut to_write, stop_at).await;
        for &i in &outcome.written {
            let code = &to_write[i].external_id;
            set_all(&mut fates, &by_code[code], |_| Fate::Written);
        }
        for (i, error, _) in &outcome.rejected {
            let code = &to_write[*i].external_id;
            let payload = to_write[*i].payload.clone();
            set_all(&mut fates, &by_code[code], |m| {
                let mut letter = letters[m].clone().expect("grouped messages are letters");
                letter.error = error.clone();
                letter.payload = Some(payload.clone());
                Fate::FailedAgain(Box::new(letter))
            });
        }
        finish(
            fates,
            "not written: Salesforce stopped accepting requests or the deadline came; left for the next run",
        )
    }

    fn parse_letter(&self, body: &str) -> Result<DeadLetter, String> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        match value.get("schema_version").and_then(Value::as_u64) {
            Some(v) if v == SCHEMA_VERSION as u64 => {}
            Some(v) => {
                return Err(format!(
                    "unknown schema_version {v} (this version reads {SCHEMA_VERSION})"
                ));
            }
            None => return Err("no schema_version: not a dead letter of disposition-sync".into()),
        }
        let letter: DeadLetter =
            serde_json::from_value(value).map_err(|e| format!("not a valid dead letter: {e}"))?;
        if letter.sync_id != self.settings.sync_id {
            return Err(format!(
                "belongs to sync {:?}, not {:?}",
                letter.sync_id, self.settings.sync_id
            ));
        }
        Ok(letter)
    }

    /// Salesforce's rows for these codes, by external ID (chunks keep each query URL short).
    async fn rows_for(
        &self,
        codes: &[String],
    ) -> Result<HashMap<String, Value>, crate::salesforce::SalesforceError> {
        let t = &self.settings.target;
        let mut rows = HashMap::new();
        for chunk in codes.chunks(100) {
            let list: Vec<String> = chunk
                .iter()
                .map(|c| format!("'{}'", c.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect();
            let soql = format!(
                "SELECT Id, {f}, Name, Description__c, Category__c, RawCategory__c, IsActive__c, LastModifiedCXone__c, \
                 ArchivedDate__c, NeedsReview__c, ReviewReason__c FROM {o} WHERE {f} IN ({})",
                list.join(", "),
                f = t.external_id_field,
                o = t.object
            );
            for row in self.sink.query(&soql).await? {
                if let Some(id) = row.get(&t.external_id_field).and_then(Value::as_str) {
                    rows.insert(id.to_owned(), row.clone());
                }
            }
        }
        Ok(rows)
    }
}

fn row_modified(row: &Value) -> Option<DateTime<Utc>> {
    let s = row.get("LastModifiedCXone__c")?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn failed(letter: &DeadLetter, code: &str, message: &str) -> Fate {
    let mut letter = letter.clone();
    letter.error = RecordError {
        code: code.into(),
        message: message.into(),
        fields: vec![],
    };
    Fate::FailedAgain(Box::new(letter))
}

fn set_all(fates: &mut [Option<Fate>], indexes: &[usize], fate: impl Fn(usize) -> Fate) {
    for &i in indexes {
        fates[i] = Some(fate(i));
    }
}

fn defer_all(messages: &[Incoming], reason: String) -> Vec<Fate> {
    tracing::info!(%reason, "redrive deferred");
    messages
        .iter()
        .map(|_| Fate::Deferred(reason.clone()))
        .collect()
}

fn finish(fates: Vec<Option<Fate>>, reason: &str) -> Vec<Fate> {
    fates
        .into_iter()
        .map(|f| f.unwrap_or_else(|| Fate::Deferred(reason.to_owned())))
        .collect()
}

/// Where failed-again messages go once they reach the attempt limit.
pub struct Parking<'a> {
    pub queue: Option<&'a (dyn ParkingQueue + 'a)>,
    pub max_attempts: u32,
}

/// The parking queue: dead letters, and poison messages as they came.
pub trait ParkingQueue: DeadLetterQueue + DeadLetterInbox {}
impl<T: DeadLetterQueue + DeadLetterInbox> ParkingQueue for T {}

/// The SQS event path: returns the ids of the messages that must stay in the queue.
pub async fn sqs_batch(
    engine: &Engine<'_>,
    messages: &[Incoming],
    parking: &Parking<'_>,
    deadline: Option<DateTime<Utc>>,
) -> (Vec<String>, RedriveReport) {
    let started = Instant::now();
    let sf_before = engine.sink.requests();
    let fates = engine.redrive(messages, deadline).await;
    let mut report = RedriveReport {
        mode: "redrive",
        received: messages.len(),
        ..Default::default()
    };
    let mut keep = Vec::new();
    for (m, fate) in messages.iter().zip(fates) {
        match fate {
            Fate::Written => report.written += 1,
            Fate::Superseded => report.superseded += 1,
            Fate::FailedAgain(mut letter) => {
                letter.redrive_attempts = letter.redrive_attempts.max(m.receive_count);
                if letter.redrive_attempts >= parking.max_attempts
                    && let Some(queue) = parking.queue
                    && queue.send(std::slice::from_ref(&letter)).await.is_ok()
                {
                    report.parked += 1;
                    report.parked_messages.push(note(m, &letter));
                } else {
                    report.failed_again += 1;
                    keep.push(m.message_id.clone());
                }
            }
            Fate::Invalid(reason) => {
                if !park_invalid(&mut report, m, &reason, parking).await {
                    keep.push(m.message_id.clone());
                }
            }
            Fate::Deferred(reason) => {
                report.deferred += 1;
                report.reason.get_or_insert(reason);
                keep.push(m.message_id.clone());
            }
        }
    }
    finish_report(&mut report, engine.sink.requests() - sf_before, started);
    (keep, report)
}

/// The manual path: receives up to `max_messages` (all visible ones when `None`), replays them,
/// deletes what is safe, re-sends what failed again and makes the rest visible again.
pub async fn manual(
    engine: &Engine<'_>,
    inbox: &dyn DeadLetterInbox,
    requeue: &dyn DeadLetterQueue,
    parking: &Parking<'_>,
    max_messages: Option<usize>,
    deadline: Option<DateTime<Utc>>,
) -> RedriveReport {
    let started = Instant::now();
    let sf_before = engine.sink.requests();
    let mut report = RedriveReport {
        mode: "redrive",
        ..Default::default()
    };
    // Hold the messages invisible for the whole run, so that a message re-sent by this run is
    // the only copy another reader can see, and the receive loop ends when the queue is drained.
    let visibility = deadline.map_or(Duration::from_secs(900), |d| {
        (d - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(60)
    });
    let received = match inbox
        .receive(max_messages.unwrap_or(usize::MAX), visibility)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            report.status = Some(Status::Failed);
            report.reason = Some(format!("dlq_unavailable: {e}"));
            return report;
        }
    };
    report.received = received.len();
    let messages: Vec<Incoming> = received.iter().map(Incoming::from).collect();
    let mut delete = Vec::new();
    let mut release = Vec::new();
    for (chunk_msgs, chunk_received) in messages.chunks(200).zip(received.chunks(200)) {
        let fates = engine.redrive(chunk_msgs, deadline).await;
        for ((m, r), fate) in chunk_msgs.iter().zip(chunk_received).zip(fates) {
            match fate {
                Fate::Written => {
                    report.written += 1;
                    delete.push(r.receipt_handle.clone());
                }
                Fate::Superseded => {
                    report.superseded += 1;
                    delete.push(r.receipt_handle.clone());
                }
                Fate::FailedAgain(mut letter) => {
                    letter.redrive_attempts += 1;
                    let park = letter.redrive_attempts >= parking.max_attempts;
                    let target: &dyn DeadLetterQueue = match (park, parking.queue) {
                        (true, Some(queue)) => queue,
                        _ => requeue,
                    };
                    // Re-send first, delete after: the history is never lost between the two.
                    match target.send(std::slice::from_ref(&letter)).await {
                        Ok(()) => {
                            delete.push(r.receipt_handle.clone());
                            if park && parking.queue.is_some() {
                                report.parked += 1;
                                report.parked_messages.push(note(m, &letter));
                            } else {
                                report.failed_again += 1;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(message_id = %m.message_id, error = %e, "could not re-send a failed message; leaving it in place");
                            report.failed_again += 1;
                            release.push(r.receipt_handle.clone());
                        }
                    }
                }
                Fate::Invalid(reason) => {
                    if park_invalid(&mut report, m, &reason, parking).await {
                        delete.push(r.receipt_handle.clone());
                    } else {
                        release.push(r.receipt_handle.clone());
                    }
                }
                Fate::Deferred(reason) => {
                    report.deferred += 1;
                    report.reason.get_or_insert(reason);
                    release.push(r.receipt_handle.clone());
                }
            }
        }
    }
    if let Err(e) = inbox.delete(&delete).await {
        // The records are safe in Salesforce; a message that survives is superseded next time.
        tracing::warn!(error = %e, "could not delete redriven messages; the next redrive will find them superseded");
    }
    if let Err(e) = inbox.release(&release).await {
        tracing::warn!(error = %e, "could not make messages visible again; they reappear after the visibility timeout");
    }
    finish_report(&mut report, engine.sink.requests() - sf_before, started);
    report
}

/// Reports a message that is not ours and moves it, verbatim, to the parking queue if there is
/// one. Returns whether it was parked (and may be deleted from the DLQ).
async fn park_invalid(
    report: &mut RedriveReport,
    m: &Incoming,
    reason: &str,
    parking: &Parking<'_>,
) -> bool {
    report.invalid += 1;
    report.invalid_messages.push(MessageNote {
        message_id: m.message_id.clone(),
        reason: reason.to_owned(),
    });
    let parked = match parking.queue {
        Some(queue) => queue.send_raw(&m.body, reason).await.is_ok(),
        None => false,
    };
    if parked {
        report.parked += 1;
    }
    parked
}

fn finish_report(report: &mut RedriveReport, salesforce_requests: u64, started: Instant) {
    report.status = Some(status(report));
    report.salesforce_requests = salesforce_requests;
    report.duration_ms = started.elapsed().as_millis() as u64;
}

fn note(m: &Incoming, letter: &DeadLetter) -> MessageNote {
    MessageNote {
        message_id: m.message_id.clone(),
        reason: format!(
            "{} after {} redrives: {}",
            letter.error.code, letter.redrive_attempts, letter.error.message
        ),
    }
}

fn status(r: &RedriveReport) -> Status {
    if r.deferred > 0 && r.deferred == r.received {
        Status::Skipped
    } else if r.failed_again + r.invalid + r.deferred + r.parked > 0 {
        Status::Partial
    } else {
        Status::Ok
    }
}
