//! Unit tests of the write-ahead log: what readers see and when, what a
//! reopen recovers (torn tails, truncations, purges, segment rolls), and
//! the errors for out-of-order appends and corrupt files.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::segment::{file_name, HEADER_LEN, RECORD_HEADER_LEN};
use super::{open, WalError, WalOptions, WalReader, WalWriter};

/// Small files, so a few entries span several segments.
const SMALL: WalOptions = WalOptions {
    segment_bytes: 256,
    chunk_bytes: 128,
};

fn payload(tag: &str, index: u64) -> Vec<u8> {
    format!("{tag}-{index}-{}", "x".repeat((index % 7) as usize)).into_bytes()
}

fn append(writer: &mut WalWriter, tag: &str, indexes: std::ops::RangeInclusive<u64>) {
    append_as(writer, indexes, |i| payload(tag, i));
}

/// A closed log in a new directory holding the "a" entries `indexes`.
fn written_log(
    purged: Option<u64>,
    options: WalOptions,
    indexes: std::ops::RangeInclusive<u64>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _r) = open(dir.path(), purged, options).unwrap();
    append(&mut w, "a", indexes);
    dir
}

/// Appends and syncs the entries `make` gives for `indexes`.
fn append_as(
    writer: &mut WalWriter,
    indexes: std::ops::RangeInclusive<u64>,
    make: impl Fn(u64) -> Vec<u8>,
) {
    let items: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, make(i))).collect();
    writer
        .append(items.iter().map(|(i, b)| (*i, b.as_slice())))
        .expect("append");
    writer.sync().expect("sync");
}

/// Writes `bytes` at `offset` of the file at `path`, as damage or a crash
/// would leave it.
fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

/// Cuts the segment at `path` back to its header, as if none of its records
/// reached the disk.
fn cut_to_header(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(HEADER_LEN)
        .unwrap();
}

/// `(index, payload as text)` of every entry.
fn all(reader: &WalReader) -> Vec<(u64, String)> {
    reader
        .read(..)
        .expect("read")
        .into_iter()
        .map(|(i, b)| (i, String::from_utf8(b).unwrap()))
        .collect()
}

fn expected(tag: &str, indexes: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
    indexes
        .map(|i| (i, String::from_utf8(payload(tag, i)).unwrap()))
        .collect()
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn entries_are_visible_after_sync_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    let items = [(1u64, b"one".to_vec()), (2, b"two".to_vec())];
    w.append(items.iter().map(|(i, b)| (*i, b.as_slice())))
        .unwrap();
    assert!(r.read(..).unwrap().is_empty(), "not durable yet");
    w.sync().unwrap();
    assert_eq!(r.read(..).unwrap(), items.to_vec());
    assert_eq!(r.read(2..).unwrap(), items[1..].to_vec());
    assert_eq!(r.read(..2).unwrap(), items[..1].to_vec());
    assert_eq!(r.last().unwrap(), Some(items[1].clone()));
    drop((w, r));

    let (w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    assert_eq!(r.read(..).unwrap(), items.to_vec());
    assert_eq!(w.next_index(), 3);
}

#[test]
fn segments_roll_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    append(&mut w, "a", 1..=40);
    assert!(segments(dir.path()).len() > 3, "{:?}", segments(dir.path()));
    assert_eq!(all(&r), expected("a", 1..=40));
    assert_eq!(all_in(&r, 7..=23), expected("a", 7..=23));
    drop((w, r));
    let (_w, r) = open(dir.path(), None, SMALL).unwrap();
    assert_eq!(all(&r), expected("a", 1..=40));
}

fn all_in(reader: &WalReader, range: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
    reader
        .read(range)
        .unwrap()
        .into_iter()
        .map(|(i, b)| (i, String::from_utf8(b).unwrap()))
        .collect()
}

#[test]
fn a_torn_tail_is_dropped_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    append(&mut w, "a", 1..=10);
    drop((w, r));
    // Corrupt the last record's payload, as a write torn by a crash would.
    let offset: u64 = HEADER_LEN
        + (1..=9)
            .map(|i| (RECORD_HEADER_LEN + payload("a", i).len()) as u64)
            .sum::<u64>();
    overwrite(
        &dir.path().join(file_name(1)),
        offset + RECORD_HEADER_LEN as u64,
        b"garbage",
    );

    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    assert_eq!(all(&r), expected("a", 1..=9));
    assert_eq!(w.next_index(), 10);
    append(&mut w, "b", 10..=11);
    drop((w, r));
    let (_w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    let mut want = expected("a", 1..=9);
    want.extend(expected("b", 10..=11));
    assert_eq!(all(&r), want);
}

