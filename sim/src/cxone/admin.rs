//! The CXone Admin API's dispositions endpoints, on their own origin (the `api_endpoint` that
//! discovery names): the `skip`/`top` list with `updatedSince`, `orderBy`, `isActive`, `fields`
//! and `searchString`; the classifications; and one disposition by id.
//!
//! Paths are matched the way clients in the wild need: `inContactAPI` in any casing, `v` or `V`,
//! any `v{N}.0`, repeated slashes collapsed, `classifications` routed before `{id}`.

use super::gate::{admit, log_other, oauth_error, unauthorized};
use super::modes::{AdminModes, format_last_updated, parse_instant};
use super::page_served;
use super::shared::{Shared, lock};
use super::store::{AdminView, Classifications, Entry, Store};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// `top` when the request gives none (the real default is undocumented).
const DEFAULT_TOP: usize = 100;

/// The fields a list item can have, for `fields=`.
const LIST_FIELDS: [&str; 8] = [
    "dispositionId",
    "dispositionName",
    "notes",
    "lastUpdated",
    "classificationId",
    "systemOutcome",
    "isActive",
    "isPreviewDisposition",
];

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// An Admin API path, once normalised.
#[derive(Debug, PartialEq)]
enum Route {
    List,
    Classifications,
    ById(String),
}

/// `/inContactAPI/services/v{N}.0/dispositions[/classifications|/{id}]`, tolerantly.
fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let [api, services, version, dispositions, rest @ ..] = segments.as_slice() else {
        return None;
    };
    let version_ok = version
        .strip_prefix(['v', 'V'])
        .and_then(|v| v.strip_suffix(".0"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !api.eq_ignore_ascii_case("incontactapi")
        || !services.eq_ignore_ascii_case("services")
        || !version_ok
        || !dispositions.eq_ignore_ascii_case("dispositions")
    {
        return None;
    }
    match rest {
        [] => Some(Route::List),
        [c] if c.eq_ignore_ascii_case("classifications") => Some(Route::Classifications),
        [id] => Some(Route::ById((*id).to_owned())),
        _ => None,
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(route) = route(uri.path()) else {
        log_other(&shared, &method, &uri);
        return oauth_error(StatusCode::NOT_FOUND, "not_found", "No such endpoint");
    };
    if method != Method::GET {
        // No DELETE exists, and this simulator serves no writes.
        log_other(&shared, &method, &uri);
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        );
    }
    let endpoint = match route {
        Route::List => "admin-list",
        Route::Classifications => "classifications",
        Route::ById(_) => "admin-get",
    };
    // A list request counts as in flight from arrival to answer, latency and faults included.
    let mut boarding = matches!(route, Route::List).then(|| shared.flights.start());
    let response = answer(&shared, endpoint, route, &method, &uri, &headers).await;
    if let Some(boarding) = boarding.as_mut() {
        boarding.answered(response.status().as_u16());
    }
    response
}

async fn answer(
    shared: &Arc<Shared>,
    endpoint: &str,
    route: Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Some(refusal) = admit(shared, endpoint, method, uri, None).await {
        return refusal;
    }
    if let Some(refusal) = unauthorized(shared, headers) {
        return refusal;
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    match route {
        Route::List => match list(shared, uri, &query) {
            Ok(response) => {
                page_served(shared);
                response
            }
            Err(refusal) => refusal.into_response(),
        },
        Route::Classifications => classifications(shared),
        Route::ById(id) => by_id(shared, &id),
    }
}

/// A parameter the list refuses: 400 with its description.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &self.0)
    }
}

fn bad_request(description: &str) -> BadRequest {
    BadRequest(description.to_owned())
}

/// The first value of `key`, matched without regard to case as the real (.NET) API binds.
fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn parse_bool(name: &str, text: Option<&str>) -> Result<Option<bool>, BadRequest> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(bad_request(&format!("{name} must be true or false"))),
    }
}

fn parse_count(
    name: &str,
    text: Option<&str>,
    default: usize,
    min: usize,
) -> Result<usize, BadRequest> {
    match text {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(bad_request(&format!(
                "{name} must be a whole number of at least {min}"
            ))),
        },
    }
}

/// A sort key of `orderBy`.
#[derive(Clone, Copy, PartialEq)]
enum SortField {
    LastUpdated,
    DispositionName,
    DispositionId,
}

