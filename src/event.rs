//! What an invocation asks for. Every accepted shape is listed here; anything else is refused
//! with an error that names what was expected.

use serde_json::Value;

/// The work one invocation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run one sync cycle; `full` forces a full snapshot.
    Sync { full: bool },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported event: {0}. Expected an EventBridge scheduled event (\"detail-type\": \"Scheduled Event\"), {{\"action\": \"sync\"}} or {{\"action\": \"sync\", \"full\": true}}")]
pub struct EventError(pub String);

pub fn parse(event: &Value) -> Result<Invocation, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError(format!("the event is a JSON {}, not an object", kind(event))));
    };
    if let Some(detail_type) = obj.get("detail-type") {
        return match detail_type.as_str() {
            Some("Scheduled Event") => Ok(Invocation::Sync { full: false }),
            _ => Err(EventError(format!("EventBridge detail-type {detail_type} is not \"Scheduled Event\""))),
        };
    }
    match obj.get("action") {
        Some(Value::String(action)) if action == "sync" => {
            if let Some(unknown) = obj.keys().find(|k| !["action", "full"].contains(&k.as_str())) {
                return Err(EventError(format!("unknown key {unknown:?} for action \"sync\" (allowed: action, full)")));
            }
            match obj.get("full") {
                None | Some(Value::Null) => Ok(Invocation::Sync { full: false }),
                Some(Value::Bool(full)) => Ok(Invocation::Sync { full: *full }),
                Some(other) => Err(EventError(format!("\"full\" must be true or false, got {other}"))),
            }
        }
        Some(Value::String(action)) => Err(EventError(format!("unknown action {action:?}"))),
        Some(other) => Err(EventError(format!("\"action\" must be a string, got {other}"))),
        None => Err(EventError("no \"action\" and no \"detail-type\"".into())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepted_shapes() {
        let scheduled = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(parse(&scheduled), Ok(Invocation::Sync { full: false }));
        assert_eq!(parse(&json!({"action": "sync"})), Ok(Invocation::Sync { full: false }));
        assert_eq!(parse(&json!({"action": "sync", "full": true})), Ok(Invocation::Sync { full: true }));
    }

    #[test]
    fn everything_else_is_refused_with_what_was_expected() {
        for bad in [json!({}), json!([]), json!({"action": "dance"}), json!({"action": "sync", "full": "yes"}),
                    json!({"action": "sync", "ful": true}), json!({"detail-type": "Object Created", "source": "aws.s3"})] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains("Expected an EventBridge scheduled event"), "{bad}: {err}");
        }
    }
}
