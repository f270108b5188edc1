//! Finding the Admin API, once per client (so once per cold start): the token endpoint from the
//! issuer's OpenID configuration, the tenant from the access token's `tenantId` claim, and the
//! tenant's API host from the issuer's `cxone-configuration`, unless `CXONE_API_ENDPOINT` names
//! it. Every discovered URL obeys the same transport rule as configured ones.

use super::super::CxoneError;
use super::super::gateway::{Gateway, Reply};
use crate::config::ApiVersion;
use crate::http::{check_transport, join};
use base64::Engine as _;
use reqwest::Url;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The part of `/.well-known/openid-configuration` the sync needs.
#[derive(Deserialize)]
struct OpenIdConfiguration {
    token_endpoint: Option<String>,
}

/// The part of `/.well-known/cxone-configuration` the sync needs.
#[derive(Deserialize)]
struct CxoneConfiguration {
    api_endpoint: Option<String>,
}

/// The claims of the access token the sync reads.
#[derive(Deserialize)]
struct Claims {
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
}

pub(super) struct Discovery {
    issuer: Url,
    /// `CXONE_API_ENDPOINT`: no cxone-configuration request when set.
    api_endpoint: Option<Url>,
    version: ApiVersion,
    /// Shared with the token fetcher, which posts to it.
    token_endpoint: Arc<OnceCell<Url>>,
    /// `{api_endpoint}/inContactAPI/services/vNN.0/`.
    api_base: OnceCell<Url>,
}

impl Discovery {
    pub fn new(
        issuer: Url,
        api_endpoint: Option<Url>,
        version: ApiVersion,
        token_endpoint: Arc<OnceCell<Url>>,
    ) -> Self {
        Self {
            issuer,
            api_endpoint,
            version,
            token_endpoint,
            api_base: OnceCell::new(),
        }
    }

    /// The token endpoint the issuer names (read once).
    pub async fn token_endpoint(&self, gateway: &Gateway) -> Result<Url, CxoneError> {
        self.token_endpoint
            .get_or_try_init(|| async {
                let url = join(&self.issuer, ".well-known/openid-configuration");
                let document: OpenIdConfiguration = fetch(gateway, &url).await?;
                let endpoint = document
                    .token_endpoint
                    .ok_or_else(|| failure(&url, "the document names no token_endpoint"))?;
                checked(&url, "token_endpoint", &endpoint)
            })
            .await
            .cloned()
    }

    /// The base of every Admin API path for this tenant (found once). Discovering it takes a
    /// token: the tenant is a claim of the access token.
    pub async fn api_base(&self, gateway: &Gateway) -> Result<Url, CxoneError> {
        self.token_endpoint(gateway).await?;
        self.api_base
            .get_or_try_init(|| async {
                let endpoint = match &self.api_endpoint {
                    Some(configured) => configured.clone(),
                    None => self.discover_api_endpoint(gateway).await?,
                };
                Ok(services_base(&endpoint, self.version))
            })
            .await
            .cloned()
    }

    async fn discover_api_endpoint(&self, gateway: &Gateway) -> Result<Url, CxoneError> {
        let token = gateway.tokens().get().await?;
        let mut url = join(&self.issuer, ".well-known/cxone-configuration");
        let tenant = tenant_id(token.bearer()).map_err(|reason| failure(&url, &reason))?;
        url.query_pairs_mut().append_pair("tenantId", &tenant);
        let document: CxoneConfiguration = fetch(gateway, &url).await?;
        let endpoint = document
            .api_endpoint
            .ok_or_else(|| failure(&url, "the document names no api_endpoint"))?;
        checked(&url, "api_endpoint", &endpoint)
    }
}

/// GETs a public discovery document; any failure is a discovery failure naming `url`.
async fn fetch<T: serde::de::DeserializeOwned>(
    gateway: &Gateway,
    url: &Url,
) -> Result<T, CxoneError> {
    match gateway.get_public(url).await {
        Ok(Reply::Json(json)) => serde_json::from_str(json.get())
            .map_err(|e| failure(url, &format!("unexpected document ({e})"))),
        Ok(Reply::NotFound) => Err(failure(url, "HTTP 404")),
        Ok(Reply::NoContent) => Err(failure(url, "HTTP 204, no document")),
        Err(e) => Err(failure(url, &e.to_string())),
    }
}