#[test]
fn truncated_entries_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    append(&mut w, "old", 1..=10);
    w.truncate(6).unwrap();
    assert_eq!(all(&r), expected("old", 1..=5));
    // Fewer new entries than were cut: the old 8..=10 stay zeroed.
    append(&mut w, "new", 6..=7);
    drop((w, r));
    let (w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    let mut want = expected("old", 1..=5);
    want.extend(expected("new", 6..=7));
    assert_eq!(all(&r), want);
    assert_eq!(w.next_index(), 8);
}

#[test]
fn truncation_across_segments_deletes_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    append(&mut w, "a", 1..=40);
    w.truncate(5).unwrap();
    assert_eq!(all(&r), expected("a", 1..=4));
    assert_eq!(segments(dir.path()), vec![file_name(1)]);
    append(&mut w, "b", 5..=6);
    drop((w, r));
    let (_w, r) = open(dir.path(), None, SMALL).unwrap();
    let mut want = expected("a", 1..=4);
    want.extend(expected("b", 5..=6));
    assert_eq!(all(&r), want);
    // Truncating below the first entry empties the log.
    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    w.truncate(0).unwrap();
    assert!(all(&r).is_empty());
    append(&mut w, "c", 0..=1);
    assert_eq!(all(&r), expected("c", 0..=1));
}

#[test]
fn purge_drops_whole_segments_and_a_reopen_respects_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    append(&mut w, "a", 1..=40);
    let before = segments(dir.path()).len();
    w.purge(30).unwrap();
    assert_eq!(all(&r), expected("a", 31..=40));
    let after = segments(dir.path());
    assert!(after.len() < before, "{before} -> {after:?}");
    // The segment holding 31 is kept, even if it starts below it.
    assert!(after[0] <= file_name(31), "{after:?}");
    drop((w, r));
    let (mut w, r) = open(dir.path(), Some(30), SMALL).unwrap();
    assert_eq!(all(&r), expected("a", 31..=40));
    append(&mut w, "a", 41..=41);
    assert_eq!(all(&r).last().unwrap().0, 41);
}

#[test]
fn purge_past_the_end_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    append(&mut w, "a", 1..=5);
    w.purge(100).unwrap();
    assert!(all(&r).is_empty());
    assert_eq!(w.next_index(), 101);
    assert!(segments(dir.path()).is_empty());
    append(&mut w, "b", 101..=102);
    drop((w, r));
    let (_w, r) = open(dir.path(), Some(100), SMALL).unwrap();
    assert_eq!(all(&r), expected("b", 101..=102));
}

#[test]
fn a_segment_whose_removal_was_lost_is_removed_at_open() {
    let dir = written_log(None, SMALL, 1..=40);
    // The purge record says 30 but no segment was deleted (crash).
    let (_w, r) = open(dir.path(), Some(30), SMALL).unwrap();
    assert_eq!(all(&r), expected("a", 31..=40));
    assert!(segments(dir.path())[0] <= file_name(31));
    assert!(segments(dir.path())
        .iter()
        .all(|s| s.as_str() > file_name(1).as_str()));
}

#[test]
fn appends_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    // An empty log starts anywhere.
    append(&mut w, "a", 7..=8);
    let err = w.append([(10u64, &b"x"[..])]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::OutOfOrder {
                expected: 9,
                found: 10
            }
        ),
        "{err}"
    );
    assert_eq!(all(&r), expected("a", 7..=8));
}

#[test]
fn a_file_that_is_not_a_segment_is_an_error_not_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    append(&mut w, "a", 1..=3);
    drop((w, r));
    overwrite(&dir.path().join(file_name(1)), 0, b"notawal!");
    let err = open(dir.path(), None, WalOptions::default())
        .err()
        .expect("corrupt header");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn a_gap_between_segments_is_an_error() {
    let dir = written_log(None, SMALL, 1..=40);
    let names = segments(dir.path());
    std::fs::remove_file(dir.path().join(&names[1])).unwrap();
    let err = open(dir.path(), None, SMALL).err().expect("a hole");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn bit_rot_in_a_durable_entry_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    append(&mut w, "a", 1..=3);
    overwrite(
        &dir.path().join(file_name(1)),
        HEADER_LEN + RECORD_HEADER_LEN as u64,
        b"Z",
    );
    let err = r.read(1..=1).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn a_crash_right_after_a_roll_leaves_an_empty_segment_that_continues_the_log() {
    let dir = written_log(None, SMALL, 1..=40);
    // The newest segment's records never reached the disk: only its header
    // (written and flushed when the segment was created) is there.
    let names = segments(dir.path());
    let last = names.last().unwrap();
    let first: u64 = last.trim_end_matches(".seg").parse().unwrap();
    cut_to_header(&dir.path().join(last));

    let (mut w, r) = open(dir.path(), None, SMALL).unwrap();
    assert_eq!(all(&r), expected("a", 1..=first - 1));
    assert_eq!(w.next_index(), first);
    append(&mut w, "b", first..=first + 1);
    drop((w, r));
    let (_w, r) = open(dir.path(), None, SMALL).unwrap();
    let mut want = expected("a", 1..=first - 1);
    want.extend(expected("b", first..=first + 1));
    assert_eq!(all(&r), want);
}

/// Entries of one fixed size, so an old record can line up exactly behind
/// a new one.
fn fixed(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag}-{i:04}").into_bytes()
}

