//! A gRPC channel to a pod's port through the Kubernetes API server's
//! port-forward subresource, so the plugin reaches the controller from
//! outside the cluster with nothing but the kubeconfig (like
//! `kubectl port-forward`, without binding a local port).
//!
//! tonic dials through a connector: every connection it opens is a new
//! port-forward (`Api<Pod>::portforward`, one WebSocket per connection), and
//! the forwarded byte stream is handed to hyper as the connection's
//! transport. Messages the API server sends on the port's error channel
//! (the pod refused the connection, ...) are kept in [`ForwardErrors`] so a
//! failed call can say why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint, Uri};

use super::error::{source_text, LiveError};

/// Error messages the API server sent for a forwarded port, in arrival
/// order. Shared with the background task of each forward.
#[derive(Debug, Clone, Default)]
pub struct ForwardErrors(Arc<Mutex<Vec<String>>>);

impl ForwardErrors {
    fn push(&self, message: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// The messages so far, joined.
    pub fn text(&self) -> Option<String> {
        let messages = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!messages.is_empty()).then(|| messages.join("; "))
    }
}

/// Connects a channel to `port` of `pod`, each connection forwarded through
/// the API server. Connecting (the port-forward upgrade and the HTTP/2
/// handshake) is bounded by `timeout`, and so is every request on the
/// channel.
pub async fn channel(
    pods: Api<Pod>,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> Result<(Channel, ForwardErrors), LiveError> {
    let errors = ForwardErrors::default();
    let fail = |reason: String| LiveError::PortForward {
        pod: pod.to_string(),
        port,
        reason,
    };
    // The authority is only a label: the connector ignores it.
    let endpoint = Endpoint::from_shared(format!("http://{pod}:{port}"))
        .map_err(|e| fail(e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let connector = {
        let pod = pod.to_string();
        let errors = errors.clone();
        tower::service_fn(move |_: Uri| open(pods.clone(), pod.clone(), port, errors.clone()))
    };
    match tokio::time::timeout(timeout, endpoint.connect_with_connector(connector)).await {
        Ok(Ok(channel)) => Ok((channel, errors)),
        Ok(Err(e)) => {
            // The connector's own error, when it is the cause, says it all;
            // tonic's wrapping ("transport error") adds nothing.
            let mut reason = open_error_in(&e).unwrap_or_else(|| source_text(&e));
            if let Some(pod_said) = errors.text() {
                reason = format!("{reason} ({pod_said})");
            }
            Err(fail(reason))
        }
        Err(_) => Err(LiveError::Timeout {
            what: format!("port-forward to pod {pod} port {port}"),
            timeout,
        }),
    }
}

/// Opens one forwarded connection. A background task watches the port's
/// error channel and keeps the forward running until either side closes.
async fn open(
    pods: Api<Pod>,
    pod: String,
    port: u16,
    errors: ForwardErrors,
) -> Result<TokioIo<impl AsyncRead + AsyncWrite + Unpin + Send + 'static>, OpenError> {
    let fail = OpenError;
    let mut forward = pods
        .portforward(&pod, &[port])
        .await
        .map_err(|e| fail(api_error_text(&e)))?;
    let stream = forward
        .take_stream(port)
        .ok_or_else(|| fail("the API server gave no stream for the port".into()))?;
    let error_channel = forward.take_error(port);
    tokio::spawn(async move {
        if let Some(error_channel) = error_channel {
            if let Some(message) = error_channel.await {
                tracing::debug!(%pod, port, %message, "port-forward error");
                errors.push(message);
            }
        }
        if let Err(e) = forward.join().await {
            tracing::debug!(%pod, port, error = %e, "port-forward ended");
        }
    });
    Ok(TokioIo::new(stream))
}

/// Why one forwarded connection could not be opened. Its text is the whole
/// reason; [`channel`] names the pod and port.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OpenError(String);

/// The [`OpenError`] in `e`'s source chain, if any.
fn open_error_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(open) = err.downcast_ref::<OpenError>() {
            return Some(open.0.clone());
        }
        next = err.source();
    }
    None
}

/// A kube error for people: a refused upgrade by what its status means, an
/// API `Status` by its message, anything else with its sources.
fn api_error_text(e: &kube::Error) -> String {
    use kube::client::UpgradeConnectionError as Upgrade;
    match e {
        kube::Error::UpgradeConnection(Upgrade::ProtocolSwitch(code)) => match code.as_u16() {
            404 => format!("no such pod ({code})"),
            401 | 403 => format!("not allowed ({code}): needs `create` on pods/portforward"),
            _ => format!("the API server answered {code} instead of opening the port-forward"),
        },
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => source_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_upgrades_read_as_their_meaning() {
        use kube::client::UpgradeConnectionError as Upgrade;
        let refused = |code: u16| {
            api_error_text(&kube::Error::UpgradeConnection(Upgrade::ProtocolSwitch(
                tonic::codegen::http::StatusCode::from_u16(code).unwrap(),
            )))
        };
        assert_eq!(refused(404), "no such pod (404 Not Found)");
        assert!(refused(403).starts_with("not allowed (403 Forbidden)"));
        assert!(refused(500).contains("answered 500"));
    }

    #[test]
    fn the_connector_error_is_found_under_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Wrapper(#[source] OpenError);
        let e = Wrapper(OpenError("no such pod (404 Not Found)".into()));
        assert_eq!(
            open_error_in(&e).as_deref(),
            Some("no such pod (404 Not Found)")
        );
        assert_eq!(open_error_in(&std::io::Error::other("x")), None);
    }

    #[test]
    fn forward_errors_collect_in_order() {
        let errors = ForwardErrors::default();
        assert_eq!(errors.text(), None);
        errors.push("a".into());
        errors.push("b".into());
        assert_eq!(errors.text().as_deref(), Some("a; b"));
    }
}
