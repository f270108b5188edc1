//! Black-box tests of disposition-sync against the local world: AWS on moto server and the CXone
//! and Salesforce simulators, all on loopback, started and stopped by the tests themselves.

mod admin;
mod archival;
mod aws;
mod cli;
mod concurrency;
mod cycle;
mod faults;
mod hardening;
mod harness;
mod kill;
mod metadata;
mod observability;
mod plan;
mod props;
mod redrive;
mod support;