/// `"lastUpdated"`, `"dispositionName desc,lastUpdated asc"`, ...; `+` decodes to the space.
fn parse_order(text: Option<&str>) -> Result<Vec<(SortField, bool)>, BadRequest> {
    let Some(text) = text else {
        return Ok(vec![(SortField::LastUpdated, false)]);
    };
    let mut keys = Vec::new();
    for clause in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let mut words = clause.split_whitespace();
        let field = match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("lastupdated") => SortField::LastUpdated,
            Some("dispositionname") => SortField::DispositionName,
            Some("dispositionid") => SortField::DispositionId,
            _ => return Err(bad_request(&format!("Invalid orderBy - '{clause}'"))),
        };
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(bad_request(&format!("Invalid orderBy - '{clause}'"))),
        };
        keys.push((field, descending));
    }
    Ok(keys)
}

/// One list row before paging: what it sorts and filters on, read once per store generation
/// (what it serves is projected for the page's rows only).
#[derive(Clone)]
struct Row {
    /// The entry's position in the store.
    index: usize,
    modified: Option<DateTime<Utc>>,
    name: String,
    id: Option<i64>,
    seq: u64,
    active: Option<bool>,
}

/// Every entry as a [`Row`], sorted by one `orderBy`, for one generation of the store: a client
/// paging through 100,000 records 100 at a time must not cost the simulator a sort per page.
pub struct AdminListing {
    generation: u64,
    order: Vec<(SortField, bool)>,
    rows: Arc<Vec<Row>>,
}

/// The store's rows in `order`, from the cache while the store is unchanged.
fn sorted_rows(shared: &Shared, store: &Store, order: &[(SortField, bool)]) -> Arc<Vec<Row>> {
    let mut cache = lock(&shared.admin_listing);
    if let Some(listing) = cache.as_ref()
        && listing.generation == store.generation()
        && listing.order == order
    {
        return listing.rows.clone();
    }
    let mut rows: Vec<Row> = store
        .entries()
        .iter()
        .enumerate()
        .map(|(index, entry)| Row {
            index,
            modified: entry.admin_modified(),
            name: item_text(entry, "dispositionName", "name"),
            id: entry.admin_id,
            seq: entry.seq,
            active: item_bool(entry, "isActive", "is_active"),
        })
        .collect();
    rows.sort_by(|a, b| compare(a, b, order));
    let rows = Arc::new(rows);
    *cache = Some(AdminListing {
        generation: store.generation(),
        order: order.to_vec(),
        rows: rows.clone(),
    });
    rows
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEnvelope {
    business_unit_id: i64,
    total_records: usize,
    dispositions: Vec<Value>,
    #[serde(rename = "_links")]
    links: Links,
}

/// `next` and `previous` are absolute URLs that work as they are, or JSON `null`.
#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    next: Option<String>,
    previous: Option<String>,
}

fn list(shared: &Shared, uri: &Uri, query: &[(String, String)]) -> Result<Response, BadRequest> {
    let skip = parse_count("skip", param(query, "skip"), 0, 0)?;
    let top = parse_count("top", param(query, "top"), DEFAULT_TOP, 1)?;
    let since = match param(query, "updatedSince") {
        None => None,
        Some(text) => Some(parse_instant(text).ok_or_else(|| {
            bad_request(&format!(
                "updatedSince must be an ISO 8601 time, got {text:?}"
            ))
        })?),
    };
    let active = parse_bool("isActive", param(query, "isActive"))?;
    let preview = parse_bool(
        "isPreviewDispositions",
        param(query, "isPreviewDispositions"),
    )?;
    let order = parse_order(param(query, "orderBy"))?;
    let fields: Option<Vec<String>> = match param(query, "fields") {
        None | Some("") => None,
        Some(text) => {
            let mut fields = Vec::new();
            for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let Some(known) = LIST_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(field)) else {
                    return Err(bad_request(&format!(
                        "Invalid fields - '{field}' is not a valid field name"
                    )));
                };
                fields.push((*known).to_owned());
            }
            Some(fields)
        }
    };
    let search = param(query, "searchString")
        .map(str::to_lowercase)
        .filter(|s| !s.is_empty());

    let modes = shared.admin_modes();
    if let Some(max) = modes.max_top.filter(|max| top > *max as usize) {
        return Err(bad_request(&format!("top must be at most {max}")));
    }
    let store = shared.store();
    let rows = sorted_rows(shared, &store, &order);
    // A record whose time cannot be read is never filtered out: the client must cope with it.
    let selected = rows.iter().filter(|row| {
        since.is_none_or(|since| row.modified.is_none_or(|at| at >= since))
            && active.is_none_or(|wanted| row.active == Some(wanted))
            // No simulated disposition is a preview disposition.
            && preview != Some(true)
            && search
                .as_ref()
                .is_none_or(|s| row.name.to_lowercase().contains(s))
    });

    let page_size = modes
        .page_cap
        .map_or(top, |cap| top.min(cap.max(1) as usize));
    let mut total = 0;
    let mut page: Vec<Value> = Vec::new();
    for row in selected {
        if total >= skip && page.len() < page_size {
            let entry = &store.entries()[row.index];
            let item = project(entry, &store.classifications, &modes, false);
            page.push(select(item, fields.as_deref()));
        }
        total += 1;
    }
    drop(store);
    if page.is_empty() && !modes.empty_page_as_200 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let end = skip.saturating_add(page.len());
    let links = Links {
        this: page_url(shared, uri, query, skip),
        next: (end < total && !page.is_empty()).then(|| page_url(shared, uri, query, end)),
        previous: (skip > 0).then(|| page_url(shared, uri, query, skip.saturating_sub(page_size))),
    };
    Ok(axum::Json(ListEnvelope {
        business_unit_id: shared.config.business_unit_id,
        total_records: total,
        dispositions: page,
        links,
    })
    .into_response())
}

