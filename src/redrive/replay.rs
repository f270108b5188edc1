//! The redrive's decisions: for each dead letter, re-read the code from CXone, compare with what
//! Salesforce holds, and write the current version only if it moves Salesforce forward.

use super::{Fate, Incoming};
use crate::cxone::DispositionSource;
use crate::dlq::{DeadLetter, SCHEMA_VERSION};
use crate::domain::{DispositionId, SourceRecord};
use crate::mapping::{RulesCache, to_salesforce};
use crate::record::{Row, columns};
use crate::salesforce::RecordError;
use crate::salesforce::{RecordSink, SalesforceError};
use crate::sync::Settings;
use crate::sync::lease::{self, Holder};
use crate::sync::report::Reason;
use crate::sync::writer::{Write, Writer};
use crate::watermark::StateStore;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Replays dead letters of one sync. Holds the sync's lease while it writes, so a redrive and a
/// cycle never write at the same time; never moves the watermark (replayed records are older
/// than it by construction).
pub struct Redrive<'a> {
    pub source: &'a dyn DispositionSource,
    pub sink: &'a dyn RecordSink,
    pub state: &'a dyn StateStore,
    pub rules: &'a RulesCache,
    pub settings: &'a Settings,
}

/// The valid letters of a batch, grouped by code (duplicates collapse into one write), and the
/// fate of each message decided so far.
struct Sorted {
    letters: Vec<Option<DeadLetter>>,
    by_code: BTreeMap<DispositionId, Vec<usize>>,
    fates: Vec<Option<Fate>>,
}

impl Sorted {
    fn set(&mut self, code: &DispositionId, fate: impl Fn(&DeadLetter) -> Fate) {
        for &i in self
            .by_code
            .get(code)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(letter) = &self.letters[i] {
                self.fates[i] = Some(fate(letter));
            }
        }
    }
}

