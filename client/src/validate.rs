//! Local checks of request sizes against [`shardline_proto::limits`], so an
//! oversized or empty key fails at once instead of after a round trip (the
//! servers check the same limits).

use shardline_proto::limits::{MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_MESSAGE_BYTES, MAX_VALUE_BYTES};

use crate::error::ClientError;

fn invalid(field: &str, reason: String) -> ClientError {
    ClientError::InvalidArgument {
        field: field.to_string(),
        reason,
    }
}

/// A key must be 1..=MAX_KEY_BYTES bytes.
pub fn key(field: &str, key: &[u8]) -> Result<(), ClientError> {
    if key.is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            field,
            format!("{} bytes exceeds the limit of {MAX_KEY_BYTES}", key.len()),
        ));
    }
    Ok(())
}

/// A value may be empty and at most MAX_VALUE_BYTES bytes.
pub fn value(field: &str, value: &[u8]) -> Result<(), ClientError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(
            field,
            format!(
                "{} bytes exceeds the limit of {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Scan bounds: `start <= end` unless `end` is empty (unbounded); each bound
/// at most MAX_KEY_BYTES (an empty start means "from the beginning").
pub fn scan_bounds(start: &[u8], end: &[u8]) -> Result<(), ClientError> {
    for (field, k) in [("start", start), ("end", end)] {
        if k.len() > MAX_KEY_BYTES {
            return Err(invalid(
                field,
                format!("{} bytes exceeds the limit of {MAX_KEY_BYTES}", k.len()),
            ));
        }
    }
    if !end.is_empty() && start > end {
        return Err(invalid("end", "scan start is after end".into()));
    }
    Ok(())
}

/// A batch holds at most MAX_BATCH_OPS operations and fits in one message.
pub fn batch(ops: usize, encoded_len: usize) -> Result<(), ClientError> {
    if ops > MAX_BATCH_OPS {
        return Err(invalid(
            "ops",
            format!("{ops} operations exceeds the limit of {MAX_BATCH_OPS}"),
        ));
    }
    if encoded_len > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "ops",
            format!(
                "batch of {encoded_len} bytes exceeds the message limit of {MAX_MESSAGE_BYTES}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_at_their_edges() {
        assert!(key("key", b"").is_err());
        assert!(key("key", &vec![b'k'; MAX_KEY_BYTES]).is_ok());
        assert!(key("key", &vec![b'k'; MAX_KEY_BYTES + 1]).is_err());
        assert!(value("value", b"").is_ok());
        assert!(value("value", &vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(value("value", &vec![0; MAX_VALUE_BYTES + 1]).is_err());
        assert!(scan_bounds(b"b", b"a").is_err());
        assert!(scan_bounds(b"b", b"").is_ok());
        assert!(scan_bounds(b"", b"a").is_ok());
        assert!(batch(MAX_BATCH_OPS + 1, 10).is_err());
        assert!(batch(1, MAX_MESSAGE_BYTES + 1).is_err());
        match key("key", b"") {
            Err(ClientError::InvalidArgument { field, .. }) => assert_eq!(field, "key"),
            other => panic!("{other:?}"),
        }
    }
}
