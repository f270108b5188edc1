//! The dead-letter queue: where a record goes when it cannot be written, with everything needed
//! to understand and replay it.

use crate::salesforce::RecordError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the message body; the redrive refuses versions it does not know.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a record is in the DLQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// CXone sent a record that cannot be mapped (missing id, bad timestamp, wrong types).
    Unmappable,
    /// Salesforce rejected the record, or kept failing it, for the number of attempts allowed.
    Rejected,
}

/// One dead-lettered record: the body of one SQS message (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema_version: u32,
    pub sync_id: String,
    pub cycle_id: String,
    pub kind: DeadLetterKind,
    /// The CXone id when it could be read.
    pub external_id: Option<String>,
    /// CXone's last-modified time of this version, when it could be read.
    pub last_modified: Option<DateTime<Utc>>,
    /// The mapped Salesforce record (absent for unmappable records).
    pub payload: Option<serde_json::Value>,
    /// The record exactly as CXone sent it.
    pub source: serde_json::Value,
    pub error: RecordError,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    /// How many redrives have failed to bring it home (absent in letters no redrive has seen).
    #[serde(default)]
    pub redrive_attempts: u32,
}

impl DeadLetter {
    /// A letter about a record; the caller fills in what it knows of the record.
    pub fn new(
        kind: DeadLetterKind,
        sync_id: &str,
        cycle_id: &str,
        error: RecordError,
        attempts: u32,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            sync_id: sync_id.to_owned(),
            cycle_id: cycle_id.to_owned(),
            kind,
            external_id: None,
            last_modified: None,
            payload: None,
            source: serde_json::Value::Null,
            error,
            attempts,
            failed_at: Utc::now(),
            redrive_attempts: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The queue could not be reached, or refused whole requests.
    #[error("dead-letter queue unavailable: {0}")]
    Unavailable(String),
    /// The queue is there but did not take some letters (each one named).
    #[error("the dead-letter queue did not take every letter: {0}")]
    Refused(String),
}

#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Sends every letter durably or fails: a partial send is an error naming what failed.
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), DlqError>;
}

/// How many messages a queue holds, as SQS approximates it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// `ApproximateNumberOfMessages`: waiting to be received.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received and not yet deleted (a redrive at work).
    pub in_flight: u64,
}

/// The queue's depth, read without receiving anything.
#[async_trait]
pub trait QueueDepth: Send + Sync {
    async fn depth(&self) -> Result<Depth, DlqError>;
}

/// A message read from the queue for a redrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`.
    pub receive_count: u32,
}

/// The reading side of a queue, for the manual redrive (the SQS event path gets its messages
/// from Lambda instead).
#[async_trait]
pub trait DeadLetterInbox: Send + Sync {
    /// Up to `max` messages, hidden from other readers for `visibility`.
    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
    ) -> Result<Vec<Received>, DlqError>;
    /// Deletes messages once their records are safe.
    async fn delete(&self, receipt_handles: &[String]) -> Result<(), DlqError>;
    /// Makes messages visible again at once (they stay in the queue).
    async fn release(&self, receipt_handles: &[String]) -> Result<(), DlqError>;
    /// Sends a body that is not a dead letter (a poison message being parked) as it is.
    async fn send_raw(&self, body: &str, reason: &str) -> Result<(), DlqError>;
}

// ---------------------------------------------------------------------------------------------
// The SQS queue.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use std::collections::{BTreeMap, HashSet};

/// The largest message SQS accepts on a queue with the classic default `MaximumMessageSize`, and
/// the largest total of one SendMessageBatch call. Both count the body plus each attribute's
/// name, type and value. Queues may allow more, but this limit holds on every queue.
const SQS_MAX_BYTES: usize = 262_144;
/// How the reason of a letter whose whole request failed begins.
const REQUEST_FAILED: &str = "SendMessageBatch failed";
/// Entries allowed in one SendMessageBatch call.
const SQS_MAX_BATCH: usize = 10;
/// How many letters an error message lists per reason; the count is always complete.
const LISTED_PER_REASON: usize = 10;

/// [`DeadLetterQueue`] on an SQS queue: one message per letter, the JSON body plus String message
/// attributes (`sync_id`, `kind`, `error_code`, `external_id`) so that an operator can filter in
/// the console without parsing bodies.
pub struct SqsDeadLetterQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

#[async_trait]
impl QueueDepth for SqsDeadLetterQueue {
    async fn depth(&self) -> Result<Depth, DlqError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| DlqError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        let count = |name: &QueueAttributeName| -> Result<u64, DlqError> {
            let raw = output.attributes().and_then(|a| a.get(name));
            raw.and_then(|n| n.parse().ok()).ok_or_else(|| {
                DlqError::Unavailable(format!("the queue's {name} is {raw:?}, not a count"))
            })
        };
        Ok(Depth {
            visible: count(&QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        })
    }
}

