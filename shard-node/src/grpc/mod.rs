//! Server side of the three gRPC services a member serves on one port: the
//! client KV service, the admin service and the internal Raft transport.

pub mod admin_service;
pub mod kv_service;
pub mod raft_service;
