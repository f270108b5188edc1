//! Retrying: which failures are worth another try (the one place that classifies errors), the
//! backoff curves, and [`run`], the one loop that retries a request to either platform or to a
//! token endpoint.
//!
//! Salesforce publishes no list of retryable codes; this follows its error-code reference:
//! lock contention and server-side trouble pass, validation and schema errors do not.

use crate::deadline::{self, DeadlineExceeded};
use crate::token::AuthError;
use std::sync::atomic::{AtomicU64, Ordering};
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
    base.saturating_mul(attempt)
}

/// Exponential backoff with full jitter for transient request failures: a random delay in
/// `[0, min(cap, base × 2^attempt)]`, so that retries from many records do not arrive together.
pub fn exponential_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(fastrand::f64())
}

/// The longest single wait [`run`] makes, whatever a `Retry-After` asks.
pub const MAX_WAIT: Duration = Duration::from_secs(900);

/// How hard [`run`] tries one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy<'a> {
    /// Names the service in log lines.
    pub service: &'static str,
    /// Tries in all while failures are transient, the first one included.
    pub attempts: u32,
    /// First step of the exponential backoff between transient failures.
    pub backoff_base: Duration,
    /// The longest pause after a transient failure.
    pub backoff_cap: Duration,
    /// How 429s are waited out; without it a 429 fails the request.
    pub throttle: Option<&'a Throttle>,
}

/// How a service's 429s are waited out, and the time spent waiting them out.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// How many 429s in a row one request may wait out.
    pub waits: u32,
    /// The wait after a 429 without `Retry-After`.
    pub default_wait: Duration,
    waited_ms: AtomicU64,
}

impl Throttle {
    pub fn new(waits: u32, default_wait: Duration) -> Self {
        Self {
            waits,
            default_wait,
            waited_ms: AtomicU64::new(0),
        }
    }

    /// Milliseconds spent waiting out 429s so far.
    pub fn waited_ms(&self) -> u64 {
        self.waited_ms.load(Ordering::Relaxed)
    }
}

/// What one try came to, as the service's classifier reads the answer. Each failure that may be
/// tried again carries the error to return once [`run`] stops trying.
pub(crate) enum Verdict<T, E> {
    Done(T),
    /// A failure that another try cannot fix.
    Failed(E),
    /// The token was refused (401). The error is the failure if a fresh token is refused too.
    Unauthorized(E),
    /// Throttled (429), with the answer's `Retry-After`.
    Throttled {
        retry_after: Option<Duration>,
        exhausted: E,
    },
    /// A failure that may pass: transport error, timeout, server error.
    Transient {
        reason: String,
        exhausted: E,
    },
}

/// What each try presents: a bearer token that a 401 can renew, or nothing (the token request
/// itself).
pub(crate) trait Credential {
    type Token: Clone;
    /// The token for the next try.
    fn current(&self) -> impl Future<Output = Result<Self::Token, AuthError>> + Send;
    /// The platform refused `token` (401): the next [`Credential::current`] is a fresh one.
    fn refused(&self, token: &Self::Token);
}

