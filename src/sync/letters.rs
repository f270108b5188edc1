//! The dead letters a cycle writes: what could be read of the record, what CXone sent, and why
//! it cannot be written.

use super::Engine;
use super::plan::Latest;
use super::writer::{Rejection, Write};
use crate::dlq::{DeadLetter, DeadLetterKind};
use crate::salesforce::RecordError;
use chrono::{DateTime, Utc};
use serde_json::Value;

impl Engine<'_> {
    /// A record the source could not validate: its id and version are whatever the source
    /// could read of it.
    pub(super) fn letter_malformed(
        &self,
        cycle_id: &str,
        raw: Value,
        reason: String,
        external_id: Option<String>,
        last_modified: Option<DateTime<Utc>>,
    ) -> DeadLetter {
        let error = RecordError {
            code: "UNMAPPABLE_RECORD".into(),
            message: reason,
            fields: vec![],
        };
        tracing::warn!(external_id = ?external_id, code = %error.code, reason = %error.message, "CXone record cannot be mapped; dead-lettering it");
        DeadLetter {
            external_id,
            last_modified,
            source: raw,
            ..self.letter(DeadLetterKind::Unmappable, cycle_id, error, 1)
        }
    }

    pub(super) fn letter_unmappable(
        &self,
        cycle_id: &str,
        latest: Latest,
        error: RecordError,
    ) -> DeadLetter {
        let d = &latest.disposition;
        tracing::warn!(external_id = %d.id, code = %error.code, reason = %error.message, "CXone record cannot be mapped; dead-lettering it");
        DeadLetter {
            external_id: Some(d.id.to_string()),
            last_modified: Some(d.last_modified),
            source: latest.raw.to_value(),
            ..self.letter(DeadLetterKind::Unmappable, cycle_id, error, 1)
        }
    }

    pub(super) fn letter_rejected(
        &self,
        cycle_id: &str,
        write: &Write,
        r: &Rejection,
    ) -> DeadLetter {
        let (last_modified, source) = match write {
            Write::Code {
                disposition, raw, ..
            } => (Some(disposition.last_modified), raw.to_value()),
            Write::StaleFlag { .. } => (None, Value::Null),
        };
        DeadLetter {
            external_id: Some(write.external_id().to_string()),
            last_modified,
            payload: serde_json::to_value(write.sobject(&self.settings.target)).ok(),
            source,
            ..self.letter(
                DeadLetterKind::Rejected,
                cycle_id,
                r.error.clone(),
                r.attempts,
            )
        }
    }

    fn letter(
        &self,
        kind: DeadLetterKind,
        cycle_id: &str,
        error: RecordError,
        attempts: u32,
    ) -> DeadLetter {
        DeadLetter::new(kind, &self.settings.sync_id, cycle_id, error, attempts)
    }
}