fn failure(url: &Url, reason: &str) -> CxoneError {
    CxoneError::Discovery {
        url: url.to_string(),
        reason: reason.to_owned(),
    }
}

/// A URL a discovery document names, held to the same rules as a configured one.
fn checked(document: &Url, field: &str, value: &str) -> Result<Url, CxoneError> {
    let url = Url::parse(value)
        .map_err(|e| failure(document, &format!("{field} {value:?} is not a URL ({e})")))?;
    check_transport(&url).map_err(|reason| failure(document, &format!("{field}: {reason}")))?;
    Ok(url)
}

/// `{api_endpoint}/inContactAPI/services/vNN.0/`. A host given with the `/inContactAPI` suffix
/// already (as the legacy `resource_server_base_uri` was) does not get it twice.
pub(super) fn services_base(api_endpoint: &Url, version: ApiVersion) -> Url {
    let has_suffix = api_endpoint
        .path()
        .trim_end_matches('/')
        .to_ascii_lowercase()
        .ends_with("/incontactapi");
    let path = if has_suffix {
        format!("services/{}/", version.segment())
    } else {
        format!("inContactAPI/services/{}/", version.segment())
    };
    join(api_endpoint, &path)
}

/// The `tenantId` claim of an access token (a JWT). The signature is not checked: the token
/// comes straight from the token endpoint over TLS, and only tells us where to send it.
pub(super) fn tenant_id(jwt: &str) -> Result<String, String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .filter(|p| !p.is_empty())
        .ok_or("the access token is not a JWT, so it names no tenant")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token's payload is not base64url")?;
    let claims: Claims = serde_json::from_slice(&bytes)
        .map_err(|_| "the access token's payload is not a JSON object")?;
    claims
        .tenant_id
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the access token carries no tenantId claim".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            engine.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            engine.encode(claims)
        )
    }

    /// The tenant comes from the payload's `tenantId`, whatever else the token carries.
    #[test]
    fn the_tenant_is_the_tenant_id_claim() {
        let token = jwt(
            r#"{"iss":"https://cxone.niceincontact.com","tenantId":"11eb660f-1c5d-4a3e-9b1b-0242ac110002","icBUId":4607084,"exp":1}"#,
        );
        assert_eq!(
            tenant_id(&token).unwrap(),
            "11eb660f-1c5d-4a3e-9b1b-0242ac110002"
        );
    }

    /// Tokens that name no tenant are refused with a reason that does not echo the token.
    #[test]
    fn tokens_without_a_tenant_are_refused() {
        for token in [
            "opaque-token".to_owned(),
            "a.!!!.c".to_owned(),
            jwt(r#"["not", "an object"]"#),
            jwt(r#"{"sub":"user:1"}"#),
            jwt(r#"{"tenantId":""}"#),
        ] {
            let reason = tenant_id(&token).unwrap_err();
            assert!(!reason.contains(&token), "{reason}");
        }
    }

    /// The services path is added once, whether or not the host already ends in it.
    #[test]
    fn the_services_base_is_built_once() {
        let v = ApiVersion::parse("30.0").unwrap();
        for (endpoint, expected) in [
            (
                "https://api-na1.niceincontact.com",
                "https://api-na1.niceincontact.com/inContactAPI/services/v30.0/",
            ),
            (
                "https://api-na1.niceincontact.com/",
                "https://api-na1.niceincontact.com/inContactAPI/services/v30.0/",
            ),
            (
                "https://api-c32.incontact.com/inContactAPI/",
                "https://api-c32.incontact.com/inContactAPI/services/v30.0/",
            ),
        ] {
            let base = services_base(&Url::parse(endpoint).unwrap(), v);
            assert_eq!(base.as_str(), expected);
        }
    }
}
