//! Configuration from environment variables, validated once at start, grouped by concern: the
//! AWS resources, CXone, Salesforce, the sync's rules, HTTP and metrics. Each client is built
//! from its own section.
//!
//! A missing or malformed value fails at start with a message naming the variable.

use crate::domain::quote;
use crate::http::{join, parse_url};
use crate::record::Target;
use reqwest::Url;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Every setting of the function. Field docs name the variable and its default.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub aws: AwsResources,
    pub cxone: CxoneSettings,
    pub salesforce: SalesforceSettings,
    pub sync: SyncRules,
    pub http: HttpSettings,
    pub metrics: MetricsSettings,
}

/// Where the sync keeps its credentials, state and dead letters.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsResources {
    /// `SECRET_ID` (required).
    pub secret_id: String,
    /// `STATE_TABLE` (required).
    pub state_table: String,
    /// `DLQ_URL` (required).
    pub dlq_url: String,
    /// `PARKING_URL` (unset): where redrive parks messages that keep failing.
    pub parking_url: Option<String>,
}

/// The CXone API the codes come from.
#[derive(Clone, Debug, PartialEq)]
pub struct CxoneSettings {
    /// `CXONE_API` (`admin`): which API, and where it is.
    pub api: CxoneApi,
    /// `CXONE_PAGE_SIZE` (100): `top` (admin; 100 after a server refuses a larger one) or `pageSize` (guide).
    pub page_size: u32,
    /// `CXONE_RETRY_AFTER_DEFAULT_SECONDS` (60): wait after a 429 that has no `Retry-After`.
    pub default_retry_after: Duration,
    /// `CXONE_MAX_IN_FLIGHT` (4, 1–16): list page requests in flight at once; one at a time for
    /// the rest of a cycle once CXone throttles.
    pub max_in_flight: u32,
}

/// The two CXone APIs the sync can read.
#[derive(Clone, Debug, PartialEq)]
pub enum CxoneApi {
    /// `CXONE_API=admin`: the real CXone Admin API, found through OIDC discovery.
    Admin(AdminApi),
    /// `CXONE_API=guide`: the API the implementation guide describes.
    Guide(GuideApi),
}

/// Where the CXone Admin API is.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminApi {
    /// `CXONE_ISSUER` (`https://cxone.niceincontact.com`): the OIDC issuer, whose
    /// `/.well-known/openid-configuration` names the token endpoint and whose
    /// `/.well-known/cxone-configuration` names the tenant's API host.
    pub issuer: Url,
    /// `CXONE_API_ENDPOINT` (discovered): the tenant's API host, when it is not to be discovered.
    pub api_endpoint: Option<Url>,
    /// `CXONE_API_VERSION` (`30.0`).
    pub api_version: ApiVersion,
}

/// Where the guide's API is.
#[derive(Clone, Debug, PartialEq)]
pub struct GuideApi {
    /// `CXONE_BASE_URL` (`https://platform.nice-incontact.com`).
    pub base_url: Url,
    /// `CXONE_TOKEN_URL` (`{CXONE_BASE_URL}/oauth/token`).
    pub token_url: Url,
}

/// The version of the Admin API's `/inContactAPI/services/vNN.0/` paths: a whole major number,
/// because CXone publishes its versions as `N.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiVersion(u32);

impl ApiVersion {
    /// Parses `N.0` (a leading `v` is tolerated).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw
            .strip_prefix(['v', 'V'])
            .unwrap_or(raw)
            .strip_suffix(".0")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        match digits.and_then(|d| d.parse::<u32>().ok()) {
            Some(major) if major > 0 => Ok(Self(major)),
            _ => Err(format!("expected a version like 30.0, got {raw:?}")),
        }
    }

    /// The path segment: `v30.0`.
    pub fn segment(self) -> String {
        format!("v{}.0", self.0)
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.0", self.0)
    }
}

