//! Shardline client library and the `shardline` CLI.
//!
//! The library talks to one shard group over gRPC: [`KvClient`] for data,
//! [`AdminClient`] for member status and maintenance. It reuses one channel
//! per member, follows `NotLeader` hints, retries unavailable members with
//! exponential backoff and jitter within per-call and total deadlines, and
//! tags every write with a `(client_id, seq)` request id so retries apply
//! once. It never depends on a server crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shardline_client::ClientError> {
//! use shardline_client::{ClientOptions, KvClient};
//! let kv = KvClient::connect(["127.0.0.1:7401", "127.0.0.1:7402"], ClientOptions::default()).await?;
//! kv.put("hello", "world").await?;
//! assert_eq!(kv.get("hello").await?.as_deref(), Some(&b"world"[..]));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`error`]: [`ClientError`], the one error type (answered "no" vs.
//!   unavailable).
//! - [`options`]: [`ClientOptions`] (deadlines) and [`RetryPolicy`] (backoff).
//! - [`pool`]: [`ChannelPool`], one lazily connected channel per address.
//! - `router`: leader memory, error classification and the retry loop.
//! - [`session`]: exactly-once request ids and the acknowledgement floor.
//! - `validate`: local size checks against `shardline_proto::limits`.
//! - [`kv`]: the data API, [`KvClient`].
//! - [`admin`]: [`AdminClient`]; [`group_status`]: [`GroupStatus`], the
//!   assembled view of a group.
//! - [`endpoints`]: where to find the cluster (flag, env, playground file,
//!   defaults).
//! - [`cli`]: the `shardline` binary's commands (`src/main.rs` only calls
//!   [`cli::main`]), including `status`, `playground`, `bench` and
//!   `placement`.
//! - [`kubectl`]: `kubectl shardline status NAME` (the binary installed as
//!   `kubectl-shardline`, or `shardline kube status`): a `ShardedCluster`'s
//!   status with the controller's live view, through the Kubernetes API.

pub mod admin;
pub mod cli;
pub mod controller;
pub mod endpoints;
pub mod error;
pub mod group_status;
pub mod kubectl;
pub mod kv;
pub mod options;
pub mod pool;
mod router;
pub mod session;
mod validate;

pub use admin::{AdminClient, MemberReport};
pub use error::ClientError;
pub use group_status::GroupStatus;
pub use kv::{CasOutcome, DeleteOutcome, KvClient, Mutation, ReadMode, ScanPage};
pub use options::{ClientOptions, RetryPolicy};
pub use pool::ChannelPool;
pub use session::{Session, WriteTicket};
pub use shardline_proto::pb::{KeyValue, RequestHeader};
