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
    pub(super) fn letter_malformed(
        &self,
        cycle_id: &str,
        raw: Value,
        reason: String,
    ) -> DeadLetter {
        let error = RecordError {
            code: "UNMAPPABLE_RECORD".into(),
            message: reason,
            fields: vec![],
        };
        // The guide's field names: what could be read of a record that failed validation.
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
            source: latest.raw,
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
            } => (Some(disposition.last_modified), raw.clone()),
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