/// The Salesforce org and object the codes go to, and how hard the sync may use its API.
#[derive(Clone, Debug, PartialEq)]
pub struct SalesforceSettings {
    /// `SF_LOGIN_URL` (required): the org's My Domain.
    pub login_url: Url,
    /// `SF_API_VERSION` (`58.0`).
    pub api_version: String,
    /// `SF_OBJECT` (`Disposition__c`) and `SF_EXTERNAL_ID_FIELD` (`CXone_DispositionId__c`).
    pub target: Target,
    /// `SF_BATCH_SIZE` (200, at most 200).
    pub batch_size: usize,
    /// `SF_MAX_IN_FLIGHT` (8): upsert calls in flight at once (measured: see the README).
    pub max_in_flight: usize,
    /// `SF_TOKEN_TTL_SECONDS` (7200): Salesforce returns no `expires_in`.
    pub token_ttl: Duration,
    /// `SF_API_BUDGET_PERCENT` (80).
    pub api_budget_percent: u32,
}

/// What one sync does, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncRules {
    /// `SYNC_ID` (`dispositions`): the `pk` of this sync's state item.
    pub sync_id: String,
    /// `OVERLAP_SECONDS` (60).
    pub overlap: Duration,
    /// `CLOCK_SKEW_SECONDS` (5, at most 300): how far CXone's clock may run ahead of ours.
    pub clock_skew: Duration,
    /// `FULL_RECONCILE_HOURS` (24).
    pub full_reconcile: Duration,
    /// `MIN_POLL_INTERVAL_SECONDS` (30).
    pub min_poll_interval: Duration,
    /// `RECORD_MAX_ATTEMPTS` (3).
    pub record_max_attempts: u32,
    /// `MAX_ARCHIVE_PERCENT` (20).
    pub max_archive_percent: u32,
    /// `CATEGORY_ALIASES` (`{}`): CXone category → Salesforce picklist value.
    pub category_aliases: BTreeMap<String, String>,
    /// `RETENTION_DAYS` (365, at least 365).
    pub retention_days: u32,
    /// `PURGE_ENABLED` (false).
    pub purge_enabled: bool,
    /// `REDRIVE_MAX_ATTEMPTS` (5).
    pub redrive_max_attempts: u32,
}

/// How every HTTP call behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// `HTTP_TIMEOUT_SECONDS` (30): every HTTP call has a timeout.
    pub timeout: Duration,
    /// `RETRY_BASE_DELAY_MS` (1000): the first step of every backoff (linear `attempt × base`
    /// for records, exponential with jitter for failed requests).
    pub retry_base_delay: Duration,
}

/// The per-cycle CloudWatch metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSettings {
    /// `METRICS_NAMESPACE` (`DispositionSync`): CloudWatch namespace of the per-cycle metrics.
    pub namespace: String,
    /// `SERVICE_NAME` (`disposition-sync`): value of the metrics' `Service` dimension, which the
    /// alarms select on (the stack name when deployed).
    pub service_name: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        Ok(Self {
            aws: AwsResources::read(&env)?,
            cxone: CxoneSettings::read(&env)?,
            salesforce: SalesforceSettings::read(&env)?,
            sync: SyncRules::read(&env)?,
            http: HttpSettings::read(&env)?,
            metrics: MetricsSettings::read(&env)?,
        })
    }
}

/// The variables, read with the rules every section shares. Empty values count as unset,
/// because SAM turns unset template values into empty strings.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A whole number within `range` (`default` when unset). Every number has an upper bound, so
    /// no duration computed from one can overflow, and nothing is silently cut to fit a type.
    fn number(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        let n = v.parse::<u64>().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("expected a non-negative whole number, got {}", quote(&v)),
        })?;
        if !range.contains(&n) {
            let reason = match (range.start(), range.end()) {
                (0, max) => format!("must be at most {max}, got {n}"),
                (min, max) => format!("must be between {min} and {max}, got {n}"),
            };
            return Err(ConfigError::Invalid { name, reason });
        }
        Ok(n)
    }

    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    fn percent(&self, name: &'static str, default: u64) -> Result<u32, ConfigError> {
        Ok(self.number(name, default, 1..=100)? as u32)
    }

    fn url(&self, name: &'static str, default: Option<Url>) -> Result<Url, ConfigError> {
        match (self.get(name), default) {
            (Some(v), _) => parse_url(name, &v),
            (None, Some(url)) => Ok(url),
            (None, None) => Err(ConfigError::Missing(name)),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                name,
                reason: format!("expected true or false, got {}", quote(&v)),
            }),
        }
    }
}