impl SqsDeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one batch; returns the letters (by index) that SQS did not confirm, with why.
    async fn send_batch(&self, batch: Vec<Outgoing>) -> Vec<(usize, String)> {
        let ids: Vec<(String, usize)> = batch.iter().map(|o| (o.entry_id(), o.index)).collect();
        let entries = batch.into_iter().map(Outgoing::into_entry).collect();
        let output = match self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let reason = format!("{REQUEST_FAILED}: {}", DisplayErrorContext(&e));
                return ids
                    .into_iter()
                    .map(|(_, index)| (index, reason.clone()))
                    .collect();
            }
        };
        // Only a listed success counts as sent: an entry missing from both lists is not durable.
        let sent: HashSet<&str> = output.successful().iter().map(|s| s.id()).collect();
        let rejected: BTreeMap<&str, String> = output
            .failed()
            .iter()
            .map(|f| {
                let reason = match f.message() {
                    Some(message) => format!("SQS rejected it: {}: {message}", f.code()),
                    None => format!("SQS rejected it: {}", f.code()),
                };
                (f.id(), reason)
            })
            .collect();
        ids.into_iter()
            .filter(|(id, _)| !sent.contains(id.as_str()))
            .map(|(id, index)| {
                let reason = rejected
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_else(|| "SQS did not confirm it".to_owned());
                (index, reason)
            })
            .collect()
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    /// Sends every letter it can, in batches within the SQS limits, and then fails if any letter
    /// was not confirmed. Sending the rest first keeps as many records as possible durable; a
    /// retry may duplicate some of them, which DLQ readers must tolerate anyway (SQS standard
    /// queues deliver at least once).
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), DlqError> {
        let mut failed = Vec::new();
        let mut ready = Vec::new();
        for (index, letter) in letters.iter().enumerate() {
            match Outgoing::new(index, letter) {
                Ok(outgoing) => ready.push(outgoing),
                Err(reason) => failed.push((index, reason)),
            }
        }
        for batch in batches(ready) {
            failed.extend(self.send_batch(batch).await);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(describe_failures(letters, failed))
        }
    }
}

