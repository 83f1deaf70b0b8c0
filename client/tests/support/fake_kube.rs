//! A fake Kubernetes API server on loopback, for `kubectl shardline` tests.
//!
//! Plain HTTP/1.1 on `127.0.0.1:0` (keep-alive, no TLS, no auth), serving
//! exactly what the plugin asks for:
//! - `GET /apis/shardline.dev/v1alpha1/namespaces/NS/shardedclusters/NAME`:
//!   the object stored with [`FakeKube::add_cluster`], else a 404
//!   `Status` the way the real API server words it;
//! - `GET /api/v1/namespaces/NS/pods/POD/portforward?ports=P` with a
//!   WebSocket upgrade (`v4.channel.k8s.io`): relays the port's data channel
//!   to the TCP address registered with [`FakeKube::add_forward`], like the
//!   kubelet does (a 404 `Status` for an unknown pod; an error-channel
//!   message when the target refuses);
//! - anything else: a 404 `Status`.
//!
//! Every request line is recorded ([`FakeKube::requests`]). Shared by
//! `client/tests/kubectl_status.rs` and `e2e/tests/kubectl_status.rs`
//! (included there with `#[path]`), so it needs only tokio, serde_json,
//! futures and tokio-tungstenite.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Default)]
struct State {
    /// `(namespace, name)` -> ShardedCluster object.
    clusters: HashMap<(String, String), Value>,
    /// `(namespace, pod, port)` -> where the forward really goes.
    forwards: HashMap<(String, String, u16), SocketAddr>,
    /// `METHOD PATH` of every request, in order.
    requests: Vec<String>,
}

/// The fake API server; stops when dropped.
pub struct FakeKube {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKube {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        FakeKube { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `object` as ShardedCluster `namespace/name`.
    pub fn add_cluster(&self, namespace: &str, name: &str, object: Value) {
        self.state
            .lock()
            .unwrap()
            .clusters
            .insert((namespace.into(), name.into()), object);
    }

    /// Port-forwards to `pod`'s `port` go to `target`.
    pub fn add_forward(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        self.state
            .lock()
            .unwrap()
            .forwards
            .insert((namespace.into(), pod.into(), port), target);
    }

    /// `METHOD PATH` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Writes a kubeconfig whose current context points here, with
    /// `namespace` as the context's namespace when given.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: Option<&str>) -> PathBuf {
        let ns = namespace
            .map(|n| format!("\n    namespace: {n}"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: fake\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake{ns}\n\
             current-context: fake\n",
            url = self.url()
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

/// A ShardedCluster object as the operator leaves it: spec, metadata and a
/// full status (2 serving groups, a 3-member controller).
pub fn sample_cluster(namespace: &str, name: &str, controller_replicas: i32) -> Value {
    json!({
        "apiVersion": "shardline.dev/v1alpha1",
        "kind": "ShardedCluster",
        "metadata": {
            "name": name, "namespace": namespace, "generation": 2,
            "uid": "0b6c2f1e-4a55-4c1e-9d43-8f0f3f4a6b21", "resourceVersion": "4711",
            "creationTimestamp": "2025-05-01T10:00:00Z",
        },
        "spec": {
            "image": "shardline:dev",
            "controller": {"replicas": controller_replicas},
            "groups": {"count": 2, "replicas": 3},
        },
        "status": {
            "observedGeneration": 2,
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllGroupsReady",
                 "message": "2/2 groups ready", "lastTransitionTime": "2025-05-01T10:03:00Z",
                 "observedGeneration": 2},
                {"type": "Progressing", "status": "False", "reason": "Stable",
                 "message": "nothing to do", "lastTransitionTime": "2025-05-01T10:03:00Z",
                 "observedGeneration": 2},
                {"type": "Degraded", "status": "False", "reason": "AllHealthy",
                 "message": "every member ready", "lastTransitionTime": "2025-05-01T10:03:00Z",
                 "observedGeneration": 2},
            ],
            "partitioning": {"mode": "hash", "initialRanges": 16},
            "controller": {
                "replicas": controller_replicas, "readyReplicas": controller_replicas,
                "leaderId": 1, "leader": format!("{name}-ctrl-0.{name}-ctrl.{namespace}.svc:7400"),
                "term": 3, "reachable": true,
            },
            "groups": [
                {"gid": 1, "state": "Serving", "replicas": 3, "readyReplicas": 3, "rangeCount": 8,
                 "leaderId": 2, "leader": format!("{name}-g1-1.{name}-g1.{namespace}.svc:7401"),
                 "keyCount": 1200, "opsPerSec": 41.5},
                {"gid": 2, "state": "Serving", "replicas": 3, "readyReplicas": 3, "rangeCount": 8,
                 "leaderId": 1, "leader": format!("{name}-g2-0.{name}-g2.{namespace}.svc:7401"),
                 "keyCount": 1187, "opsPerSec": 39.0},
            ],
            "configNum": 3,
            "rangeCount": 16,
            "rangesMoving": 0,
            "readyGroups": 2,
        }
    })
}

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

/// Reads one request head (requests have no body); `None` at EOF.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let mut lines = text.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_string();
            let path = first.next()?.to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            return Some(Head {
                method,
                path,
                headers,
            });
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn respond(stream: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await
}

/// A 404 `Status` like the API server's.
fn not_found(kind: &str, group: &str, name: &str) -> Value {
    let what = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{what} \"{name}\" not found"), "reason": "NotFound",
        "details": {"name": name, "group": group, "kind": kind}, "code": 404,
    })
}

