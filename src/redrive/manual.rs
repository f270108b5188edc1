//! The manual driver (`{"action": "redrive"}`): receives the messages itself, replays them,
//! deletes what is safe, re-sends what failed again and makes the rest visible again.

use super::{Fate, Incoming, Parking, Redrive, RedriveReport, finish_report, note, park_invalid};
use crate::dlq::{DeadLetterInbox, DeadLetterQueue};
use crate::sync::report::{Reason, Status};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::Instant;

/// The manual path: receives up to `max_messages` (all visible ones when `None`), replays them,
/// deletes what is safe, re-sends what failed again and makes the rest visible again.
pub async fn manual(
    redrive: &Redrive<'_>,
    inbox: &dyn DeadLetterInbox,
    requeue: &dyn DeadLetterQueue,
    parking: &Parking<'_>,
    max_messages: Option<usize>,
    deadline: Option<DateTime<Utc>>,
) -> RedriveReport {
    let started = Instant::now();
    let sf_before = redrive.sink.requests();
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
            report.reason = Some(Reason::DlqUnavailable(e.to_string()));
            return report;
        }
    };
    report.received = received.len();
    let messages: Vec<Incoming> = received.iter().map(Incoming::from).collect();
    let mut delete = Vec::new();
    let mut release = Vec::new();
    for (chunk_msgs, chunk_received) in messages.chunks(200).zip(received.chunks(200)) {
        let fates = redrive.replay(chunk_msgs, deadline).await;
        for ((m, r), fate) in chunk_msgs.iter().zip(chunk_received).zip(fates) {
            let handle = r.receipt_handle.clone();
            if settle(m, fate, &mut report, requeue, parking).await {
                delete.push(handle);
            } else {
                release.push(handle);
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
    finish_report(&mut report, redrive.sink.requests() - sf_before, started);
    report
}

/// Acts on one message's fate and counts it. Returns whether the message may be deleted (its
/// record is safe, or its letter was re-sent or parked) rather than made visible again.
async fn settle(
    m: &Incoming,
    fate: Fate,
    report: &mut RedriveReport,
    requeue: &dyn DeadLetterQueue,
    parking: &Parking<'_>,
) -> bool {
    match fate {
        Fate::Written => {
            report.written += 1;
            true
        }
        Fate::Superseded => {
            report.superseded += 1;
            true
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
                Ok(()) if park && parking.queue.is_some() => {
                    report.parked += 1;
                    report.parked_messages.push(note(m, &letter));
                    true
                }
                Ok(()) => {
                    report.failed_again += 1;
                    true
                }
                Err(e) => {
                    tracing::warn!(message_id = %m.message_id, error = %e, "could not re-send a failed message; leaving it in place");
                    report.failed_again += 1;
                    false
                }
            }
        }
        Fate::Invalid(reason) => park_invalid(report, m, &reason, parking).await,
        Fate::Deferred(reason) => {
            report.deferred += 1;
            report.reason.get_or_insert(reason);
            false
        }
    }
}
