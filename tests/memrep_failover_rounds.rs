//! memrep's automatic failover, again and again: a 4-node mesh runs the project's test guest
//! with two backups; each round kills -9 the node process of the VM's current primary (memrep
//! and, with it, QEMU) at a random moment, and without any `vm resume` the failover actor (the
//! queen's memrep) has the most up-to-date backup resume the guest under a higher generation
//! with two backups again. The guest must continue from at least the counter its backups had
//! acknowledged and keep counting; the killed node is restarted on the same state directory and
//! must come back without running the VM (its old generation is fenced) and without its stale
//! RAM file; the next round kills the new primary.
//!
//! Rounds: `HYPHAE_MEMREP_KILL_ROUNDS` (default 20). The kill moments come from a seeded
//! generator; the seed is printed, and `HYPHAE_MEMREP_KILL_SEED=N` replays it. Half of the
//! rounds (chosen by the seed) wait, after their random delay, until an epoch has been taken
//! but not yet acknowledged, so that the kill cuts an epoch off mid-delivery.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyphae_harness::{wait_for, wait_until, Cluster, Node};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::form_mesh_with;
use support::memrep::{
    acked_counter, guest, memrep_nodes, memrep_status, primary_files_in, qemu_pids_in,
    remove_memrep_leftovers, serial_counters, unix_ms, vm_stats, vm_status, wait_new_primary,
    FAST_LIVENESS,
};

/// Rounds when `HYPHAE_MEMREP_KILL_ROUNDS` is not set (issue 8: at least 20 in CI).
const DEFAULT_ROUNDS: u64 = 20;
/// The random delay before a kill is drawn from 0..=this (several epoch intervals).
const MAX_DELAY_MS: u64 = 1000;
/// The VM's epoch interval.
const INTERVAL_MS: u64 = 200;

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("{name}={v:?} is not a number")
            })?))
        }
        Err(_) => Ok(None),
    }
}

/// The epoch a failover resumed from, out of the record's note ("... resumed from generation
/// G epoch E").
fn resumed_from(record: &Value) -> Option<u64> {
    record["note"]
        .as_str()?
        .rsplit_once(" epoch ")?
        .1
        .trim()
        .parse()
        .ok()
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A round whose kill -> guest running took longer than this prints what the nodes logged
/// about it (a CI run's only trace: the nodes' state is removed when the test passes).
const SLOW_FAILOVER_MS: u64 = 5000;

/// The failover's lines of every node's log, from `since_unix_ms` on.
fn slow_round_log(c: &Cluster, since_unix_ms: u64) {
    let since = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(since_unix_ms),
    )
    .to_string();
    let wanted = [
        "liveness transition",
        "now the queen",
        "failover",
        "takeover",
        "took the VM",
        "primary gone",
        "primary suspect",
        "fenced",
    ];
    for n in c.nodes() {
        let Ok(log) = n.log() else { continue };
        for line in log.lines() {
            let plain = without_colours(line);
            // Log lines start with an RFC 3339 time.
            let stamp = plain.get(..23).unwrap_or_default();
            if stamp >= &since[..23] && wanted.iter().any(|w| plain.contains(w)) {
                eprintln!("  n{}: {plain}", n.index());
            }
        }
    }
}

/// `line` without its terminal colour sequences (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// What one round did, for the summary.
struct Round {
    victim: usize,
    /// Whether the victim was the queen (the failover then waits for a new one).
    was_queen: bool,
    new_primary: usize,
    generation: u64,
    delay_ms: u64,
    /// Whether the kill waited for an epoch in flight.
    in_flight_wait: bool,
    /// Last epoch taken and acknowledged by every backup, read just before the kill.
    taken: u64,
    acked: u64,
    resumed_from: u64,
    acked_counter: u64,
    first_counter_after: u64,
    detect_to_running_ms: u64,
    kill_to_running_ms: u64,
    round: Duration,
}

/// Waits until `reader` lists every node of `c` as up.
fn all_up(c: &Cluster, reader: &Node) -> Result<()> {
    wait_until(Duration::from_secs(120), "every node up again", || {
        let Some(list) = support::nodes(reader)? else {
            return Ok(false);
        };
        Ok(list.len() == c.len() && list.iter().all(|n| n["status"] == "up"))
    })
}

#[test]
fn the_primarys_node_is_killed_round_after_round_and_the_guest_runs_on() -> Result<()> {
    let rounds = env_u64("HYPHAE_MEMREP_KILL_ROUNDS")?.unwrap_or(DEFAULT_ROUNDS);
    let seed = match env_u64("HYPHAE_MEMREP_KILL_SEED")? {
        Some(s) => s,
        None => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos() as u64
                ^ u64::from(std::process::id()) << 32
        }
    };
    eprintln!("{rounds} kill rounds, seed {seed} (replay: HYPHAE_MEMREP_KILL_SEED={seed})");
    let started = Instant::now();
    let c = Cluster::builder()
        .nodes(4)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    form_mesh_with(&c, 2, FAST_LIVENESS)?;
    let (shm, ids) = memrep_nodes(&c)?;
    let result = kill_rounds(&c, &shm, &ids, rounds, seed);
    if result.is_err() {
        // An error (not a panic) would leave no trace of the nodes' side.
        c.dump_logs(60);
    }
    eprintln!("test total {:?}", started.elapsed());
    drop(c);
    // Every node is gone: so is every QEMU.
    let qemu_gone = wait_until(Duration::from_secs(30), "no QEMU left", || {
        Ok(shm.iter().all(|d| qemu_pids_in(d).is_empty()))
    });
    remove_memrep_leftovers(&shm);
    result?;
    qemu_gone
}