fn compare(a: &Row, b: &Row, order: &[(SortField, bool)]) -> Ordering {
    for (field, descending) in order {
        let ordering = match field {
            // Unreadable times last, whatever the direction.
            SortField::LastUpdated => match (a.modified, b.modified) {
                (Some(x), Some(y)) => x.cmp(&y),
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater,
                (Some(_), None) => return Ordering::Less,
            },
            SortField::DispositionName => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            SortField::DispositionId => a.id.cmp(&b.id),
        };
        let ordering = if *descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.id.cmp(&b.id).then(a.seq.cmp(&b.seq))
}

/// The item with only `fields` (all when `None`).
fn select(item: Value, fields: Option<&[String]>) -> Value {
    match (item, fields) {
        (Value::Object(map), Some(fields)) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| fields.iter().any(|f| f == key))
                .collect(),
        ),
        (item, _) => item,
    }
}

/// This request's absolute URL with `skip` set to `skip`.
fn page_url(shared: &Shared, uri: &Uri, query: &[(String, String)], skip: usize) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut skip_written = false;
    for (key, value) in query {
        if key.eq_ignore_ascii_case("skip") {
            if !skip_written {
                serializer.append_pair(key, &skip.to_string());
                skip_written = true;
            }
        } else {
            serializer.append_pair(key, value);
        }
    }
    if !skip_written {
        serializer.append_pair("skip", &skip.to_string());
    }
    format!(
        "{}{}?{}",
        shared.admin_url(),
        uri.path(),
        serializer.finish()
    )
}

/// A text field of the record as served, for sorting and searching.
fn item_text(entry: &Entry, admin_key: &str, guide_key: &str) -> String {
    let value = match &entry.admin {
        AdminView::Verbatim(raw) => raw.get(admin_key),
        AdminView::Projected(overrides) => overrides
            .get(admin_key)
            .or_else(|| entry.record.get(guide_key)),
    };
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn item_bool(entry: &Entry, admin_key: &str, guide_key: &str) -> Option<bool> {
    match &entry.admin {
        AdminView::Verbatim(raw) => raw.get(admin_key),
        AdminView::Projected(overrides) => overrides
            .get(admin_key)
            .or_else(|| entry.record.get(guide_key)),
    }
    .and_then(Value::as_bool)
}

/// A list item, as the newer spec lists its fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListItem {
    disposition_id: Value,
    disposition_name: Value,
    notes: Value,
    last_updated: Value,
    classification_id: Value,
    system_outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_active: Option<Value>,
    is_preview_disposition: bool,
}

/// The by-id object: the list item plus the fields only the single read has.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(flatten)]
    item: ListItem,
    classification_name: Value,
    dialer_agent_outcome_id: Option<i64>,
    dialer_agent_outcome_name: Option<String>,
    reporting_group_id: Option<i64>,
    show_commitment_amount: bool,
    show_reschedule_date: bool,
    is_agent_specific: bool,
}

