//! Configuration from environment variables, validated once at start.
//!
//! A missing or malformed required value fails with a message naming the variable.

use crate::http::{join, parse_url};
use reqwest::Url;
use std::collections::BTreeMap;
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
    /// `SECRET_ID` (required).
    pub secret_id: String,
    /// `STATE_TABLE` (required).
    pub state_table: String,
    /// `DLQ_URL` (required).
    pub dlq_url: String,
    /// `SYNC_ID` (`dispositions`): the `pk` of this sync's state item.
    pub sync_id: String,
    /// `CXONE_BASE_URL` (`https://platform.nice-incontact.com`).
    pub cxone_base_url: Url,
    /// `CXONE_TOKEN_URL` (`{CXONE_BASE_URL}/oauth/token`).
    pub cxone_token_url: Url,
    /// `SF_LOGIN_URL` (required): the org's My Domain.
    pub sf_login_url: Url,
    /// `SF_API_VERSION` (`58.0`).
    pub sf_api_version: String,
    /// `SF_OBJECT` (`Disposition__c`).
    pub sf_object: String,
    /// `SF_EXTERNAL_ID_FIELD` (`CXone_DispositionId__c`).
    pub sf_external_id_field: String,
    /// `OVERLAP_SECONDS` (60).
    pub overlap: Duration,
    /// `CLOCK_SKEW_SECONDS` (5, at most 300): how far CXone's clock may run ahead of ours.
    pub clock_skew: Duration,
    /// `FULL_RECONCILE_HOURS` (24).
    pub full_reconcile: Duration,
    /// `CXONE_PAGE_SIZE` (100).
    pub cxone_page_size: u32,
    /// `SF_BATCH_SIZE` (200, at most 200).
    pub sf_batch_size: usize,
    /// `SF_MAX_IN_FLIGHT` (4): upsert calls in flight at once.
    pub sf_max_in_flight: usize,
    /// `RECORD_MAX_ATTEMPTS` (3).
    pub record_max_attempts: u32,
    /// `RETRY_BASE_DELAY_MS` (1000): linear backoff `attempt × base`.
    pub retry_base_delay: Duration,
    /// `CXONE_RETRY_AFTER_DEFAULT_SECONDS` (60): wait after a 429 that has no `Retry-After`.
    pub cxone_default_retry_after: Duration,
    /// `HTTP_TIMEOUT_SECONDS` (30): every HTTP call has a timeout.
    pub http_timeout: Duration,
    /// `SF_TOKEN_TTL_SECONDS` (7200): Salesforce returns no `expires_in`.
    pub sf_token_ttl: Duration,
    /// `MIN_POLL_INTERVAL_SECONDS` (30).
    pub min_poll_interval: Duration,
    /// `SF_API_BUDGET_PERCENT` (80).
    pub sf_api_budget_percent: u32,
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
    /// `PARKING_URL` (unset): where redrive parks messages that keep failing.
    pub parking_url: Option<String>,
    /// `METRICS_NAMESPACE` (`DispositionSync`): CloudWatch namespace of the per-cycle metrics.
    pub metrics_namespace: String,
    /// `SERVICE_NAME` (`disposition-sync`): value of the metrics' `Service` dimension, which the
    /// alarms select on (the stack name when deployed).
    pub service_name: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests). Empty values count
    /// as unset, because SAM turns unset template values into empty strings.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: format!("expected a non-negative whole number, got {v:?}"),
                }),
            }
        };
        let url = |name: &'static str, value: String| parse_url(name, &value);

        let cxone_base_url = url(
            "CXONE_BASE_URL",
            get("CXONE_BASE_URL").unwrap_or_else(|| "https://platform.nice-incontact.com".into()),
        )?;
        let cxone_token_url = match get("CXONE_TOKEN_URL") {
            Some(v) => url("CXONE_TOKEN_URL", v)?,
            None => join(&cxone_base_url, "oauth/token"),
        };
        let sf_login_url = url("SF_LOGIN_URL", required("SF_LOGIN_URL")?)?;
        if let Some(host) = sf_login_url.host_str()
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
        let sf_api_version = get("SF_API_VERSION").unwrap_or_else(|| "58.0".into());
        match sf_api_version
            .split_once('.')
            .map(|(a, b)| (a.parse::<u32>(), b.parse::<u32>()))
        {
            Some((Ok(major), Ok(_))) if major >= 46 => {}
            _ => {
                return Err(ConfigError::Invalid {
                    name: "SF_API_VERSION",
                    reason: format!(
                        "expected a version like 58.0, at least 46.0 (sObject Collections upsert), got {sf_api_version:?}"
                    ),
                });
            }
        }
        let sf_batch_size = number("SF_BATCH_SIZE", 200)?;
        if !(1..=200).contains(&sf_batch_size) {
            return Err(ConfigError::Invalid {
                name: "SF_BATCH_SIZE",
                reason: format!(
                    "must be between 1 and 200 (the sObject Collections limit), got {sf_batch_size}"
                ),
            });
        }
        let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            let v = number(name, default)?;
            if v == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
            Ok(v)
        };
        let percent = |name: &'static str, default: u64| -> Result<u32, ConfigError> {
            let v = number(name, default)?;
            if !(1..=100).contains(&v) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("must be between 1 and 100, got {v}"),
                });
            }
            Ok(v as u32)
        };
        let category_aliases = match get("CATEGORY_ALIASES") {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str::<BTreeMap<String, String>>(&v).map_err(|e| {
                ConfigError::Invalid {
                    name: "CATEGORY_ALIASES",
                    reason: format!("expected a JSON object of strings: {e}"),
                }
            })?,
        };
        let clock_skew = number("CLOCK_SKEW_SECONDS", 5)?;
        if clock_skew > 300 {
            return Err(ConfigError::Invalid {
                name: "CLOCK_SKEW_SECONDS",
                reason: format!("must be at most 300, got {clock_skew}"),
            });
        }
        let retention_days = number("RETENTION_DAYS", 365)?;
        if retention_days < 365 {
            return Err(ConfigError::Invalid {
                name: "RETENTION_DAYS",
                reason: format!("must be at least 365, got {retention_days}"),
            });
        }
        let purge_enabled = match get("PURGE_ENABLED").as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: "PURGE_ENABLED",
                    reason: format!("expected true or false, got {v:?}"),
                });
            }
        };
        let parking_url = get("PARKING_URL");
        if let Some(p) = &parking_url {
            parse_url("PARKING_URL", p)?;
        }
        let dlq_url = required("DLQ_URL")?;
        parse_url("DLQ_URL", &dlq_url)?;
        // CloudWatch drops an EMF line with an invalid namespace or dimension without a word, so
        // a bad value must stop the function at start rather than silence every alarm.
        let metrics_namespace =
            get("METRICS_NAMESPACE").unwrap_or_else(|| "DispositionSync".into());
        check_namespace(&metrics_namespace).map_err(|reason| ConfigError::Invalid {
            name: "METRICS_NAMESPACE",
            reason,
        })?;
        let service_name = get("SERVICE_NAME").unwrap_or_else(|| "disposition-sync".into());
        if service_name.chars().count() > 1024 || service_name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                name: "SERVICE_NAME",
                reason: "a CloudWatch dimension value has at most 1024 characters and no control characters".into(),
            });
        }

        Ok(Self {
            secret_id: required("SECRET_ID")?,
            state_table: required("STATE_TABLE")?,
            dlq_url,
            sync_id: get("SYNC_ID").unwrap_or_else(|| "dispositions".into()),
            cxone_base_url,
            cxone_token_url,
            sf_login_url,
            sf_api_version,
            sf_object: get("SF_OBJECT").unwrap_or_else(|| "Disposition__c".into()),
            sf_external_id_field: get("SF_EXTERNAL_ID_FIELD")
                .unwrap_or_else(|| "CXone_DispositionId__c".into()),
            overlap: Duration::from_secs(number("OVERLAP_SECONDS", 60)?),
            clock_skew: Duration::from_secs(clock_skew),
            full_reconcile: Duration::from_secs(positive("FULL_RECONCILE_HOURS", 24)? * 3600),
            cxone_page_size: positive("CXONE_PAGE_SIZE", 100)?.min(u32::MAX as u64) as u32,
            sf_batch_size: sf_batch_size as usize,
            sf_max_in_flight: positive("SF_MAX_IN_FLIGHT", 4)? as usize,
            record_max_attempts: positive("RECORD_MAX_ATTEMPTS", 3)? as u32,
            retry_base_delay: Duration::from_millis(number("RETRY_BASE_DELAY_MS", 1000)?),
            cxone_default_retry_after: Duration::from_secs(number(
                "CXONE_RETRY_AFTER_DEFAULT_SECONDS",
                60,
            )?),
            http_timeout: Duration::from_secs(positive("HTTP_TIMEOUT_SECONDS", 30)?),
            sf_token_ttl: Duration::from_secs(positive("SF_TOKEN_TTL_SECONDS", 7200)?),
            min_poll_interval: Duration::from_secs(number("MIN_POLL_INTERVAL_SECONDS", 30)?),
            sf_api_budget_percent: percent("SF_API_BUDGET_PERCENT", 80)?,
            max_archive_percent: percent("MAX_ARCHIVE_PERCENT", 20)?,
            category_aliases,
            retention_days: retention_days as u32,
            purge_enabled,
            redrive_max_attempts: positive("REDRIVE_MAX_ATTEMPTS", 5)? as u32,
            parking_url,
            metrics_namespace,
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
            "expected 1 to 255 letters, digits or . - _ / # : and spaces, got {namespace:?}"
        ));
    }
    if namespace.starts_with("AWS/") {
        return Err(format!(
            "the AWS/ prefix is reserved for AWS services, got {namespace:?}"
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
        assert_eq!(c.sync_id, "dispositions");
        assert_eq!(
            c.cxone_token_url.as_str(),
            "https://platform.nice-incontact.com/oauth/token"
        );
        assert_eq!(c.sf_api_version, "58.0");
        assert_eq!(
            (c.cxone_page_size, c.sf_batch_size, c.record_max_attempts),
            (100, 200, 3)
        );
        assert_eq!(c.overlap, Duration::from_secs(60));
        assert_eq!(c.full_reconcile, Duration::from_secs(24 * 3600));
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

    #[test]
    fn http_is_refused_except_on_loopback() {
        let mut bad = BASE.to_vec();
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
            good.push(("CXONE_BASE_URL", ok));
            assert!(Config::from_lookup(env(&good)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn metrics_labels_default_to_the_template_values_and_are_checked() {
        let c = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(
            (c.metrics_namespace.as_str(), c.service_name.as_str()),
            ("DispositionSync", "disposition-sync")
        );
        let mut custom = BASE.to_vec();
        custom.extend([
            ("METRICS_NAMESPACE", "Acme/Sync"),
            ("SERVICE_NAME", "disposition-sync-prod"),
        ]);
        let c = Config::from_lookup(env(&custom)).unwrap();
        assert_eq!(
            (c.metrics_namespace.as_str(), c.service_name.as_str()),
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
