//! Writes through the REST API: sObject Collections upsert and create, single-record upsert and
//! update, Composite, and deletes. Every path decodes with the one schema, fails the whole
//! request for malformed input and reports record problems per record, as the platform does.
//! `allOrNone` requests run against the live rows and restore a snapshot when anything failed.

use super::State;
use super::errors::{ApiError, RecordError, failed_result};
use super::http::{ApiVersion, split_data_path};
use super::schema;
use super::store::looks_like_id;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Most records (or Ids) one sObject Collections request may carry.
const MAX_COLLECTION: usize = 200;
/// Most subrequests one Composite request may carry.
const MAX_SUBREQUESTS: usize = 25;

/// Parses a request body, failing the way the platform's JSON parser does.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::json_parser(
            "No content to map due to end-of-input",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let problem = if e.is_eof() {
            "Unexpected end-of-input"
        } else {
            "Unexpected character"
        };
        ApiError::json_parser(format!(
            "{problem} at [line:{}, column:{}]",
            e.line(),
            e.column()
        ))
    })
}

/// `PATCH /composite/sobjects/{object}/{field}`: upsert up to 200 records by external ID.
pub(crate) fn upsert_collection(
    state: &mut State,
    version: ApiVersion,
    object: &str,
    field: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    // Upsert through sObject Collections exists from API 46.0 on.
    if !version.at_least(46) || !state.is_object(object) {
        return Err(ApiError::not_found());
    }
    if !state.is_external_id_field(field) {
        return Err(ApiError::unknown_external_id_field(field));
    }
    let body = parse_json(body)?;
    let (all_or_none, records) = collection_body(&body)?;
    let mut decoded = Vec::with_capacity(records.len());
    for record in records {
        let record = typed_record(state, record)?;
        // Only external IDs identify records here; the platform refuses record Ids.
        if let Some(key) = record.keys().find(|k| k.eq_ignore_ascii_case("Id")) {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                "Only external ids are supported. Don't use record ids.",
            )
            .with_fields(vec![key.clone()]));
        }
        decoded.push(decode_fields(state, record)?);
    }

    let ext_field = state.config.external_id_field.clone();
    let keys: Vec<Option<String>> = decoded
        .iter()
        .map(|values| {
            values
                .get(&ext_field)
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    // Staged only when a failure would roll the request back: copying a large org for every
    // request would make the simulator, not the client, what a benchmark measures.
    let snapshot = all_or_none.then(|| state.store.clone());
    let now = Utc::now();
    let outcomes: Vec<Result<(String, bool), Vec<RecordError>>> = decoded
        .into_iter()
        .zip(&keys)
        .map(|(values, key)| match key {
            None => Err(vec![RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{ext_field}]"),
                vec![ext_field.clone()],
            )]),
            Some(key) if keys.iter().filter(|k| k.as_ref() == Some(key)).count() > 1 => {
                Err(vec![RecordError::new(
                    "DUPLICATE_VALUE",
                    format!("Duplicate external id specified: {key}"),
                    vec![ext_field.clone()],
                )])
            }
            Some(key) => upsert_one(state, key, values, now),
        })
        .collect();

    let rolled_back = all_or_none && outcomes.iter().any(Result::is_err);
    if rolled_back && let Some(snapshot) = snapshot {
        state.store = snapshot;
    }
    let mut results: Vec<Value> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(_) if rolled_back => failed_result(&[RecordError::rolled_back()]),
            Ok((id, created)) => {
                json!({"id": id, "success": true, "errors": [], "created": created})
            }
            Err(errors) => failed_result(errors),
        })
        .collect();
    if state.config.reversed_results {
        results.reverse();
    }
    Ok(Value::Array(results))
}

/// `POST /composite/sobjects`: insert up to 200 records. A record whose external ID already
/// exists fails with `DUPLICATE_VALUE`, as the field is unique.
pub(crate) fn create_collection(state: &mut State, body: &[u8]) -> Result<Value, ApiError> {
    let body = parse_json(body)?;
    let (all_or_none, records) = collection_body(&body)?;
    let mut decoded = Vec::with_capacity(records.len());
    for record in records {
        decoded.push(decode_fields(state, typed_record(state, record)?)?);
    }
    let ext_field = state.config.external_id_field.clone();
    let snapshot = state.store.clone();
    let now = Utc::now();
    let mut outcomes: Vec<Result<String, Vec<RecordError>>> = Vec::new();
    for values in decoded {
        let key = values
            .get(&ext_field)
            .and_then(Value::as_str)
            .map(str::to_string);
        let outcome = match key.and_then(|k| state.take_record_error(&k)) {
            Some(error) => Err(vec![error]),
            None => insert_checked(state, values, now),
        };
        outcomes.push(outcome);
    }
    let rolled_back = all_or_none && outcomes.iter().any(Result::is_err);
    if rolled_back {
        state.store = snapshot;
    }
    Ok(Value::Array(
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(_) if rolled_back => failed_result(&[RecordError::rolled_back()]),
                Ok(id) => json!({"id": id, "success": true, "errors": []}),
                Err(errors) => failed_result(errors),
            })
            .collect(),
    ))
}

