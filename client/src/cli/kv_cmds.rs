//! `put`, `get`, `delete`, `scan` and `cas`: one [`KvClient`] call each,
//! rendered as a [`Report`] (shapes in [`super::output`]).

use anyhow::Context as _;
use clap::{ArgGroup, Args};
use serde_json::json;

use super::output::{human_bytes, json_bytes, Report};
use super::{Context, EXIT_NEGATIVE};
use crate::kv::{CasOutcome, DeleteOutcome, KvClient, ReadMode};
use crate::KeyValue;

#[derive(Debug, Args)]
pub struct PutArgs {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub key: String,
    /// Read the local state of whichever member answers, without a
    /// linearizability check.
    #[arg(long)]
    pub stale: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Inclusive start key (default: the first key).
    pub start: Option<String>,
    /// Exclusive end key (default: no upper bound).
    pub end: Option<String>,
    /// Most pairs to list (pages through the server's per-request limit).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Read without a linearizability check.
    #[arg(long)]
    pub stale: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expectation").required(true).args(["expected", "expect_absent"])))]
#[command(group(ArgGroup::new("action").required(true).args(["new", "delete"])))]
pub struct CasArgs {
    pub key: String,
    /// Succeed only if the current value is this.
    #[arg(long)]
    pub expected: Option<String>,
    /// Succeed only if the key does not exist.
    #[arg(long)]
    pub expect_absent: bool,
    /// The value to write on success.
    #[arg(long)]
    pub new: Option<String>,
    /// Delete the key on success.
    #[arg(long)]
    pub delete: bool,
}

async fn client(ctx: &Context) -> anyhow::Result<KvClient> {
    let eps = ctx.resolve_endpoints()?;
    Ok(KvClient::connect(eps.endpoints, ctx.client_options()).await?)
}

pub async fn put(ctx: &Context, a: PutArgs) -> anyhow::Result<Report> {
    let index = client(ctx)
        .await?
        .put(&a.key, &a.value)
        .await
        .context("put")?;
    Ok(Report::new("OK\n", json!({ "key": a.key, "index": index })))
}

pub async fn get(ctx: &Context, a: GetArgs) -> anyhow::Result<Report> {
    let mode = if a.stale {
        ReadMode::Stale
    } else {
        ReadMode::Linearizable
    };
    let value = client(ctx)
        .await?
        .get_with(&a.key, mode)
        .await
        .context("get")?;
    Ok(render_get(a.key.as_bytes(), value.as_deref()))
}

pub async fn delete(ctx: &Context, a: DeleteArgs) -> anyhow::Result<Report> {
    let out = client(ctx).await?.delete(&a.key).await.context("delete")?;
    Ok(render_delete(a.key.as_bytes(), out))
}

pub async fn scan(ctx: &Context, a: ScanArgs) -> anyhow::Result<Report> {
    let kv = client(ctx).await?;
    let start = a.start.unwrap_or_default();
    let end = a.end.unwrap_or_default();
    // Ask for one more than the limit to learn whether the limit cut it.
    let (kvs, more) = if a.stale {
        let page = kv
            .scan_with(
                &start,
                &end,
                (a.limit.saturating_add(1)).min(u32::MAX as usize) as u32,
                ReadMode::Stale,
            )
            .await
            .context("scan")?;
        let more = page.more || page.kvs.len() > a.limit;
        (page.kvs, more)
    } else {
        let kvs = kv
            .scan_all(&start, &end, Some(a.limit.saturating_add(1)))
            .await
            .context("scan")?;
        let more = kvs.len() > a.limit;
        (kvs, more)
    };
    let mut kvs = kvs;
    kvs.truncate(a.limit);
    Ok(render_scan(&kvs, more))
}

pub async fn cas(ctx: &Context, a: CasArgs) -> anyhow::Result<Report> {
    let expected = a.expected.as_deref().map(str::as_bytes);
    let new = a.new.as_deref().map(str::as_bytes);
    let out = client(ctx)
        .await?
        .compare_and_swap(&a.key, expected, new)
        .await
        .context("cas")?;
    Ok(render_cas(a.key.as_bytes(), &out))
}

pub(crate) fn render_get(key: &[u8], value: Option<&[u8]>) -> Report {
    match value {
        Some(v) => Report::new(
            format!("{}\n", human_bytes(v)),
            json!({ "key": json_bytes(key), "found": true, "value": json_bytes(v) }),
        ),
        None => Report::new(
            "",
            json!({ "key": json_bytes(key), "found": false, "value": null }),
        )
        .with_note("(not found)")
        .with_exit_code(EXIT_NEGATIVE),
    }
}

pub(crate) fn render_delete(key: &[u8], out: DeleteOutcome) -> Report {
    let human = if out.existed {
        "deleted\n"
    } else {
        "not found (nothing to delete)\n"
    };
    Report::new(
        human,
        json!({ "key": json_bytes(key), "existed": out.existed, "index": out.index }),
    )
}

pub(crate) fn render_scan(kvs: &[KeyValue], more: bool) -> Report {
    let mut human = String::new();
    for kv in kvs {
        human.push_str(&format!(
            "{}\t{}\n",
            human_bytes(&kv.key),
            human_bytes(&kv.value)
        ));
    }
    let pairs: Vec<_> = kvs
        .iter()
        .map(|kv| json!({ "key": json_bytes(&kv.key), "value": json_bytes(&kv.value) }))
        .collect();
    let report = Report::new(
        human,
        json!({ "kvs": pairs, "count": kvs.len(), "more": more }),
    );
    match (more, kvs.last()) {
        (true, Some(last)) => report.with_note(format!(
            "(more pairs after {:?}; raise --limit or scan from there)",
            human_bytes(&last.key)
        )),
        (false, None) => report.with_note("(no pairs)"),
        _ => report,
    }
}

pub(crate) fn render_cas(key: &[u8], out: &CasOutcome) -> Report {
    let current_json = out.current.as_deref().map(json_bytes);
    let json = json!({ "key": json_bytes(key), "succeeded": out.succeeded, "current": current_json, "index": out.index });
    if out.succeeded {
        return Report::new("OK\n", json);
    }
    let human = match &out.current {
        Some(v) => format!("FAILED: current value is {}\n", human_bytes(v)),
        None => "FAILED: key does not exist\n".to_string(),
    };
    Report::new(human, json).with_exit_code(EXIT_NEGATIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_renders_found_and_missing() {
        let r = render_get(b"k", Some(b"v\xff"));
        assert_eq!(r.human, "v\\xff\n");
        assert_eq!(
            r.json,
            json!({"key": "k", "found": true, "value": "v\\xff"})
        );
        assert_eq!(r.exit_code, 0);
        let r = render_get(b"k", None);
        assert_eq!(
            (r.human.as_str(), r.note.as_deref(), r.exit_code),
            ("", Some("(not found)"), EXIT_NEGATIVE)
        );
        assert_eq!(r.json["value"], serde_json::Value::Null);
    }

    #[test]
    fn scan_renders_pairs_and_more() {
        let kvs = vec![
            KeyValue {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            KeyValue {
                key: b"b\n".to_vec(),
                value: b"2".to_vec(),
            },
        ];
        let r = render_scan(&kvs, true);
        assert_eq!(r.human, "a\t1\nb\\n\t2\n");
        assert_eq!(r.json["count"], 2);
        assert_eq!(r.json["more"], true);
        assert_eq!(r.json["kvs"][1]["key"], "b\n");
        assert!(r.note.unwrap().contains("raise --limit"));
        assert_eq!(render_scan(&[], false).note.as_deref(), Some("(no pairs)"));
    }

    #[test]
    fn cas_and_delete_render_outcomes() {
        let ok = render_cas(
            b"k",
            &CasOutcome {
                succeeded: true,
                current: Some(b"old".to_vec()),
                index: 9,
            },
        );
        assert_eq!((ok.human.as_str(), ok.exit_code), ("OK\n", 0));
        assert_eq!(
            ok.json,
            json!({"key": "k", "succeeded": true, "current": "old", "index": 9})
        );
        let no = render_cas(
            b"k",
            &CasOutcome {
                succeeded: false,
                current: None,
                index: 0,
            },
        );
        assert_eq!(
            (no.human.as_str(), no.exit_code),
            ("FAILED: key does not exist\n", EXIT_NEGATIVE)
        );
        let d = render_delete(
            b"k",
            DeleteOutcome {
                existed: false,
                index: 4,
            },
        );
        assert_eq!(d.json, json!({"key": "k", "existed": false, "index": 4}));
    }
}
