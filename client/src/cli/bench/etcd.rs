//! A minimal etcd v3 KV client (`Range` and `Put`) for `shardline bench
//! --target etcd`, spoken over the same tonic channels as Shardline's.
//!
//! Why not the `etcd-client` crate: it builds against tonic 0.14 fine, but
//! its build script compiles etcd's `.proto` files with `protoc`, and this
//! workspace promises a build with no `protoc` installed. The two calls the
//! bench needs are declared here as prost messages with etcd's field numbers
//! (from `etcdserverpb/rpc.proto` and `mvccpb/kv.proto`, etcd v3.4+) and sent
//! with tonic's generic unary client, so both targets share the transport,
//! the HTTP/2 settings and the concurrency model.
//!
//! Reads are linearizable (`serializable = false`, etcd's default), like
//! Shardline's default reads.

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::Status;

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `etcdserverpb.RangeRequest` (the fields a point read needs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// false: linearizable read.
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

/// `etcdserverpb.RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    #[prost(bool, tag = "3")]
    pub more: bool,
    #[prost(int64, tag = "4")]
    pub count: i64,
}

/// `etcdserverpb.PutRequest` (without the lease and prev_kv options).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// etcd's `KV` service on one channel.
#[derive(Debug, Clone)]
pub struct EtcdKv {
    grpc: tonic::client::Grpc<Channel>,
}

impl EtcdKv {
    pub fn new(channel: Channel) -> Self {
        EtcdKv {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn unary<Req, Resp>(&mut self, path: &'static str, req: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("etcd channel not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let resp = self
            .grpc
            .unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await?;
        Ok(resp.into_inner())
    }

    /// Linearizable point read; `None` if absent.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Status> {
        let req = RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let resp: RangeResponse = self.unary("/etcdserverpb.KV/Range", req).await?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Writes `value` under `key`; returns the store revision.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<i64, Status> {
        let req = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        let resp: PutResponse = self.unary("/etcdserverpb.KV/Put", req).await?;
        Ok(resp.header.map_or(0, |h| h.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_use_etcd_field_numbers() {
        // RangeRequest{key: "a", serializable: true}: field 1 (bytes) and
        // field 7 (varint) as etcd encodes them.
        let bytes = RangeRequest {
            key: b"a".to_vec(),
            serializable: true,
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(bytes, vec![0x0a, 0x01, b'a', 0x38, 0x01]);
        // mvccpb.KeyValue's value is field 5.
        let kv = KeyValue {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(kv, vec![0x0a, 0x01, b'k', 0x2a, 0x01, b'v']);
    }
}
