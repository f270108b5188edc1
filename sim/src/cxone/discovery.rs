//! The Admin API's identity side, on the issuer origin: OIDC discovery
//! (`/.well-known/openid-configuration`), the token endpoint (`/auth/token`: a password grant on
//! the API user's access key, client authentication by HTTP Basic or in the body, and the
//! refresh grant), the signing keys (`/auth/jwks`), and `/.well-known/cxone-configuration`, which
//! names the tenant's API origin.
//!
//! The token endpoint reads its body as a form whatever the `Content-Type` says (NICE's own SDK
//! labels a form body as JSON), and refuses `client_credentials`, the one grant real back-end
//! clients cannot use.

use super::gate::{admit, form_value, oauth_error, param, raw_basic_credentials};
use super::shared::{Shared, lock};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a refresh token stays valid, as in NICE's published example.
const REFRESH_TTL: Duration = Duration::from_secs(7200);

/// The cluster and area the tenant claims to live in; realistic values from NICE's examples.
const CLUSTER: &str = "B32";
const AREA: &str = "na1";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/.well-known/cxone-configuration", get(cxone_configuration))
        .route("/auth/token", post(token))
        .route("/auth/jwks", get(jwks))
        .with_state(shared)
}

#[derive(Serialize)]
struct OpenIdConfiguration {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    token_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: [&'static str; 1],
    response_types_supported: [&'static str; 1],
    code_challenge_methods_supported: [&'static str; 1],
    display_values_supported: [&'static str; 2],
}

async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    if let Some(fault) = admit(&shared, "openid-configuration", &method, &uri, None).await {
        return fault;
    }
    let issuer = shared.issuer_url().to_owned();
    axum::Json(OpenIdConfiguration {
        authorization_endpoint: format!("{issuer}/auth/authorize"),
        token_endpoint: format!("{issuer}/auth/token"),
        userinfo_endpoint: format!("{issuer}/auth/userinfo"),
        jwks_uri: format!("{issuer}/auth/jwks"),
        end_session_endpoint: format!("{issuer}/auth/authorize/logout"),
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        scopes_supported: ["openid"],
        response_types_supported: ["code"],
        code_challenge_methods_supported: ["S256"],
        display_values_supported: ["page", "popup"],
        issuer,
    })
    .into_response()
}

#[derive(Deserialize)]
struct TenantQuery {
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CxoneConfiguration {
    private: bool,
    area: &'static str,
    cluster: &'static str,
    domain: &'static str,
    acd_domain: &'static str,
    uh_domain: &'static str,
    #[serde(rename = "ui_endpoint")]
    ui_endpoint: String,
    #[serde(rename = "auth_endpoint")]
    auth_endpoint: String,
    #[serde(rename = "api_endpoint")]
    api_endpoint: String,
    tenant_id: String,
}

/// Answers with or without an `Authorization` header (the real one ignores it): 400 without a
/// `tenantId`, 404 for a tenant this issuer does not know.
async fn cxone_configuration(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<TenantQuery>,
) -> Response {
    if let Some(fault) = admit(&shared, "cxone-configuration", &method, &uri, None).await {
        return fault;
    }
    let tenant = &shared.config.tenant_id;
    match query.tenant_id.as_deref() {
        None | Some("") => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tenantId is required",
        ),
        Some(asked) if !asked.eq_ignore_ascii_case(tenant) => {
            oauth_error(StatusCode::NOT_FOUND, "not_found", "Unknown tenantId")
        }
        Some(_) => axum::Json(CxoneConfiguration {
            private: false,
            area: AREA,
            cluster: CLUSTER,
            domain: "niceincontact.com",
            acd_domain: "nice-incontact.com",
            uh_domain: "nice-incontact.com",
            ui_endpoint: shared.issuer_url().to_owned(),
            auth_endpoint: shared.issuer_url().to_owned(),
            api_endpoint: shared.admin_url().to_owned(),
            tenant_id: tenant.clone(),
        })
        .into_response(),
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.signer.jwks()).into_response()
}

/// The claims of an access token (and, with `id`, of an id_token), as decoded from real ones.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    tenant_id: &'a str,
    tenant: &'a str,
    #[serde(rename = "icBUId")]
    ic_bu_id: i64,
    ic_cluster_id: &'static str,
    iat: u64,
    exp: u64,
    /// Makes two tokens issued in the same second differ.
    jti: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    id: Option<IdClaims<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdClaims<'a> {
    ic_agent_id: &'static str,
    user_id: &'a str,
    area: &'static str,
    ic_domain: &'static str,
    #[serde(rename = "given_name")]
    given_name: &'static str,
    #[serde(rename = "family_name")]
    family_name: &'static str,
    name: &'static str,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    id_token: String,
    issued_token_type: &'static str,
}

/// `POST /auth/token`.
async fn token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Some(fault) = admit(&shared, "admin-token", &method, &uri, Some(redact(&text))).await {
        return fault;
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    let config = &shared.config;
    // HTTP Basic (client_secret_basic) wins over body credentials (client_secret_post). A
    // Basic secret is compared raw and percent-decoded: clients differ on encoding it.
    let basic = raw_basic_credentials(&headers);
    let body_client = param(&form, "client_id")
        .zip(param(&form, "client_secret"))
        .map(|(id, secret)| (id.to_owned(), secret.to_owned()));
    let client_ok = match (&basic, &body_client) {
        (Some((id, secret)), _) => {
            (*id == config.client_id || form_value(id) == config.client_id)
                && (*secret == config.client_secret || form_value(secret) == config.client_secret)
        }
        (None, Some((id, secret))) => *id == config.client_id && *secret == config.client_secret,
        (None, None) => false,
    };
    let client_given = basic.is_some() || body_client.is_some();
    let grant = param(&form, "grant_type");
    // The SDK refreshes without client authentication; every other grant needs it.
    let client_required = grant != Some("refresh_token");
    if (client_given || client_required) && !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    match grant {
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
        Some("password") => {
            let keys_ok = param(&form, "username") == Some(config.access_key_id.as_str())
                && param(&form, "password") == Some(config.access_key_secret.as_str());
            if keys_ok {
                issue(&shared)
            } else {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid access key",
                )
            }
        }
        Some("refresh_token") => {
            let valid = param(&form, "refresh_token")
                .is_some_and(|refresh| lock(&shared.tokens).is_valid_refresh(refresh));
            if valid {
                issue(&shared)
            } else {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid or expired",
                )
            }
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Supported grant types: password, refresh_token, authorization_code",
        ),
    }
}

