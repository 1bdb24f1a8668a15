//! Failover decisions (sans-IO). The failover actor (the memrep of the current queen, see
//! `failover_actor`) feeds in a VM record, the directory and what each live backup says it
//! has committed; these functions say whether to act, on which backup, under which
//! generation and with which new backups. A primary that is fenced (the record names another
//! primary or a newer generation) is told to stop.

use hyphae_core::NodeId;

use crate::backup_choice::{self, Member};
use crate::tables::{VmRecord, VmState};

/// What a backup reports of its replica: committed generation and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Committed {
    /// Generation (raised by a fence).
    pub generation: u64,
    /// Epoch within it.
    pub epoch: u64,
}

/// The live backups to ask for their replica state when the VM's primary is no longer up;
/// `None` when nothing is to be done (the VM is stopped or failed, or its primary is up). A
/// VM found lost earlier is looked at again, in case a backup with a replica came back. A VM
/// whose record says `starting` counts too: a node that died between claiming the VM (a
/// takeover's first step) and running it would otherwise hold it forever.
pub fn needs_failover(record: &VmRecord, members: &[Member]) -> Option<Vec<NodeId>> {
    if !matches!(
        record.state,
        VmState::Running | VmState::Lost | VmState::Starting
    ) {
        return None;
    }
    // A primary unknown to the directory (revoked and removed) counts as gone.
    let primary_up = members.iter().any(|m| m.id == record.primary && m.up);
    if primary_up {
        return None;
    }
    Some(
        record
            .backups
            .iter()
            .filter(|b| members.iter().any(|m| m.id == **b && m.up))
            .copied()
            .collect(),
    )
}

/// What to do about a VM whose primary is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Tell `on` to resume the VM from its replica under `generation`, replicating to
    /// `backups`.
    Resume {
        /// The backup that becomes the primary.
        on: NodeId,
        /// The fenced new generation.
        generation: u64,
        /// The new primary's backups (the replica count restored as far as live nodes allow).
        backups: Vec<NodeId>,
        /// What the chosen backup had committed.
        from: Committed,
    },
    /// No live backup holds a committed replica: the VM is lost until one comes back.
    NoLiveBackup,
}

/// Picks the most up-to-date live backup (highest generation, then epoch; ties go to the
/// lowest node id so every actor picks the same one), a generation above everything seen
/// (the record's and every reported replica's: the old primary and any half-done takeover
/// are fenced), and new backups: the other live backups, then fresh live nodes, never the
/// old primary. `states` holds what each asked backup answered (`None`: no committed
/// replica, or it did not answer); backups not in `states` are not candidates.
pub fn decide(
    record: &VmRecord,
    members: &[Member],
    states: &[(NodeId, Option<Committed>)],
) -> Decision {
    let best = states
        .iter()
        .filter_map(|(n, c)| c.map(|c| (*n, c)))
        .filter(|(n, _)| *n != record.primary)
        .max_by(|(na, a), (nb, b)| a.cmp(b).then_with(|| nb.cmp(na)));
    let Some((on, from)) = best else {
        return Decision::NoLiveBackup;
    };
    let highest_seen = states
        .iter()
        .filter_map(|(_, c)| c.map(|c| c.generation))
        .chain([record.generation])
        .max()
        .unwrap_or(record.generation);
    let keep: Vec<NodeId> = record
        .backups
        .iter()
        .filter(|b| **b != on && members.iter().any(|m| m.id == **b && m.up))
        .copied()
        .collect();
    let backups = backup_choice::fill(
        &record.spec.name,
        members,
        &[record.primary, on],
        keep,
        record.replicas,
    );
    Decision::Resume {
        on,
        generation: highest_seen + 1,
        backups,
        from,
    }
}

