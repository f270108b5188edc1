//! disposition-sync: keeps a Salesforce custom object (`Disposition__c`) an exact, never-lossy
//! mirror of the disposition codes of a NICE CXone contact center. One Lambda invocation runs one
//! sync cycle.
//!
//! # Layout, in the order data flows
//! - [`event`]: what an invocation asks for: a scheduled tick, a manual action, SQS dead letters.
//! - [`handler`]: builds the clients once per cold start and runs what the event asks.
//! - [`sync`]: one cycle, whose steps are its submodules: the lease, the plan, the writer, the report;
//!   and the dry run, which computes the next cycle's plan and prices it without writing.
//! - [`cxone`]: fetch: the source of the codes, the CXone Admin API or the guide's API.
//! - [`domain`]: a code as CXone describes it, validated (`DispositionId`, `Disposition`).
//! - [`mapping`]: map: a code into its Salesforce record (picklist normalisation, lengths).
//! - [`record`]: the Salesforce record the sync owns, typed: upsert body, SOQL columns, rows.
//! - [`salesforce`]: upsert: the Salesforce client (sObject Collections, query, describe).
//! - [`dlq`]: dead-letter: records that cannot be written, and their SQS queue.
//! - [`watermark`]: the durable state: watermark, overlap memory, lease, in DynamoDB.
//! - [`redrive`]: replays dead letters once their cause is fixed (SQS event or by hand).
//! - [`purge`]: the retention purge, the only path that deletes.
//! - [`history`]: the run history, one summary per cycle, for the status view.
//! - [`status`]: the status view: state, run history and DLQ depth, read without writing.
//! - [`text`]: the short human summary of a response (`invoke --format text`).
//! - [`metrics`]: the cycle's CloudWatch metrics, as one Embedded Metric Format line.
//! - [`config`]: the settings, grouped by concern, validated once at start.
//! - [`secrets`]: the credentials secret, held in `secrecy` types (redacted `Debug`).
//! - [`token`]: the OAuth token cache both platform clients share.
//! - [`deadline`]: the invocation's deadline, which bounds every wait and every request.
//! - [`retry`]: which failures are retried, the backoff curves, and the one request retry loop.
//! - [`http`]: HTTP plumbing both clients share (URL rules, token request, error text).
//! - [`telemetry`]: JSON logging.

pub mod config;
pub mod cxone;
pub mod deadline;
pub mod dlq;
pub mod domain;
pub mod event;
pub mod handler;
pub mod history;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod purge;
pub mod record;
pub mod redrive;
pub mod retry;
pub mod salesforce;
pub mod secrets;
pub mod status;
pub mod sync;
pub mod telemetry;
pub mod text;
pub mod token;
pub mod watermark;
