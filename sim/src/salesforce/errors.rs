//! The two error shapes of the REST API: request-level errors (a JSON array keyed `errorCode`,
//! sent with a non-2xx status) and per-record errors (keyed `statusCode`, inside a 200 result).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

/// One entry of a request-level error array.
#[derive(Clone, Debug)]
pub(crate) struct ErrorEntry {
    pub code: String,
    pub message: String,
    /// Absent from errors that are not about fields (`NOT_FOUND`, `INVALID_SESSION_ID`, ...).
    pub fields: Option<Vec<String>>,
}

/// A request that failed as a whole.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub entries: Vec<ErrorEntry>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let entry = ErrorEntry {
            code: code.to_string(),
            message: message.into(),
            fields: None,
        };
        Self {
            status,
            entries: vec![entry],
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Adds the `fields` list to a single-entry error.
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        for entry in &mut self.entries {
            entry.fields = Some(fields.clone());
        }
        self
    }

    /// The answer for unknown resources, objects and API versions.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub fn json_parser(message: impl Into<String>) -> Self {
        Self::bad_request("JSON_PARSER_ERROR", message)
    }

    /// An upsert naming a field that is not the object's external ID.
    pub fn unknown_external_id_field(field: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        )
    }

    /// A single-record write failing: its record errors become the request's error array.
    pub fn from_record_errors(errors: Vec<RecordError>) -> Self {
        let entries = errors
            .into_iter()
            .map(|e| ErrorEntry {
                code: e.code,
                message: e.message,
                fields: Some(e.fields),
            })
            .collect();
        Self {
            status: StatusCode::BAD_REQUEST,
            entries,
        }
    }

    pub fn body(&self) -> Value {
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let mut entry = Map::new();
                entry.insert("message".into(), json!(e.message));
                entry.insert("errorCode".into(), json!(e.code));
                if let Some(fields) = &e.fields {
                    entry.insert("fields".into(), json!(fields));
                }
                Value::Object(entry)
            })
            .collect();
        Value::Array(entries)
    }
}

/// Why one record of a collection failed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordError {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            fields,
        }
    }

    /// What every otherwise-good record reports when an `allOrNone` request fails.
    pub fn rolled_back() -> Self {
        Self::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            Vec::new(),
        )
    }

    pub fn to_json(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

/// A failed item of a collection result: `id` is null and `success` false.
pub(crate) fn failed_result(errors: &[RecordError]) -> Value {
    json!({"id": null, "success": false, "errors": errors.iter().map(RecordError::to_json).collect::<Vec<_>>()})
}
