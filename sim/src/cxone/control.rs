//! Unauthenticated `/_sim/` routes on the issuer origin, mirroring the handle's methods, for
//! driving the simulator from outside the process (the demo, a shell). Ids and record shapes
//! are the world's API's, except under `/_sim/codes`, which is shape-neutral. Not logged as API
//! requests.
//!
//! | route | does |
//! |---|---|
//! | `POST /_sim/seed` `{"count": n}` | seeds n codes → `{"ids": [...]}` |
//! | `GET /_sim/codes` | every code, shape-neutral (`external_id`, `name`, ...) |
//! | `POST /_sim/codes` `{"name", "category", "description"?, "is_active"?}` | adds a code → it, shape-neutral |
//! | `GET /_sim/dispositions` | every record as the world's list serves it |
//! | `POST /_sim/dispositions` | upserts a record in the world's shape → it |
//! | `POST /_sim/dispositions/{id}/rename` `{"name"}` | renames |
//! | `POST /_sim/dispositions/{id}/deactivate`, `…/reactivate` | (de)activates |
//! | `POST /_sim/dispositions/{id}/category` `{"category"}` | re-categorises |
//! | `GET /_sim/counts` | API requests per endpoint |
//! | `POST /_sim/faults` `{"endpoint", "status", "retry_after"?, "skip"?, "times"}` | queues a fault |
//! | `POST /_sim/latency` `{"endpoint", "millis"}` | delays an endpoint |
//! | `GET`, `PUT /_sim/admin-modes` | the Admin API's modes |
//! | `POST /_sim/expire-tokens` | expires every access token |

use super::shared::Shared;
use super::store::now_ms;
use super::{AdminModes, CxoneApi, CxoneTenant, Fault, MAX_CONTROL_SEED};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/seed", post(seed))
        .route("/_sim/codes", get(codes).post(add_code))
        .route("/_sim/dispositions", get(all).post(upsert))
        .route("/_sim/dispositions/{id}/rename", post(rename))
        .route("/_sim/dispositions/{id}/deactivate", post(deactivate))
        .route("/_sim/dispositions/{id}/reactivate", post(reactivate))
        .route("/_sim/dispositions/{id}/category", post(category))
        .route("/_sim/counts", get(counts))
        .route("/_sim/faults", post(fault))
        .route("/_sim/latency", post(latency))
        .route("/_sim/admin-modes", get(modes).put(set_modes))
        .route("/_sim/expire-tokens", post(expire_tokens))
        .with_state(shared)
}

fn tenant(shared: Arc<Shared>) -> CxoneTenant {
    CxoneTenant { shared }
}

#[derive(Serialize)]
struct ControlError {
    error: String,
}

fn error(status: StatusCode, description: String) -> Response {
    (status, axum::Json(ControlError { error: description })).into_response()
}

#[derive(Deserialize)]
struct SeedRequest {
    count: usize,
}

#[derive(Serialize)]
struct SeedResponse {
    ids: Vec<String>,
}

async fn seed(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<SeedRequest>,
) -> Response {
    if request.count > MAX_CONTROL_SEED {
        return error(
            StatusCode::BAD_REQUEST,
            format!("count must be at most {MAX_CONTROL_SEED}"),
        );
    }
    loop {
        let attempt = shared.store().try_seed(request.count, now_ms());
        match attempt {
            Ok(ids) => return axum::Json(SeedResponse { ids }).into_response(),
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}

async fn codes(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(tenant(shared).codes()).into_response()
}

#[derive(Deserialize)]
struct NewCode {
    name: String,
    category: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    is_active: bool,
}

fn yes() -> bool {
    true
}

/// A new code in whichever shape the world speaks, with an id the store picks.
async fn add_code(
    State(shared): State<Arc<Shared>>,
    axum::Json(code): axum::Json<NewCode>,
) -> Response {
    let record = match shared.config.api {
        CxoneApi::Guide => json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "name": code.name,
            "description": code.description,
            "category": code.category,
            "is_active": code.is_active,
        }),
        CxoneApi::Admin => json!({
            "dispositionName": code.name,
            "notes": code.description,
            "classificationName": code.category,
            "isActive": code.is_active,
        }),
    };
    let tenant = tenant(shared);
    let upserted = tenant.shared.store().upsert(record);
    match upserted {
        Ok(id) => axum::Json(tenant.code(&id)).into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

async fn all(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(tenant(shared).all()).into_response()
}

/// One record in the world's shape; answers with it as served.
async fn upsert(
    State(shared): State<Arc<Shared>>,
    axum::Json(record): axum::Json<Value>,
) -> Response {
    let tenant = tenant(shared);
    let upserted = tenant.shared.store().upsert(record);
    match upserted {
        Ok(id) => axum::Json(tenant.get(&id)).into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

#[derive(Deserialize)]
struct RenameRequest {
    name: String,
}

async fn rename(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(request): axum::Json<RenameRequest>,
) -> Response {
    let key = shared.config.api.name_field();
    edit(shared, &id, key, json!(request.name))
}

async fn deactivate(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let key = shared.config.api.active_field();
    edit(shared, &id, key, json!(false))
}

async fn reactivate(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let key = shared.config.api.active_field();
    edit(shared, &id, key, json!(true))
}

#[derive(Deserialize)]
struct CategoryRequest {
    category: String,
}

async fn category(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(request): axum::Json<CategoryRequest>,
) -> Response {
    let key = shared.config.api.category_field();
    edit(shared, &id, key, json!(request.category))
}

/// Applies the edit and answers with the updated record as served, or 404.
fn edit(shared: Arc<Shared>, id: &str, key: &str, value: Value) -> Response {
    let edited = shared.store().edit(id, key, value);
    if edited {
        axum::Json(tenant(shared).get(id)).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no disposition with id {id:?}"),
        )
    }
}

async fn counts(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.log.counts()).into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    endpoint: String,
    #[serde(flatten)]
    fault: Fault,
}

/// `{"endpoint": "admin-list", "status": 429, "retry_after": 60, "skip": 0, "times": 1}`.
async fn fault(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<FaultRequest>,
) -> Response {
    if request.fault.times == 0 {
        return error(StatusCode::BAD_REQUEST, "times must be at least 1".into());
    }
    match shared.inject(&request.endpoint, request.fault) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

#[derive(Deserialize)]
struct LatencyRequest {
    endpoint: String,
    millis: u64,
}

async fn latency(
    State(shared): State<Arc<Shared>>,
    axum::Json(request): axum::Json<LatencyRequest>,
) -> Response {
    match shared.set_latency(&request.endpoint, Duration::from_millis(request.millis)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

async fn modes(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.admin_modes()).into_response()
}

/// Replaces every mode; fields left out take their defaults.
async fn set_modes(
    State(shared): State<Arc<Shared>>,
    axum::Json(modes): axum::Json<AdminModes>,
) -> Response {
    tenant(shared.clone()).set_admin_modes(modes);
    axum::Json(shared.admin_modes()).into_response()
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> Response {
    tenant(shared).expire_tokens();
    StatusCode::NO_CONTENT.into_response()
}
