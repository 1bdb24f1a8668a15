//! `hyphae doctor`: what this host offers the mesh, and what to do about what it lacks.
//!
//! Nothing here is required to start a node: each missing feature only turns off or slows down
//! the part of Hyphae that uses it, and the report says which.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hyphae_core::paths::NodePaths;
use serde::Serialize;

/// Options of `hyphae doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    /// Present and usable.
    Ok,
    /// Missing or limited; a fallback is used.
    Warn,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    verdict: Verdict,
    detail: String,
    /// What Hyphae uses it for, and what happens without it.
    used_for: &'static str,
}

fn check(name: &'static str, used_for: &'static str, result: Result<String, String>) -> Check {
    let (verdict, detail) = match result {
        Ok(d) => (Verdict::Ok, d),
        Err(d) => (Verdict::Warn, d),
    };
    Check {
        name,
        verdict,
        detail,
        used_for,
    }
}

/// Runs every check and prints the report.
pub fn run(paths: &NodePaths, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = vec![
        check(
            "io_uring",
            "the chunk store's disk I/O; without it the store falls back to pread/pwrite",
            io_uring(),
        ),
        check(
            "kvm",
            "running replicated VMs at native speed; without it QEMU uses TCG (slow)",
            kvm(),
        ),
        check(
            "vulkan",
            "GPU compute jobs; without a device the CPU backend runs them",
            vulkan(),
        ),
        check(
            "cgroup v2",
            "throttling VM vCPUs during replication; without it throttling is off",
            cgroup_v2(),
        ),
        check(
            "ipv6",
            "link-local discovery and dual-stack endpoints; without it IPv4 only",
            ipv6(),
        ),
        check(
            "disk",
            "the state directory (identity, coordinator log, shards)",
            free_disk(&paths.state),
        ),
    ];
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
            };
            println!("{mark} {:<10} {}", c.name, c.detail);
            if c.verdict == Verdict::Warn {
                println!("     {:<10} used for {}", "", c.used_for);
            }
        }
        let warnings = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
        println!(
            "\n{} checks, {} ok, {} with a fallback in use",
            checks.len(),
            checks.len() - warnings,
            warnings
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn io_uring() -> Result<String, String> {
    // The shard store's own probe (ring + NOP), so doctor says what the store will pick.
    hyphae_chunkstore::local::probe_io_uring()
        .map(|()| "available: the shard store appends and reads through io_uring".to_string())
        .map_err(|reason| format!("unavailable, the shard store uses pread/pwrite: {reason}"))
}

fn kvm() -> Result<String, String> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| {
            format!("/dev/kvm: {e} (enable virtualisation in firmware, load kvm_intel/kvm_amd)")
        })?;
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an integer.
    let version = unsafe { libc::ioctl(f.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version == 12 {
        Ok("/dev/kvm usable (API 12)".into())
    } else {
        Err(format!(
            "/dev/kvm answered API version {version}, expected 12"
        ))
    }
}

fn vulkan() -> Result<String, String> {
    use ash::vk;
    // SAFETY: loading the system Vulkan loader; its symbols are only used through ash below.
    let entry = unsafe { ash::Entry::load() }.map_err(|e| {
        format!("no Vulkan loader ({e}); apt install libvulkan1 mesa-vulkan-drivers")
    })?;
    let app = vk::ApplicationInfo::default()
        .application_name(c"hyphae-doctor")
        .api_version(vk::API_VERSION_1_1);
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: a plain instance with no layers or extensions, destroyed before returning.
    let instance = unsafe { entry.create_instance(&info, None) }
        .map_err(|e| format!("Vulkan loader present but no instance: {e}"))?;
    let result = (|| {
        // SAFETY: the instance is valid until destroyed below.
        let devices = unsafe { instance.enumerate_physical_devices() }
            .map_err(|e| format!("cannot list Vulkan devices: {e}"))?;
        if devices.is_empty() {
            return Err("Vulkan loader present, but no device (install a driver)".to_string());
        }
        let mut names = Vec::new();
        let mut gpu = false;
        for d in devices {
            // SAFETY: `d` comes from this instance.
            let props = unsafe { instance.get_physical_device_properties(d) };
            let mem = unsafe { instance.get_physical_device_memory_properties(d) };
            let vram: u64 = mem.memory_heaps[..mem.memory_heap_count as usize]
                .iter()
                .filter(|h| h.flags.contains(vk::MemoryHeapFlags::DEVICE_LOCAL))
                .map(|h| h.size)
                .sum();
            let name = props
                .device_name_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            let kind = match props.device_type {
                vk::PhysicalDeviceType::DISCRETE_GPU => "discrete GPU",
                vk::PhysicalDeviceType::INTEGRATED_GPU => "integrated GPU",
                vk::PhysicalDeviceType::CPU => "CPU (software; correctness only)",
                vk::PhysicalDeviceType::VIRTUAL_GPU => "virtual GPU",
                _ => "other",
            };
            gpu |= props.device_type != vk::PhysicalDeviceType::CPU;
            names.push(format!("{name} [{kind}, {} MiB local]", vram >> 20));
        }
        let list = names.join("; ");
        if gpu {
            Ok(list)
        } else {
            Err(format!("only software devices: {list}"))
        }
    })();
    // SAFETY: nothing created from the instance outlives this point.
    unsafe { instance.destroy_instance(None) };
    result
}

fn cgroup_v2() -> Result<String, String> {
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .map_err(|_| "no unified cgroup v2 hierarchy at /sys/fs/cgroup".to_string())?;
    let list: Vec<&str> = controllers.split_whitespace().collect();
    if list.contains(&"cpu") {
        Ok(format!("mounted; controllers: {}", list.join(" ")))
    } else {
        Err(format!(
            "mounted, but no cpu controller (have: {})",
            list.join(" ")
        ))
    }
}

fn ipv6() -> Result<String, String> {
    std::net::UdpSocket::bind("[::1]:0")
        .map(|_| "enabled".to_string())
        .map_err(|e| format!("disabled or unusable: {e}"))
}

/// The nearest existing ancestor (the state dir may not exist before first start).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

fn free_disk(state: &Path) -> Result<String, String> {
    let at = existing_ancestor(state);
    let st =
        nix::sys::statvfs::statvfs(&at).map_err(|e| format!("statvfs {}: {e}", at.display()))?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let total = st.blocks() as u64 * st.fragment_size() as u64;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let detail = format!(
        "{:.1} GiB free of {:.1} GiB at {}",
        gib(free),
        gib(total),
        at.display()
    );
    if free < 1 << 30 {
        Err(format!("{detail}: less than 1 GiB"))
    } else {
        Ok(detail)
    }
}
