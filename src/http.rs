//! HTTP plumbing shared by both platform clients: the URL rules (HTTPS only, paths joined onto a
//! base), the OAuth client-credentials request, and describing failures without ever echoing a
//! credential.

use crate::config::ConfigError;
use crate::secrets::ClientCredentials;
use crate::token::AuthError;
use reqwest::Url;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::net::IpAddr;

/// Appends `path` to `base`, keeping any path prefix the base already has.
pub fn join(base: &Url, path: &str) -> Url {
    let mut s = base.as_str().trim_end_matches('/').to_owned();
    s.push('/');
    s.push_str(path.trim_start_matches('/'));
    Url::parse(&s).expect("joining a path to a valid URL stays valid")
}

/// Accepts `https://` anywhere and `http://` only for loopback hosts (local runs).
pub fn parse_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("not a URL ({e}): {value:?}"),
    })?;
    check_transport(&url).map_err(|reason| ConfigError::Invalid { name, reason })?;
    Ok(url)
}

/// The HTTPS-only rule, also applied to URLs that arrive at run time (Salesforce `instance_url`).
pub fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "{url} uses http://, which is allowed only for loopback hosts; use https://"
        )),
        other => Err(format!(
            "{url} has scheme {other:?}; only https:// is allowed"
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// POSTs an OAuth client-credentials token request (with `scope` when given) and returns the
/// JSON body of a success. A transport failure or a 5xx is `Unavailable` (worth retrying); any
/// other refusal is `Rejected`, with the OAuth `error`/`error_description` only.
pub(crate) async fn client_credentials_token(
    http: &reqwest::Client,
    url: &Url,
    platform: &'static str,
    credentials: &ClientCredentials,
    scope: Option<&str>,
) -> Result<Value, AuthError> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", credentials.client_id.as_str()),
        ("client_secret", credentials.client_secret.expose_secret()),
    ];
    form.extend(scope.map(|scope| ("scope", scope)));
    token_response(http.post(url.clone()).form(&form), platform).await
}

/// Sends a prepared token request (body and client authentication set) and reads its answer by
/// the rules of [`client_credentials_token`].
pub(crate) async fn token_response(
    request: reqwest::RequestBuilder,
    platform: &'static str,
) -> Result<Value, AuthError> {
    let response = request.send().await.map_err(|e| AuthError::Unavailable {
        platform,
        reason: describe_transport_error(&e),
    })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let error = oauth_error(&body);
    Err(if status.is_server_error() {
        AuthError::Unavailable {
            platform,
            reason: format!("HTTP {status}: {error}"),
        }
    } else {
        AuthError::Rejected {
            platform,
            status: status.as_u16(),
            error,
        }
    })
}

/// A non-empty string field of a token response.
pub(crate) fn token_field<'a>(
    body: &'a Value,
    key: &str,
    platform: &'static str,
) -> Result<&'a str, AuthError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AuthError::Unavailable {
            platform,
            reason: format!("token response has no {key}"),
        })
}

/// `error` and `error_description` of an OAuth error body (never echoes anything else).
pub(crate) fn oauth_error(body: &Value) -> String {
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    match body.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("{error}: {d}"),
        None => error.to_owned(),
    }
}

pub(crate) fn describe_transport_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which carries no secret; the token is in a header.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

pub(crate) fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if body.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// The JSON type of `v`, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