impl AwsResources {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let dlq_url = env.required("DLQ_URL")?;
        parse_url("DLQ_URL", &dlq_url)?;
        let parking_url = env.get("PARKING_URL");
        if let Some(p) = &parking_url {
            parse_url("PARKING_URL", p)?;
        }
        Ok(Self {
            secret_id: env.required("SECRET_ID")?,
            state_table: env.required("STATE_TABLE")?,
            dlq_url,
            parking_url,
        })
    }
}

impl CxoneSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let api = match env.text("CXONE_API", "admin").to_ascii_lowercase().as_str() {
            "admin" => {
                let default_issuer = Url::parse("https://cxone.niceincontact.com").ok();
                let api_version = env.text("CXONE_API_VERSION", "30.0");
                CxoneApi::Admin(AdminApi {
                    issuer: env.url("CXONE_ISSUER", default_issuer)?,
                    api_endpoint: env
                        .get("CXONE_API_ENDPOINT")
                        .map(|v| parse_url("CXONE_API_ENDPOINT", &v))
                        .transpose()?,
                    api_version: ApiVersion::parse(&api_version).map_err(|reason| {
                        ConfigError::Invalid {
                            name: "CXONE_API_VERSION",
                            reason,
                        }
                    })?,
                })
            }
            "guide" => {
                let default_base = Url::parse("https://platform.nice-incontact.com").ok();
                let base_url = env.url("CXONE_BASE_URL", default_base)?;
                let token_url = env.url("CXONE_TOKEN_URL", Some(join(&base_url, "oauth/token")))?;
                CxoneApi::Guide(GuideApi {
                    base_url,
                    token_url,
                })
            }
            other => {
                return Err(ConfigError::Invalid {
                    name: "CXONE_API",
                    reason: format!("expected admin or guide, got {}", quote(other)),
                });
            }
        };
        Ok(Self {
            api,
            page_size: env.number("CXONE_PAGE_SIZE", 100, 1..=10_000)? as u32,
            default_retry_after: env.seconds("CXONE_RETRY_AFTER_DEFAULT_SECONDS", 60, 0..=900)?,
            max_in_flight: env.number("CXONE_MAX_IN_FLIGHT", 4, 1..=16)? as u32,
        })
    }
}

impl SalesforceSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let login_url = env.url("SF_LOGIN_URL", None)?;
        if let Some(host) = login_url.host_str()
            && (host.eq_ignore_ascii_case("login.salesforce.com")
                || host.eq_ignore_ascii_case("test.salesforce.com"))
        {
            return Err(ConfigError::Invalid {
                name: "SF_LOGIN_URL",
                reason: "the client-credentials flow needs the org's My Domain URL \
                         (https://<domain>.my.salesforce.com), not login/test.salesforce.com"
                    .into(),
            });
        }
        let api_version = env.text("SF_API_VERSION", "58.0");
        match api_version
            .split_once('.')
            .map(|(a, b)| (a.parse::<u32>(), b.parse::<u32>()))
        {
            Some((Ok(major), Ok(_))) if major >= 46 => {}
            _ => {
                return Err(ConfigError::Invalid {
                    name: "SF_API_VERSION",
                    reason: format!(
                        "expected a version like 58.0, at least 46.0 (sObject Collections upsert), got {}",
                        quote(&api_version)
                    ),
                });
            }
        }
        let batch_size = env.number("SF_BATCH_SIZE", 200, 0..=u64::MAX)?;
        if !(1..=200).contains(&batch_size) {
            return Err(ConfigError::Invalid {
                name: "SF_BATCH_SIZE",
                reason: format!(
                    "must be between 1 and 200 (the sObject Collections limit), got {batch_size}"
                ),
            });
        }
        Ok(Self {
            login_url,
            api_version,
            target: Target {
                object: env.text("SF_OBJECT", "Disposition__c"),
                external_id_field: env.text("SF_EXTERNAL_ID_FIELD", "CXone_DispositionId__c"),
            },
            batch_size: batch_size as usize,
            max_in_flight: env.number("SF_MAX_IN_FLIGHT", 8, 1..=25)? as usize,
            token_ttl: env.seconds("SF_TOKEN_TTL_SECONDS", 7200, 1..=86_400)?,
            api_budget_percent: env.percent("SF_API_BUDGET_PERCENT", 80)?,
        })
    }
}

