//! Server side of the `Controller` gRPC service. The `Admin` and
//! `RaftTransport` services a member also serves come from `shardline_raft`.

pub mod controller_service;
pub mod forward;
mod watch;

pub use controller_service::ControllerService;
