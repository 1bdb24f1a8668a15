//! The compute worker on the harness: a GEMM job of two stored matrices on 3 nodes is correct
//! (against the f64 reference, under the documented tolerance); a faulty worker
//! (`[compute] test_corrupt_results`) is caught by Freivalds' check and quarantined, the flag
//! visible on every node; bad input (missing files, non-matrices, mismatched shapes, absurd
//! sizes) is refused with a clear error and no worker crashes; killing a worker mid-job still
//! completes the job. Jobs run on the queen whichever node they were submitted on, and a new
//! queen resumes a job from its checkpoint when the old one dies; `verify = "quorum"` runs
//! every tile on 3 workers and outvotes (and quarantines) the faulty one.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyphae_compute::{matrix_file, Matrix};
use hyphae_harness::{uds_get, wait_for, wait_until, Cluster, Node};
use serde_json::Value;
use support::compute::{
    assert_product, compute_mesh_with, compute_status, fetch_result, kv_scan, put_bytes,
    put_matrix, submit, wait_job, FAST,
};

const FAULTY: &str = "[compute]\ntest_corrupt_results = true\n";
/// Every worker holds each tile 50 ms before answering (`test_tile_delay`), so a job of 1024
/// tiles runs for seconds even on a fast, quiet machine and a kill lands mid-job; sleeping costs
/// no CPU, so a loaded machine is barely slowed further.
const SLOW_TILES: &str = "[compute]\ntest_tile_delay = \"50ms\"\n";

/// A mesh of `n` nodes; the nodes in `faulty` run with the corrupting switch.
fn compute_mesh(n: usize, faulty: &[usize]) -> Result<Cluster> {
    compute_mesh_with(n, |i| {
        if faulty.contains(&i) {
            format!("{FAST}{FAULTY}")
        } else {
            FAST.to_string()
        }
    })
}

/// A mesh of `n` nodes whose workers answer tiles slowly (`SLOW_TILES`).
fn slow_mesh(n: usize) -> Result<Cluster> {
    compute_mesh_with(n, |_| format!("{FAST}{SLOW_TILES}"))
}

/// The index in `c` of the queen according to `n`'s coordinator (waiting while it names none:
/// right after an election, or while leadership moves on a loaded machine).
fn queen_index(c: &Cluster, n: &Node) -> Result<usize> {
    let queen = wait_for(Duration::from_secs(60), "a queen", || {
        let r = uds_get(n.state_dir().join("run/coordinator.sock"), "/status")?;
        if r.status != 200 {
            return Ok(None);
        }
        Ok(r.json()?["queen"].as_str().map(str::to_string))
    })?;
    for (i, node) in c.nodes().iter().enumerate() {
        if support::node_id(node)? == queen {
            return Ok(i);
        }
    }
    bail!("queen {queen} is not a node of the cluster")
}

