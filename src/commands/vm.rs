//! `hyphae vm`: replicated VMs on this node's memrep (`<run>/memrep.sock`): create (this node
//! runs the primary, the given nodes keep replicas), list, status, console, stop/delete, and
//! resume (run a replica held here as the new primary: manual failover or the target side of a
//! migration).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use hyper::Method;
use hyphae_core::ipc;
use hyphae_core::paths::NodePaths;
use serde_json::{json, Value};

/// `hyphae vm ...`
#[derive(Debug, clap::Subcommand)]
pub enum VmCommand {
    /// Start a VM with this node as its primary and replicas on the given (or chosen) backups.
    Create(CreateArgs),
    /// Every VM of the mesh (the VM table), with live figures for those running here.
    List,
    /// One VM: its record (primary, backups, generation, state), its replicas' committed
    /// epochs and, on its primary, the replication figures (epoch, pause, lag, throttle).
    Status(NameArg),
    /// The tail of a VM's serial console.
    Console(NameArg),
    /// Stop a VM (run on its primary: QEMU quits; replicas are kept; no failover).
    Stop(NameArg),
    /// Stop a VM and forget it in the mesh (its record and replica rows).
    Delete(NameArg),
    /// Move a running VM to another node with one short pause (run on its primary).
    Migrate(MigrateArgs),
    /// Resume the replica of a VM held on this node as the new primary (fences the old one).
    Resume(CreateArgs),
    /// The replicas this node holds.
    Replicas,
}

/// A VM name.
#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// The VM.
    name: String,
}

/// What `migrate` takes.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The VM.
    name: String,
    /// The node to move it to (name, id or address).
    #[arg(long)]
    to: String,
}

/// What `create` and `resume` take.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The VM's name.
    name: String,
    /// Kernel to boot directly. Without it the VM boots its --disk through the firmware
    /// (SeaBIOS runs the disk's own boot loader).
    #[arg(long, required_unless_present = "disk")]
    kernel: Option<PathBuf>,
    /// Initramfs (with --kernel).
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// A raw disk image attached as virtio-blk (/dev/vda), replicated with the RAM: a local
    /// file or `mesh:/PATH` (a file stored with `hyphae put`). Copied into /dev/shm. Without
    /// --kernel it must be bootable (a BIOS boot loader, e.g. syslinux) and the VM boots it.
    #[arg(long, value_name = "FILE|mesh:/PATH")]
    disk: Option<String>,
    /// Kernel command line (with --kernel; default console=ttyS0).
    #[arg(long, requires = "kernel")]
    append: Option<String>,
    /// Memory, e.g. 512M or 1G.
    #[arg(long, default_value = "512M")]
    mem: String,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
    /// A backup node: name, node id or address (repeatable). Unnamed backups (up to
    /// --replicas) are chosen among live nodes.
    #[arg(long = "backup", value_name = "NODE")]
    backups: Vec<String>,
    /// How many backups the VM keeps (default: as many as named, or 2).
    #[arg(long)]
    replicas: Option<usize>,
    /// consistent (pause when backups fall behind) or best-effort.
    #[arg(long, default_value = "consistent")]
    mode: String,
    /// Base epoch interval in milliseconds.
    #[arg(long)]
    interval_ms: Option<u64>,
}

/// Parses `512M`, `1G`, `256` (MiB).
fn parse_mem_mib(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('G') | Some('g') => (&s[..s.len() - 1], 1024),
        Some('M') | Some('m') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("memory size {s:?}"))?;
    Ok(n * mul)
}