/// Tries a request until it is done. `attempt` sends it once with the credential's token and
/// classifies the answer; `run` decides what follows, as `policy` says: renew the token once
/// after a 401, wait out a 429, back off after a transient failure, or give up.
pub(crate) async fn run<C, T, E, Fut>(
    policy: &Policy<'_>,
    credential: &C,
    mut attempt: impl FnMut(C::Token) -> Fut,
) -> Result<T, E>
where
    C: Credential,
    E: From<AuthError> + From<DeadlineExceeded>,
    Fut: Future<Output = Verdict<T, E>>,
{
    let mut transient_failures = 0;
    let mut throttle_waits = 0;
    let mut renewed = false;
    loop {
        let token = credential.current().await?;
        // Every pause between two tries is computed here, and only here.
        let answer = deadline::bounded(policy.service, attempt(token.clone())).await?;
        let pause = match answer {
            Verdict::Done(value) => return Ok(value),
            Verdict::Failed(error) => return Err(error),
            Verdict::Unauthorized(refused) => {
                if renewed {
                    // A token fresh from the token endpoint is refused too: an authentication
                    // failure (credentials revoked or rotated), not an expiry.
                    return Err(refused);
                }
                // The token expired or was revoked early: fetch a new one and try once more.
                tracing::info!(
                    "{} answered 401; refreshing the token and retrying once",
                    policy.service
                );
                credential.refused(&token);
                renewed = true;
                continue;
            }
            Verdict::Throttled {
                retry_after,
                exhausted,
            } => {
                let Some(throttle) = policy.throttle else {
                    return Err(exhausted);
                };
                throttle_waits += 1;
                if throttle_waits > throttle.waits {
                    return Err(exhausted);
                }
                // Whatever the server asks, no single wait is longer than MAX_WAIT.
                let wait = retry_after.unwrap_or(throttle.default_wait).min(MAX_WAIT);
                deadline::check_wait(wait, policy.service)?;
                tracing::warn!(
                    wait_ms = wait.as_millis() as u64,
                    "{} throttled the request (429); waiting",
                    policy.service
                );
                throttle
                    .waited_ms
                    .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                wait
            }
            Verdict::Transient { reason, exhausted } => {
                transient_failures += 1;
                if transient_failures >= policy.attempts {
                    return Err(exhausted);
                }
                tracing::warn!(
                    %reason,
                    attempt = transient_failures,
                    "{} request failed transiently; retrying",
                    policy.service
                );
                exponential_jitter(transient_failures, policy.backoff_base, policy.backoff_cap)
            }
        };
        deadline::check_wait(pause, policy.service)?;
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

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

    /// Hands out numbered tokens and counts the refused ones.
    #[derive(Default)]
    struct Tokens {
        issued: AtomicU32,
        refused: AtomicU32,
    }

    impl Credential for Tokens {
        type Token = u32;
        fn current(&self) -> impl Future<Output = Result<u32, AuthError>> + Send {
            std::future::ready(Ok(self.issued.fetch_add(1, Ordering::Relaxed) + 1))
        }
        fn refused(&self, _: &u32) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[derive(Debug, PartialEq)]
    struct Stop(&'static str);

    impl From<AuthError> for Stop {
        fn from(_: AuthError) -> Self {
            Stop("auth")
        }
    }

    impl From<DeadlineExceeded> for Stop {
        fn from(_: DeadlineExceeded) -> Self {
            Stop("deadline")
        }
    }

    /// Runs `policy` over one scripted verdict per try.
    async fn scripted(
        policy: &Policy<'_>,
        tokens: &Tokens,
        script: Vec<Verdict<&'static str, Stop>>,
    ) -> Result<&'static str, Stop> {
        let mut script = script.into_iter();
        run(policy, tokens, |_| {
            std::future::ready(script.next().expect("one verdict per try"))
        })
        .await
    }

    fn policy(throttle: Option<&Throttle>) -> Policy<'_> {
        Policy {
            service: "test",
            attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(1),
            throttle,
        }
    }

    fn transient(name: &'static str) -> Verdict<&'static str, Stop> {
        Verdict::Transient {
            reason: name.into(),
            exhausted: Stop(name),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_tried_up_to_the_attempts() {
        let tokens = Tokens::default();
        let passes = vec![transient("1"), transient("2"), Verdict::Done("ok")];
        assert_eq!(scripted(&policy(None), &tokens, passes).await, Ok("ok"));
        let stays = vec![transient("1"), transient("2"), transient("3")];
        assert_eq!(
            scripted(&policy(None), &tokens, stays).await,
            Err(Stop("3"))
        );
        assert_eq!(tokens.issued.load(Ordering::Relaxed), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_renews_the_token_once() {
        let tokens = Tokens::default();
        let renewed = vec![Verdict::Unauthorized(Stop("first")), Verdict::Done("ok")];
        assert_eq!(scripted(&policy(None), &tokens, renewed).await, Ok("ok"));
        assert_eq!(tokens.refused.load(Ordering::Relaxed), 1);

        let tokens = Tokens::default();
        let refused = vec![
            Verdict::Unauthorized(Stop("first")),
            Verdict::Unauthorized(Stop("second")),
        ];
        assert_eq!(
            scripted(&policy(None), &tokens, refused).await,
            Err(Stop("second"))
        );
        assert_eq!(tokens.refused.load(Ordering::Relaxed), 1);
        assert_eq!(tokens.issued.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_waited_out_up_to_the_limit_and_counted() {
        let throttled = |retry_after: Option<u64>| Verdict::Throttled {
            retry_after: retry_after.map(Duration::from_secs),
            exhausted: Stop("throttled"),
        };
        let throttle = Throttle::new(2, Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        let script = vec![throttled(Some(5)), throttled(None), throttled(None)];
        assert_eq!(
            scripted(&policy(Some(&throttle)), &Tokens::default(), script).await,
            Err(Stop("throttled"))
        );
        assert_eq!(throttle.waited_ms(), 6000);
        assert_eq!(started.elapsed(), Duration::from_secs(6));

        // Inside a deadline, a wait that would end past it stops the request at once, uncounted.
        let throttle = Throttle::new(5, Duration::from_secs(1));
        let (bounded, tokens) = (policy(Some(&throttle)), Tokens::default());
        let started = tokio::time::Instant::now();
        let within = crate::deadline::scope(
            Some(crate::deadline::after(Duration::from_secs(10))),
            scripted(&bounded, &tokens, vec![throttled(Some(3600))]),
        );
        assert_eq!(within.await, Err(Stop("deadline")));
        assert_eq!(
            (throttle.waited_ms(), started.elapsed()),
            (0, Duration::ZERO)
        );

        let unthrottled = vec![throttled(None)];
        assert_eq!(
            scripted(&policy(None), &Tokens::default(), unthrottled).await,
            Err(Stop("throttled"))
        );
    }
}