#[test]
fn gemm_job_is_correct_a_faulty_worker_is_quarantined_and_bad_input_refused() -> Result<()> {
    let c = compute_mesh(3, &[2])?;
    let tmp = tempfile::tempdir()?;
    let faulty_id = support::node_id(&c[2])?;
    let a = Matrix::random(300, 200, 1)?;
    let b = Matrix::random(200, 170, 2)?;
    put_matrix(&c[0], tmp.path(), "m/a", &a)?;
    put_matrix(&c[0], tmp.path(), "m/b", &b)?;

    let id = submit(&c[0], ("m/a", "m/b", "m/c"), 64, None)?;
    let rec = wait_job(&c[0], &id)?;
    assert_product(&a, &b, &fetch_result(&c[1], &id, tmp.path())?);
    assert!(
        rec["rejected"].as_u64().unwrap_or(0) >= 2,
        "the faulty worker was never caught: {rec:#}"
    );
    assert_eq!(rec["workers"][&faulty_id]["quarantined"], true, "{rec:#}");
    assert_eq!(rec["workers"][&faulty_id]["verified"], 0, "{rec:#}");
    // The flag spreads to every node.
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(30),
            "quarantine flag replicated",
            || {
                Ok(kv_scan(n, "compute_quarantine")?
                    .iter()
                    .any(|e| e["key"] == faulty_id.as_str()))
            },
        )?;
    }
    // A second job never schedules on the quarantined worker.
    let id2 = submit(&c[1], ("m/a", "m/b", "m/c2"), 100, None)?;
    let rec2 = wait_job(&c[1], &id2)?;
    assert!(rec2["workers"].get(&faulty_id).is_none(), "{rec2:#}");
    assert_eq!(rec2["rejected"], 0);
    assert_product(&a, &b, &fetch_result(&c[1], &id2, tmp.path())?);

    // Bad input: a clear error at submission, nothing crashes.
    put_bytes(&c[0], tmp.path(), "m/junk", b"this is not a matrix")?;
    let mut huge = matrix_file::encode(&Matrix::zeros(1, 1)?);
    huge[8..12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    huge[12..16].copy_from_slice(&(1u32 << 20).to_le_bytes());
    put_bytes(&c[0], tmp.path(), "m/huge", &huge)?;
    for (x, y, want) in [
        ("m/a", "m/a", "cannot multiply 300x200 by 300x200"),
        ("m/nope", "m/b", "does not exist"),
        ("m/junk", "m/b", "not a matrix file"),
        ("m/huge", "m/b", "too large"),
    ] {
        let r = c[0].cli_timeout(&["job", "submit", x, y, "m/bad"], Duration::from_secs(60))?;
        assert!(!r.success(), "{x}·{y} was accepted: {r}");
        assert!(r.stderr.contains(want), "{x}·{y}: expected {want:?} in {r}");
    }
    for n in c.nodes() {
        assert!(
            compute_status(n)?.is_some(),
            "{} compute service died",
            n.name()
        );
    }
    Ok(())
}

#[test]
fn killing_a_worker_mid_job_still_completes() -> Result<()> {
    let c = slow_mesh(3)?;
    let tmp = tempfile::tempdir()?;
    // The victim is a worker that is not the queen (who runs the job).
    let v = if queen_index(&c, &c[0])? == 2 { 1 } else { 2 };
    let victim = support::node_id(&c[v])?;
    let a = Matrix::random(512, 384, 3)?;
    let b = Matrix::random(384, 512, 4)?;
    put_matrix(&c[0], tmp.path(), "k/a", &a)?;
    put_matrix(&c[0], tmp.path(), "k/b", &b)?;
    let id = submit(&c[0], ("k/a", "k/b", "k/c"), 16, None)?;
    // Kill the victim once it has verified a tile (it is certainly in the job then).
    let before = wait_for(
        Duration::from_secs(120),
        "the victim computed a tile",
        || {
            let r = c[0].cli_ok(&["job", "status", &id])?;
            let v: Value = serde_json::from_str(&r.stdout)?;
            let busy = v["workers"][&victim]["verified"].as_u64().unwrap_or(0) >= 1;
            Ok((busy || v["state"] == "done" || v["state"] == "failed").then_some(v))
        },
    )?;
    c[v].kill()?;
    if before["state"] != "running" {
        bail!("the job finished before the kill; make it longer: {before:#}");
    }
    let rec = wait_job(&c[0], &id)?;
    assert!(
        rec["failed_calls"].as_u64().unwrap_or(0) >= 1,
        "no call to the dead worker failed: {rec:#}"
    );
    assert_product(&a, &b, &fetch_result(&c[0], &id, tmp.path())?);
    eprintln!("job record after the kill: {}", rec["workers"]);
    Ok(())
}

