//! What an invocation asks for. Every accepted shape is listed here; anything else is refused
//! with an error that names what was expected.

use crate::domain::quote;
use crate::redrive::Incoming;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The work one invocation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run one sync cycle; `full` forces a full snapshot; `allow_mass_change` lets it pass the
    /// mass-change breaker once.
    Sync { full: bool, allow_mass_change: bool },
    /// Compute what the next cycle would do (its flags mean what they mean for a sync), writing
    /// nothing.
    Plan { full: bool, allow_mass_change: bool },
    /// Report the state, the run history and the DLQ's depth, writing nothing.
    Status,
    /// List (dry run) or delete records archived longer than the retention period.
    Purge { dry_run: bool },
    /// Replay up to `max_messages` dead letters (all visible ones when `None`).
    Redrive { max_messages: Option<usize> },
    /// Replay the DLQ messages of an SQS event (the function subscribed to the DLQ).
    SqsRedrive(Vec<Incoming>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unsupported event: {0}. Expected an EventBridge scheduled event (\"detail-type\": \"Scheduled Event\"), \
     {{\"action\": \"sync\"}}, {{\"action\": \"sync\", \"full\": true}} (optionally with \"allow_mass_change\": true), \
     {{\"action\": \"plan\"}} (optionally with \"full\" and \"allow_mass_change\", like a sync), {{\"action\": \"status\"}}, \
     {{\"action\": \"purge\", \"dry_run\": true|false}}, {{\"action\": \"redrive\", \"max_messages\": N}} or an SQS event from the DLQ"
)]
pub struct EventError(pub String);

/// Reads an event's JSON text, refusing an object with the same key twice anywhere in it
/// (`{"action": "sync", "action": "purge"}` must not run whichever came last).
pub fn read(text: &str) -> Result<Value, EventError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| EventError(format!("the event is not valid JSON: {e}")))?;
    Ok(value)
}

/// Deserializes a JSON value, failing on a duplicate key in any object.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {} appears twice",
                    quote(&Value::String(key))
                )));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// What `event` asks for. The platforms' events are told apart by their envelope's key: SQS's
/// `Records`, EventBridge's `detail-type`; any other object is one of our manual actions.
pub fn parse(event: &Value) -> Result<Invocation, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError(format!(
            "the event is a JSON {}, not an object",
            crate::http::json_type(event)
        )));
    };
    if obj.contains_key("Records") {
        sqs(event)
    } else if obj.contains_key("detail-type") {
        scheduled(event)
    } else {
        manual(obj)
    }
}

