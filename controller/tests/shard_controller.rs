//! The shard-controller suite: join/leave sequences checked for balance,
//! minimal movement, determinism and immutable history, plus Move and Split
//! semantics. Everything runs against the pure state machine.

mod support;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shardline_controller::{Bootstrap, Command, ControllerState};
use shardline_proto::keyspace::PartitionMode;
use support::*;

#[test]
fn config_zero_is_empty_and_first_join_places_the_bootstrap_ranges() {
    let mut sm = ControllerState::new(Bootstrap::hash(10)).unwrap();
    let zero = sm.query(None).unwrap().clone();
    assert_eq!((zero.num, zero.groups.len(), zero.ranges.len()), (0, 0, 0));
    assert_eq!(zero.mode, PartitionMode::Hash);

    let c1 = ok(&mut sm, &join(&[1]));
    check_rebalance_step(&zero, &c1);
    assert_eq!(c1.ranges.len(), 10);
    assert!(c1.ranges.iter().all(|r| r.gid == 1 && r.epoch == 0));
    assert_eq!(c1.groups[&1], addrs(1));

    let c2 = ok(&mut sm, &join(&[2]));
    assert_eq!(check_rebalance_step(&c1, &c2), 5);
    let c3 = ok(&mut sm, &leave(&[1]));
    assert_eq!(check_rebalance_step(&c2, &c3), 5);
    assert!(c3.ranges.iter().all(|r| r.gid == 2));
    assert_eq!(sm.query(Some(0)).unwrap(), &zero);
}

#[test]
fn twenty_groups_join_then_leave_one_at_a_time() {
    for ranges in [64u64, 256] {
        let mut sm = ControllerState::new(Bootstrap::hash(ranges)).unwrap();
        let mut prev = sm.latest().clone();
        for gid in 1..=20u64 {
            let next = ok(&mut sm, &join(&[gid * 7]));
            let n = check_rebalance_step(&prev, &next);
            if gid > 1 {
                // A join into a balanced config moves at most ceil(R / G), all to the newcomer.
                assert!(
                    n <= (ranges as usize).div_ceil(gid as usize),
                    "join {gid} moved {n}"
                );
                assert_eq!(n, counts(&next)[&(gid * 7)]);
            }
            prev = next;
        }
        for gid in 1..20u64 {
            let lost = counts(&prev)[&(gid * 7)];
            let next = ok(&mut sm, &leave(&[gid * 7]));
            // A leave moves exactly the leaving group's ranges.
            assert_eq!(check_rebalance_step(&prev, &next), lost);
            prev = next;
        }
        assert!(prev.ranges.iter().all(|r| r.gid == 140));
    }
}

#[test]
fn many_groups_join_and_leave_at_once() {
    let mut sm = ControllerState::new(Bootstrap::hash(256)).unwrap();
    let mut prev = ok(&mut sm, &join(&[3, 1, 2]));
    check_balanced(&prev);
    let batches: [&[u64]; 4] = [
        &[10, 11, 12, 13, 14],
        &[20, 21],
        &[30, 31, 32, 33, 34, 35, 36],
        &[40],
    ];
    for batch in batches {
        let next = ok(&mut sm, &join(batch));
        let n = check_rebalance_step(&prev, &next);
        let g = next.groups.len();
        assert!(n <= batch.len() * 256usize.div_ceil(g));
        prev = next;
    }
    for batch in [
        &[1u64, 10, 20, 30][..],
        &[2, 3, 11, 12, 13, 31, 32],
        &[14, 21, 33, 34, 35],
    ] {
        let next = ok(&mut sm, &leave(batch));
        check_rebalance_step(&prev, &next);
        prev = next;
    }
    assert_eq!(
        prev.groups.keys().copied().collect::<Vec<_>>(),
        vec![36, 40]
    );
}

/// One random step: mostly joins and leaves (new or returning gids), some
/// moves and splits, and the odd bad command.
fn random_command(
    rng: &mut StdRng,
    sm: &ControllerState,
    max_groups: usize,
    next_gid: &mut u64,
) -> Command {
    let c = sm.latest();
    let joined: Vec<u64> = c.groups.keys().copied().collect();
    let roll = rng.random_range(0..100);
    if roll < 5 {
        return leave(&[9_999]);
    }
    if !joined.is_empty() && roll < 15 {
        let range = &c.ranges[rng.random_range(0..c.ranges.len())];
        let gid = joined[rng.random_range(0..joined.len())];
        return Command::Move {
            range_id: range.id,
            gid,
        };
    }
    if !joined.is_empty() && roll < 22 {
        let range = &c.ranges[rng.random_range(0..c.ranges.len())];
        let key = hash_midpoint(&range.start, &range.end).unwrap_or_default();
        return Command::Split {
            range_id: range.id,
            key,
        };
    }
    let can_join = joined.len() < max_groups;
    if joined.len() <= 1 || (can_join && rng.random_bool(0.5)) {
        let k = rng.random_range(1..=3.min(max_groups - joined.len()).max(1));
        let gids: Vec<u64> = (0..k)
            .map(|_| {
                // Half the time a group that left before comes back.
                let back = rng.random_range(0..*next_gid);
                if back > 0 && rng.random_bool(0.5) && !joined.contains(&back) {
                    back
                } else {
                    *next_gid += 1;
                    *next_gid - 1
                }
            })
            .collect();
        return join(&gids);
    }
    let mut gids = joined.clone();
    gids.shuffle(rng);
    gids.truncate(rng.random_range(1..=3.min(joined.len() - 1)));
    leave(&gids)
}

