//! The Lambda handler: builds the clients once per cold start and runs what each event asks.

use crate::config::Config;
use crate::cxone::{self, CredentialsMismatch, DispositionSource};
use crate::dlq::SqsDeadLetterQueue;
use crate::event::{self, Invocation};
use crate::history::{self, CycleSummary, DynamoDbRunHistory};
use crate::mapping::RulesCache;
use crate::purge::Purge;
use crate::redrive::{self, Redrive};
use crate::salesforce::SalesforceClient;
use crate::secrets::{CxoneSecretShape, SecretError, SecretSource, SecretsManagerSource};
use crate::sync::report::{CycleReport, Reason, Status};
use crate::sync::{CycleRequest, Engine, Settings};
use crate::watermark::DynamoDbStateStore;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] event::EventError),
    #[error("credentials unavailable: {0}")]
    Secret(#[from] SecretError),
    #[error("could not build an HTTP client: {0}")]
    Http(String),
    #[error(
        "AWS_REGION is not set, and no region is configured for the AWS SDK: set AWS_REGION (for example AWS_REGION=us-east-1)"
    )]
    NoRegion,
    #[error(transparent)]
    CxoneCredentials(#[from] CredentialsMismatch),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match e {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Secret(_) | HandlerError::CxoneCredentials(_) => "CredentialsUnavailable",
            HandlerError::Http(_) => "HttpClient",
            HandlerError::NoRegion => "ConfigurationError",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// The two platform clients, built from the credentials secret. CXone is whichever source
/// `CXONE_API` names.
struct Platforms {
    cxone: Box<dyn DispositionSource>,
    salesforce: SalesforceClient,
}

/// Everything that lives for the whole execution environment (warm invocations reuse it).
pub struct App {
    config: Config,
    settings: Settings,
    secrets: Box<dyn SecretSource>,
    state: DynamoDbStateStore,
    /// The run history, in its own item of the state table.
    history: DynamoDbRunHistory,
    dlq: SqsDeadLetterQueue,
    /// Where redrive moves messages that keep failing (`PARKING_URL`), if set.
    parking: Option<SqsDeadLetterQueue>,
    http: reqwest::Client,
    platforms: Mutex<Option<Arc<Platforms>>>,
    /// Cycles take the lease even from a live holder (`invoke --take-over-lease` only).
    take_over_lease: bool,
    /// The mapping rules (the object's schema), kept across warm invocations.
    rules: RulesCache,
}

impl App {
    /// Builds the AWS clients from the SDK's standard settings (`AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub async fn new(config: Config) -> Result<Self, HandlerError> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(20))
            .build();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await;
        if sdk.region().is_none() {
            return Err(HandlerError::NoRegion);
        }
        Self::with_sdk(config, &sdk)
    }

    /// Builds the app on an explicit SDK configuration (tests point it at moto).
    pub fn with_sdk(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, HandlerError> {
        let sdk = sdk.clone();
        let http = reqwest::Client::builder()
            .timeout(config.http.timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(50)
            .user_agent(concat!("disposition-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HandlerError::Http(e.to_string()))?;
        Ok(Self {
            settings: Settings::from_config(&config),
            secrets: Box::new(SecretsManagerSource::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                &config.aws.secret_id,
                CxoneSecretShape::from(&config.cxone.api),
            )),
            state: DynamoDbStateStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &config.aws.state_table,
                &config.sync.sync_id,
            ),
            history: DynamoDbRunHistory::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &config.aws.state_table,
                &config.sync.sync_id,
            ),
            dlq: SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.aws.dlq_url),
            parking: config
                .aws
                .parking_url
                .as_ref()
                .map(|url| SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), url)),
            http,
            platforms: Mutex::new(None),
            take_over_lease: false,
            rules: RulesCache::new(config.sync.category_aliases.clone()),
            config,
        })
    }

    /// Makes this app's cycles take the sync's lease even when another run holds it: the way out
    /// after a local run was killed mid-cycle. The other run, if alive, then fails its final
    /// write (it is conditioned on the state it leased) instead of overwriting this one's.
    pub fn take_over_lease(mut self) -> Self {
        self.take_over_lease = true;
        self
    }

    /// Handles one event. `deadline` is when the invocation must have returned.
    pub async fn handle(
        &self,
        event: Value,
        request_id: &str,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Value, HandlerError> {
        let invocation = event::parse(&event)?;
        let span =
            tracing::info_span!("invocation", request_id, sync_id = %self.config.sync.sync_id);
        let work = async move {
            match invocation {
                Invocation::Sync { full, allow_mass_change } => {
                    let report = self.sync(CycleRequest { full, allow_mass_change, deadline, retry: false, take_over_lease: self.take_over_lease }).await?;
                    let json = serde_json::to_value(&report).expect("a report serializes");
                    tracing::info!(target: "cycle_report", report = %json, status = ?report.status, "cycle finished");
                    crate::metrics::emit(&self.config, &report, request_id);
                    Ok(json)
                }
                Invocation::Plan { full, allow_mass_change } => {
                    let platforms = self.platforms(false).await?;
                    let request = CycleRequest { full, allow_mass_change, deadline, ..CycleRequest::default() };
                    let report = self.engine(&platforms).dry_run(&request).await;
                    let json = serde_json::to_value(&report).expect("a report serializes");
                    tracing::info!(target: "plan_report", status = ?report.status, would = %json["would"], "plan finished");
                    Ok(json)
                }
                Invocation::Status => {
                    let sources = crate::status::Sources {
                        sync_id: &self.config.sync.sync_id,
                        state: &self.state,
                        history: &self.history,
                        dlq: &self.dlq,
                    };
                    Ok(serde_json::to_value(sources.read(Utc::now()).await).expect("a report serializes"))
                }
                Invocation::Redrive { max_messages } => {
                    let platforms = self.platforms(false).await?;
                    let report = redrive::manual(&self.redrive(&platforms), &self.dlq, &self.dlq, &self.parking(), max_messages, deadline).await;
                    tracing::info!(target: "redrive_report", report = %serde_json::to_string(&report).unwrap_or_default(), "redrive finished");
                    Ok(serde_json::to_value(&report).expect("a report serializes"))
                }
                Invocation::SqsRedrive(messages) => {
                    let platforms = self.platforms(false).await?;
                    let (keep, report) = redrive::sqs_batch(&self.redrive(&platforms), &messages, &self.parking(), deadline).await;
                    tracing::info!(target: "redrive_report", report = %serde_json::to_string(&report).unwrap_or_default(), "SQS redrive finished");
                    // The messages kept go back to the queue; the rest are deleted by Lambda.
                    let mut response = SqsBatchResponse::default();
                    response.set_failures(keep);
                    Ok(serde_json::to_value(response).expect("a batch response serializes"))
                }
                Invocation::Purge { dry_run } => {
                    let platforms = self.platforms(false).await?;
                    let purge = Purge {
                        sink: &platforms.salesforce,
                        target: &self.settings.target,
                        retention_days: self.config.sync.retention_days,
                        enabled: self.config.sync.purge_enabled,
                    };
                    Ok(serde_json::to_value(purge.run(dry_run, Utc::now()).await).expect("a report serializes"))
                }
            }
        }
        .instrument(span);
        crate::deadline::scope(work_deadline(deadline), work).await
    }

    async fn sync(&self, request: CycleRequest) -> Result<CycleReport, HandlerError> {
        let platforms = self.platforms(false).await?;
        let report = self.run_cycle(&platforms, request.clone()).await;
        let auth_failed = report.status == Status::Failed
            && matches!(report.reason, Some(Reason::AuthUnavailable(_)));
        if !auth_failed {
            return Ok(report);
        }
        // The credentials may have been rotated: re-read the secret and try once more.
        tracing::warn!(
            "authentication failed; re-reading the credentials secret and retrying once"
        );
        let platforms = self.platforms(true).await?;
        Ok(self
            .run_cycle(
                &platforms,
                CycleRequest {
                    retry: true,
                    ..request
                },
            )
            .await)
    }

    /// Runs one cycle and adds it to the run history (whatever its outcome, a skip included).
    async fn run_cycle(&self, platforms: &Platforms, request: CycleRequest) -> CycleReport {
        let started = Utc::now();
        let report = self
            .engine(platforms)
            .run(request)
            .instrument(tracing::info_span!(
                "cycle",
                cycle_id = tracing::field::Empty
            ))
            .await;
        history::record(&self.history, &CycleSummary::of(&report, started)).await;
        report
    }

    fn engine<'a>(&'a self, platforms: &'a Platforms) -> Engine<'a> {
        Engine {
            source: platforms.cxone.as_ref(),
            sink: &platforms.salesforce,
            state: &self.state,
            dlq: &self.dlq,
            rules: &self.rules,
            settings: &self.settings,
        }
    }

    fn redrive<'a>(&'a self, platforms: &'a Platforms) -> Redrive<'a> {
        Redrive {
            source: platforms.cxone.as_ref(),
            sink: &platforms.salesforce,
            state: &self.state,
            rules: &self.rules,
            settings: &self.settings,
        }
    }

    fn parking(&self) -> redrive::Parking<'_> {
        redrive::Parking {
            queue: self
                .parking
                .as_ref()
                .map(|q| q as &dyn redrive::ParkingQueue),
            max_attempts: self.config.sync.redrive_max_attempts,
        }
    }

    /// The platform clients, reading the secret on first use (once per cold start) or when
    /// `reload` asks for fresh credentials.
    async fn platforms(&self, reload: bool) -> Result<Arc<Platforms>, HandlerError> {
        let mut slot = self.platforms.lock().await;
        if let Some(p) = slot.as_ref()
            && !reload
        {
            return Ok(p.clone());
        }
        let credentials = self.secrets.load().await?;
        let platforms = Arc::new(Platforms {
            cxone: cxone::source(
                &self.config.cxone,
                &self.config.http,
                self.http.clone(),
                credentials.cxone,
            )?,
            salesforce: SalesforceClient::new(
                &self.config.salesforce,
                &self.config.http,
                self.http.clone(),
                credentials.salesforce,
            ),
        });
        *slot = Some(platforms.clone());
        Ok(platforms)
    }
}

/// The deadline of the invocation's requests and waits: the invocation's deadline less a reserve
/// for what follows them (the dead letters, the state write, the response): a tenth of the
/// invocation's time, at most 5 s.
fn work_deadline(deadline: Option<DateTime<Utc>>) -> Option<tokio::time::Instant> {
    let left = (deadline? - Utc::now()).to_std().unwrap_or_default();
    let reserve = (left / 10).min(Duration::from_secs(5));
    Some(crate::deadline::after(left - reserve))
}
