//! HTTP plumbing shared by both platform clients: the OAuth client-credentials request, and
//! describing failures without ever echoing a credential.

use crate::token::AuthError;
use reqwest::Url;
use serde_json::Value;

/// POSTs an OAuth token request (`form`) and returns the JSON body of a success. A transport
/// failure or a 5xx is `Unavailable` (worth retrying); any other refusal is `Rejected`, with the
/// OAuth `error`/`error_description` only.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    url: &Url,
    platform: &'static str,
    form: &[(&str, &str)],
) -> Result<Value, AuthError> {
    let response = http
        .post(url.clone())
        .form(form)
        .send()
        .await
        .map_err(|e| AuthError::Unavailable {
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
