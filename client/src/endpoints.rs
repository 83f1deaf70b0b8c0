//! Where the CLI (and anything else that wants to) finds the cluster.
//!
//! Precedence, first match wins:
//! 1. an explicit list (`--endpoints a,b,c`);
//! 2. the environment variable `SHARDLINE_ENDPOINTS` (same format);
//! 3. the file `$SHARDLINE_HOME/playground.json` that a running
//!    `shardline playground` writes (`SHARDLINE_HOME` defaults to
//!    `~/.shardline`);
//! 4. the playground's well-known loopback ports, [`DEFAULT_ENDPOINTS`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::pool::normalize_address;

/// The addresses a default `shardline playground` listens on.
pub const DEFAULT_ENDPOINTS: [&str; 3] = ["127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"];
/// Environment variable holding a comma-separated endpoint list.
pub const ENV_ENDPOINTS: &str = "SHARDLINE_ENDPOINTS";
/// Environment variable naming the CLI's state directory.
pub const ENV_HOME: &str = "SHARDLINE_HOME";
/// Name of the playground file inside the state directory.
pub const PLAYGROUND_FILE: &str = "playground.json";

/// Where a resolved endpoint list came from (shown by `-v` style output and
/// error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    Flag,
    Env,
    PlaygroundFile(PathBuf),
    Default,
}

/// An endpoint list and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoints {
    pub endpoints: Vec<String>,
    pub source: EndpointSource,
}

/// What `shardline playground` leaves for other commands to find it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlaygroundFile {
    /// gRPC addresses of the first group's members (what KV commands use).
    pub endpoints: Vec<String>,
    /// Every group started, with its members' gRPC addresses.
    #[serde(default)]
    pub groups: Vec<PlaygroundGroup>,
    /// HTTP (metrics, health) addresses of every process.
    #[serde(default)]
    pub http: Vec<String>,
    /// gRPC addresses of the shard controller's members (empty: none).
    #[serde(default)]
    pub controllers: Vec<String>,
    /// The playground's data directory.
    pub data_dir: PathBuf,
    /// Process id of the `shardline playground` that wrote the file.
    pub pid: u32,
}

/// One group of a playground.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlaygroundGroup {
    pub id: u64,
    pub endpoints: Vec<String>,
}

/// The CLI's state directory: `$SHARDLINE_HOME`, else `$HOME/.shardline`.
pub fn shardline_home() -> PathBuf {
    home_from(std::env::var_os(ENV_HOME), std::env::var_os("HOME"))
}

fn home_from(
    shardline_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    match shardline_home.filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(home.unwrap_or_else(|| ".".into())).join(".shardline"),
    }
}

/// Path of the playground file under `home`.
pub fn playground_path(home: &Path) -> PathBuf {
    home.join(PLAYGROUND_FILE)
}

/// Splits a comma-separated list, dropping blanks and normalizing.
pub fn parse_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(normalize_address)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Resolves endpoints from `flag`, the process environment and the real
/// state directory.
pub fn resolve(flag: Option<&str>) -> Result<ResolvedEndpoints, ClientError> {
    let env = std::env::var(ENV_ENDPOINTS).ok();
    resolve_from(flag, env.as_deref(), &shardline_home())
}

/// Resolves endpoints from explicit inputs (what [`resolve`] reads).
pub fn resolve_from(
    flag: Option<&str>,
    env: Option<&str>,
    home: &Path,
) -> Result<ResolvedEndpoints, ClientError> {
    if let Some(list) = flag {
        let endpoints = parse_list(list);
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        return Ok(ResolvedEndpoints {
            endpoints,
            source: EndpointSource::Flag,
        });
    }
    if let Some(list) = env {
        let endpoints = parse_list(list);
        if !endpoints.is_empty() {
            return Ok(ResolvedEndpoints {
                endpoints,
                source: EndpointSource::Env,
            });
        }
    }
    let path = playground_path(home);
    if let Some(file) = read_playground_file(&path)? {
        let endpoints: Vec<String> = file
            .endpoints
            .iter()
            .map(|e| normalize_address(e))
            .collect();
        if !endpoints.is_empty() {
            return Ok(ResolvedEndpoints {
                endpoints,
                source: EndpointSource::PlaygroundFile(path),
            });
        }
    }
    Ok(ResolvedEndpoints {
        endpoints: DEFAULT_ENDPOINTS.iter().map(|s| s.to_string()).collect(),
        source: EndpointSource::Default,
    })
}

/// Reads the playground file at `path`; `None` if there is none.
pub fn read_playground_file(path: &Path) -> Result<Option<PlaygroundFile>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(playground_error(path, e.to_string())),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        playground_error(
            path,
            format!("{e} (delete the file if no playground is running)"),
        )
    })
}

fn playground_error(path: &Path, reason: String) -> ClientError {
    ClientError::PlaygroundFile {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(home: &Path, endpoints: &[&str]) {
        let f = PlaygroundFile {
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            groups: vec![],
            http: vec![],
            controllers: vec![],
            data_dir: home.join("data"),
            pid: 1,
        };
        std::fs::write(playground_path(home), serde_json::to_string(&f).unwrap()).unwrap();
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let r = resolve_from(None, None, h).unwrap();
        assert_eq!(r.source, EndpointSource::Default);
        assert_eq!(r.endpoints, DEFAULT_ENDPOINTS);

        write_file(h, &["127.0.0.1:9001", "http://127.0.0.1:9002"]);
        let r = resolve_from(None, None, h).unwrap();
        assert_eq!(r.source, EndpointSource::PlaygroundFile(playground_path(h)));
        assert_eq!(r.endpoints, ["127.0.0.1:9001", "127.0.0.1:9002"]);

        let r = resolve_from(None, Some("e:1, e:2,"), h).unwrap();
        assert_eq!(
            (r.source, r.endpoints),
            (
                EndpointSource::Env,
                vec!["e:1".to_string(), "e:2".to_string()]
            )
        );
        // A blank variable counts as unset.
        assert!(matches!(
            resolve_from(None, Some(" "), h).unwrap().source,
            EndpointSource::PlaygroundFile(_)
        ));

        let r = resolve_from(Some("f:1"), Some("e:1"), h).unwrap();
        assert_eq!(
            (r.source, r.endpoints),
            (EndpointSource::Flag, vec!["f:1".to_string()])
        );
        assert!(matches!(
            resolve_from(Some(","), None, h),
            Err(ClientError::NoEndpoints)
        ));
    }

    #[test]
    fn broken_playground_file_is_a_clear_error() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(playground_path(home.path()), "{not json").unwrap();
        let e = resolve_from(None, None, home.path()).unwrap_err();
        assert!(e.to_string().contains("playground.json"), "{e}");
    }

    #[test]
    fn home_defaults_to_dot_shardline() {
        assert_eq!(
            home_from(None, Some("/home/u".into())),
            PathBuf::from("/home/u/.shardline")
        );
        assert_eq!(
            home_from(Some("/x".into()), Some("/home/u".into())),
            PathBuf::from("/x")
        );
        assert_eq!(
            home_from(Some("".into()), Some("/h".into())),
            PathBuf::from("/h/.shardline")
        );
    }
}