#[async_trait]
impl DeadLetterInbox for SqsDeadLetterQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
    ) -> Result<Vec<Received>, DlqError> {
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(SQS_MAX_BATCH) as i32;
            let page = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want)
                .visibility_timeout(visibility.as_secs().clamp(1, 43_200) as i32)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| {
                    DlqError::Unavailable(format!(
                        "ReceiveMessage failed: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            let messages = page.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                    continue;
                };
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                out.push(Received {
                    message_id: id.to_owned(),
                    receipt_handle: handle.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count,
                });
            }
        }
        Ok(out)
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), DlqError> {
        for chunk in receipt_handles.chunks(SQS_MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                        .expect("id and handle are set")
                })
                .collect();
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    DlqError::Unavailable(format!(
                        "DeleteMessageBatch failed: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            if !out.failed().is_empty() {
                return Err(DlqError::Unavailable(format!(
                    "SQS did not delete {} messages",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }

    async fn release(&self, receipt_handles: &[String]) -> Result<(), DlqError> {
        for chunk in receipt_handles.chunks(SQS_MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and handle are set")
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    DlqError::Unavailable(format!(
                        "ChangeMessageVisibilityBatch failed: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
        }
        Ok(())
    }

    async fn send_raw(&self, body: &str, reason: &str) -> Result<(), DlqError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if sqs_text_ok(reason) {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(reason)
                .build()
                .expect("the data type is set");
            request = request.message_attributes("parked_reason", value);
        }
        request.send().await.map_err(|e| {
            DlqError::Unavailable(format!("SendMessage failed: {}", DisplayErrorContext(&e)))
        })?;
        Ok(())
    }
}

/// One letter ready to send.
#[derive(Debug)]
struct Outgoing {
    /// Position in the caller's slice; also the batch entry id, unique within any batch.
    index: usize,
    body: String,
    attributes: Vec<(&'static str, String)>,
    /// What SQS counts against its size limits.
    size: usize,
}

impl Outgoing {
    /// Serializes `letter`, cut to fit one SQS message if it must be, or says why it cannot be
    /// sent (never quoting the body).
    fn new(index: usize, letter: &DeadLetter) -> Result<Self, String> {
        let outgoing = Self::exact(index, letter)?;
        if outgoing.size <= SQS_MAX_BYTES {
            return Ok(outgoing);
        }
        let cut = cut_to_fit(letter, outgoing.size)?;
        let outgoing = Self::exact(index, &cut)?;
        if outgoing.size > SQS_MAX_BYTES {
            return Err(format!(
                "its message is {} bytes even without the CXone record, above the SQS limit of 256 KiB ({SQS_MAX_BYTES} bytes)",
                outgoing.size
            ));
        }
        Ok(outgoing)
    }

    fn exact(index: usize, letter: &DeadLetter) -> Result<Self, String> {
        let mut body = serde_json::to_string(letter)
            .map_err(|e| format!("it could not be serialized: {e}"))?;
        // serde_json escapes control characters but writes U+FFFE and U+FFFF as they are, and SQS
        // refuses both. Inside JSON they can only be in strings, where the escape means the same.
        if body.contains(['\u{FFFE}', '\u{FFFF}']) {
            body = body
                .replace('\u{FFFE}', "\\ufffe")
                .replace('\u{FFFF}', "\\uffff");
        }
        let kind = match letter.kind {
            DeadLetterKind::Unmappable => "unmappable",
            DeadLetterKind::Rejected => "rejected",
        };
        let candidates = [
            ("sync_id", Some(letter.sync_id.as_str())),
            ("kind", Some(kind)),
            ("error_code", Some(letter.error.code.as_str())),
            ("external_id", letter.external_id.as_deref()),
        ];
        // SQS refuses a whole request over one empty or invalid attribute value; the attributes
        // only repeat what the body holds, so an unusable one is left out rather than losing the
        // letter.
        let attributes: Vec<(&'static str, String)> = candidates
            .into_iter()
            .filter_map(|(name, value)| {
                value
                    .filter(|v| sqs_text_ok(v))
                    .map(|v| (name, v.to_owned()))
            })
            .collect();
        let size = body.len()
            + attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>();
        Ok(Self {
            index,
            body,
            attributes,
            size,
        })
    }

    fn entry_id(&self) -> String {
        self.index.to_string()
    }

    fn into_entry(self) -> SendMessageBatchRequestEntry {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(self.entry_id())
            .message_body(self.body);
        for (name, value) in self.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("the data type is set");
            entry = entry.message_attributes(name, value);
        }
        entry.build().expect("the id and the body are set")
    }
}

/// A letter too big for one SQS message: the CXone record, which has no size limit of its own,
/// is cut to what fits and kept as text; the id, the timestamp, the error and the payload stay
/// whole, and the error message says what was cut.
fn cut_to_fit(letter: &DeadLetter, size: usize) -> Result<DeadLetter, String> {
    let source = serde_json::to_string(&letter.source)
        .map_err(|e| format!("it could not be serialized: {e}"))?;
    // What the rest of the letter takes, plus room for the note and for escaping the text.
    let rest = size.saturating_sub(source.len()) + 1024;
    let budget = SQS_MAX_BYTES.saturating_sub(rest) / 2;
    let mut end = budget.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = letter.clone();
    cut.source = serde_json::Value::String(source[..end].to_owned());
    cut.error.message = format!(
        "{} [the CXone record is {} bytes, more than one SQS message holds: source keeps its first {end} bytes, as text]",
        letter.error.message,
        source.len()
    );
    Ok(cut)
}

/// Whether SQS accepts `value` as a String attribute: non-empty, and only the characters its API
/// allows (the XML character set).
fn sqs_text_ok(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        })
}

/// Groups letters, in order, into batches of at most 10 entries and 256 KiB in total.
fn batches(letters: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut batches: Vec<Vec<Outgoing>> = Vec::new();
    let mut current: Vec<Outgoing> = Vec::new();
    let mut current_size = 0;
    for letter in letters {
        if current.len() == SQS_MAX_BATCH || current_size + letter.size > SQS_MAX_BYTES {
            batches.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current_size += letter.size;
        current.push(letter);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// "N of M dead letters were not sent: <reason> (letters ...); ...", grouped by reason. When
/// every failure is a whole request that failed, the queue is unavailable; otherwise it refused
/// particular letters, which is what the error then says.
fn describe_failures(letters: &[DeadLetter], mut failed: Vec<(usize, String)>) -> DlqError {
    failed.sort_unstable();
    let unavailable = failed
        .iter()
        .all(|(_, reason)| reason.starts_with(REQUEST_FAILED));
    let mut by_reason: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, reason) in &failed {
        by_reason.entry(reason.clone()).or_default().push(*index);
    }
    let groups: Vec<String> = by_reason
        .into_iter()
        .map(|(reason, indexes)| {
            let mut listed: Vec<String> = indexes
                .iter()
                .take(LISTED_PER_REASON)
                .map(|&i| match &letters[i].external_id {
                    Some(id) => format!("#{i} (external_id {id:?})"),
                    None => format!("#{i}"),
                })
                .collect();
            if indexes.len() > LISTED_PER_REASON {
                listed.push(format!("and {} more", indexes.len() - LISTED_PER_REASON));
            }
            format!("{reason} (letters {})", listed.join(", "))
        })
        .collect();
    let message = format!(
        "{} of {} dead letters were not sent: {}",
        failed.len(),
        letters.len(),
        groups.join("; ")
    );
    if unavailable {
        DlqError::Unavailable(message)
    } else {
        DlqError::Refused(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(external_id: Option<&str>, source_bytes: usize) -> DeadLetter {
        DeadLetter {
            schema_version: SCHEMA_VERSION,
            sync_id: "dispositions".into(),
            cycle_id: "cycle-1".into(),
            kind: DeadLetterKind::Rejected,
            external_id: external_id.map(str::to_owned),
            last_modified: None,
            payload: None,
            source: serde_json::Value::String("x".repeat(source_bytes)),
            error: RecordError {
                code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                message: "bad".into(),
                fields: vec![],
            },
            attempts: 3,
            redrive_attempts: 0,
            failed_at: Utc::now(),
        }
    }

    fn sizes(batches: &[Vec<Outgoing>]) -> Vec<usize> {
        batches.iter().map(Vec::len).collect()
    }

    #[test]
    fn batches_hold_at_most_ten_letters() {
        let letters = (0..25)
            .map(|i| Outgoing::new(i, &letter(Some("1"), 10)).unwrap())
            .collect();
        let batches = batches(letters);
        assert_eq!(sizes(&batches), [10, 10, 5]);
        let order: Vec<usize> = batches.iter().flatten().map(|o| o.index).collect();
        assert_eq!(order, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn batches_stay_under_the_total_size_limit() {
        let letters = (0..5)
            .map(|i| Outgoing::new(i, &letter(None, 100_000)).unwrap())
            .collect();
        let batches = batches(letters);
        assert_eq!(sizes(&batches), [2, 2, 1]);
        assert!(
            batches
                .iter()
                .all(|b| b.iter().map(|o| o.size).sum::<usize>() <= SQS_MAX_BYTES)
        );
    }

    #[test]
    fn an_oversized_letter_is_cut_to_fit_keeping_its_id_and_error() {
        let big = letter(Some("7"), SQS_MAX_BYTES + 50_000);
        let outgoing = Outgoing::new(0, &big).unwrap();
        assert!(outgoing.size <= SQS_MAX_BYTES, "{}", outgoing.size);
        let sent: DeadLetter = serde_json::from_str(&outgoing.body).unwrap();
        assert_eq!(sent.external_id.as_deref(), Some("7"));
        assert_eq!(sent.error.code, big.error.code);
        assert!(sent.error.message.starts_with(&big.error.message));
        assert!(
            sent.error.message.contains("source keeps its first"),
            "{}",
            sent.error.message
        );
    }

    #[test]
    fn attributes_are_set_and_unusable_values_left_out() {
        let mut with_id = letter(Some("42"), 1);
        with_id.error.code = String::new();
        let outgoing = Outgoing::new(0, &with_id).unwrap();
        assert_eq!(
            outgoing.attributes,
            [
                ("sync_id", "dispositions".to_owned()),
                ("kind", "rejected".to_owned()),
                ("external_id", "42".to_owned())
            ]
        );
        assert!(!sqs_text_ok("a\u{0}b"));
        assert!(!sqs_text_ok("\u{FFFF}"));
        assert!(sqs_text_ok("caf\u{e9} \u{1F600}"));
    }

    #[test]
    fn bodies_hold_only_characters_sqs_accepts_and_decode_to_the_letter() {
        let mut tricky = letter(Some("1"), 0);
        tricky.source = serde_json::json!({"name": "a\u{0}b\u{FFFE}c\u{FFFF}d\u{1F600}"});
        let outgoing = Outgoing::new(0, &tricky).unwrap();
        assert!(sqs_text_ok(&outgoing.body), "{:?}", outgoing.body);
        assert_eq!(
            serde_json::from_str::<DeadLetter>(&outgoing.body).unwrap(),
            tricky
        );
    }

    #[test]
    fn failures_are_counted_grouped_and_named_without_bodies() {
        let letters: Vec<_> = (0..14)
            .map(|i| letter(Some(&format!("id-{i}")), 5))
            .collect();
        let failed = (0..12)
            .map(|i| (i, "SQS rejected it: InternalError".to_owned()))
            .collect();
        let DlqError::Refused(message) = describe_failures(&letters, failed) else {
            panic!("letters SQS rejected one by one are refused, not an unavailable queue");
        };
        assert!(
            message
                .starts_with("12 of 14 dead letters were not sent: SQS rejected it: InternalError"),
            "{message}"
        );
        assert!(
            message.contains("#0 (external_id \"id-0\")") && message.contains("and 2 more"),
            "{message}"
        );
        assert!(!message.contains("xxxxx"), "{message}");
    }
}
