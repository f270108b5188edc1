//! Simulators of the two platforms disposition-sync talks to, faithful enough that a test against
//! them means something: real status codes, error bodies, per-record results, paging, token
//! expiry, limits headers, and fault injection.
//!
//! # Layout
//! - [`server`]: binds a router to a free loopback port and counts requests per endpoint.
//! - [`cxone`]: a CXone tenant serving the real Admin API (discovery, password grant, an API
//!   host on a second origin) and the implementation guide's API, from one store.
//! - [`network`]: the round trip every API request pays, and the requests in flight at once.
//! - [`salesforce`]: OAuth, sObject Collections upsert, query, describe, limits and delete.
//! - [`moto`]: a moto server process (AWS on loopback), started and killed by PID.
//! - [`process`]: stop signals and readiness files for the binaries.
//! - [`world`]: the whole local world: moto with the table, queues and secret, plus both simulators.
//!
//! Each simulator runs in-process (`start()` returns a handle for seeding and assertions) and
//! inside the `disposition-sim` binary for the demo.

pub mod cxone;
pub mod moto;
pub mod network;
pub mod process;
pub mod salesforce;
pub mod server;
pub mod world;