/// Drives `steps` random commands, checking every step; returns the commands.
fn random_run(
    seed: u64,
    ranges: u64,
    max_groups: usize,
    steps: usize,
) -> (ControllerState, Vec<Command>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sm = ControllerState::new(Bootstrap::hash(ranges)).unwrap();
    let (mut next_gid, mut commands, mut snapshots) = (1u64, Vec::new(), vec![bytes(sm.latest())]);
    // Applied joins, leaves, moves, splits; rejected commands; most groups.
    let (mut applied, mut rejected, mut most_groups) = ([0usize; 4], 0, 0);
    while commands.len() < steps {
        let cmd = random_command(&mut rng, &sm, max_groups, &mut next_gid);
        let prev = sm.latest().clone();
        // Old configs are checked against `snapshots` at the end.
        let before = (sm.latest().num, bytes(sm.latest()));
        commands.push(cmd.clone());
        let Ok(next) = sm.apply(&cmd).cloned() else {
            assert_eq!(
                (sm.latest().num, bytes(sm.latest())),
                before,
                "a failed {cmd:?} changed the state"
            );
            rejected += 1;
            continue;
        };
        let kind = match cmd {
            Command::Join { .. } => 0,
            Command::Leave { .. } => 1,
            Command::Move { .. } => 2,
            Command::Split { .. } => 3,
        };
        applied[kind] += 1;
        most_groups = most_groups.max(next.groups.len());
        next.validate().unwrap();
        match &cmd {
            Command::Join { groups } => {
                let n = check_rebalance_step(&prev, &next);
                let balanced_before = prev.groups.is_empty() || {
                    let c = counts(&prev);
                    c.values().max().unwrap() - c.values().min().unwrap() <= 1
                };
                if balanced_before && !prev.groups.is_empty() {
                    let per_join = next.ranges.len().div_ceil(next.groups.len());
                    assert!(
                        n <= groups.len() * per_join,
                        "join of {} moved {n}",
                        groups.len()
                    );
                }
            }
            Command::Leave { .. } => {
                check_rebalance_step(&prev, &next);
            }
            _ => assert_eq!(
                moved(&prev, &next),
                usize::from(matches!(cmd, Command::Move { .. }))
            ),
        }
        snapshots.push(bytes(&next));
    }
    assert!(
        applied.iter().all(|&n| n > 10) && rejected > 0,
        "applied {applied:?}, rejected {rejected}"
    );
    assert_eq!(most_groups, max_groups);
    // History is immutable: every config still reads as it did when made.
    for (num, snap) in snapshots.iter().enumerate() {
        assert_eq!(
            &bytes(sm.query(Some(num as u64)).unwrap()),
            snap,
            "config {num} changed"
        );
    }
    (sm, commands)
}

#[test]
fn random_sequences_stay_balanced_and_move_the_minimum() {
    for (seed, ranges) in [(1, 64), (2, 256), (3, 64), (4, 256)] {
        random_run(seed, ranges, 20, 400);
    }
}

#[test]
fn identical_logs_give_identical_histories() {
    let (a, commands) = random_run(42, 256, 20, 300);
    let mut b = ControllerState::new(Bootstrap::hash(256)).unwrap();
    for cmd in &commands {
        let _ = b.apply(cmd);
    }
    assert_eq!(bytes(&a), bytes(&b));
    for num in 0..=a.latest().num {
        assert_eq!(
            bytes(a.query(Some(num)).unwrap()),
            bytes(b.query(Some(num)).unwrap())
        );
    }
    // A snapshot restores to a state that keeps computing the same configs.
    let mut restored: ControllerState = postcard::from_bytes(&bytes(&a)).unwrap();
    let mut a = a;
    let cmd = join(&[5_000]);
    assert_eq!(
        bytes(a.apply(&cmd).unwrap()),
        bytes(restored.apply(&cmd).unwrap())
    );
}

#[test]
fn since_lists_the_configs_a_watcher_still_needs() {
    let mut sm = ControllerState::new(Bootstrap::hash(8)).unwrap();
    for gid in 1..=4 {
        ok(&mut sm, &join(&[gid]));
    }
    let nums = |after| sm.since(after).iter().map(|c| c.num).collect::<Vec<_>>();
    assert_eq!(nums(0), vec![1, 2, 3, 4]);
    assert_eq!(nums(2), vec![3, 4]);
    assert!(nums(4).is_empty());
    assert!(nums(u64::MAX).is_empty());
}

#[test]
fn a_stored_history_restores_only_if_it_is_a_valid_history() {
    let mut sm = ControllerState::new(Bootstrap::hash(8)).unwrap();
    ok(&mut sm, &join(&[1, 2]));
    ok(&mut sm, &leave(&[1]));
    let history = sm.history().to_vec();
    let restored = ControllerState::from_history(Bootstrap::hash(8), history.clone()).unwrap();
    assert_eq!(restored, sm);
    // Gaps, a missing config 0 and another bootstrap are refused.
    let mut gap = history.clone();
    gap.remove(1);
    assert!(ControllerState::from_history(Bootstrap::hash(8), gap).is_none());
    assert!(ControllerState::from_history(Bootstrap::hash(8), history[1..].to_vec()).is_none());
    assert!(ControllerState::from_history(Bootstrap::range(), history).is_none());
    assert!(ControllerState::from_history(Bootstrap::hash(0), Vec::new()).is_none());
}
