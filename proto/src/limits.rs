//! Request size limits enforced by every server and checked early by clients.

/// Largest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4 * 1024;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Scan limit used when the request asks for 0.
pub const DEFAULT_SCAN_LIMIT: u32 = 1000;
/// Largest scan limit honoured; larger requests are clamped.
pub const MAX_SCAN_LIMIT: u32 = 10_000;
/// Most operations accepted in one `Batch`.
pub const MAX_BATCH_OPS: usize = 1000;
/// gRPC message size both sides allow (a max-size value plus headroom).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
