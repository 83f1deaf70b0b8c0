//! `WatchConfig`: a server stream of every config after `from_num`, in
//! order, that stays open.
//!
//! Any member serves it from its own applied history, which is a prefix of
//! the one history every member converges to, so the stream delivers the
//! same sequence wherever it is opened (a lagging member just delivers
//! later). A task per stream sends [`ShardMap::since`] the last delivered
//! number, then waits for the applied-config watch to move; it stops when
//! the client goes away or the member shuts down.

use shardline_proto::pb;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::metrics::WatchGuard;
use crate::store::ShardMap;

/// Configs sent per read of the history.
const BATCH: usize = 64;
/// Configs buffered per stream before the sender waits for the client.
const BUFFER: usize = 16;

pub type ConfigStream = ReceiverStream<Result<pb::ShardConfig, Status>>;

/// Starts streaming configs after `from_num` from `map` until the client
/// disconnects or `stop` turns true.
pub fn spawn(
    map: ShardMap,
    from_num: u64,
    mut stop: watch::Receiver<bool>,
    guard: WatchGuard,
) -> ConfigStream {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let _guard = guard;
        let mut changes = map.subscribe();
        let mut after = from_num;
        loop {
            // Mark the current number seen before reading, so a config
            // applied after the read wakes the wait below.
            changes.borrow_and_update();
            loop {
                let batch = map.since(after, BATCH);
                if batch.is_empty() {
                    break;
                }
                for config in batch {
                    after = config.num;
                    if tx.send(Ok(pb::ShardConfig::from(&config))).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
        }
    });
    ReceiverStream::new(rx)
}
