//! `hyphae status`: what this node's running services say about themselves.

use std::process::ExitCode;

use anyhow::Context;
use hyphae_core::paths::NodePaths;
use hyphae_core::transport::ServiceSpec;

/// Options of `hyphae status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// Reads `/status` from the node's local socket.
pub fn run(paths: &NodePaths, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let socket = paths.socket(ServiceSpec::NODE.name);
    let mut status = super::block_on(hyphae_core::ipc::get_json(&socket, "/status"))?
        .with_context(|| format!("is the node running? (no answer on {})", socket.display()))?;
    // Each service's own view, when it runs (it may be a separate unit, or not started yet):
    // the coordinator (mesh, queen, Raft), the beacon (which step of discovery found the mesh),
    // the chunkstore (storage, healing, scrub).
    let coordinator = service_status(
        &mut status,
        "coordinator",
        &super::coordinator::socket(paths),
    )?;
    let beacon = service_status(&mut status, "beacon", &paths.socket("beacon"))?;
    let chunkstore = service_status(
        &mut status,
        "chunkstore",
        &paths.socket(ServiceSpec::CHUNKSTORE.name),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |k: &str| status[k].as_str().unwrap_or("-").to_string();
    println!("node      {} ({})", s("node_id"), s("name"));
    println!("version   {}", s("version"));
    if status["member"].as_bool() == Some(true) {
        println!("mesh      {}", s("mesh_id"));
        println!("quic      {}", s("quic"));
    } else {
        println!("mesh      not a member yet (hyphae init, or enrol this node)");
    }
    println!("uptime    {} s", status["uptime_s"]);
    if let Some(c) = &coordinator {
        let cs = |k: &str| c[k].as_str().unwrap_or("-").to_string();
        if c.get("mesh_id").is_some() {
            println!("mesh      {} (coordinator)", cs("mesh_id"));
            println!("queen     {} at {}", cs("queen"), cs("queen_addr"));
            println!("role      {}", cs("role"));
            println!(
                "raft      term {}, commit index {}, lag {}",
                c["term"], c["commit_index"], c["lag"]
            );
        } else {
            println!("coordinator {}", cs("note"));
        }
    }
    if let Some(b) = &beacon {
        match b["found_by"].as_str() {
            Some(step) => println!(
                "discovery found by {step} after {} ms, {} members heard",
                b["found_after_ms"],
                b["members"].as_array().map(Vec::len).unwrap_or(0)
            ),
            None => println!(
                "discovery searching (beacon {}, mdns {}, {} candidates)",
                b["steps"]["beacon"], b["steps"]["mdns"], b["steps"]["candidates"]
            ),
        }
    }
    println!(
        "rpc       {} connections, {} handshakes refused, {} bad frames",
        status["rpc"]["connections"],
        status["rpc"]["handshakes_refused"],
        status["rpc"]["bad_frames"]
    );
    if let Some(cs) = &chunkstore {
        let st = &cs["storage"];
        println!(
            "storage   {} shards, {} of {} bytes used, {} backend",
            st["shards"],
            st["used_bytes"],
            st["capacity_bytes"],
            st["backend"].as_str().unwrap_or("-")
        );
        println!(
            "healing   {} under-replicated chunks; repairs {} active, {} done of {}",
            st["under_replicated_chunks"],
            st["healing"]["active"],
            st["healing"]["done"],
            st["healing"]["total"]
        );
        println!(
            "scrub     {} runs, {} corrupt found, {} repaired",
            st["scrub"]["runs"], st["scrub"]["corrupt_found"], st["scrub"]["repaired"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A service's `/status` from its socket, also added to `status` under `key`; None when the
/// service does not answer.
fn service_status(
    status: &mut serde_json::Value,
    key: &str,
    socket: &std::path::Path,
) -> anyhow::Result<Option<serde_json::Value>> {
    let answer = super::block_on(hyphae_core::ipc::get_json(socket, "/status"))?.ok();
    if let (Some(v), Some(obj)) = (&answer, status.as_object_mut()) {
        obj.insert(key.into(), v.clone());
    }
    Ok(answer)
}
