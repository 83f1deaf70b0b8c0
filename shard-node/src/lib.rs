//! A Shardline shard node: one member of one replica group.
//!
//! # Layout
//! - [`types`]: openraft type configuration and the log's commands.
pub mod types;