/// Creates the VM on n1 and runs the rounds (see the module doc).
fn kill_rounds(c: &Cluster, shm: &[PathBuf], ids: &[String], rounds: u64, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (kernel, initrd) = guest()?;
    let index_of = |id: &str| ids.iter().position(|i| i == id);
    let started = Instant::now();
    let vm = "rounds";
    let append = "console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=2048 wave_pages=32 wave_sleep_us=2000";
    c[1].cli_ok(&[
        "vm",
        "create",
        vm,
        "--kernel",
        kernel.to_str().context("kernel path")?,
        "--initrd",
        initrd.to_str().context("initrd path")?,
        "--append",
        append,
        "--mem",
        "128M",
        "--interval-ms",
        &INTERVAL_MS.to_string(),
    ])?;
    let mut primary = 1;
    let mut generation = 1;
    let mut done: Vec<Round> = Vec::new();
    eprintln!("VM created in {:?}", started.elapsed());

    for round in 1..=rounds {
        let t_round = Instant::now();
        // The node killed last round is back (quorum, and a candidate backup again).
        all_up(c, &c[primary])?;
        // Only the primary runs the guest: one QEMU in the whole cluster.
        for (i, dir) in shm.iter().enumerate() {
            let pids = qemu_pids_in(dir);
            let want = usize::from(i == primary);
            if pids.len() != want {
                bail!(
                    "round {round}: n{i} runs {} QEMU ({pids:?}), expected {want}",
                    pids.len()
                );
            }
            if i != primary {
                if let Some(s) = vm_stats(&c[i], vm)? {
                    bail!("round {round}: n{i} runs the VM but n{primary} is its primary: {s}");
                }
            }
        }
        let record = vm_status(&c[primary], vm)?.context("record")?["record"].clone();
        if record["primary"] != ids[primary].as_str() || record["generation"] != generation {
            bail!("round {round}: expected n{primary} at generation {generation}: {record}");
        }

        // Every backup holds an epoch taken after this counter was printed.
        let at_least = if round == 1 { 200 } else { 0 };
        let before = acked_counter(&c[primary], vm, at_least, Some(2))?;
        let backups = ids_of(&vm_status(&c[primary], vm)?.context("record")?["record"]["backups"]);
        if backups.len() != 2 {
            bail!("round {round}: the record lists backups {backups:?}");
        }

        // A random moment; half of the rounds then wait for an epoch in flight.
        let delay_ms = rng.random_range(0..=MAX_DELAY_MS);
        let in_flight_wait = rng.random_bool(0.5);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let mut at_kill = vm_stats(&c[primary], vm)?.context("stats before the kill")?;
        if in_flight_wait {
            let deadline = Instant::now() + Duration::from_secs(10);
            while at_kill["epoch"].as_u64() <= at_kill["acknowledged"].as_u64()
                && Instant::now() < deadline
            {
                at_kill = vm_stats(&c[primary], vm)?.context("stats before the kill")?;
            }
        }
        let queen = support::coord_status(&c[primary])?
            .and_then(|s| s["queen"].as_str().and_then(index_of));
        let taken = at_kill["epoch"].as_u64().unwrap_or(0);
        let acked = at_kill["acknowledged"].as_u64().unwrap_or(0);

        // kill -9 of the primary's whole node process. No resume call.
        let victim = primary;
        let killed_ms = unix_ms();
        let t_kill = Instant::now();
        c[victim].kill()?;
        // QEMU dies with it (parent-death signal): no guest left writing to its RAM file.
        wait_until(
            Duration::from_secs(30),
            "the killed node's QEMU gone",
            || Ok(qemu_pids_in(&shm[victim]).is_empty()),
        )?;
        let reader = (victim + 1) % c.len();
        let record = wait_new_primary(
            &c[reader],
            vm,
            &ids[victim],
            generation,
            Duration::from_secs(180),
        )
        .with_context(|| format!("round {round} (seed {seed})"))?;
        let seen_after = t_kill.elapsed();
        // Restart the killed node at once, on the same state directory; it comes back while
        // the test checks the new primary.
        c[victim].start()?;

        let new = index_of(record["primary"].as_str().unwrap_or_default())
            .with_context(|| format!("round {round}: new primary unknown: {record}"))?;
        if !backups.contains(&ids[new]) {
            bail!("round {round}: the new primary n{new} was not a backup ({backups:?}): {record}");
        }
        let new_generation = record["generation"].as_u64().context("generation")?;
        let new_backups = ids_of(&record["backups"]);
        if new_backups.len() != 2
            || new_backups.contains(&ids[victim])
            || new_backups.contains(&ids[new])
        {
            bail!("round {round}: replica count not restored, or a wrong backup: {record}");
        }
        let from = resumed_from(&record).with_context(|| format!("note: {record}"))?;
        if from < acked {
            bail!(
                "round {round}: resumed from epoch {from}, but every backup had acknowledged \
                 {acked} before the kill: {record}"
            );
        }
        let f = &record["failover"];
        let detect_to_running_ms = f["detection_to_running_ms"].as_u64().context("timing")?;
        let kill_to_running_ms = f["running_unix_ms"]
            .as_u64()
            .context("timing")?
            .saturating_sub(killed_ms);

        // The guest continues from at least the acknowledged counter, and keeps counting.
        let counters = wait_for(
            Duration::from_secs(120),
            "the resumed guest counting on",
            || {
                let console = c[new].cli(&["vm", "console", vm])?.stdout;
                let all = serial_counters(&console);
                let on = all.first().zip(all.last()).is_some_and(|(a, b)| b > a);
                Ok(on.then_some(all))
            },
        )?;
        if let Some(bad) = counters.iter().find(|&&n| n < before) {
            bail!(
                "round {round} (seed {seed}): the guest went back to {bad}, before the \
                 acknowledged counter {before}: {counters:?}"
            );
        }

        // The killed node is back as a bystander: it does not run the old generation, and
        // its memrep removed the dead primary's RAM file.
        c[victim].wait_ready(c.ready_timeout())?;
        wait_for(Duration::from_secs(60), "the restarted memrep", || {
            memrep_status(&c[victim])
        })?;
        if let Some(s) = vm_stats(&c[victim], vm)? {
            bail!("round {round}: the restarted n{victim} runs the VM again: {s}");
        }
        let left = primary_files_in(&shm[victim]);
        if !left.is_empty() {
            bail!("round {round}: n{victim} restarted with a stale primary's files: {left:?}");
        }

        let r = Round {
            victim,
            was_queen: queen == Some(victim),
            new_primary: new,
            generation: new_generation,
            delay_ms,
            in_flight_wait,
            taken,
            acked,
            resumed_from: from,
            acked_counter: before,
            first_counter_after: counters[0],
            detect_to_running_ms,
            kill_to_running_ms,
            round: t_round.elapsed(),
        };
        eprintln!(
            "ROUND {round}/{rounds}: kill n{}{} after {} ms{} (taken {}, acked {}) -> n{} gen {} \
             from epoch {}; counter {} acked, {} first after; detect->running {} ms, \
             kill->running {} ms, record seen {:?}; round {:?}",
            r.victim,
            if r.was_queen { " (queen)" } else { "" },
            r.delay_ms,
            if r.in_flight_wait {
                " + epoch in flight"
            } else {
                ""
            },
            r.taken,
            r.acked,
            r.new_primary,
            r.generation,
            r.resumed_from,
            r.acked_counter,
            r.first_counter_after,
            r.detect_to_running_ms,
            r.kill_to_running_ms,
            seen_after,
            r.round
        );
        if r.kill_to_running_ms > SLOW_FAILOVER_MS {
            slow_round_log(c, killed_ms);
        }
        done.push(r);
        primary = new;
        generation = new_generation;
    }

    // The last primary replicates to two backups.
    acked_counter(&c[primary], vm, 0, Some(2))?;
    c[primary].cli_ok(&["vm", "delete", vm])?;
    wait_until(
        Duration::from_secs(30),
        "the record gone after vm delete",
        || Ok(vm_status(&c[(primary + 1) % c.len()], vm)?.is_none()),
    )?;

    let cut_off = done.iter().filter(|r| r.resumed_from < r.taken).count();
    let secs: Vec<f64> = done.iter().map(|r| r.round.as_secs_f64()).collect();
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    let max = secs.iter().copied().fold(0.0, f64::max);
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        (
            v.get(v.len() / 2).copied().unwrap_or(0),
            v.last().copied().unwrap_or(0),
        )
    };
    let (k2r_queen, k2r_queen_max) = median(
        done.iter()
            .filter(|r| r.was_queen)
            .map(|r| r.kill_to_running_ms)
            .collect(),
    );
    let (k2r_other, k2r_other_max) = median(
        done.iter()
            .filter(|r| !r.was_queen)
            .map(|r| r.kill_to_running_ms)
            .collect(),
    );
    let (d2r, d2r_max) = median(done.iter().map(|r| r.detect_to_running_ms).collect());
    eprintln!(
        "SUMMARY: {} rounds (seed {seed}), {cut_off} with an epoch taken but not committed by \
         the new primary at the kill, {} killing the queen; round mean {mean:.1} s, max {max:.1} \
         s; detection->running median {d2r} ms (max {d2r_max}); kill->running median {k2r_other} \
         ms (max {k2r_other_max}) when the queen survives, {k2r_queen} ms (max {k2r_queen_max}) \
         when she is the victim; rounds + VM boot {:?}",
        done.len(),
        done.iter().filter(|r| r.was_queen).count(),
        started.elapsed()
    );
    Ok(())
}
