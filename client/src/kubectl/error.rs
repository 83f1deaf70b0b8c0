//! [`KubectlError`]: what `kubectl shardline status` can fail with.
//!
//! Two kinds matter to the caller, as in [`crate::ClientError`]: the API
//! server answered and said no (the resource does not exist, access denied,
//! a malformed object) and the API server could not be reached in time.
//! The live view has its own, softer failure: [`LiveError`] is reported
//! next to the resource's status, never as the command's error.

use std::time::Duration;

/// Errors reading the `ShardedCluster` resource.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    /// No usable kubeconfig (file missing or unreadable, unknown context).
    #[error("kubeconfig: {reason}")]
    Config { reason: String },

    /// The resource does not exist.
    #[error("shardedcluster {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },

    /// The API server answered with an error other than not-found (403, 500,
    /// ...).
    #[error(
        "API server refused to get shardedcluster {namespace}/{name}: {code} {reason}: {message}"
    )]
    Api {
        namespace: String,
        name: String,
        code: u16,
        reason: String,
        message: String,
    },

    /// The API server could not be reached, or did not answer within the
    /// deadline.
    #[error("API server {server} unreachable: {reason}")]
    Unreachable { server: String, reason: String },

    /// The request could not be made (credentials, TLS set-up, ...).
    #[error("getting shardedcluster {namespace}/{name}: {reason}")]
    Request {
        namespace: String,
        name: String,
        reason: String,
    },

    /// The API server answered with something that is not a ShardedCluster.
    #[error("malformed shardedcluster {namespace}/{name}: {reason}")]
    Malformed {
        namespace: String,
        name: String,
        reason: String,
    },
}

impl KubectlError {
    /// Whether the API server could not be reached (as opposed to answering
    /// "no").
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KubectlError::Unreachable { .. })
    }
}

/// Why the controller's live view is missing.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The resource names no controller pod to forward to (it has no
    /// controller replicas).
    #[error("the resource has no controller pods to ask")]
    NoPods,

    /// Opening a port-forward to a controller pod failed.
    #[error("port-forward to pod {pod} port {port}: {reason}")]
    PortForward {
        pod: String,
        port: u16,
        reason: String,
    },

    /// The controller did not answer `ClusterStatus`.
    #[error("{target}: {reason}")]
    Call { target: String, reason: String },

    /// A step did not finish within its deadline.
    #[error("{what} did not finish within {timeout:?}")]
    Timeout { what: String, timeout: Duration },

    /// Several controller pods were tried; each failed.
    #[error("no controller pod answered: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<LiveError>),
}

/// `e` and its sources, `: `-separated, without repeats.
pub fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_text_keeps_the_cause() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(source_text(&e), "outer: connection refused");
        let same = Outer(std::io::Error::other("outer"));
        assert_eq!(
            source_text(&same),
            "outer",
            "a cause already in the text is not repeated"
        );
    }

    #[test]
    fn unavailable_only_when_unreachable() {
        let down = KubectlError::Unreachable {
            server: "https://k:6443/".into(),
            reason: "refused".into(),
        };
        assert!(down.is_unavailable());
        let missing = KubectlError::NotFound {
            namespace: "ns".into(),
            name: "kv".into(),
        };
        assert!(!missing.is_unavailable());
        assert_eq!(missing.to_string(), "shardedcluster ns/kv not found");
    }
}