#[test]
fn a_job_submitted_on_a_bee_runs_on_the_queen_and_survives_her_death() -> Result<()> {
    // Slow workers: 1024 tiles of >= 50 ms each on 6 slots in flight last >= 8 s, well past the
    // first checkpoint (2 s plus a store write) on any machine.
    let c = slow_mesh(3)?;
    let tmp = tempfile::tempdir()?;
    let q = queen_index(&c, &c[0])?;
    let bee = (q + 1) % 3;
    let queen_id = support::node_id(&c[q])?;
    let a = Matrix::random(512, 384, 5)?;
    let b = Matrix::random(384, 512, 6)?;
    put_matrix(&c[bee], tmp.path(), "q/a", &a)?;
    put_matrix(&c[bee], tmp.path(), "q/b", &b)?;
    // Every shard of the inputs is stored before the queen (who holds some) dies.
    for path in ["q/a", "q/b"] {
        wait_until(Duration::from_secs(60), "inputs fully redundant", || {
            let r = uds_get(
                c[bee].state_dir().join("run/chunkstore.sock"),
                &format!("/stat/{path}"),
            )?;
            Ok(r.status == 200 && r.json()?["health"] == "healthy")
        })?;
    }
    let id = submit(&c[bee], ("q/a", "q/b", "q/c"), 16, None)?;
    // Kill the queen once she runs the job and has checkpointed verified tiles.
    let before = wait_for(
        Duration::from_secs(120),
        "the queen checkpointed tiles",
        || {
            let r = c[bee].cli_ok(&["job", "status", &id])?;
            let v: Value = serde_json::from_str(&r.stdout)?;
            let saved = v["checkpoint"]["tiles"]
                .as_array()
                .is_some_and(|t| !t.is_empty());
            Ok((saved || v["state"] == "done" || v["state"] == "failed").then_some(v))
        },
    )?;
    // The job runs on the node that was queen when it claimed the job: the queen at
    // submission unless leadership moved on (a loaded machine can change queens more than
    // once in a few seconds), so the node to kill is the job's coordinator.
    let runner_id = before["coordinator"]
        .as_str()
        .context("no coordinator")?
        .to_string();
    if runner_id != queen_id {
        eprintln!("leadership moved before the claim: the job runs on {runner_id}, not {queen_id}");
    }
    assert_eq!(before["submitted_by"], support::node_id(&c[bee])?.as_str());
    if before["state"] != "running" {
        bail!("the job finished before the kill; make it longer: {before:#}");
    }
    let mut runner = q;
    for (i, n) in c.nodes().iter().enumerate() {
        if support::node_id(n)? == runner_id {
            runner = i;
        }
    }
    let watcher = (0..3).find(|i| *i != runner).unwrap_or(bee);
    c[runner].kill()?;
    let rec = wait_job(&c[watcher], &id)?;
    assert_ne!(rec["coordinator"], runner_id.as_str(), "{rec:#}");
    assert!(rec["resumes"].as_u64().unwrap_or(0) >= 1, "{rec:#}");
    assert!(
        rec["restored"].as_u64().unwrap_or(0) >= 1,
        "no checkpointed tile was kept: {rec:#}"
    );
    assert_product(&a, &b, &fetch_result(&c[watcher], &id, tmp.path())?);
    Ok(())
}

