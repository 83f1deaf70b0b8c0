//! Kubernetes Events for every decision (created, joined, draining, drained,
//! rolled, failed and why). Publishing is best effort: a lost Event is
//! logged, never a reason to fail the reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

/// Publishes one Event about `regarding`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, regarding).await {
        warn!(%reason, error = %e, "could not publish event");
    }
}

/// A Normal event.
pub async fn normal(
    recorder: &Recorder,
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(recorder, regarding, EventType::Normal, reason, action, note).await;
}

/// A Warning event.
pub async fn warning(
    recorder: &Recorder,
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(
        recorder,
        regarding,
        EventType::Warning,
        reason,
        action,
        note,
    )
    .await;
}
