//! Shardline client library.