/// `{"action": …}` with only the keys that action takes. Hand-checked rather than derived so
/// that each refusal says which key or value is wrong in the event's own terms.
fn manual(obj: &Map<String, Value>) -> Result<Invocation, EventError> {
    let flag = |key: &str| -> Result<Option<bool>, EventError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(EventError(format!(
                "\"{key}\" must be true or false, got {}",
                quote(other)
            ))),
        }
    };
    let only = |action: &str, allowed: &[&str]| -> Result<(), EventError> {
        match obj
            .keys()
            .find(|k| k.as_str() != "action" && !allowed.contains(&k.as_str()))
        {
            Some(unknown) => Err(EventError(format!(
                "unknown key {} for action {action:?} (allowed: {})",
                quote(&Value::String(unknown.clone())),
                ["action"]
                    .iter()
                    .chain(allowed)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => Ok(()),
        }
    };
    match obj.get("action") {
        Some(Value::String(action)) if action == "sync" => {
            only("sync", &["full", "allow_mass_change"])?;
            Ok(Invocation::Sync {
                full: flag("full")?.unwrap_or(false),
                allow_mass_change: flag("allow_mass_change")?.unwrap_or(false),
            })
        }
        Some(Value::String(action)) if action == "plan" => {
            only("plan", &["full", "allow_mass_change"])?;
            Ok(Invocation::Plan {
                full: flag("full")?.unwrap_or(false),
                allow_mass_change: flag("allow_mass_change")?.unwrap_or(false),
            })
        }
        Some(Value::String(action)) if action == "status" => {
            only("status", &[])?;
            Ok(Invocation::Status)
        }
        Some(Value::String(action)) if action == "purge" => {
            only("purge", &["dry_run"])?;
            // Deleting is never the default: a purge without an explicit `"dry_run": false` only lists.
            Ok(Invocation::Purge {
                dry_run: flag("dry_run")?.unwrap_or(true),
            })
        }
        Some(Value::String(action)) if action == "redrive" => {
            only("redrive", &["max_messages"])?;
            match obj.get("max_messages") {
                None | Some(Value::Null) => Ok(Invocation::Redrive { max_messages: None }),
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
                    Ok(Invocation::Redrive {
                        max_messages: n.as_u64().map(|n| n as usize),
                    })
                }
                Some(other) => Err(EventError(format!(
                    "\"max_messages\" must be a whole number above 0, got {}",
                    quote(other)
                ))),
            }
        }
        Some(action @ Value::String(_)) => {
            Err(EventError(format!("unknown action {}", quote(action))))
        }
        Some(other) => Err(EventError(format!(
            "\"action\" must be a string, got {}",
            quote(other)
        ))),
        None => Err(EventError("no \"action\" and no \"detail-type\"".into())),
    }
}

/// An EventBridge event: only a schedule's tick is ours, and it runs a sync like `{"action": "sync"}`.
///
/// Nothing in it is silently ignored: a key EventBridge does not send is refused, and the
/// `detail` may carry only the sync's own flags (`full`, `allow_mass_change`), which are honoured.
fn scheduled(event: &Value) -> Result<Invocation, EventError> {
    const ENVELOPE: [&str; 9] = [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ];
    if let Some(unknown) = event
        .as_object()
        .and_then(|o| o.keys().find(|k| !ENVELOPE.contains(&k.as_str())))
    {
        return Err(EventError(format!(
            "unknown key {} in an EventBridge event (allowed: {})",
            quote(&Value::String(unknown.clone())),
            ENVELOPE.join(", ")
        )));
    }
    let event = EventBridgeEvent::<Value>::deserialize(event)
        .map_err(|e| EventError(format!("not an EventBridge event: {e}")))?;
    if event.detail_type != "Scheduled Event" {
        return Err(EventError(format!(
            "EventBridge detail-type {} is not \"Scheduled Event\"",
            quote(&Value::from(event.detail_type))
        )));
    }
    match event.detail {
        Value::Null => Ok(Invocation::Sync {
            full: false,
            allow_mass_change: false,
        }),
        Value::Object(detail) if detail.is_empty() => Ok(Invocation::Sync {
            full: false,
            allow_mass_change: false,
        }),
        Value::Object(detail) if detail.contains_key("action") => Err(EventError(
            "a scheduled event runs a sync; its detail cannot name an \"action\"".into(),
        )),
        Value::Object(detail) => {
            let mut flags = detail.clone();
            flags.insert("action".into(), Value::from("sync"));
            manual(&flags)
                .map_err(|e| EventError(format!("in the scheduled event's detail: {}", e.0)))
        }
        other => Err(EventError(format!(
            "the scheduled event's detail must be an object, got {}",
            quote(&other)
        ))),
    }
}

/// An SQS event: every record must come from SQS and carry a message id (needed to report it).
fn sqs(event: &Value) -> Result<Invocation, EventError> {
    let event =
        SqsEvent::deserialize(event).map_err(|e| EventError(format!("not an SQS event: {e}")))?;
    let messages = event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, message)| incoming(i, message))
        .collect::<Result<_, _>>()?;
    Ok(Invocation::SqsRedrive(messages))
}

