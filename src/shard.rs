//! Which replica polls which target in `ha.mode: shard`: rendezvous (highest random
//! weight) hashing. Every replica computes the same answer from the same list of live
//! replicas, so they agree without talking to each other; when a replica joins or leaves,
//! only the targets it gains or loses move. Per-target locks in the database (see
//! `store::Lease`) make sure a target still has one owner while replicas disagree for a
//! moment, during a change.
//!
//! A pure function: the service feeds it the live replicas at each renewal.

use std::collections::BTreeSet;

/// The targets among `targets` that `replica` should poll when `live` are the replicas
/// alive (`replica` among them). Empty when `replica` is not live.
pub fn share_of(replica: &str, targets: &[String], live: &[String]) -> BTreeSet<String> {
    targets
        .iter()
        .filter(|target| owner(target, live) == Some(replica))
        .cloned()
        .collect()
}

/// The replica that should poll `target`: the one with the highest weight for it. Ties
/// (vanishingly rare) go to the smaller id, so every replica picks the same.
pub fn owner<'a>(target: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .map(|replica| (weight(target, replica), replica.as_str()))
        .max_by(|(w1, r1), (w2, r2)| w1.cmp(w2).then_with(|| r2.cmp(r1)))
        .map(|(_, replica)| replica)
}

/// FNV-1a over `target`, a separator and `replica`, then a final mix: fixed across
/// builds and Rust versions, unlike `DefaultHasher`, since replicas of different
/// versions must agree during a rolling upgrade.
fn weight(target: &str, replica: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in target.bytes().chain([0xff]).chain(replica.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // splitmix64's finaliser spreads FNV's weak low bits.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn every_target_has_exactly_one_owner_among_the_live_replicas() {
        let targets = names("target-", 60);
        let live = names("replica-", 3);
        let shares: Vec<BTreeSet<String>> = live
            .iter()
            .map(|replica| share_of(replica, &targets, &live))
            .collect();
        let mut all = BTreeSet::new();
        for share in &shares {
            assert!(share.is_disjoint(&all), "a target has two owners");
            all.extend(share.iter().cloned());
        }
        assert_eq!(all.len(), targets.len(), "every target has an owner");
        for share in &shares {
            assert!(
                (10..=30).contains(&share.len()),
                "shares are roughly even: {}",
                share.len()
            );
        }
    }

    #[test]
    fn when_a_replica_leaves_only_its_targets_move() {
        let targets = names("target-", 60);
        let three = names("replica-", 3);
        let two = vec![three[0].clone(), three[2].clone()];
        for replica in &two {
            let before = share_of(replica, &targets, &three);
            let after = share_of(replica, &targets, &two);
            assert!(before.is_subset(&after), "{replica} keeps what it had");
        }
        let leaving = share_of(&three[1], &targets, &three);
        let taken: BTreeSet<String> = two
            .iter()
            .flat_map(|replica| {
                share_of(replica, &targets, &two)
                    .difference(&share_of(replica, &targets, &three))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(taken, leaving, "exactly the leaver's targets move");
    }

    #[test]
    fn a_replica_that_is_not_live_owns_nothing_and_no_replicas_means_no_owner() {
        let targets = names("t", 5);
        assert!(share_of("ghost", &targets, &names("r", 2)).is_empty());
        assert_eq!(owner("t0", &[]), None);
    }

    #[test]
    fn weights_are_fixed_across_builds() {
        // Replicas of different builds must agree: these values may never change.
        assert_eq!(owner("llama-prod", &names("r", 4)), Some("r0"));
        assert_eq!(weight("llama-prod", "r0"), 10_072_111_107_422_752_978);
        assert_eq!(weight("", ""), weight("", ""));
        assert_ne!(weight("a", "b"), weight("b", "a"));
    }
}
