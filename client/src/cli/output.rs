//! How command results are printed: a [`Report`] carries both renderings,
//! and the byte-escaping rules for keys and values.
//!
//! # JSON documents (`--output json`), one per command, stable
//! Keys and values are strings: the bytes as UTF-8, with any byte that is not
//! part of valid UTF-8 written as `\xNN`.
//! - `put`: `{"key": "k", "index": 12}`
//! - `get`: `{"key": "k", "found": true, "value": "v"}`; a missing key gives
//!   `{"key": "k", "found": false, "value": null}` (exit code 1)
//! - `delete`: `{"key": "k", "existed": true, "index": 13}`
//! - `scan`: `{"kvs": [{"key": "a", "value": "1"}], "count": 1, "more": false}`
//!   (`more`: the limit cut the result)
//! - `cas`: `{"key": "k", "succeeded": true, "current": "old" | null, "index": 14}`
//!   (`current`: the value before the operation; exit code 1 when not
//!   succeeded)
//! - `status`: `{"group_id": 1, "leader": {"id": 1, "address": "..."} | null,
//!   "term": 3, "members": [{"id": 1, "address": "127.0.0.1:7401",
//!   "role": "leader" | "follower" | "learner" | "unknown", "reachable": true,
//!   "state": "leader" | ... | "unreachable", "term", "commit_index",
//!   "last_applied", "last_log_index", "snapshot_index", "matched_index",
//!   "lag", "error"}]}` — numbers are `null` when unknown
//!   ([`crate::GroupStatus`])
//! - `playground` (printed once the group is ready): `{"endpoints": [...],
//!   "http": [...], "data_dir": "...", "playground_file": "...",
//!   "groups": [{"id": 1, "endpoints": [...]}]}`
//! - `bench`: see [`crate::cli::bench::BenchReport`].
//! - `kube status` (and `kubectl shardline status`): `{"resource": {...},
//!   "live": {...} | null, "liveError": "..." | null}`, see
//!   [`crate::kubectl::render`].
//!
//! Errors are never printed as JSON: one `error: ...` line goes to stderr.

use serde_json::Value;

use super::OutputFormat;

/// The result of one command, ready to print in either format.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Text for people; printed as is (include the trailing newline).
    pub human: String,
    /// A note for people printed on stderr in human mode only (e.g.
    /// "(not found)"), so stdout stays clean for scripts.
    pub note: Option<String>,
    /// The JSON document.
    pub json: Value,
    /// Process exit code.
    pub exit_code: u8,
}

impl Report {
    /// A successful report.
    pub fn new(human: impl Into<String>, json: Value) -> Self {
        Report {
            human: human.into(),
            note: None,
            json,
            exit_code: 0,
        }
    }

    /// Adds a stderr note for human mode.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Sets the exit code.
    pub fn with_exit_code(mut self, code: u8) -> Self {
        self.exit_code = code;
        self
    }

    /// Prints to stdout (and the note to stderr).
    pub fn print(&self, format: OutputFormat) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        match format {
            OutputFormat::Human => {
                let _ = out.write_all(self.human.as_bytes());
                if let Some(n) = &self.note {
                    eprintln!("{n}");
                }
            }
            // A Null document means "already printed" (the playground
            // prints its document when ready, not at exit).
            OutputFormat::Json if self.json.is_null() => {}
            OutputFormat::Json => {
                let _ = writeln!(out, "{}", self.json);
            }
        }
        let _ = out.flush();
    }
}

/// Bytes for a terminal: valid UTF-8 as is, except control characters
/// (`\n`, `\t`, `\u{1b}`, ...) and backslashes, which are escaped; every
/// other byte as `\xNN`. One line, unambiguous.
pub fn human_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Bytes for a JSON string: valid UTF-8 as is (JSON escapes the rest), each
/// byte outside valid UTF-8 as `\xNN`.
pub fn json_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A table with left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_escape_only_what_needs_it() {
        assert_eq!(human_bytes(b"hello"), "hello");
        assert_eq!(human_bytes("h\u{e9}".as_bytes()), "h\u{e9}");
        assert_eq!(human_bytes(b"a\nb\tc\\"), "a\\nb\\tc\\\\");
        assert_eq!(human_bytes(b"\xff\x00ok\xc3"), "\\xff\\u{0}ok\\xc3");
        assert_eq!(json_bytes(b"a\nb"), "a\nb");
        assert_eq!(json_bytes(b"\xffz"), "\\xffz");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["ID", "ADDRESS"],
            &[
                vec!["1".into(), "a:1".into()],
                vec!["10".into(), "bb:2".into()],
            ],
        );
        assert_eq!(t, "ID  ADDRESS\n1   a:1\n10  bb:2\n");
    }
}