fn incoming(i: usize, message: SqsMessage) -> Result<Incoming, EventError> {
    if message.event_source.as_deref() != Some("aws:sqs") {
        return Err(EventError(format!(
            "record {i} is not from SQS (eventSource {})",
            Value::from(message.event_source)
        )));
    }
    let message_id = message
        .message_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| EventError(format!("SQS record {i} has no messageId")))?;
    let receive_count = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Ok(Incoming {
        message_id,
        // A missing body is passed on as empty: the redrive reports it as not a dead letter.
        body: message.body.unwrap_or_default(),
        receive_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepted_shapes() {
        let scheduled = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        let sync = |full, allow_mass_change| {
            Ok(Invocation::Sync {
                full,
                allow_mass_change,
            })
        };
        assert_eq!(parse(&scheduled), sync(false, false));
        assert_eq!(parse(&json!({"action": "sync"})), sync(false, false));
        assert_eq!(
            parse(&json!({"action": "sync", "full": true})),
            sync(true, false)
        );
        assert_eq!(
            parse(&json!({"action": "sync", "full": true, "allow_mass_change": true})),
            sync(true, true)
        );
        assert_eq!(
            parse(&json!({"action": "plan"})),
            Ok(Invocation::Plan {
                full: false,
                allow_mass_change: false
            })
        );
        assert_eq!(
            parse(&json!({"action": "plan", "full": true, "allow_mass_change": true})),
            Ok(Invocation::Plan {
                full: true,
                allow_mass_change: true
            })
        );
        assert_eq!(parse(&json!({"action": "status"})), Ok(Invocation::Status));
        assert_eq!(
            parse(&json!({"action": "purge"})),
            Ok(Invocation::Purge { dry_run: true })
        );
        assert_eq!(
            parse(&json!({"action": "purge", "dry_run": false})),
            Ok(Invocation::Purge { dry_run: false })
        );
        assert_eq!(
            parse(&json!({"action": "redrive", "max_messages": 5})),
            Ok(Invocation::Redrive {
                max_messages: Some(5)
            })
        );
        let sqs = json!({"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs",
                                      "attributes": {"ApproximateReceiveCount": "3"}}]});
        match parse(&sqs).unwrap() {
            Invocation::SqsRedrive(m) => {
                assert_eq!((m[0].message_id.as_str(), m[0].receive_count), ("m1", 3))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn everything_else_is_refused_with_what_was_expected() {
        for bad in [
            json!({}),
            json!([]),
            json!({"action": "dance"}),
            json!({"action": "sync", "full": "yes"}),
            json!({"action": "sync", "ful": true}),
            json!({"action": "plan", "dry_run": true}),
            json!({"action": "plan", "full": 1}),
            json!({"action": "status", "full": true}),
            json!({"action": "purge", "dry_run": "no"}),
            json!({"action": "redrive", "max_messages": 0}),
            json!({"Records": [{"eventSource": "aws:s3", "messageId": "x"}]}),
            json!({"detail-type": "Object Created", "source": "aws.s3"}),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(
                err.contains("Expected an EventBridge scheduled event"),
                "{bad}: {err}"
            );
        }
    }

    /// The reason names what is wrong, for the person who sent the event.
    #[test]
    fn refusals_name_the_reason() {
        for (bad, reason) in [
            (
                json!({"action": "sync", "ful": true}),
                r#"unknown key "ful" for action "sync""#,
            ),
            (json!({"action": "dance"}), r#"unknown action "dance""#),
            (
                json!({"action": "sync", "full": "yes"}),
                r#""full" must be true or false, got "yes""#,
            ),
            (
                json!({"action": "redrive", "max_messages": 0}),
                r#""max_messages" must be a whole number above 0, got 0"#,
            ),
            (json!({}), r#"no "action" and no "detail-type""#),
            (
                json!({"Records": [{"eventSource": "aws:s3", "messageId": "x"}]}),
                r#"record 0 is not from SQS (eventSource "aws:s3")"#,
            ),
            (
                json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
                "SQS record 0 has no messageId",
            ),
            (
                json!({"Records": [{"eventSource": "aws:sqs", "messageId": ""}]}),
                "SQS record 0 has no messageId",
            ),
            (
                json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}),
                r#"EventBridge detail-type "Object Created" is not "Scheduled Event""#,
            ),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn a_duplicate_key_anywhere_is_refused() {
        let err = read(r#"{"action": "sync", "action": "purge"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"the key "action" appears twice"#),
            "{err}"
        );
        assert!(read(r#"{"Records": [{"body": "x", "body": "y"}]}"#).is_err());
        assert_eq!(read(r#"{"action": "sync"}"#), Ok(json!({"action": "sync"})));
        assert!(read("{} trailing").is_err());
    }

    #[test]
    fn a_scheduled_event_honours_its_detail_flags_and_refuses_other_keys() {
        let tick = |extra: Value| {
            let mut event = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event",
                                   "source": "aws.events", "detail": {}});
            for (k, v) in extra.as_object().unwrap() {
                event[k] = v.clone();
            }
            parse(&event)
        };
        assert_eq!(
            tick(json!({"detail": {"full": true}})),
            Ok(Invocation::Sync {
                full: true,
                allow_mass_change: false
            })
        );
        for bad in [
            json!({"full": true}),
            json!({"detail": {"action": "purge"}}),
            json!({"detail": {"fulll": true}}),
            json!({"detail": "full"}),
        ] {
            assert!(tick(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_quote_only_a_short_prefix_of_a_value() {
        let huge = "x".repeat(100_000);
        let err = parse(&json!({"action": huge})).unwrap_err().to_string();
        assert!(err.len() < 1_000, "{} characters", err.len());
        assert!(err.contains("100002 characters"), "{err}");
    }
}