/// Whether a VM this node runs as primary under `generation` must stop because the mesh has
/// moved it on (failover or migration elsewhere while this node was cut off or slow).
pub fn fenced(record: &VmRecord, me: NodeId, generation: u64) -> bool {
    record.generation > generation || (record.generation == generation && record.primary != me)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::scheduler::Mode;
    use crate::qemu::VmSpec;

    fn id(i: u8) -> NodeId {
        NodeId::from_raw([i; 10])
    }

    fn member(i: u8, up: bool) -> Member {
        Member {
            id: id(i),
            name: format!("n{i}"),
            addr: Some(std::net::IpAddr::from([10, 0, 0, i])),
            up,
        }
    }

    fn record(primary: u8, backups: &[u8], generation: u64) -> VmRecord {
        VmRecord {
            spec: VmSpec {
                name: "vm".into(),
                kernel: Some("/k".into()),
                initrd: None,
                append: String::new(),
                mem_mib: 64,
                vcpus: 1,
                disk: None,
            },
            mode: Mode::Consistent,
            interval_ms: None,
            replicas: backups.len(),
            primary: id(primary),
            backups: backups.iter().map(|b| id(*b)).collect(),
            generation,
            state: VmState::Running,
            updated_unix_ms: 0,
            note: None,
            failover: None,
        }
    }

    fn c(generation: u64, epoch: u64) -> Option<Committed> {
        Some(Committed { generation, epoch })
    }

    #[test]
    fn nothing_to_do_while_the_primary_is_up_or_the_vm_is_stopped() {
        let ms: Vec<Member> = (1..=3).map(|i| member(i, true)).collect();
        assert_eq!(needs_failover(&record(1, &[2, 3], 1), &ms), None);
        let mut r = record(1, &[2, 3], 1);
        r.state = VmState::Stopped;
        let ms: Vec<Member> = (1..=3).map(|i| member(i, i != 1)).collect();
        assert_eq!(needs_failover(&r, &ms), None);
    }

    #[test]
    fn a_dead_primary_asks_its_live_backups() {
        let ms: Vec<Member> = (1..=4).map(|i| member(i, i != 1 && i != 3)).collect();
        assert_eq!(
            needs_failover(&record(1, &[2, 3], 1), &ms),
            Some(vec![id(2)])
        );
        // A primary gone from the directory counts as dead.
        let ms: Vec<Member> = (2..=3).map(|i| member(i, true)).collect();
        assert_eq!(
            needs_failover(&record(1, &[2, 3], 1), &ms),
            Some(vec![id(2), id(3)])
        );
    }

    #[test]
    fn a_primary_that_died_while_starting_is_failed_over() {
        // n2 claimed the VM (generation 2, state starting) and died before it ran it: the
        // backups still hold generation 1's replicas and must be asked.
        let mut r = record(2, &[3, 4], 2);
        r.state = VmState::Starting;
        let ms: Vec<Member> = (1..=4).map(|i| member(i, i != 2)).collect();
        assert_eq!(needs_failover(&r, &ms), Some(vec![id(3), id(4)]));
        let d = decide(&r, &ms, &[(id(3), c(1, 9)), (id(4), c(1, 8))]);
        assert!(
            matches!(d, Decision::Resume { on, generation: 3, .. } if on == id(3)),
            "{d:?}"
        );
        // While the starting primary is up, it is left alone (a create or a takeover in
        // progress).
        let ms: Vec<Member> = (1..=4).map(|i| member(i, true)).collect();
        assert_eq!(needs_failover(&r, &ms), None);
    }

    #[test]
    fn the_most_up_to_date_backup_wins_and_the_replica_count_is_restored() {
        let ms: Vec<Member> = (1..=4).map(|i| member(i, i != 1)).collect();
        let r = record(1, &[2, 3], 1);
        let d = decide(&r, &ms, &[(id(2), c(1, 40)), (id(3), c(1, 41))]);
        assert_eq!(
            d,
            Decision::Resume {
                on: id(3),
                generation: 2,
                backups: vec![id(2), id(4)],
                from: Committed {
                    generation: 1,
                    epoch: 41
                },
            }
        );
    }

    #[test]
    fn ties_go_to_the_lowest_node_id() {
        let ms: Vec<Member> = (1..=3).map(|i| member(i, i != 1)).collect();
        let r = record(1, &[3, 2], 4);
        let d = decide(&r, &ms, &[(id(3), c(4, 7)), (id(2), c(4, 7))]);
        let Decision::Resume {
            on,
            generation,
            backups,
            ..
        } = d
        else {
            panic!("{d:?}");
        };
        assert_eq!((on, generation, backups), (id(2), 5, vec![id(3)]));
    }

    #[test]
    fn a_newer_generation_beats_a_higher_epoch_and_stale_backups_lose() {
        let ms: Vec<Member> = (1..=4).map(|i| member(i, i != 1)).collect();
        // n2's replica is from generation 2 (stale: it missed generation 3); n3 has generation
        // 3 with a lower epoch number: n3 is newer.
        let r = record(1, &[2, 3], 3);
        let d = decide(&r, &ms, &[(id(2), c(2, 900)), (id(3), c(3, 5))]);
        assert!(
            matches!(d, Decision::Resume { on, generation: 4, .. } if on == id(3)),
            "{d:?}"
        );
        // A backup without a committed replica (or that did not answer) is never chosen.
        let d = decide(&r, &ms, &[(id(2), None), (id(3), c(3, 5))]);
        assert!(
            matches!(d, Decision::Resume { on, .. } if on == id(3)),
            "{d:?}"
        );
    }

    #[test]
    fn the_new_generation_fences_everything_seen() {
        // A half-done takeover fenced n2 to generation 6 before it failed: the next one goes
        // above it.
        let ms: Vec<Member> = (1..=3).map(|i| member(i, i != 1)).collect();
        let r = record(1, &[2, 3], 5);
        let d = decide(&r, &ms, &[(id(2), c(6, 0)), (id(3), c(5, 10))]);
        assert!(matches!(d, Decision::Resume { generation: 7, .. }), "{d:?}");
    }

    #[test]
    fn no_live_backup_with_a_replica_means_lost() {
        let ms: Vec<Member> = (1..=3).map(|i| member(i, i != 1)).collect();
        let r = record(1, &[2, 3], 1);
        assert_eq!(decide(&r, &ms, &[(id(2), None)]), Decision::NoLiveBackup);
        assert_eq!(decide(&r, &ms, &[]), Decision::NoLiveBackup);
    }

    #[test]
    fn a_primary_that_comes_back_is_fenced() {
        let r = record(2, &[3], 2);
        // n1 ran generation 1; the record now names n2 under generation 2.
        assert!(fenced(&r, id(1), 1));
        // n2 itself is not.
        assert!(!fenced(&r, id(2), 2));
        // A newer generation of the same VM on this node (migrated back) fences the old run.
        let r = record(1, &[3], 3);
        assert!(fenced(&r, id(1), 2));
        assert!(!fenced(&r, id(1), 3));
        // Nothing yet recorded for this run's takeover (record still older): not fenced.
        let r = record(2, &[3], 1);
        assert!(!fenced(&r, id(1), 2));
    }
}