/// The entry as the Admin API serves it: a raw record verbatim, any other projected from the
/// stored record under `modes`, with the Admin-only fields a test set laid over it.
pub fn project(
    entry: &Entry,
    classifications: &Classifications,
    modes: &AdminModes,
    detail: bool,
) -> Value {
    let overrides = match &entry.admin {
        AdminView::Verbatim(raw) => return raw.clone(),
        AdminView::Projected(overrides) => overrides,
    };
    let record = &entry.record;
    let field = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let id = entry.admin_id.map_or(Value::Null, |id| {
        if modes.disposition_id_as_string {
            Value::String(id.to_string())
        } else {
            Value::from(id)
        }
    });
    let last_updated = match record.get("last_modified_date") {
        Some(Value::String(text)) => match parse_instant(text) {
            Some(at) => Value::String(format_last_updated(at, modes.precision, modes.zone)),
            None => Value::String(text.clone()),
        },
        other => other.cloned().unwrap_or(Value::Null),
    };
    let category = record.get("category").and_then(Value::as_str);
    // Every category a record holds was registered when it was stored.
    let classification_id =
        category
            .and_then(|name| classifications.find(name))
            .map_or(Value::Null, |id| {
                if modes.classification_id_as_string {
                    Value::String(id.to_string())
                } else {
                    Value::from(id)
                }
            });
    let item = ListItem {
        disposition_id: id,
        disposition_name: field("name"),
        notes: field("description"),
        last_updated,
        classification_id,
        system_outcome: "",
        is_active: (detail || !modes.list_without_is_active).then(|| field("is_active")),
        is_preview_disposition: false,
    };
    let served = if detail {
        serde_json::to_value(Detail {
            item,
            classification_name: field("category"),
            dialer_agent_outcome_id: None,
            dialer_agent_outcome_name: None,
            reporting_group_id: None,
            show_commitment_amount: false,
            show_reschedule_date: false,
            is_agent_specific: false,
        })
    } else {
        serde_json::to_value(item)
    };
    let mut served = served.unwrap_or_default();
    if let Value::Object(map) = &mut served {
        for (key, value) in overrides {
            if modes.list_without_is_active && !detail && key == "isActive" {
                continue;
            }
            map.insert(key.clone(), value.clone());
        }
    }
    served
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClassificationList {
    total_records: usize,
    business_unit_id: i64,
    classification_results: Vec<ClassificationResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClassificationResult {
    classification_id: i64,
    business_unit_id: i64,
    classification_name: String,
    #[serde(rename = "classificationTypeID")]
    classification_type_id: i64,
    direction: &'static str,
    reporting_group_id: Option<i64>,
    description: String,
    show_commitment_amount: bool,
    show_reschedule_date: bool,
    is_agent_specific: bool,
    is_preview_disposition: bool,
}

fn classifications(shared: &Shared) -> Response {
    let bu = shared.config.business_unit_id;
    let results: Vec<ClassificationResult> = shared
        .store()
        .classifications
        .all()
        .into_iter()
        .map(|(id, name)| ClassificationResult {
            classification_id: id,
            business_unit_id: bu,
            classification_name: name,
            classification_type_id: 1,
            direction: "Both",
            reporting_group_id: None,
            description: String::new(),
            show_commitment_amount: false,
            show_reschedule_date: false,
            is_agent_specific: false,
            is_preview_disposition: false,
        })
        .collect();
    axum::Json(ClassificationList {
        total_records: results.len(),
        business_unit_id: bu,
        classification_results: results,
    })
    .into_response()
}

#[derive(Serialize)]
struct Wrapped {
    dispositions: [Value; 1],
}

fn by_id(shared: &Shared, id: &str) -> Response {
    let Ok(admin_id) = id.trim().parse::<i64>() else {
        return bad_request(&format!("Invalid dispositionId - '{id}'")).into_response();
    };
    let modes = shared.admin_modes();
    let object = {
        let store = shared.store();
        store
            .find_admin(admin_id)
            .map(|entry| project(entry, &store.classifications, &modes, true))
    };
    match object {
        None => oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Invalid dispositionId - '{admin_id}'"),
        ),
        Some(object) if modes.get_wrapped => axum::Json(Wrapped {
            dispositions: [object],
        })
        .into_response(),
        Some(object) => axum::Json(object).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Casing, repeated slashes and any version reach the same routes; others reach none.
    #[test]
    fn paths_are_matched_tolerantly() {
        assert_eq!(
            route("/inContactAPI/services/v30.0/dispositions"),
            Some(Route::List)
        );
        assert_eq!(
            route("//incontactapi/Services/V2.0//dispositions/"),
            Some(Route::List)
        );
        assert_eq!(
            route("/inContactAPI/services/v30.0/dispositions/classifications"),
            Some(Route::Classifications)
        );
        assert_eq!(
            route("/inContactAPI/services/v30.0/dispositions/6001"),
            Some(Route::ById("6001".into()))
        );
        assert_eq!(route("/inContactAPI/services/v30/dispositions"), None);
        assert_eq!(route("/api/v2/dispositions"), None);
    }
}
