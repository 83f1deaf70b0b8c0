//! [`Worker`]: a named thread that serves a channel, owned by one handle.
//!
//! The log writer and the checkpointer are both such threads: dropping the
//! handle closes the channel, the thread finishes what is queued (its body
//! sees the channel end) and the drop waits for it, so the database and
//! files are released when the last handle goes.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use super::error::StoreError;

pub(super) struct Worker<T> {
    name: &'static str,
    /// `None` only while dropping.
    tx: Option<Sender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts thread `name` running `body` on the receiving end.
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce(Receiver<T>) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(rx))
            .map_err(StoreError::SpawnWriter)?;
        Ok(Worker {
            name,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `message`; gives it back if the thread has stopped.
    pub fn send(&self, message: T) -> Result<(), T> {
        match &self.tx {
            Some(tx) => tx.send(message).map_err(|mpsc::SendError(m)| m),
            None => Err(message),
        }
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!(thread = self.name, "a store thread panicked");
            }
        }
    }
}