fn body(a: &CreateArgs) -> anyhow::Result<Value> {
    let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| format!("{}", p.display()));
    // A mesh file is named as is; a local file by its absolute path (memrep runs elsewhere),
    // which need not exist here (`resume` takes the disk from the replica, not the image).
    let disk = match a.disk.as_deref() {
        Some(d) if d.starts_with("mesh:") => Some(d.to_string()),
        Some(d) => Some(
            std::path::absolute(d)
                .with_context(|| d.to_string())?
                .display()
                .to_string(),
        ),
        None => None,
    };
    Ok(json!({
        "disk": disk,
        "name": a.name,
        "kernel": a.kernel.as_deref().map(abs).transpose()?,
        "initrd": a.initrd.as_deref().map(abs).transpose()?,
        "append": match (&a.kernel, &a.append) {
            (Some(_), Some(ap)) => ap.as_str(),
            (Some(_), None) => "console=ttyS0",
            (None, _) => "",
        },
        "mem_mib": parse_mem_mib(&a.mem)?,
        "vcpus": a.vcpus,
        "backups": a.backups,
        "replicas": a.replicas,
        "mode": a.mode,
        "interval_ms": a.interval_ms,
    }))
}

async fn call(
    socket: &Path,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, bytes) = ipc::request(
        socket,
        method,
        uri,
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
    .context("memrep is not reachable (is `hyphae memrep` or `hyphae node` running?)")?;
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    if !status.is_success() {
        let msg = v.get("error").and_then(Value::as_str).map(str::to_string);
        bail!("{}", msg.unwrap_or_else(|| format!("{status}: {v}")));
    }
    Ok(v)
}

/// Runs `hyphae vm ...`.
pub fn run(paths: &NodePaths, cmd: VmCommand) -> anyhow::Result<ExitCode> {
    let socket = paths.socket("memrep");
    super::block_on(async move {
        let out = match cmd {
            VmCommand::Create(a) => call(&socket, Method::POST, "/vms", Some(body(&a)?)).await?,
            VmCommand::Resume(a) => {
                let uri = format!("/replicas/{}/resume", a.name);
                call(&socket, Method::POST, &uri, Some(body(&a)?)).await?
            }
            VmCommand::List => call(&socket, Method::GET, "/vms", None).await?,
            VmCommand::Replicas => call(&socket, Method::GET, "/replicas", None).await?,
            VmCommand::Status(n) => {
                call(&socket, Method::GET, &format!("/vms/{}", n.name), None).await?
            }
            VmCommand::Console(n) => {
                let v = call(
                    &socket,
                    Method::GET,
                    &format!("/vms/{}/console", n.name),
                    None,
                )
                .await?;
                print!("{}", v.as_str().unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            VmCommand::Stop(n) => {
                call(&socket, Method::DELETE, &format!("/vms/{}", n.name), None).await?
            }
            VmCommand::Delete(n) => {
                let uri = format!("/vms/{}?forget=true", n.name);
                call(&socket, Method::DELETE, &uri, None).await?
            }
            VmCommand::Migrate(m) => {
                let uri = format!("/vms/{}/migrate", m.name);
                call(&socket, Method::POST, &uri, Some(json!({ "to": m.to }))).await?
            }
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_sizes() {
        assert_eq!(super::parse_mem_mib("512M").unwrap(), 512);
        assert_eq!(super::parse_mem_mib("2G").unwrap(), 2048);
        assert_eq!(super::parse_mem_mib("64").unwrap(), 64);
        assert!(super::parse_mem_mib("lots").is_err());
    }

    /// `create` needs a kernel or a disk; initrd and command line only go with a kernel, and
    /// without one the request asks memrep to boot the disk (no kernel, empty command line).
    #[test]
    fn create_without_a_kernel_boots_the_disk() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            vm: super::VmCommand,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(["vm"].iter().chain(args)).map(|c| c.vm);
        let Ok(super::VmCommand::Create(a)) = parse(&["create", "v", "--disk", "mesh:/vm/b.raw"])
        else {
            panic!("--disk alone is refused");
        };
        let body = super::body(&a).unwrap();
        assert_eq!(body["kernel"], serde_json::Value::Null);
        assert_eq!(body["append"], "");
        assert_eq!(body["disk"], "mesh:/vm/b.raw");
        assert!(parse(&["create", "v"]).is_err(), "neither kernel nor disk");
        assert!(parse(&["create", "v", "--disk", "/d.raw", "--initrd", "/i"]).is_err());
        assert!(parse(&["create", "v", "--disk", "/d.raw", "--append", "x"]).is_err());
    }
}
