//! Which failures are worth retrying: the one place that classifies errors.
//!
//! Salesforce publishes no list of retryable codes; this follows its error-code reference:
//! lock contention and server-side trouble pass, validation and schema errors do not.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Likely to succeed if tried again after a pause.
    Transient,
    /// Will fail the same way until someone changes data or configuration.
    Permanent,
}

/// Classifies a Salesforce error code (`statusCode` per record, `errorCode` per request).
pub fn salesforce_code(code: &str) -> Class {
    match code {
        "UNABLE_TO_LOCK_ROW"
        | "UNKNOWN_EXCEPTION"
        | "SERVER_UNAVAILABLE"
        | "REQUEST_RUNNING_TOO_LONG"
        | "QUERY_TIMEOUT"
        | "TXN_SECURITY_METERING_ERROR" => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Classifies an HTTP status from either platform (after auth and limits are handled).
pub fn http_status(status: u16) -> Class {
    match status {
        408 | 429 | 500 | 502 | 503 | 504 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Linear backoff for per-record retries: `attempt × base`.
pub fn linear(attempt: u32, base: Duration) -> Duration {
    base * attempt
}

/// Exponential backoff with full jitter for transient request failures: a random delay in
/// `[0, min(cap, base × 2^attempt)]`, so that retries from many records do not arrive together.
pub fn exponential_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_codes_from_the_reference_are_classified() {
        for code in [
            "UNABLE_TO_LOCK_ROW",
            "UNKNOWN_EXCEPTION",
            "SERVER_UNAVAILABLE",
        ] {
            assert_eq!(salesforce_code(code), Class::Transient, "{code}");
        }
        for code in [
            "STRING_TOO_LONG",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "DUPLICATE_VALUE",
            "INVALID_FIELD",
            "JSON_PARSER_ERROR",
            "MALFORMED_ID",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "REQUIRED_FIELD_MISSING",
            "NOT_FOUND",
            "MALFORMED_QUERY",
            "DUPLICATES_DETECTED",
            "INVALID_TYPE",
        ] {
            assert_eq!(salesforce_code(code), Class::Permanent, "{code}");
        }
    }

    #[test]
    fn http_statuses_and_backoffs() {
        assert_eq!(http_status(503), Class::Transient);
        assert_eq!(http_status(400), Class::Permanent);
        assert_eq!(
            linear(3, Duration::from_millis(1000)),
            Duration::from_secs(3)
        );
        for attempt in 0..20 {
            assert!(
                exponential_jitter(attempt, Duration::from_millis(100), Duration::from_secs(5))
                    <= Duration::from_secs(5)
            );
        }
    }
}