impl SyncRules {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let category_aliases = match env.get("CATEGORY_ALIASES") {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str::<BTreeMap<String, String>>(&v).map_err(|e| {
                ConfigError::Invalid {
                    name: "CATEGORY_ALIASES",
                    reason: format!("expected a JSON object of strings: {e}"),
                }
            })?,
        };
        Ok(Self {
            sync_id: env.text("SYNC_ID", "dispositions"),
            overlap: env.seconds("OVERLAP_SECONDS", 60, 0..=86_400)?,
            clock_skew: env.seconds("CLOCK_SKEW_SECONDS", 5, 0..=300)?,
            full_reconcile: Duration::from_secs(
                env.number("FULL_RECONCILE_HOURS", 24, 1..=8_760)? * 3600,
            ),
            min_poll_interval: env.seconds("MIN_POLL_INTERVAL_SECONDS", 30, 0..=86_400)?,
            record_max_attempts: env.number("RECORD_MAX_ATTEMPTS", 3, 1..=10)? as u32,
            max_archive_percent: env.percent("MAX_ARCHIVE_PERCENT", 20)?,
            category_aliases,
            retention_days: env.number("RETENTION_DAYS", 365, 365..=36_500)? as u32,
            purge_enabled: env.flag("PURGE_ENABLED")?,
            redrive_max_attempts: env.number("REDRIVE_MAX_ATTEMPTS", 5, 1..=100)? as u32,
        })
    }
}

impl HttpSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            timeout: env.seconds("HTTP_TIMEOUT_SECONDS", 30, 1..=900)?,
            retry_base_delay: Duration::from_millis(env.number(
                "RETRY_BASE_DELAY_MS",
                1000,
                0..=60_000,
            )?),
        })
    }
}

impl MetricsSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        // CloudWatch drops an EMF line with an invalid namespace or dimension without a word, so
        // a bad value must stop the function at start rather than silence every alarm.
        let namespace = env.text("METRICS_NAMESPACE", "DispositionSync");
        check_namespace(&namespace).map_err(|reason| ConfigError::Invalid {
            name: "METRICS_NAMESPACE",
            reason,
        })?;
        let service_name = env.text("SERVICE_NAME", "disposition-sync");
        if service_name.chars().count() > 1024 || service_name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                name: "SERVICE_NAME",
                reason: "a CloudWatch dimension value has at most 1024 characters and no control characters".into(),
            });
        }
        Ok(Self {
            namespace,
            service_name,
        })
    }
}

