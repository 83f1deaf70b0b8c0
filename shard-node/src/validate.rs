//! Request validation: turns wire requests into checked commands or a typed
//! `InvalidArgument`. Nothing malformed reaches the Raft log.

use shardline_proto::limits::{
    DEFAULT_SCAN_LIMIT, MAX_BATCH_OPS, MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_BYTES,
};
use shardline_proto::pb;

use crate::error::NodeError;
use crate::types::{BatchOp, Session};
use shardline_raft::ApiError;

fn invalid(field: &'static str, reason: impl Into<String>) -> NodeError {
    ApiError::InvalidArgument {
        field,
        reason: reason.into(),
    }
    .into()
}

pub fn key(field: &'static str, key: &[u8]) -> Result<(), NodeError> {
    if key.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            field,
            format!("{} bytes exceeds the {MAX_KEY_BYTES}-byte limit", key.len()),
        ));
    }
    Ok(())
}

pub fn value(field: &'static str, value: &[u8]) -> Result<(), NodeError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(
            field,
            format!(
                "{} bytes exceeds the {MAX_VALUE_BYTES}-byte limit",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// The session of a write; every write must carry one.
pub fn session(header: Option<&pb::RequestHeader>) -> Result<Session, NodeError> {
    let h = header.ok_or_else(|| {
        invalid(
            "header",
            "writes must carry a request header (client_id, seq)",
        )
    })?;
    let client_id: [u8; 16] = h.client_id.as_slice().try_into().map_err(|_| {
        invalid(
            "header.client_id",
            format!("must be 16 bytes, got {}", h.client_id.len()),
        )
    })?;
    if h.seq == 0 {
        return Err(invalid("header.seq", "must be > 0"));
    }
    if h.ack_below > h.seq {
        return Err(invalid(
            "header.ack_below",
            "cannot acknowledge the request itself or later ones",
        ));
    }
    Ok(Session {
        client_id,
        seq: h.seq,
        ack_below: h.ack_below,
    })
}

/// Checked scan bounds and the effective limit.
pub fn scan(req: &pb::ScanRequest) -> Result<usize, NodeError> {
    if req.start.len() > MAX_KEY_BYTES || req.end.len() > MAX_KEY_BYTES {
        return Err(invalid(
            "scan",
            format!("bounds exceed the {MAX_KEY_BYTES}-byte key limit"),
        ));
    }
    if !req.end.is_empty() && req.start > req.end {
        return Err(invalid("scan", "start is greater than end"));
    }
    let limit = match req.limit {
        0 => DEFAULT_SCAN_LIMIT,
        n => n.min(MAX_SCAN_LIMIT),
    };
    Ok(limit as usize)
}

pub fn batch(ops: &[pb::BatchOp]) -> Result<Vec<BatchOp>, NodeError> {
    if ops.is_empty() {
        return Err(invalid("ops", "a batch needs at least one operation"));
    }
    if ops.len() > MAX_BATCH_OPS {
        return Err(invalid(
            "ops",
            format!(
                "{} operations exceed the limit of {MAX_BATCH_OPS}",
                ops.len()
            ),
        ));
    }
    ops.iter()
        .map(|op| match &op.op {
            Some(pb::batch_op::Op::Put(kv)) => {
                key("ops.put.key", &kv.key)?;
                value("ops.put.value", &kv.value)?;
                Ok(BatchOp::Put {
                    key: kv.key.clone(),
                    value: kv.value.clone(),
                })
            }
            Some(pb::batch_op::Op::Delete(k)) => {
                key("ops.delete", k)?;
                Ok(BatchOp::Delete { key: k.clone() })
            }
            None => Err(invalid("ops", "operation without a put or delete")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: NodeError) -> &'static str {
        match e {
            NodeError::Api(ApiError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other}"),
        }
    }

    #[test]
    fn rejects_bad_keys_values_and_headers() {
        assert_eq!(field(key("key", b"").unwrap_err()), "key");
        assert!(key("key", &vec![b'k'; MAX_KEY_BYTES]).is_ok());
        assert!(key("key", &vec![b'k'; MAX_KEY_BYTES + 1]).is_err());
        assert!(value("value", &vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(value("value", &vec![0; MAX_VALUE_BYTES + 1]).is_err());
        assert_eq!(field(session(None).unwrap_err()), "header");
        let h = pb::RequestHeader {
            client_id: vec![1; 15],
            seq: 1,
            ack_below: 0,
        };
        assert_eq!(field(session(Some(&h)).unwrap_err()), "header.client_id");
        let h = pb::RequestHeader {
            client_id: vec![1; 16],
            seq: 0,
            ack_below: 0,
        };
        assert_eq!(field(session(Some(&h)).unwrap_err()), "header.seq");
        let h = pb::RequestHeader {
            client_id: vec![1; 16],
            seq: 5,
            ack_below: 3,
        };
        assert_eq!(session(Some(&h)).unwrap().seq, 5);
    }

    #[test]
    fn scan_bounds_and_limits() {
        let mut r = pb::ScanRequest {
            start: b"b".to_vec(),
            end: b"a".to_vec(),
            limit: 0,
            options: None,
        };
        assert!(scan(&r).is_err());
        r.end = Vec::new();
        assert_eq!(scan(&r).unwrap(), DEFAULT_SCAN_LIMIT as usize);
        r.limit = u32::MAX;
        assert_eq!(scan(&r).unwrap(), MAX_SCAN_LIMIT as usize);
    }

    #[test]
    fn batch_checks_every_op() {
        assert!(batch(&[]).is_err());
        let ok = pb::BatchOp {
            op: Some(pb::batch_op::Op::Delete(b"k".to_vec())),
        };
        let bad = pb::BatchOp {
            op: Some(pb::batch_op::Op::Put(pb::KeyValue {
                key: vec![],
                value: vec![],
            })),
        };
        assert_eq!(batch(std::slice::from_ref(&ok)).unwrap().len(), 1);
        assert_eq!(field(batch(&[ok, bad]).unwrap_err()), "ops.put.key");
    }
}