#[test]
fn a_tile_lost_with_its_worker_is_rebuilt_from_its_rows_parity() -> Result<()> {
    let c = slow_mesh(3)?;
    let tmp = tempfile::tempdir()?;
    let ids = c
        .nodes()
        .iter()
        .map(support::node_id)
        .collect::<Result<Vec<String>>>()?;
    // 16 × 16 tiles of 16 × 16 (+ 16 parity tiles): the record keeps every tile's state.
    let a = Matrix::random(256, 320, 21)?;
    let b = Matrix::random(320, 256, 22)?;
    put_matrix(&c[0], tmp.path(), "p/a", &a)?;
    put_matrix(&c[0], tmp.path(), "p/b", &b)?;

    // Bad input first: a clear error, nothing queued.
    for (args, want) in [
        (vec!["--tile", "256"], "at least 2 tiles per tile row"),
        (vec!["--tile", "16", "--verify", "quorum"], "do not combine"),
        (vec!["--tile", "16", "--mode", "cannon"], "mode = cannon"),
    ] {
        let mut all = vec!["job", "submit", "p/a", "p/b", "p/bad", "--parity"];
        all.extend(args.iter().copied());
        let r = c[0].cli_timeout(&all, Duration::from_secs(60))?;
        assert!(!r.success(), "{args:?} was accepted: {r}");
        assert!(
            r.stderr.contains(want),
            "{args:?}: expected {want:?} in {r}"
        );
    }

    let r = c[0].cli_timeout(
        &[
            "job", "submit", "p/a", "p/b", "p/c", "--tile", "16", "--parity",
        ],
        Duration::from_secs(120),
    )?;
    assert!(r.success(), "job submit --parity: {r}");
    let id = r.stdout.trim().to_string();
    // The victim is neither the job's coordinator (who would hand the job over instead) nor
    // n0 (who answers the status calls); kill it while it computes a data tile.
    let victim_of = |v: &Value| {
        (1..3).find(|&i| {
            v["coordinator"] != ids[i].as_str()
                && !v["coordinator"].as_str().is_some_and(str::is_empty)
        })
    };
    let before = wait_for(
        Duration::from_secs(120),
        "the victim computes a data tile",
        || {
            let r = c[0].cli_ok(&["job", "status", &id])?;
            let v: Value = serde_json::from_str(&r.stdout)?;
            let over = v["state"] == "done" || v["state"] == "failed";
            let Some(victim) = victim_of(&v).map(|i| ids[i].as_str()) else {
                return Ok(over.then_some(v));
            };
            let verified = v["workers"][victim]["verified"].as_u64().unwrap_or(0) >= 1;
            let holds = v["tiles"].as_array().is_some_and(|t| {
                t.iter().any(|t| {
                    t["state"] == "running"
                        && t["workers"]
                            .as_array()
                            .is_some_and(|w| w.iter().any(|w| w == victim))
                })
            });
            Ok(((verified && holds) || over).then_some(v))
        },
    )?;
    if before["state"] != "running" {
        bail!("the job finished before the kill; make it longer: {before:#}");
    }
    let v = victim_of(&before).context("a victim")?;
    c[v].kill()?;
    let rec = wait_job(&c[0], &id)?;
    assert_eq!(rec["request"]["parity"], true, "{rec:#}");
    assert_eq!(rec["mode"], "tiles", "{rec:#}");
    assert!(
        rec["failed_calls"].as_u64().unwrap_or(0) >= 1,
        "no call to the dead worker failed: {rec:#}"
    );
    // The rebuild path was taken: the counter, the tile grid and the parity summary say so.
    assert!(
        rec["rebuilt"].as_u64().unwrap_or(0) >= 1,
        "no tile was rebuilt from parity: {rec:#}"
    );
    // The grid shows the last coordinator's view: after a take-over (leadership can move on a
    // loaded machine) tiles rebuilt earlier come back from the checkpoint as plain `done`.
    let rebuilt_tiles = rec["tiles"]
        .as_array()
        .context("tiles")?
        .iter()
        .filter(|t| t["state"] == "rebuilt")
        .count();
    if rec["resumes"] == 0 {
        assert_eq!(
            rebuilt_tiles as u64,
            rec["rebuilt"].as_u64().unwrap_or(0),
            "{rec:#}"
        );
        assert!(
            rec["parity"]["verified"].as_u64().unwrap_or(0) >= 1,
            "{rec:#}"
        );
    }
    assert_eq!(rec["parity"]["rows"], 16, "{rec:#}");
    assert_eq!(rec["tiles_done"], rec["tiles_total"], "{rec:#}");
    assert_product(&a, &b, &fetch_result(&c[0], &id, tmp.path())?);
    // And the metric, on the node(s) that coordinated the job (every live node is asked: after a
    // take-over the rebuild may have happened on an earlier coordinator).
    let mut rebuilt_metric = 0.0;
    for (i, n) in c.nodes().iter().enumerate() {
        if i == v {
            continue;
        }
        let metrics = uds_get(n.state_dir().join("run/compute.sock"), "/metrics")?;
        rebuilt_metric += metrics
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("hyphae_compute_tiles_rebuilt_total "))
            .and_then(|x| x.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert!(rebuilt_metric >= 1.0, "metric: {rebuilt_metric}");
    eprintln!(
        "parity record: rebuilt {} parity {}",
        rec["rebuilt"], rec["parity"]
    );
    Ok(())
}

/// Runs `scripts/mlp_to_hyphae.py` with Debian's interpreter (where python3-numpy lives).
fn mlp_script(args: &[&str]) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mlp_to_hyphae.py");
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "mlp_to_hyphae.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The gateway of `n` over HTTPS (HTTP/2) with an API token.
struct Gateway {
    client: support::https::Client,
    addr: std::net::SocketAddr,
    auth: String,
    rt: tokio::runtime::Runtime,
}

impl Gateway {
    fn open(c: &Cluster, n: &Node) -> Result<Gateway> {
        wait_until(Duration::from_secs(90), "gateway serving", || {
            Ok(uds_get(n.state_dir().join("run/gateway.sock"), "/status")
                .ok()
                .and_then(|r| r.json().ok())
                .is_some_and(|v: Value| v["serving"] == true))
        })?;
        let ca = support::export_web_ca(&c[0])?;
        let token = n
            .cli_ok(&["api-token", "create", "--name", "jobs"])?
            .stdout_trimmed()
            .to_string();
        Ok(Gateway {
            client: support::https::Client::new(&ca)?,
            addr: std::net::SocketAddr::new(n.ip().into(), 8443),
            auth: format!("Bearer {token}"),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let body = body.map_or_else(bytes::Bytes::new, |b| bytes::Bytes::from(b.to_string()));
        let a = self.rt.block_on(self.client.request(
            support::https::Proto::H2,
            self.addr,
            method,
            path,
            &[
                ("authorization", self.auth.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        ))?;
        Ok((a.status, a.json()))
    }
}

#[test]
fn quorum_job_over_https_outvotes_a_faulty_worker_and_inference_matches_numpy() -> Result<()> {
    let c = compute_mesh(3, &[2])?;
    let tmp = tempfile::tempdir()?;
    let faulty_id = support::node_id(&c[2])?;
    let gw = Gateway::open(&c, &c[1])?;
    let a = Matrix::random(130, 90, 7)?;
    let b = Matrix::random(90, 100, 8)?;
    put_matrix(&c[1], tmp.path(), "v/a", &a)?;
    put_matrix(&c[1], tmp.path(), "v/b", &b)?;
    // A quorum job through POST /api/v1/jobs, followed with GET /api/v1/jobs/{id}.
    let (code, v) = gw.call(
        "POST",
        "/api/v1/jobs",
        Some(serde_json::json!({
            "a": "v/a", "b": "v/b", "out": "v/c", "tile": 32, "verify": "quorum"
        })),
    )?;
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().context("job id")?.to_string();
    let rec = wait_for(Duration::from_secs(150), "the quorum job finished", || {
        let (s, v) = gw.call("GET", &format!("/api/v1/jobs/{id}"), None)?;
        Ok((s == 200 && (v["state"] == "done" || v["state"] == "failed")).then_some(v))
    })?;
    assert_eq!(rec["state"], "done", "{rec:#}");
    assert_eq!(rec["request"]["verify"], "quorum");
    assert_product(&a, &b, &fetch_result(&c[1], &id, tmp.path())?);
    assert!(
        rec["rejected"].as_u64().unwrap_or(0) >= 2,
        "the faulty worker was never outvoted: {rec:#}"
    );
    assert_eq!(rec["workers"][&faulty_id]["quarantined"], true, "{rec:#}");
    assert_eq!(rec["workers"][&faulty_id]["verified"], 0, "{rec:#}");
    // Every tile was kept on the word of two honest workers at least.
    for t in rec["tiles"].as_array().context("tiles")? {
        let w = t["workers"].as_array().context("tile workers")?;
        assert!(w.len() >= 2, "tile kept without a quorum: {t}");
        assert!(!w.iter().any(|x| x == faulty_id.as_str()), "{t}");
    }
    let (s, list) = gw.call("GET", "/api/v1/jobs", None)?;
    assert_eq!(s, 200);
    assert!(list["jobs"]
        .as_array()
        .is_some_and(|j| j.iter().any(|r| r["id"] == id.as_str())));
    let (s, bad) = gw.call(
        "POST",
        "/api/v1/jobs",
        Some(serde_json::json!({"a": "v/a", "b": "v/a", "out": "v/x"})),
    )?;
    assert_eq!(s, 400, "{bad}");

    // Inference: a model converted from a numpy state dict, stored in the mesh, against the
    // script's numpy reference.
    let p = |n: &str| tmp.path().join(n).to_string_lossy().into_owned();
    mlp_script(&["random-state", &p("state.npz"), "33", "64", "48", "10"])?;
    mlp_script(&[
        "convert",
        &p("state.npz"),
        &p("model.hymw"),
        "--hidden",
        "relu",
        "--softmax",
    ])?;
    let x = Matrix::random(7, 33, 9)?;
    std::fs::write(p("x.hymx"), matrix_file::encode(&x))?;
    mlp_script(&["reference", &p("model.hymw"), &p("x.hymx"), &p("want.hymx")])?;
    let want = matrix_file::decode(&std::fs::read(p("want.hymx"))?)?;
    put_bytes(
        &c[1],
        tmp.path(),
        "models/mlp.hymw",
        &std::fs::read(p("model.hymw"))?,
    )?;
    put_matrix(&c[1], tmp.path(), "models/x.hymx", &x)?;
    let close = |got: &Matrix, what: &str| {
        assert_eq!(
            (got.rows(), got.cols()),
            (want.rows(), want.cols()),
            "{what}"
        );
        for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "{what} element {i}: {g} vs numpy {w}"
            );
        }
    };
    let (s, v) = gw.call(
        "POST",
        "/api/v1/inference/request",
        Some(serde_json::json!({
            "model": "models/mlp.hymw", "input": "models/x.hymx", "out": "models/y.hymx"
        })),
    )?;
    assert_eq!(s, 200, "{v}");
    let rows: Vec<Vec<f32>> = serde_json::from_value(v["output"].clone())?;
    let got = Matrix::from_vec(rows.len(), 10, rows.concat())?;
    close(&got, "inference output");
    let dest = tmp.path().join("y.hymx");
    c[0].cli_ok(&["get", "models/y.hymx", dest.to_str().unwrap_or_default()])?;
    close(
        &matrix_file::decode(&std::fs::read(&dest)?)?,
        "stored output",
    );
    // Inline rows give the same answer; bad input is a clear 400.
    let inline: Vec<&[f32]> = (0..x.rows()).map(|i| x.row(i)).collect();
    let (s, v) = gw.call(
        "POST",
        "/api/v1/inference/request",
        Some(serde_json::json!({ "model": "models/mlp.hymw", "x": inline })),
    )?;
    assert_eq!(s, 200, "{v}");
    let rows: Vec<Vec<f32>> = serde_json::from_value(v["output"].clone())?;
    close(&Matrix::from_vec(rows.len(), 10, rows.concat())?, "inline");
    for (body, want) in [
        (
            serde_json::json!({ "model": "models/nope", "x": [[1.0]] }),
            "does not exist",
        ),
        (
            serde_json::json!({ "model": "models/mlp.hymw", "x": [[1.0, 2.0]] }),
            "columns",
        ),
        (
            serde_json::json!({ "model": "models/x.hymx", "x": [[1.0]] }),
            "models/x.hymx",
        ),
    ] {
        let (s, v) = gw.call("POST", "/api/v1/inference/request", Some(body))?;
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains(want), "expected {want:?} in {v}");
    }
    for n in c.nodes() {
        assert!(
            compute_status(n)?.is_some(),
            "{} compute service died",
            n.name()
        );
    }
    Ok(())
}