/// CloudWatch's namespace rules: 1 to 255 characters among letters, digits and `. - _ / # :`
/// and space, not starting with `AWS/` (reserved for AWS services).
fn check_namespace(namespace: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if namespace.len() > 255 || !namespace.chars().all(allowed) {
        return Err(format!(
            "expected 1 to 255 letters, digits or . - _ / # : and spaces, got {}",
            quote(namespace)
        ));
    }
    if namespace.starts_with("AWS/") {
        return Err(format!(
            "the AWS/ prefix is reserved for AWS services, got {}",
            quote(namespace)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("SECRET_ID", "s"),
        ("STATE_TABLE", "t"),
        ("DLQ_URL", "http://127.0.0.1:5000/123/dlq"),
        ("SF_LOGIN_URL", "https://acme.my.salesforce.com"),
    ];

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(c.sync.sync_id, "dispositions");
        assert_eq!(
            c.cxone.api,
            CxoneApi::Admin(AdminApi {
                issuer: Url::parse("https://cxone.niceincontact.com").unwrap(),
                api_endpoint: None,
                api_version: ApiVersion(30),
            })
        );
        assert_eq!(c.salesforce.api_version, "58.0");
        assert_eq!(
            (
                c.cxone.page_size,
                c.salesforce.batch_size,
                c.sync.record_max_attempts,
                c.cxone.max_in_flight
            ),
            (100, 200, 3, 4)
        );
        assert_eq!(c.sync.overlap, Duration::from_secs(60));
        assert_eq!(c.sync.full_reconcile, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn missing_and_malformed_values_are_named() {
        let no_secret: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "SECRET_ID")
            .collect();
        assert_eq!(
            Config::from_lookup(env(&no_secret)).unwrap_err(),
            ConfigError::Missing("SECRET_ID")
        );
        let mut bad = BASE.to_vec();
        bad.push(("SF_BATCH_SIZE", "500"));
        assert!(
            Config::from_lookup(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("SF_BATCH_SIZE")
        );
        let mut bad = BASE.to_vec();
        bad.push(("OVERLAP_SECONDS", "soon"));
        assert!(
            Config::from_lookup(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("OVERLAP_SECONDS")
        );
    }

    /// The guide's API keeps its two URLs and their defaults.
    #[test]
    fn the_guide_source_keeps_its_urls() {
        let mut guide = BASE.to_vec();
        guide.push(("CXONE_API", "guide"));
        let c = Config::from_lookup(env(&guide)).unwrap();
        assert_eq!(
            c.cxone.api,
            CxoneApi::Guide(GuideApi {
                base_url: Url::parse("https://platform.nice-incontact.com").unwrap(),
                token_url: Url::parse("https://platform.nice-incontact.com/oauth/token").unwrap(),
            })
        );
    }

    /// The admin source's settings are read and checked: issuer, endpoint override, version.
    #[test]
    fn the_admin_source_settings_are_validated() {
        let mut admin = BASE.to_vec();
        admin.extend([
            ("CXONE_API", "admin"),
            ("CXONE_ISSUER", "http://127.0.0.1:9100"),
            ("CXONE_API_ENDPOINT", "https://api-na1.niceincontact.com"),
            ("CXONE_API_VERSION", "25.0"),
            ("CXONE_PAGE_SIZE", "50"),
        ]);
        let c = Config::from_lookup(env(&admin)).unwrap();
        assert_eq!(
            c.cxone.api,
            CxoneApi::Admin(AdminApi {
                issuer: Url::parse("http://127.0.0.1:9100").unwrap(),
                api_endpoint: Some(Url::parse("https://api-na1.niceincontact.com").unwrap()),
                api_version: ApiVersion(25),
            })
        );
        assert_eq!(c.cxone.page_size, 50);
        for (name, value) in [
            ("CXONE_API", "real"),
            ("CXONE_API_VERSION", "30.1"),
            ("CXONE_API_VERSION", "30"),
            ("CXONE_API_VERSION", "0.0"),
            ("CXONE_ISSUER", "http://cxone.example.com"),
            ("CXONE_API_ENDPOINT", "http://api.example.com"),
        ] {
            let mut bad = BASE.to_vec();
            bad.push((name, value));
            let err = Config::from_lookup(env(&bad)).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
        assert_eq!(ApiVersion::parse("v33.0").unwrap().segment(), "v33.0");
    }

    #[test]
    fn every_number_has_an_upper_bound_named_in_the_error() {
        for (name, huge) in [
            ("OVERLAP_SECONDS", "9000000000000"),
            ("OVERLAP_SECONDS", "18446744073709551615"),
            ("HTTP_TIMEOUT_SECONDS", "18446744073709551615"),
            ("SF_TOKEN_TTL_SECONDS", "18446744073709551615"),
            ("FULL_RECONCILE_HOURS", "18446744073709551615"),
            ("RECORD_MAX_ATTEMPTS", "4294967296"),
            ("RETENTION_DAYS", "4294967296"),
            ("REDRIVE_MAX_ATTEMPTS", "4294967296"),
            ("CXONE_PAGE_SIZE", "4294967296"),
            ("SF_MAX_IN_FLIGHT", "1000000"),
            ("CXONE_MAX_IN_FLIGHT", "17"),
            ("CXONE_MAX_IN_FLIGHT", "0"),
            ("RETRY_BASE_DELAY_MS", "60001"),
            ("MIN_POLL_INTERVAL_SECONDS", "99999999999"),
            ("CXONE_RETRY_AFTER_DEFAULT_SECONDS", "99999999999"),
            ("CLOCK_SKEW_SECONDS", "301"),
        ] {
            let mut vars = BASE.to_vec();
            vars.push((name, huge));
            let err = Config::from_lookup(env(&vars)).unwrap_err().to_string();
            assert!(
                err.starts_with(name) && err.contains("must be"),
                "{name}={huge}: {err}"
            );
        }
    }

    #[test]
    fn an_offending_value_is_quoted_short() {
        let huge = "x".repeat(100_000);
        let mut vars = BASE.to_vec();
        vars.push(("OVERLAP_SECONDS", &huge));
        let err = Config::from_lookup(env(&vars)).unwrap_err().to_string();
        assert!(
            err.starts_with("OVERLAP_SECONDS") && err.len() < 300,
            "{err}"
        );
    }

    #[test]
    fn http_is_refused_except_on_loopback() {
        let mut bad = BASE.to_vec();
        bad.push(("CXONE_API", "guide"));
        bad.push(("CXONE_BASE_URL", "http://cxone.example.com"));
        assert!(
            Config::from_lookup(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("CXONE_BASE_URL")
        );
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            let mut good = BASE.to_vec();
            good.push(("CXONE_API", "guide"));
            good.push(("CXONE_BASE_URL", ok));
            assert!(Config::from_lookup(env(&good)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn metrics_labels_default_to_the_template_values_and_are_checked() {
        let c = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(
            (
                c.metrics.namespace.as_str(),
                c.metrics.service_name.as_str()
            ),
            ("DispositionSync", "disposition-sync")
        );
        let mut custom = BASE.to_vec();
        custom.extend([
            ("METRICS_NAMESPACE", "Acme/Sync"),
            ("SERVICE_NAME", "disposition-sync-prod"),
        ]);
        let c = Config::from_lookup(env(&custom)).unwrap();
        assert_eq!(
            (
                c.metrics.namespace.as_str(),
                c.metrics.service_name.as_str()
            ),
            ("Acme/Sync", "disposition-sync-prod")
        );
        for bad in ["AWS/Lambda", "Sync{1}", &"N".repeat(256)] {
            let mut env_vars = BASE.to_vec();
            env_vars.push(("METRICS_NAMESPACE", bad));
            assert!(
                Config::from_lookup(env(&env_vars))
                    .unwrap_err()
                    .to_string()
                    .contains("METRICS_NAMESPACE"),
                "{bad}"
            );
        }
    }

    #[test]
    fn login_salesforce_com_is_refused_for_client_credentials() {
        let mut bad: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "SF_LOGIN_URL")
            .collect();
        bad.push(("SF_LOGIN_URL", "https://login.salesforce.com"));
        assert!(
            Config::from_lookup(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("My Domain")
        );
    }
}
