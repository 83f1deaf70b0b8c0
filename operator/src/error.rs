//! Errors of the operator library.
//!
//! Each variant has a stable [`Error::metric_label`] so reconcile failures
//! are counted by kind on `/metrics`.

use std::time::Duration;

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API error during {action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: Box<kube::Error>,
    },

    /// The finalizer machinery failed (adding, removing or running cleanup).
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// A controller gRPC call failed.
    #[error("controller call {call} failed: {source}")]
    Controller {
        call: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },

    /// A controller gRPC call timed out.
    #[error("controller call {call} timed out after {after:?}")]
    ControllerTimeout { call: &'static str, after: Duration },

    /// No member of a Raft group led or named its leader for a membership
    /// change (every address was tried once).
    #[error("{call} on {target}: no member led the group (answers: {answers})")]
    NoLeaderReached {
        call: &'static str,
        target: String,
        /// Every member's answer, in the order asked.
        answers: String,
    },

    /// The controller endpoints could not be turned into a gRPC channel.
    #[error("bad controller endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },

    /// The object lacks a field the operator needs (namespace, uid, ...).
    #[error("ShardedCluster is missing {0}")]
    MissingField(&'static str),

    /// A spec the operator refuses (see `decide::validation`).
    #[error("invalid spec ({reason}): {message}")]
    InvalidSpec {
        reason: &'static str,
        message: String,
    },

    /// Serializing the CRD or an object failed.
    #[error("yaml: {0}")]
    Yaml(String),

    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// Leader election failed or the lease was lost.
    #[error("leader election: {0}")]
    Lease(String),

    /// Binding or serving the HTTP endpoint failed.
    #[error("http server: {0}")]
    Http(#[source] std::io::Error),
}

impl Error {
    /// A short label for metrics (`reason` label of the failure counter).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::Controller { .. } => "controller",
            Error::ControllerTimeout { .. } => "controller_timeout",
            Error::NoLeaderReached { .. } => "no_leader",
            Error::Endpoint { .. } => "endpoint",
            Error::MissingField(_) => "missing_field",
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::Yaml(_) => "yaml",
            Error::Json(_) => "json",
            Error::Lease(_) => "lease",
            Error::Http(_) => "http",
        }
    }

    /// Wraps a kube error with the action that failed.
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }
}

/// Result alias for the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;
