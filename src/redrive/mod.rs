//! Dead-letter redrive: replays failed records once an operator has fixed the cause.
//!
//! Two paths share one decision ([`Redrive::replay`]): the SQS event source on the DLQ (Lambda
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

//!
//! # Layout
//! - [`replay`]: the decisions ([`Redrive`]): re-read, compare, write.
//! - [`sqs`]: the SQS event driver (the function subscribed to the DLQ).
//! - [`manual`]: the manual driver (`{"action": "redrive"}`): receive, replay, delete or re-send.
//! - This file: what both drivers share: the message, its fate, the report and the parking queue.

mod manual;
mod replay;
mod sqs;

pub use manual::manual;
pub use replay::Redrive;
pub use sqs::sqs_batch;

use crate::dlq::{DeadLetter, DeadLetterInbox, DeadLetterQueue, Received};
use crate::sync::report::{Reason, Status};
use serde::Serialize;
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
    Deferred(Reason),
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
    pub reason: Option<Reason>,
}

/// Where failed-again messages go once they reach the attempt limit.
pub struct Parking<'a> {
    pub queue: Option<&'a (dyn ParkingQueue + 'a)>,
    pub max_attempts: u32,
}

/// The parking queue: dead letters, and poison messages as they came.
pub trait ParkingQueue: DeadLetterQueue + DeadLetterInbox {}
impl<T: DeadLetterQueue + DeadLetterInbox> ParkingQueue for T {}

/// Reports a message that is not ours and moves it, verbatim, to the parking queue if there is
/// one. Returns whether it was parked (and may be deleted from the DLQ).
pub(super) async fn park_invalid(
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

pub(super) fn finish_report(
    report: &mut RedriveReport,
    salesforce_requests: u64,
    started: Instant,
) {
    report.status = Some(status(report));
    report.salesforce_requests = salesforce_requests;
    report.duration_ms = started.elapsed().as_millis() as u64;
}

pub(super) fn note(m: &Incoming, letter: &DeadLetter) -> MessageNote {
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