/// A new access, refresh and id token for the API user.
fn issue(shared: &Shared) -> Response {
    let config = &shared.config;
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // `exp` in whole seconds, rounded up so a sub-second lifetime still has exp > iat.
    let lifetime = config.token_ttl.as_secs() + u64::from(config.token_ttl.subsec_nanos() > 0);
    let issuer = shared.issuer_url();
    let sub = format!("user:{}", config.user_id);
    let claims = |exp: u64| Claims {
        iss: issuer,
        aud: &config.client_id,
        sub: &sub,
        tenant_id: &config.tenant_id,
        tenant: "disposition_sim_tenant",
        ic_bu_id: config.business_unit_id,
        ic_cluster_id: CLUSTER,
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        id: None,
    };
    let access_token = shared.signer.sign(&claims(iat + lifetime));
    let refresh_token = shared.signer.sign(&claims(iat + REFRESH_TTL.as_secs()));
    let id_token = shared.signer.sign(&Claims {
        id: Some(IdClaims {
            ic_agent_id: "1234567",
            user_id: &config.user_id,
            area: AREA,
            ic_domain: "nice-incontact.com",
            given_name: "Disposition",
            family_name: "Sync",
            name: "Disposition Sync",
        }),
        ..claims(iat + lifetime)
    });
    {
        let mut tokens = lock(&shared.tokens);
        tokens.register_access(access_token.clone(), config.token_ttl);
        tokens.register_refresh(refresh_token.clone(), REFRESH_TTL);
    }
    let mut response = axum::Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: config.token_ttl.as_secs(),
        refresh_token,
        id_token,
        issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The form body for the request log, with every secret's value blanked.
fn redact(form: &str) -> String {
    form.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if ["client_secret", "password", "refresh_token"].contains(&key) => {
                format!("{key}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}