fn insert_checked(
    state: &mut State,
    values: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<String, Vec<RecordError>> {
    let errors = check_fields(state, &values, None);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(state.store.create(&state.schema, values, now))
}

/// `PATCH /sobjects/{object}/{field}/{value}`: upsert one record. Returns the status and body:
/// 201 when created, 200 when updated (204 with no body before API 46.0).
pub(crate) fn upsert_single(
    state: &mut State,
    version: ApiVersion,
    object: &str,
    field: &str,
    value: &str,
    body: &Value,
) -> Result<(StatusCode, Option<Value>), ApiError> {
    if !state.is_object(object) {
        return Err(ApiError::not_found());
    }
    if !state.is_external_id_field(field) {
        return Err(ApiError::unknown_external_id_field(field));
    }
    let mut values = decode_fields(state, body_object(body)?)?;
    let ext_field = state.config.external_id_field.clone();
    // A created record takes its external ID from the URL.
    let slot = values.entry(ext_field).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::String(value.to_string());
    }
    let (id, created) =
        upsert_one(state, value, values, Utc::now()).map_err(ApiError::from_record_errors)?;
    let mut result = json!({"id": id, "success": true, "errors": []});
    if version.at_least(46) {
        result["created"] = json!(created);
    }
    Ok(match (created, version.at_least(46)) {
        (true, _) => (StatusCode::CREATED, Some(result)),
        (false, true) => (StatusCode::OK, Some(result)),
        (false, false) => (StatusCode::NO_CONTENT, None),
    })
}

/// `PATCH /sobjects/{object}/{id}`: update one record by Id.
pub(crate) fn update_by_id(
    state: &mut State,
    object: &str,
    id: &str,
    body: &Value,
) -> Result<(), ApiError> {
    if !state.is_object(object) {
        return Err(ApiError::not_found());
    }
    // A segment that is no Id is read as an external ID field name with no value.
    if !looks_like_id(id) {
        return Err(ApiError::unknown_external_id_field(id));
    }
    let position = state
        .store
        .position_by_id(id)
        .ok_or_else(ApiError::not_found)?;
    let values = decode_fields(state, body_object(body)?)?;
    let ext_field = &state.config.external_id_field;
    let key = state.store.rows[position]
        .fields
        .get(ext_field)
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(error) = key.and_then(|k| state.take_record_error(&k)) {
        return Err(ApiError::from_record_errors(vec![error]));
    }
    let errors = check_fields(state, &values, Some(position));
    if !errors.is_empty() {
        return Err(ApiError::from_record_errors(errors));
    }
    state
        .store
        .update(&state.schema, position, values, Utc::now());
    Ok(())
}

/// `DELETE /sobjects/{object}/{id}`.
pub(crate) fn delete_one(state: &mut State, object: &str, id: &str) -> Result<(), ApiError> {
    if !state.is_object(object) {
        return Err(ApiError::not_found());
    }
    let position = state
        .store
        .position_by_id(id)
        .ok_or_else(ApiError::not_found)?;
    state.store.rows.remove(position);
    Ok(())
}

/// `DELETE /composite/sobjects?ids=a,b&allOrNone=false`: one result per Id, in order.
pub(crate) fn delete_collection(
    state: &mut State,
    params: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let ids: Vec<&str> = params
        .get("ids")
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(
            ApiError::bad_request("MISSING_ARGUMENT", "The ids parameter is required")
                .with_fields(vec!["ids".into()]),
        );
    }
    if ids.len() > MAX_COLLECTION {
        return Err(too_many_records());
    }
    let all_or_none = params
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let snapshot = state.store.clone();
    let outcomes: Vec<Result<String, RecordError>> = ids
        .iter()
        .map(|id| {
            if !looks_like_id(id) {
                return Err(RecordError::new(
                    "MALFORMED_ID",
                    format!("malformed id {id}"),
                    Vec::new(),
                ));
            }
            match state.store.position_by_id(id) {
                Some(position) => Ok(state.store.rows.remove(position).id),
                None => Err(RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    Vec::new(),
                )),
            }
        })
        .collect();
    let rolled_back = all_or_none && outcomes.iter().any(Result::is_err);
    if rolled_back {
        state.store = snapshot;
    }
    Ok(Value::Array(
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(_) if rolled_back => failed_result(&[RecordError::rolled_back()]),
                Ok(id) => json!({"id": id, "success": true, "errors": []}),
                Err(error) => failed_result(std::slice::from_ref(error)),
            })
            .collect(),
    ))
}

