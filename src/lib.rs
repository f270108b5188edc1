//! disposition-sync: keeps a Salesforce custom object (`Disposition__c`) an exact, never-lossy
//! mirror of the disposition codes of a NICE CXone contact center. One Lambda invocation runs one
//! sync cycle.
//!
//! # Layout
//! - [`config`]: settings from environment variables, validated once at start.
//! - [`secrets`]: the credentials secret, held in `secrecy` types (redacted `Debug`).
//! - [`domain`]: validated domain types (`DispositionId`, `Disposition`).
//! - [`retry`]: which failures are retried, the backoff curves, and the one request retry loop.
//! - [`http`]: HTTP plumbing both clients share (URL rules, OAuth token request, error text).
//! - [`token`]: OAuth token cache shared by both platform clients.
//! - [`cxone`]: the CXone client (the source of dispositions).
//! - [`salesforce`]: the Salesforce client (sObject Collections upsert, query, describe).
//! - [`mapping`]: CXone disposition → Salesforce record (picklist normalisation, lengths).
//! - [`watermark`]: the sync's durable state and its DynamoDB store.
//! - [`dlq`]: dead-lettered records and their SQS queue.
//! - [`sync`]: the sync engine: plan, fetch, map, upsert, dead-letter, advance.
//! - [`purge`]: the retention purge, the only path that deletes.
//! - [`redrive`]: replays dead-lettered records, from an SQS event or by hand.
//! - [`event`]: what an invocation asks for (scheduled event, manual actions).
//! - [`telemetry`]: JSON logging setup.
//! - [`metrics`]: the per-cycle CloudWatch metrics, as one Embedded Metric Format line.
//! - [`handler`]: wires configuration, clients and the engine into one Lambda handler.

pub mod config;
pub mod cxone;
pub mod dlq;
pub mod domain;
pub mod event;
pub mod handler;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod purge;
pub mod record;
pub mod redrive;
pub mod retry;
pub mod salesforce;
pub mod secrets;
pub mod sync;
pub mod telemetry;
pub mod token;
pub mod watermark;
