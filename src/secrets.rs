//! Credentials for both platforms, read from one Secrets Manager secret.
//!
//! Secret values never reach a log line: they are [`SecretString`]s, whose `Debug` is redacted
//! and whose value is read only through `expose_secret`, and parse errors name the missing key,
//! never a value.

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;

/// An OAuth client id and secret.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The parsed secret: `{"cxone": {"client_id", "client_secret"}, "salesforce": {...}}`.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub cxone: ClientCredentials,
    pub salesforce: ClientCredentials,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {secret_id} is not valid JSON")]
    NotJson { secret_id: String },
    #[error("secret {secret_id} is missing the string key `{key}`")]
    MissingKey { secret_id: String, key: String },
    #[error("secret {secret_id} could not be read: {reason}")]
    Unavailable { secret_id: String, reason: String },
}

impl Credentials {
    /// Parses the secret's JSON text. Unknown keys are ignored.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, SecretError> {
        let json: Value = serde_json::from_str(text).map_err(|_| SecretError::NotJson {
            secret_id: secret_id.to_owned(),
        })?;
        let field = |platform: &str, key: &str| -> Result<String, SecretError> {
            json.get(platform)
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned)
                .ok_or_else(|| SecretError::MissingKey {
                    secret_id: secret_id.to_owned(),
                    key: format!("{platform}.{key}"),
                })
        };
        let client = |platform: &str| -> Result<ClientCredentials, SecretError> {
            Ok(ClientCredentials {
                client_id: field(platform, "client_id")?,
                client_secret: field(platform, "client_secret")?.into(),
            })
        };
        Ok(Self {
            cxone: client("cxone")?,
            salesforce: client("salesforce")?,
        })
    }
}

/// Where credentials come from (Secrets Manager in production and against moto).
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn load(&self) -> Result<Credentials, SecretError>;
}

/// Reads the credentials from AWS Secrets Manager.
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn load(&self) -> Result<Credentials, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Unavailable {
                secret_id: self.secret_id.clone(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let text = out.secret_string().ok_or_else(|| SecretError::MissingKey {
            secret_id: self.secret_id.clone(),
            key: "SecretString".into(),
        })?;
        Credentials::parse(&self.secret_id, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const FULL: &str = r#"{"cxone":{"client_id":"cx-id","client_secret":"cx-s3cret","extra":1},
        "salesforce":{"client_id":"sf-id","client_secret":"sf-s3cret"},"unknown":true}"#;

    #[test]
    fn parses_and_ignores_unknown_keys() {
        let c = Credentials::parse("s", FULL).unwrap();
        assert_eq!(c.cxone.client_id, "cx-id");
        assert_eq!(c.salesforce.client_secret.expose_secret(), "sf-s3cret");
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let c = Credentials::parse("s", FULL).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn missing_key_is_named_without_values() {
        let err = Credentials::parse(
            "s",
            r#"{"cxone":{"client_id":"a","client_secret":"zzz"},"salesforce":{"client_id":"b"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("salesforce.client_secret"), "{err}");
        assert!(!err.contains("zzz"));
        let err = Credentials::parse("s", "not json").unwrap_err().to_string();
        assert!(err.contains("not valid JSON"));
    }
}
