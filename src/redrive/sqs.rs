//! The SQS event driver: the function subscribed to the DLQ gets a batch of messages; Lambda
//! deletes every message we do not report as failed.

use super::{Fate, Incoming, Parking, Redrive, RedriveReport, finish_report, note, park_invalid};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The SQS event path: returns the ids of the messages that must stay in the queue.
pub async fn sqs_batch(
    redrive: &Redrive<'_>,
    messages: &[Incoming],
    parking: &Parking<'_>,
    deadline: Option<DateTime<Utc>>,
) -> (Vec<String>, RedriveReport) {
    let started = Instant::now();
    let sf_before = redrive.sink.requests();
    let fates = redrive.replay(messages, deadline).await;
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
    finish_report(&mut report, redrive.sink.requests() - sf_before, started);
    (keep, report)
}