/// `POST /composite`. Subrequests that write one record (`PATCH` of
/// `/sobjects/{object}/{field}/{value}` or `/sobjects/{object}/{id}`) run for real; other kinds
/// are not simulated and answer 404. The request is one API call and answers 200 whatever the
/// subrequests did; with `allOrNone` the first failure halts and rolls back everything.
pub(crate) fn composite(state: &mut State, body: &[u8]) -> Result<Value, ApiError> {
    let body = parse_json(body)?;
    let body = body_object(&body)?;
    reject_unknown_keys(
        body,
        &["allOrNone", "collateSubrequests", "compositeRequest"],
    )?;
    let all_or_none = optional_bool(body, "allOrNone")?;
    let subrequests = match body.get("compositeRequest") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(ApiError::json_parser(
                "compositeRequest is required and must hold at least one subrequest",
            )
            .with_fields(vec!["compositeRequest".into()]));
        }
    };
    if subrequests.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad_request(
            "LIMIT_EXCEEDED",
            format!("A composite request may hold up to {MAX_SUBREQUESTS} subrequests"),
        ));
    }
    let mut parsed = Vec::with_capacity(subrequests.len());
    for subrequest in subrequests {
        let text = |key: &str| {
            subrequest
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(method), Some(url), Some(reference)) =
            (text("method"), text("url"), text("referenceId"))
        else {
            return Err(ApiError::json_parser(
                "Each subrequest needs method, url and referenceId",
            ));
        };
        parsed.push((
            method,
            url,
            reference,
            subrequest.get("body").cloned().unwrap_or(Value::Null),
        ));
    }

    let snapshot = state.store.clone();
    let mut answers: Vec<Option<(StatusCode, Value, Value)>> = Vec::with_capacity(parsed.len());
    let mut halted = false;
    for (method, url, _, sub_body) in &parsed {
        if halted {
            answers.push(None);
            continue;
        }
        let answer = run_subrequest(state, method, url, sub_body);
        halted = all_or_none && answer.0.as_u16() >= 400;
        answers.push(Some(answer));
    }
    if halted {
        state.store = snapshot;
    }
    let halted_answer = || {
        let error = ApiError::bad_request(
            "PROCESSING_HALTED",
            "The transaction was rolled back since another operation in the same transaction failed.",
        );
        (StatusCode::BAD_REQUEST, error.body(), json!({}))
    };
    let results: Vec<Value> = parsed
        .iter()
        .zip(answers)
        .map(|((_, _, reference, _), answer)| {
            let (status, body, headers) = match answer {
                Some(answer) if !(halted && answer.0.is_success()) => answer,
                _ => halted_answer(),
            };
            json!({"body": body, "httpHeaders": headers, "httpStatusCode": status.as_u16(), "referenceId": reference})
        })
        .collect();
    Ok(json!({"compositeResponse": results}))
}

/// One Composite subrequest: status, body and headers.
fn run_subrequest(
    state: &mut State,
    method: &str,
    url: &str,
    body: &Value,
) -> (StatusCode, Value, Value) {
    let path = url.split('?').next().unwrap_or_default();
    let Some((Some(version), segments)) = split_data_path(path) else {
        let error = ApiError::not_found();
        return (error.status, error.body(), json!({}));
    };
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let outcome = match (method, s.as_slice()) {
        ("PATCH", ["sobjects", object, field, value]) => {
            upsert_single(state, version, object, field, value, body).map(|(status, answer)| {
                let location = answer.as_ref().filter(|_| status == StatusCode::CREATED).map(|a| {
                    json!({"Location": format!("/services/data/{version}/sobjects/{}/{}", state.config.object, a["id"].as_str().unwrap_or_default())})
                });
                (status, answer.unwrap_or(Value::Null), location.unwrap_or_else(|| json!({})))
            })
        }
        ("PATCH", ["sobjects", object, id]) => {
            update_by_id(state, object, id, body).map(|()| (StatusCode::NO_CONTENT, Value::Null, json!({})))
        }
        _ => Err(ApiError::not_found()),
    };
    outcome.unwrap_or_else(|error| (error.status, error.body(), json!({})))
}