/// Serves one connection: requests until EOF, or one port-forward.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut stream, &mut buf).await {
        state
            .lock()
            .unwrap()
            .requests
            .push(format!("{} {}", head.method, head.path));
        let (path, query) = head.path.split_once('?').unwrap_or((&head.path, ""));
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let written = match parts.as_slice() {
            ["apis", "shardline.dev", "v1alpha1", "namespaces", ns, "shardedclusters", name]
                if head.method == "GET" =>
            {
                let object = state
                    .lock()
                    .unwrap()
                    .clusters
                    .get(&(ns.to_string(), name.to_string()))
                    .cloned();
                match object {
                    Some(o) => respond(&mut stream, 200, &o).await,
                    None => {
                        respond(
                            &mut stream,
                            404,
                            &not_found("shardedclusters", "shardline.dev", name),
                        )
                        .await
                    }
                }
            }
            ["api", "v1", "namespaces", ns, "pods", pod, "portforward"] => {
                let port: Option<u16> = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ports="))
                    .and_then(|p| p.parse().ok());
                let target = port.and_then(|port| {
                    state
                        .lock()
                        .unwrap()
                        .forwards
                        .get(&(ns.to_string(), pod.to_string(), port))
                        .copied()
                });
                match (port, target, head.headers.get("sec-websocket-key")) {
                    (Some(port), Some(target), Some(key)) => {
                        let key = key.clone();
                        forward(stream, &key, port, target).await;
                        return;
                    }
                    _ => respond(&mut stream, 404, &not_found("pods", "", pod)).await,
                }
            }
            _ => respond(&mut stream, 404, &not_found("", "", path)).await,
        };
        if written.is_err() {
            return;
        }
    }
}

/// Accepts the WebSocket upgrade and relays data channel 0 to `target`,
/// with kube's `v4.channel.k8s.io` framing: one byte of channel, then
/// payload; each channel opens with the port number (little-endian).
async fn forward(mut stream: TcpStream, key: &str, port: u16, target: SocketAddr) {
    let accept = derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    let [lo, hi] = port.to_le_bytes();
    for ch in [0u8, 1] {
        if ws.send(Message::binary(vec![ch, lo, hi])).await.is_err() {
            return;
        }
    }
    let mut tcp = match TcpStream::connect(target).await {
        Ok(t) => t,
        Err(e) => {
            let mut msg = vec![1u8];
            msg.extend_from_slice(format!("error forwarding port {port} to pod: {e}").as_bytes());
            let _ = ws.send(Message::binary(msg)).await;
            let _ = ws.close(None).await;
            return;
        }
    };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => {
                    if tcp.write_all(&b[1..]).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            n = tcp.read(&mut chunk) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut msg = Vec::with_capacity(n + 1);
                    msg.push(0u8);
                    msg.extend_from_slice(&chunk[..n]);
                    if ws.send(Message::binary(msg)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = ws.close(None).await;
}
