//! The Shardline operator: turns `ShardedCluster` objects into running
//! Shardline clusters on Kubernetes and keeps them there.
//!
//! It never touches data. It creates the workloads (with server-side apply),
//! drives the controller's membership through its gRPC API (`Join`, `Leave`,
//! `ClusterStatus`) and reports what it sees in `.status`, Events and
//! Prometheus metrics.
//!
//! # Layout
//! - [`crd`]: the `ShardedCluster` types (schema source) and CRD generation.
//! - [`names`]: object names, labels, ports and DNS addresses.
//! - [`builders`]: pure functions from a cluster to its StatefulSets,
//!   Services, PDBs and ConfigMap.
//! - [`decide`]: pure decisions: spec validation, scale plan, rollout steps,
//!   conditions.
//! - [`cluster_api`]: the controller calls behind the `ClusterApi` trait, and
//!   the gRPC implementation.
//! - [`reconcile`]: the kube-runtime reconcile loop, finalizer, Events and
//!   status writes.
//! - [`metrics`], [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`leader`]: leader election over a Lease.
//! - [`render`]: offline rendering of a cluster's objects (`render` command).
//! - [`run`]: wiring for the `shardline-operator` binary.
//! - [`error`]: the error type.

pub mod builders;
pub mod cluster_api;
pub mod crd;
pub mod decide;
pub mod error;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod render;
pub mod run;

pub use error::{Error, Result};