/// Creates or updates the record with external ID `key` (exact match), after the per-record
/// checks. Returns its Id and whether it was created.
fn upsert_one(
    state: &mut State,
    key: &str,
    values: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(String, bool), Vec<RecordError>> {
    if let Some(error) = state.take_record_error(key) {
        return Err(vec![error]);
    }
    let position = state
        .store
        .position_by_external_id(&state.config.external_id_field, key);
    let errors = check_fields(state, &values, position);
    if !errors.is_empty() {
        return Err(errors);
    }
    match position {
        Some(position) => {
            state.store.update(&state.schema, position, values, now);
            Ok((state.store.rows[position].id.clone(), false))
        }
        None => Ok((state.store.create(&state.schema, values, now), true)),
    }
}

/// `{"allOrNone": bool?, "records": [..1-200..]}`.
fn collection_body(body: &Value) -> Result<(bool, &Vec<Value>), ApiError> {
    let body = body_object(body)?;
    reject_unknown_keys(body, &["allOrNone", "records"])?;
    let all_or_none = optional_bool(body, "allOrNone")?;
    match body.get("records") {
        Some(Value::Array(records)) if records.len() > MAX_COLLECTION => Err(too_many_records()),
        Some(Value::Array(records)) if !records.is_empty() => Ok((all_or_none, records)),
        Some(Value::Array(_)) | None | Some(Value::Null) => Err(ApiError::bad_request(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [records]",
        )
        .with_fields(vec!["records".into()])),
        Some(other) => Err(ApiError::json_parser(format!(
            "Cannot deserialize records from {other}: expected an array"
        ))),
    }
}

fn too_many_records() -> ApiError {
    ApiError::bad_request(
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

/// The platform's deserializer refuses properties it does not know.
fn reject_unknown_keys(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(ApiError::json_parser(format!(
            "Unexpected parameter encountered during deserialization: {key}"
        ))),
        None => Ok(()),
    }
}

fn optional_bool(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(ApiError::json_parser(format!(
            "Cannot deserialize instance of boolean for {key} from value {other}"
        ))),
    }
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::json_parser(format!(
            "Cannot deserialize instance of SObject from value {body}"
        ))
    })
}

/// A collection record: an object whose `attributes.type` names the URI's object.
fn typed_record<'a>(state: &State, record: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    let record = body_object(record)?;
    match record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
    {
        None => Err(ApiError::bad_request(
            "INVALID_TYPE",
            "Must send a concrete entity type.",
        )),
        Some(kind) if !state.is_object(kind) => Err(ApiError::bad_request(
            "INVALID_TYPE",
            format!(
                "Record type {kind} does not match the sObject type {} of this request",
                state.config.object
            ),
        )),
        Some(_) => Ok(record),
    }
}

/// Decodes a record's fields (`attributes` is metadata). An unknown field or a value of the
/// wrong JSON type fails the whole request.
fn decode_fields(
    state: &State,
    record: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let mut values = Map::new();
    for (key, value) in record
        .iter()
        .filter(|(key, _)| key.as_str() != "attributes")
    {
        let Some(spec) = schema::find(&state.schema, key) else {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!(
                    "No such column '{key}' on sobject of type {}",
                    state.config.object
                ),
            )
            .with_fields(vec![key.clone()]));
        };
        values.insert(
            spec.name.clone(),
            spec.decode(value).map_err(ApiError::json_parser)?,
        );
    }
    Ok(values)
}

/// Every per-record problem of decoded values bound for the row at `own` (None = a new row),
/// including an external ID that another row already holds: the field is unique.
fn check_fields(
    state: &State,
    values: &Map<String, Value>,
    own: Option<usize>,
) -> Vec<RecordError> {
    let mut errors: Vec<RecordError> = values
        .iter()
        .filter_map(|(name, value)| {
            schema::find(&state.schema, name).and_then(|spec| spec.check(value))
        })
        .collect();
    let ext_field = &state.config.external_id_field;
    if let Some(key) = values.get(ext_field).and_then(Value::as_str)
        && let Some(holder) = state
            .store
            .position_by_external_id(ext_field, key)
            .filter(|p| Some(*p) != own)
    {
        errors.push(RecordError::new(
            "DUPLICATE_VALUE",
            format!(
                "duplicate value found: {ext_field} duplicates value on record with id: {}",
                state.store.rows[holder].id
            ),
            vec![ext_field.clone()],
        ));
    }
    errors
}
