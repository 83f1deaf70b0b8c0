//! Move and Split semantics, range-mode clusters, and the typed error of
//! every bad input (each of which must leave the state byte-for-byte as it
//! was).

mod support;

use shardline_controller::{Bootstrap, Command, ControllerError, ControllerState, Group};
use shardline_proto::keyspace::{PartitionMode, HASH_ROUTING_KEY_LEN};
use shardline_proto::limits::MAX_KEY_BYTES;
use support::*;

fn three_groups() -> ControllerState {
    let mut sm = ControllerState::new(Bootstrap::hash(12)).unwrap();
    ok(&mut sm, &join(&[1, 2, 3]));
    sm
}

#[test]
fn move_changes_one_owner_and_one_epoch() {
    let mut sm = three_groups();
    let prev = sm.latest().clone();
    let r = prev.ranges[0].clone();
    assert_eq!(r.gid, 1);
    let next = ok(
        &mut sm,
        &Command::Move {
            range_id: r.id,
            gid: 3,
        },
    );
    assert_eq!(next.num, prev.num + 1);
    for (a, b) in prev.ranges.iter().zip(&next.ranges) {
        if a.id == r.id {
            assert_eq!((b.gid, b.epoch), (3, a.epoch + 1));
        } else {
            assert_eq!(a, b);
        }
    }
    assert_eq!(
        counts(&next).values().copied().collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    // The next join rebalances from the moved state with minimal movement.
    let joined = ok(&mut sm, &join(&[4]));
    check_rebalance_step(&next, &joined);
    assert_eq!(sm.query(Some(prev.num)).unwrap(), &prev);
}

#[test]
fn split_makes_two_halves_with_bumped_epochs_and_a_fresh_id() {
    let mut sm = three_groups();
    ok(
        &mut sm,
        &Command::Move {
            range_id: 5,
            gid: 3,
        },
    );
    let prev = sm.latest().clone();
    let r = prev.range(5).unwrap().clone();
    let key = hash_midpoint(&r.start, &r.end).unwrap();
    let next = ok(
        &mut sm,
        &Command::Split {
            range_id: 5,
            key: key.clone(),
        },
    );
    next.validate().unwrap();
    assert_eq!(next.ranges.len(), prev.ranges.len() + 1);
    let (left, right) = (next.range(5).unwrap(), next.range(13).unwrap());
    assert_eq!((&left.start, &left.end), (&r.start, &key));
    assert_eq!((&right.start, &right.end), (&key, &r.end));
    assert_eq!((left.gid, right.gid), (3, 3));
    assert_eq!((left.epoch, right.epoch), (r.epoch + 1, r.epoch + 1));
    // Keys of the old range now route to exactly one half; others unchanged.
    for i in 0..5_000 {
        let k = format!("k{i}");
        let rk = PartitionMode::Hash.routing_key(k.as_bytes());
        let half = next.range_for(&rk).unwrap();
        if r.contains(&rk) {
            assert_eq!(half.id, if rk < key { 5 } else { 13 });
        } else {
            assert_eq!(half, prev.range_for(&rk).unwrap());
        }
    }
    // Ids keep growing from the maximum, even when splitting an older range.
    let first = next.range(1).unwrap().clone();
    let key = hash_midpoint(&first.start, &first.end).unwrap();
    let after = ok(&mut sm, &Command::Split { range_id: 1, key });
    assert!(after.range(14).is_some());
    // Joins balance split ranges by count like any other.
    let joined = ok(&mut sm, &join(&[4]));
    check_rebalance_step(&after, &joined);
}

#[test]
fn range_mode_starts_with_one_range_and_splits_raw_keys() {
    let mut sm = ControllerState::new(Bootstrap::range()).unwrap();
    let c = ok(&mut sm, &join(&[2, 1]));
    assert_eq!(c.ranges.len(), 1);
    assert_eq!(c.ranges[0].gid, 1);
    check_balanced(&c);
    ok(
        &mut sm,
        &Command::Split {
            range_id: 1,
            key: b"m".to_vec(),
        },
    );
    let c = ok(
        &mut sm,
        &Command::Split {
            range_id: 2,
            key: b"t".to_vec(),
        },
    );
    assert_eq!(c.group_for_key(b"apple"), Some(1));
    let c = ok(&mut sm, &join(&[3]));
    check_balanced(&c);
    assert_eq!(
        c.ranges.iter().map(|r| r.gid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let err = sm
        .apply(&Command::Split {
            range_id: 1,
            key: b"zebra".to_vec(),
        })
        .unwrap_err();
    assert_eq!(
        err,
        ControllerError::SplitKeyOutsideRange {
            range_id: 1,
            key: b"zebra".to_vec(),
            start: vec![],
            end: b"m".to_vec()
        }
    );
}

fn group(gid: u64, addresses: &[&str]) -> Group {
    Group {
        gid,
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn every_bad_input_returns_its_typed_error_and_changes_nothing() {
    use ControllerError::*;
    let mut sm = three_groups();
    let c = sm.latest().clone();
    let taken = c.groups[&1][0].clone();
    let r2 = c.range(2).unwrap().clone();
    let owner = c.range(1).unwrap().gid;
    let other = c.range(3).unwrap().clone();
    let cases: Vec<(Command, ControllerError)> = vec![
        (Command::Join { groups: vec![] }, NoGroups),
        (join(&[0]), ReservedGroupId),
        (join(&[2]), GroupAlreadyJoined { gid: 2 }),
        (join(&[5, 4, 5]), DuplicateGroup { gid: 5 }),
        (join(&[5, 1]), GroupAlreadyJoined { gid: 1 }),
        (
            Command::Join {
                groups: vec![group(5, &[])],
            },
            EmptyGroup { gid: 5 },
        ),
        (
            Command::Join {
                groups: vec![group(5, &["nope"])],
            },
            BadAddress {
                gid: 5,
                address: "nope".into(),
                reason: "expected host:port".into(),
            },
        ),
        (
            Command::Join {
                groups: vec![group(5, &["h:1", "h:1"])],
            },
            BadAddress {
                gid: 5,
                address: "h:1".into(),
                reason: "listed twice".into(),
            },
        ),
        (
            Command::Join {
                groups: vec![group(5, &[&taken])],
            },
            AddressInUse {
                gid: 5,
                address: taken,
                owner: 1,
            },
        ),
        (
            Command::Join {
                groups: vec![group(5, &["h:1"]), group(6, &["h:1"])],
            },
            AddressInUse {
                gid: 6,
                address: "h:1".into(),
                owner: 5,
            },
        ),
        (leave(&[]), NoGroups),
        (leave(&[9]), UnknownGroup { gid: 9 }),
        (leave(&[2, 9]), UnknownGroup { gid: 9 }),
        (leave(&[1, 1]), DuplicateGroup { gid: 1 }),
        (leave(&[3, 1, 2]), LeavingLastGroup { ranges: 12 }),
        (
            Command::Move {
                range_id: 99,
                gid: 1,
            },
            RangeNotFound { range_id: 99 },
        ),
        (
            Command::Move {
                range_id: 1,
                gid: 9,
            },
            UnknownGroup { gid: 9 },
        ),
        (
            Command::Move {
                range_id: 1,
                gid: 0,
            },
            UnknownGroup { gid: 0 },
        ),
        (
            Command::Move {
                range_id: 1,
                gid: owner,
            },
            RangeAlreadyOwned {
                range_id: 1,
                gid: owner,
            },
        ),
        (
            Command::Split {
                range_id: 99,
                key: vec![0; 8],
            },
            RangeNotFound { range_id: 99 },
        ),
        (
            Command::Split {
                range_id: 2,
                key: vec![1, 2, 3],
            },
            BadSplitKeyLength {
                range_id: 2,
                len: 3,
            },
        ),
        (
            Command::Split {
                range_id: 2,
                key: vec![],
            },
            BadSplitKeyLength {
                range_id: 2,
                len: 0,
            },
        ),
        (
            Command::Split {
                range_id: 2,
                key: r2.start.clone(),
            },
            SplitKeyOnBoundary {
                range_id: 2,
                key: r2.start.clone(),
            },
        ),
        (
            Command::Split {
                range_id: 2,
                key: r2.end.clone(),
            },
            SplitKeyOnBoundary {
                range_id: 2,
                key: r2.end.clone(),
            },
        ),
        (
            Command::Split {
                range_id: 2,
                key: hash_midpoint(&other.start, &other.end).unwrap(),
            },
            SplitKeyOutsideRange {
                range_id: 2,
                key: hash_midpoint(&other.start, &other.end).unwrap(),
                start: r2.start.clone(),
                end: r2.end.clone(),
            },
        ),
        (
            Command::Split {
                range_id: 1,
                key: vec![0; HASH_ROUTING_KEY_LEN],
            },
            SplitKeyOnBoundary {
                range_id: 1,
                key: vec![0; 8],
            },
        ),
    ];
    for (cmd, want) in cases {
        let before = bytes(&sm);
        assert_eq!(sm.apply(&cmd).unwrap_err(), want, "{cmd:?}");
        assert_eq!(bytes(&sm), before, "{cmd:?} changed the state");
    }
    let latest = sm.latest().num;
    assert_eq!(
        sm.query(Some(latest + 1)).unwrap_err(),
        ConfigNotFound {
            num: latest + 1,
            latest
        }
    );
    assert_eq!(
        sm.query(Some(u64::MAX)).unwrap_err(),
        ConfigNotFound {
            num: u64::MAX,
            latest
        }
    );
    assert!(matches!(
        ControllerState::new(Bootstrap::hash(0)),
        Err(BadBootstrap { .. })
    ));
}

#[test]
fn commands_before_any_join_and_range_mode_keys_are_rejected() {
    use ControllerError::*;
    let mut sm = ControllerState::new(Bootstrap::range()).unwrap();
    assert_eq!(sm.apply(&leave(&[1])).unwrap_err(), UnknownGroup { gid: 1 });
    assert_eq!(
        sm.apply(&Command::Move {
            range_id: 1,
            gid: 1
        })
        .unwrap_err(),
        RangeNotFound { range_id: 1 }
    );
    assert_eq!(
        sm.apply(&Command::Split {
            range_id: 1,
            key: b"m".to_vec()
        })
        .unwrap_err(),
        RangeNotFound { range_id: 1 }
    );
    assert_eq!(sm.latest().num, 0);
    ok(&mut sm, &join(&[1]));
    let empty = Command::Split {
        range_id: 1,
        key: vec![],
    };
    assert_eq!(
        sm.apply(&empty).unwrap_err(),
        SplitKeyOnBoundary {
            range_id: 1,
            key: vec![]
        }
    );
    let long = Command::Split {
        range_id: 1,
        key: vec![b'x'; MAX_KEY_BYTES + 1],
    };
    assert_eq!(
        sm.apply(&long).unwrap_err(),
        SplitKeyTooLong {
            range_id: 1,
            len: MAX_KEY_BYTES + 1,
            max: MAX_KEY_BYTES
        }
    );
    ok(
        &mut sm,
        &Command::Split {
            range_id: 1,
            key: b"m".to_vec(),
        },
    );
    // Below the upper half's start is outside it, not on its (empty) end.
    let below = Command::Split {
        range_id: 2,
        key: vec![],
    };
    assert_eq!(
        sm.apply(&below).unwrap_err(),
        SplitKeyOutsideRange {
            range_id: 2,
            key: vec![],
            start: b"m".to_vec(),
            end: vec![],
        }
    );
}