fn append_fixed(writer: &mut WalWriter, tag: &str, indexes: std::ops::RangeInclusive<u64>) {
    append_as(writer, indexes, |i| fixed(tag, i));
}

#[test]
fn records_left_behind_an_interrupted_truncation_never_rejoin_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    append_fixed(&mut w, "old", 1..=10);
    drop((w, r));
    // A truncation at 5 killed after zeroing only record 5: records 6..=10
    // of the old term are still on disk behind it.
    let record = (RECORD_HEADER_LEN + fixed("old", 1).len()) as u64;
    overwrite(
        &dir.path().join(file_name(1)),
        HEADER_LEN + 4 * record,
        &vec![0u8; record as usize],
    );

    let (mut w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    assert_eq!(r.last_index(), Some(4));
    // The new leader's entries are as long as the old ones: without the
    // clean-up at open, old 7..=10 would follow new 6 exactly.
    append_fixed(&mut w, "new", 5..=6);
    drop((w, r));
    let (_w, r) = open(dir.path(), None, WalOptions::default()).unwrap();
    let got: Vec<(u64, Vec<u8>)> = r.read(..).unwrap();
    let mut want: Vec<(u64, Vec<u8>)> = (1..=4).map(|i| (i, fixed("old", i))).collect();
    want.extend((5..=6).map(|i| (i, fixed("new", i))));
    assert_eq!(got, want);
}

#[test]
fn an_empty_segment_named_past_the_log_is_not_appended_to() {
    let dir = written_log(Some(10), SMALL, 11..=30);
    // Every segment but the newest is gone (a clear cut short, or damage)
    // and the newest holds only its header.
    let names = segments(dir.path());
    let newest = names.last().unwrap().clone();
    cut_to_header(&dir.path().join(&newest));
    for name in &names[..names.len() - 1] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    let (mut w, r) = open(dir.path(), Some(10), SMALL).unwrap();
    assert_eq!(w.next_index(), 11);
    assert!(!segments(dir.path()).contains(&newest), "removed");
    append(&mut w, "b", 11..=12);
    drop((w, r));
    let (_w, r) = open(dir.path(), Some(10), SMALL).unwrap();
    assert_eq!(
        all(&r),
        expected("b", 11..=12),
        "acknowledged entries survive"
    );
}

#[test]
fn a_last_segment_whose_header_never_reached_the_disk_is_removed() {
    let dir = written_log(None, SMALL, 1..=20);
    let names = segments(dir.path());
    let newest = names.last().unwrap().clone();
    let first: u64 = newest.trim_end_matches(".seg").parse().unwrap();
    std::fs::write(dir.path().join(&newest), vec![0u8; 128]).unwrap();
    let (w, r) = open(dir.path(), None, SMALL).unwrap();
    assert_eq!(all(&r), expected("a", 1..=first - 1));
    assert_eq!(w.next_index(), first);
}

#[test]
fn a_torn_segment_with_later_segments_is_damage_not_a_tail() {
    let dir = written_log(None, SMALL, 1..=40);
    let names = segments(dir.path());
    assert!(names.len() > 2);
    // Flip bytes in the first segment's second record.
    let offset = HEADER_LEN + (RECORD_HEADER_LEN + payload("a", 1).len()) as u64;
    overwrite(
        &dir.path().join(&names[0]),
        offset + RECORD_HEADER_LEN as u64,
        b"XX",
    );
    let err = open(dir.path(), None, SMALL).err().expect("damage");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    assert_eq!(
        segments(dir.path()),
        names,
        "no acknowledged segment deleted"
    );
}