impl Redrive<'_> {
    /// Decides and carries out the write for each message; one fate per message, in order.
    pub async fn replay(
        &self,
        messages: &[Incoming],
        deadline: Option<DateTime<Utc>>,
    ) -> Vec<Fate> {
        let owner = format!("redrive-{}", uuid::Uuid::new_v4());
        let stored = match self.state.load().await {
            Ok(stored) => stored,
            Err(e) => return defer_all(messages, Reason::StateUnavailable(e.to_string())),
        };
        let holder = Holder::Redrive { id: &owner };
        let held = match lease::take(
            self.state,
            stored,
            holder,
            Utc::now(),
            deadline,
            self.settings.clock_skew,
        )
        .await
        {
            Ok(held) => held,
            Err(reason) => return defer_all(messages, reason),
        };
        let fates = self.replay_leased(messages, deadline).await;
        let mut released = held.before;
        released.lease = None;
        lease::release(self.state, &released, held.version).await;
        fates
    }

    async fn replay_leased(
        &self,
        messages: &[Incoming],
        deadline: Option<DateTime<Utc>>,
    ) -> Vec<Fate> {
        let started = Utc::now();
        let mut sorted = self.sort(messages);
        let mut writes = match self.reread(&mut sorted).await {
            Ok(writes) => writes,
            Err(reason) => return finish(sorted.fates, reason),
        };
        let writer = Writer {
            sink: self.sink,
            rules: self.rules,
            settings: self.settings,
        };
        let outcome = writer
            .write(&mut writes, self.settings.stop_at(deadline, started))
            .await;
        for &i in &outcome.written {
            sorted.set(writes[i].external_id(), |_| Fate::Written);
        }
        for r in &outcome.rejected {
            let write = &writes[r.index];
            let payload = serde_json::to_value(write.sobject(&self.settings.target)).ok();
            sorted.set(write.external_id(), |letter| {
                let mut letter = letter.clone();
                letter.error = r.error.clone();
                letter.payload = payload.clone();
                Fate::FailedAgain(Box::new(letter))
            });
        }
        finish(sorted.fates, Reason::NotWritten)
    }

    /// Parses every message and groups the valid letters by code.
    fn sort(&self, messages: &[Incoming]) -> Sorted {
        let mut sorted = Sorted {
            letters: Vec::with_capacity(messages.len()),
            by_code: BTreeMap::new(),
            fates: vec![None; messages.len()],
        };
        for (i, m) in messages.iter().enumerate() {
            let letter = match self.parse_letter(&m.body) {
                Ok(letter) => letter,
                Err(reason) => {
                    tracing::warn!(message_id = %m.message_id, %reason, "DLQ message is not a dead letter of this sync");
                    sorted.fates[i] = Some(Fate::Invalid(reason));
                    sorted.letters.push(None);
                    continue;
                }
            };
            match letter.external_id.as_deref().map(DispositionId::parse) {
                Some(Ok(id)) => sorted.by_code.entry(id).or_default().push(i),
                Some(Err(_)) => {
                    sorted.fates[i] = Some(failed(
                        &letter,
                        "INVALID_EXTERNAL_ID",
                        "the external id is empty or invalid",
                    ))
                }
                None => {
                    sorted.fates[i] = Some(failed(
                        &letter,
                        "NO_EXTERNAL_ID",
                        "the record has no CXone id, so it cannot be re-read; fix it in CXone",
                    ))
                }
            }
            sorted.letters.push(Some(letter));
        }
        sorted
    }

    /// Re-reads every code from CXone and compares it with Salesforce: the writes that move
    /// Salesforce forward. Settles the fate of every code that needs no write or cannot be
    /// written; an error is the reason every unsettled message is deferred.
    async fn reread(&self, sorted: &mut Sorted) -> Result<Vec<Write>, Reason> {
        let rules = self
            .rules
            .get(self.sink, false)
            .await
            .map_err(|e| Reason::SalesforceUnavailable(format!("describe failed: {e}")))?;
        let mut current = Vec::new();
        let mut gone = Vec::new();
        let codes: Vec<DispositionId> = sorted.by_code.keys().cloned().collect();
        for code in codes {
            match self.source.get(&code).await {
                Err(e) => sorted.set(&code, |_| {
                    Fate::Deferred(Reason::CxoneUnavailable(e.to_string()))
                }),
                Ok(None) => gone.push(code),
                Ok(Some(SourceRecord::Malformed { reason, .. })) => {
                    sorted.set(&code, |l| failed(l, "UNMAPPABLE_RECORD", &reason))
                }
                Ok(Some(SourceRecord::Valid { disposition, raw })) => {
                    match to_salesforce(&disposition, &self.settings.target, &rules) {
                        Ok(mapped) => current.push(Write::Code {
                            disposition,
                            raw,
                            fields: mapped.fields,
                            known_id: None,
                        }),
                        Err(e) => sorted.set(&code, |l| failed(l, &e.code, &e.message)),
                    }
                }
            }
        }

        self.compare(sorted, current, gone).await
    }

    /// Compares the current versions (and the codes CXone no longer has) with Salesforce: the
    /// writes that move it forward.
    async fn compare(
        &self,
        sorted: &mut Sorted,
        current: Vec<Write>,
        gone: Vec<DispositionId>,
    ) -> Result<Vec<Write>, Reason> {
        // Never write a version older than, or equal to, what Salesforce holds.
        let wanted: Vec<&DispositionId> = current
            .iter()
            .map(Write::external_id)
            .chain(&gone)
            .collect();
        let rows = match self.rows_for(&wanted).await {
            Ok(rows) => rows,
            Err(e) => {
                for code in wanted {
                    sorted.set(code, |_| {
                        Fate::Deferred(Reason::SalesforceUnavailable(e.to_string()))
                    });
                }
                return Ok(Vec::new());
            }
        };
        let mut writes = Vec::new();
        for mut write in current {
            let Write::Code {
                disposition,
                fields,
                known_id,
                ..
            } = &mut write
            else {
                continue;
            };
            let row = rows.get(disposition.id.as_str());
            let superseded = row.is_some_and(|row| {
                row.fields == *fields
                    || row
                        .fields
                        .last_modified
                        .is_some_and(|held| held > disposition.last_modified)
            });
            if superseded {
                sorted.set(&disposition.id, |_| Fate::Superseded);
            } else {
                *known_id = row.and_then(|r| r.id.clone());
                writes.push(write);
            }
        }
        // A code CXone no longer has is handled as the archival rules say: flagged as stale for
        // review if Salesforce has it, never resurrected from the old payload.
        for code in gone {
            match rows.get(code.as_str()) {
                Some(row) if !row.fields.is_flagged_stale() => {
                    writes.push(Write::StaleFlag { external_id: code })
                }
                _ => sorted.set(&code, |_| Fate::Superseded),
            }
        }
        Ok(writes)
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
        codes: &[&DispositionId],
    ) -> Result<HashMap<String, Row>, SalesforceError> {
        let t = &self.settings.target;
        let mut rows = HashMap::new();
        for chunk in codes.chunks(100) {
            let list: Vec<String> = chunk
                .iter()
                .map(|c| {
                    format!(
                        "'{}'",
                        c.as_str().replace('\\', "\\\\").replace('\'', "\\'")
                    )
                })
                .collect();
            let soql = format!(
                "SELECT {} FROM {} WHERE {} IN ({})",
                columns(t),
                t.object,
                t.external_id_field,
                list.join(", ")
            );
            for row in self.sink.query(&soql).await? {
                if let Some(row) = Row::parse(&row, t) {
                    rows.insert(row.external_id.clone(), row);
                }
            }
        }
        Ok(rows)
    }
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

fn defer_all(messages: &[Incoming], reason: Reason) -> Vec<Fate> {
    tracing::info!(%reason, "redrive deferred");
    messages
        .iter()
        .map(|_| Fate::Deferred(reason.clone()))
        .collect()
}

/// Every fate decided, and `reason` for the messages still undecided.
fn finish(fates: Vec<Option<Fate>>, reason: Reason) -> Vec<Fate> {
    fates
        .into_iter()
        .map(|f| f.unwrap_or_else(|| Fate::Deferred(reason.clone())))
        .collect()
}
