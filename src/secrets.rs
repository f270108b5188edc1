//! Credentials for both platforms, read from one Secrets Manager secret. The CXone half has
//! the shape the configured API needs: an OAuth client for the guide's API, an OAuth client plus
//! an API user's access key for the Admin API.
//!
//! Secret values never reach a log line: they are [`SecretString`]s, whose `Debug` is redacted
//! and whose value is read only through `expose_secret`, and parse errors name the missing key,
//! never a value.

use crate::config::CxoneApi;
use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;

/// An OAuth client id and secret.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// What the Admin API's password grant needs: the registered OAuth client, and the access key of
/// the CXone API user whose role decides what the sync may read.
#[derive(Clone, Debug)]
pub struct AccessKeyCredentials {
    pub client: ClientCredentials,
    pub access_key_id: SecretString,
    pub access_key_secret: SecretString,
}

/// The CXone half of the secret, in the shape the configured API needs.
#[derive(Clone, Debug)]
pub enum CxoneCredentials {
    /// `admin`: `{"client_id", "client_secret", "access_key_id", "access_key_secret"}`.
    AccessKey(AccessKeyCredentials),
    /// `guide`: `{"client_id", "client_secret"}`.
    Client(ClientCredentials),
}

/// Which shape the `cxone` object of the secret has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CxoneSecretShape {
    AccessKey,
    Client,
}

impl From<&CxoneApi> for CxoneSecretShape {
    fn from(api: &CxoneApi) -> Self {
        match api {
            CxoneApi::Admin(_) => Self::AccessKey,
            CxoneApi::Guide(_) => Self::Client,
        }
    }
}

/// The parsed secret: `{"cxone": {...}, "salesforce": {"client_id", "client_secret"}}`.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub cxone: CxoneCredentials,
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
    /// Parses the secret's JSON text, expecting the CXone credentials in `shape`. Unknown keys
    /// are ignored.
    pub fn parse(
        secret_id: &str,
        text: &str,
        shape: CxoneSecretShape,
    ) -> Result<Self, SecretError> {
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
        let cxone = match shape {
            CxoneSecretShape::AccessKey => CxoneCredentials::AccessKey(AccessKeyCredentials {
                client: client("cxone")?,
                access_key_id: field("cxone", "access_key_id")?.into(),
                access_key_secret: field("cxone", "access_key_secret")?.into(),
            }),
            CxoneSecretShape::Client => CxoneCredentials::Client(client("cxone")?),
        };
        Ok(Self {
            cxone,
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
    shape: CxoneSecretShape,
}

impl SecretsManagerSource {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        shape: CxoneSecretShape,
    ) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            shape,
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
        Credentials::parse(&self.secret_id, text, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const FULL: &str = r#"{"cxone":{"client_id":"cx-id","client_secret":"cx-s3cret","extra":1},
        "salesforce":{"client_id":"sf-id","client_secret":"sf-s3cret"},"unknown":true}"#;

    const ADMIN: &str = r#"{"cxone":{"client_id":"cx-id","client_secret":"cx-s3cret",
        "access_key_id":"AK-ID=","access_key_secret":"ak-s3cret=="},
        "salesforce":{"client_id":"sf-id","client_secret":"sf-s3cret"}}"#;

    /// The guide's shape parses as today, ignoring unknown keys.
    #[test]
    fn parses_and_ignores_unknown_keys() {
        let c = Credentials::parse("s", FULL, CxoneSecretShape::Client).unwrap();
        let CxoneCredentials::Client(cxone) = &c.cxone else {
            panic!("{:?}", c.cxone)
        };
        assert_eq!(cxone.client_id, "cx-id");
        assert_eq!(c.salesforce.client_secret.expose_secret(), "sf-s3cret");
    }

    /// The admin shape carries the OAuth client and the API user's access key.
    #[test]
    fn the_admin_shape_carries_the_access_key() {
        let c = Credentials::parse("s", ADMIN, CxoneSecretShape::AccessKey).unwrap();
        let CxoneCredentials::AccessKey(cxone) = &c.cxone else {
            panic!("{:?}", c.cxone)
        };
        assert_eq!(cxone.client.client_id, "cx-id");
        assert_eq!(cxone.access_key_id.expose_secret(), "AK-ID=");
        assert_eq!(cxone.access_key_secret.expose_secret(), "ak-s3cret==");
    }

    /// Neither shape's `Debug` prints a secret value.
    #[test]
    fn debug_never_shows_secret_values() {
        for (text, shape) in [
            (FULL, CxoneSecretShape::Client),
            (ADMIN, CxoneSecretShape::AccessKey),
        ] {
            let c = Credentials::parse("s", text, shape).unwrap();
            let printed = format!("{c:?}");
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(!printed.contains("AK-ID"), "{printed}");
            assert!(printed.contains("[REDACTED]"), "{printed}");
        }
    }

    /// A missing key is named, and no value of the secret appears in the message.
    #[test]
    fn missing_key_is_named_without_values() {
        let err = Credentials::parse(
            "s",
            r#"{"cxone":{"client_id":"a","client_secret":"zzz"},"salesforce":{"client_id":"b"}}"#,
            CxoneSecretShape::Client,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("salesforce.client_secret"), "{err}");
        assert!(!err.contains("zzz"));
        let err = Credentials::parse("s", "not json", CxoneSecretShape::Client)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"));
    }

    /// An admin secret without `access_key_secret` is refused naming that key, never printing
    /// the values it does hold; the guide's shape is refused by the admin source the same way.
    #[test]
    fn an_admin_secret_missing_the_access_key_secret_is_named() {
        let text = r#"{"cxone":{"client_id":"cx-id","client_secret":"cx-s3cret",
            "access_key_id":"AK-ID="},"salesforce":{"client_id":"sf-id","client_secret":"sf-s3cret"}}"#;
        let err = Credentials::parse("s", text, CxoneSecretShape::AccessKey)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cxone.access_key_secret"), "{err}");
        for value in ["cx-s3cret", "AK-ID", "sf-s3cret"] {
            assert!(!err.contains(value), "{err}");
        }
        let err = Credentials::parse("s", FULL, CxoneSecretShape::AccessKey)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cxone.access_key_id"), "{err}");
    }
}
