//! Server side of the client KV service. The admin and Raft services a
//! member also serves on its port come from `shardline_raft`.

pub mod kv_service;
