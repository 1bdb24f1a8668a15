//! Launching and supervising one QEMU: the command line (RAM as a shared file in /dev/shm so
//! memrep can read it while the guest is paused, QMP on a Unix socket, serial console to a log
//! file), the process, and its clean-up. A `QemuProcess` that is dropped kills its QEMU and
//! removes the files it owns, so an error path leaks neither processes nor /dev/shm files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::accel::Accel;
use crate::qmp::{QmpClient, QmpError};

/// What a VM is made of; stored in the VM table and identical on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// The VM's name (unique in the mesh).
    pub name: String,
    /// The kernel image booted directly (`-kernel`); `None`: the VM boots its disk through
    /// the firmware (SeaBIOS reads the disk's own boot loader), so `disk` is then required.
    /// (`default`: an API request may leave it out when it gives a disk.)
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    /// The initramfs, if any (only with `kernel`).
    pub initrd: Option<PathBuf>,
    /// The kernel command line (only with `kernel`; a disk's boot loader has its own).
    #[serde(default)]
    pub append: String,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// The disk image the VM starts from: an absolute local path or `mesh:/PATH` (a file in
    /// the mesh store). Copied into a raw file beside the RAM file and replicated with it
    /// (`vm_disk`); `None`: no disk. (Always serialized: the spec also travels in postcard,
    /// which cannot skip fields; `default` reads records written before disks existed.)
    #[serde(default)]
    pub disk: Option<String>,
}

/// Why a VM could not be started or restored.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A file the spec names does not exist.
    #[error("{what} {path}: not found")]
    MissingFile {
        /// Which file (kernel, initrd).
        what: &'static str,
        /// Its path.
        path: String,
    },
    /// The spec asks for something this host cannot give.
    #[error("invalid VM spec: {0}")]
    Invalid(String),
    /// QEMU could not be started or died during start-up.
    #[error("QEMU: {0}")]
    Process(String),
    /// The RAM file could not be prepared.
    #[error("RAM file {path}: {source}")]
    RamFile {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// QMP failed during start-up.
    #[error(transparent)]
    Qmp(#[from] QmpError),
}

/// Names may reach file names and QEMU options: letters, digits, `-` and `_` only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl VmSpec {
    /// Checks the spec against this host: files present, memory within `max_mem_mib`.
    pub fn validate(&self, max_mem_mib: u64) -> Result<(), LaunchError> {
        if !valid_name(&self.name) {
            return Err(LaunchError::Invalid(format!(
                "name {:?}: use 1-63 letters, digits, '-' or '_'",
                self.name
            )));
        }
        match &self.kernel {
            Some(k) if !k.is_file() => {
                return Err(LaunchError::MissingFile {
                    what: "kernel",
                    path: k.display().to_string(),
                });
            }
            Some(_) => {}
            None if self.disk.is_none() => {
                return Err(LaunchError::Invalid(
                    "nothing to boot: give a kernel, or a disk with a boot loader".into(),
                ));
            }
            None if self.initrd.is_some() || !self.append.is_empty() => {
                return Err(LaunchError::Invalid(
                    "an initrd or a kernel command line needs a kernel (a VM booting its disk \
                     takes them from the disk's boot loader)"
                        .into(),
                ));
            }
            None => {}
        }
        if let Some(i) = &self.initrd {
            if !i.is_file() {
                return Err(LaunchError::MissingFile {
                    what: "initrd",
                    path: i.display().to_string(),
                });
            }
        }
        if self.mem_mib < 16 {
            return Err(LaunchError::Invalid("memory below 16 MiB".into()));
        }
        if self.mem_mib > max_mem_mib {
            return Err(LaunchError::Invalid(format!(
                "{} MiB of memory asked, this node allows at most {max_mem_mib} MiB",
                self.mem_mib
            )));
        }
        if self.vcpus == 0 || self.vcpus > 64 {
            return Err(LaunchError::Invalid("vcpus must be 1..=64".into()));
        }
        if let Some(d) = &self.disk {
            crate::vm_disk::DiskSource::parse(d)
                .map_err(|e| LaunchError::Invalid(e.to_string()))?;
        }
        if self.append.contains(['\n', '\0']) {
            return Err(LaunchError::Invalid(
                "kernel command line has control characters".into(),
            ));
        }
        Ok(())
    }

    /// Guest RAM in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib * 1024 * 1024
    }
}

/// Where one QEMU instance keeps its files.
#[derive(Debug, Clone)]
pub struct InstancePaths {
    /// The RAM file (in /dev/shm).
    pub ram: PathBuf,
    /// The QMP socket.
    pub qmp: PathBuf,
    /// The serial console log.
    pub serial: PathBuf,
    /// QEMU's own stderr.
    pub stderr: PathBuf,
    /// The raw disk file attached as virtio-blk (in /dev/shm beside the RAM file), if any.
    pub disk: Option<PathBuf>,
}

impl InstancePaths {
    /// The files of instance `tag` of VM `name`: RAM under `shm`, the rest under `dir`.
    pub fn new(shm: &Path, dir: &Path, name: &str, tag: &str) -> InstancePaths {
        InstancePaths {
            ram: shm.join(format!("hyphae-memrep-{name}-{tag}.ram")),
            qmp: dir.join(format!("{name}-{tag}.qmp")),
            serial: dir.join(format!("{name}-{tag}.serial")),
            stderr: dir.join(format!("{name}-{tag}.stderr")),
            disk: None,
        }
    }

    /// Where instance `tag` of VM `name` keeps its disk (beside its RAM file).
    pub fn disk_file(shm: &Path, name: &str, tag: &str) -> PathBuf {
        shm.join(format!("hyphae-memrep-{name}-{tag}.disk"))
    }
}

/// How to start QEMU.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The VM.
    pub spec: VmSpec,
    /// The accelerator.
    pub accel: Accel,
    /// The instance's files.
    pub paths: InstancePaths,
    /// Restore: start with `-incoming defer` on an existing RAM file instead of booting.
    pub incoming: bool,
    /// Whether dropping the process removes the RAM file and the disk file (false when they are a
    /// replica that must outlive the process). A fresh boot (not `incoming`) always starts
    /// from a new RAM file; an incoming launch requires the file to exist.
    pub owns_ram: bool,
}

impl Launch {
    /// QEMU's arguments.
    pub fn args(&self) -> Vec<String> {
        let s = &self.spec;
        let mut a: Vec<String> = vec![
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-name".into(),
            format!("hyphae-{}", s.name),
            "-accel".into(),
            self.accel.as_str().into(),
            "-cpu".into(),
            self.accel.cpu_model().into(),
            "-smp".into(),
            s.vcpus.to_string(),
            "-m".into(),
            format!("{}M", s.mem_mib),
            "-object".into(),
            format!(
                "memory-backend-file,id=ram0,size={}M,mem-path={},share=on",
                s.mem_mib,
                self.paths.ram.display()
            ),
            "-machine".into(),
            "q35,memory-backend=ram0".into(),
            "-serial".into(),
            format!("file:{}", self.paths.serial.display()),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", self.paths.qmp.display()),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            // The VAPIC option ROM patcher (`kvm-tpr-opt`) refuses to load its state on a
            // fresh QEMU under x-ignore-shared ("load of migration failed: Operation not
            // permitted"); the guest does not need it (x2APIC/TPR shadow do the same job).
            "-global".into(),
            "apic-common.vapic=off".into(),
        ];
        if let Some(k) = &s.kernel {
            a.push("-kernel".into());
            a.push(k.display().to_string());
            a.push("-append".into());
            a.push(s.append.clone());
            if let Some(i) = &s.initrd {
                a.push("-initrd".into());
                a.push(i.display().to_string());
            }
        }
        if let Some(d) = &self.paths.disk {
            // Raw, written through the host page cache (tmpfs: the file itself), so that once
            // QMP `stop` has drained and flushed the block layer the file holds every write
            // the guest saw complete. `cache=none` (O_DIRECT) is not used: tmpfs may refuse it.
            let file = format!(
                "file={},format=raw,cache=writeback,aio=threads,discard=ignore",
                d.display().to_string().replace(',', ",,")
            );
            if s.kernel.is_some() {
                a.push("-drive".into());
                a.push(format!("{file},if=virtio"));
            } else {
                // No kernel: the firmware (SeaBIOS, the q35 default) boots this disk, the only
                // boot device (`bootindex`; -nodefaults leaves no NIC or CD-ROM to try first).
                a.push("-drive".into());
                a.push(format!("{file},if=none,id=disk0"));
                a.push("-device".into());
                a.push("virtio-blk-pci,drive=disk0,bootindex=1".into());
            }
        }
        if self.incoming {
            a.push("-incoming".into());
            a.push("defer".into());
        }
        a
    }
}

/// A running QEMU and its QMP connection.
#[derive(Debug)]
pub struct QemuProcess {
    child: Child,
    /// The QMP connection.
    pub qmp: QmpClient,
    /// The launch it came from.
    pub launch: Launch,
}

impl QemuProcess {
    /// Starts QEMU and connects to its QMP socket. On any failure the process is killed and
    /// the files it owns are removed.
    pub async fn start(launch: Launch) -> Result<QemuProcess, LaunchError> {
        let p = &launch.paths;
        let _ = std::fs::remove_file(&p.qmp);
        if !launch.incoming {
            // A fresh boot: a RAM file left by a crash is stale.
            let _ = std::fs::remove_file(&p.ram);
        } else if !p.ram.is_file() {
            return Err(LaunchError::MissingFile {
                what: "replica RAM file",
                path: p.ram.display().to_string(),
            });
        }
        if let Some(d) = &p.disk {
            if !d.is_file() {
                return Err(LaunchError::MissingFile {
                    what: "disk file",
                    path: d.display().to_string(),
                });
            }
        }
        let stderr = std::fs::File::create(&p.stderr)
            .map_err(|e| LaunchError::Process(format!("{}: {e}", p.stderr.display())))?;
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(launch.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        // QEMU dies with us if memrep is killed (no orphaned guests writing to a RAM file).
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| LaunchError::Process(format!("cannot run qemu-system-x86_64: {e}")))?;
        let mut guard = ChildGuard {
            child: Some(child),
            launch: launch.clone(),
        };
        let qmp = tokio::select! {
            r = QmpClient::connect(&p.qmp, Duration::from_secs(30)) => r,
            status = guard.wait() => {
                let err = std::fs::read_to_string(&p.stderr).unwrap_or_default();
                return Err(LaunchError::Process(format!(
                    "exited during start-up ({status}): {}",
                    err.trim()
                )));
            }
        };
        let qmp = match qmp {
            Ok(q) => q,
            Err(e) => {
                let err = std::fs::read_to_string(&p.stderr).unwrap_or_default();
                return Err(LaunchError::Process(format!("{e}; stderr: {}", err.trim())));
            }
        };
        let child = guard
            .child
            .take()
            .ok_or_else(|| LaunchError::Process("lost child".into()))?;
        Ok(QemuProcess { child, qmp, launch })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The last lines QEMU wrote to stderr (for error messages).
    pub fn stderr_tail(&self) -> String {
        let all = std::fs::read_to_string(&self.launch.paths.stderr).unwrap_or_default();
        let lines: Vec<&str> = all.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Whether QEMU has exited (without waiting).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks QEMU to quit, kills it if it does not within a few seconds, and removes its files.
    pub async fn shutdown(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(3), self.qmp.quit()).await;
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        // Drop removes the files.
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Reap synchronously-ish: the kernel frees the mapping when QEMU is gone, but the
        // file itself must go now.
        let _ = self.child.try_wait();
        remove_files(&self.launch);
    }
}

fn remove_files(launch: &Launch) {
    let _ = std::fs::remove_file(&launch.paths.qmp);
    if launch.owns_ram {
        let _ = std::fs::remove_file(&launch.paths.ram);
        if let Some(d) = &launch.paths.disk {
            let _ = std::fs::remove_file(d);
        }
    }
}

/// Kills and cleans up a child that did not make it to a `QemuProcess`.
struct ChildGuard {
    child: Option<Child>,
    launch: Launch,
}

impl ChildGuard {
    async fn wait(&mut self) -> String {
        match self.child.as_mut() {
            Some(c) => match c.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
            let _ = c.try_wait();
            remove_files(&self.launch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> VmSpec {
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, b"k").unwrap();
        VmSpec {
            name: "t1".into(),
            kernel: Some(kernel),
            initrd: None,
            append: "console=ttyS0".into(),
            mem_mib: 128,
            vcpus: 1,
            disk: None,
        }
    }

    #[test]
    fn validation_catches_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let good = spec(dir.path());
        good.validate(1024).unwrap();
        let mut s = good.clone();
        s.kernel = Some(dir.path().join("missing"));
        assert!(matches!(
            s.validate(1024),
            Err(LaunchError::MissingFile { .. })
        ));
        let mut s = good.clone();
        s.mem_mib = 4096;
        assert!(matches!(s.validate(1024), Err(LaunchError::Invalid(_))));
        let mut s = good.clone();
        s.name = "../etc".into();
        assert!(s.validate(1024).is_err());
        let mut s = good.clone();
        s.vcpus = 0;
        assert!(s.validate(1024).is_err());
        // Without a kernel: a disk is needed, and no initrd or command line.
        let mut s = good;
        s.kernel = None;
        let err = s.validate(1024).unwrap_err().to_string();
        assert!(err.contains("nothing to boot"), "{err}");
        s.disk = Some("mesh:/vm/boot.raw".into());
        let err = s.validate(1024).unwrap_err().to_string();
        assert!(err.contains("needs a kernel"), "{err}");
        s.append.clear();
        s.validate(1024).unwrap();
        s.initrd = Some(dir.path().join("vmlinuz"));
        assert!(s.validate(1024).is_err());
    }

    #[test]
    fn a_spec_round_trips_through_postcard_and_old_json() {
        // The spec travels inside `memrep.takeover` (postcard): no field may be skipped.
        let dir = tempfile::tempdir().unwrap();
        for disk in [None, Some("mesh:/vm/d.raw".to_string())] {
            let s = VmSpec {
                disk,
                ..spec(dir.path())
            };
            let b = postcard::to_stdvec(&s).unwrap();
            assert_eq!(postcard::from_bytes::<VmSpec>(&b).unwrap(), s);
        }
        let old = r#"{"name":"a","kernel":"/k","initrd":null,"append":"","mem_mib":64,"vcpus":1}"#;
        assert_eq!(serde_json::from_str::<VmSpec>(old).unwrap().disk, None);
    }

    #[test]
    fn command_line_has_shared_ram_and_incoming() {
        let dir = tempfile::tempdir().unwrap();
        let l = Launch {
            spec: spec(dir.path()),
            accel: Accel::Tcg,
            paths: InstancePaths::new(Path::new("/dev/shm"), dir.path(), "t1", "g1"),
            incoming: true,
            owns_ram: false,
        };
        let a = l.args().join(" ");
        assert!(a.contains("mem-path=/dev/shm/hyphae-memrep-t1-g1.ram,share=on"));
        assert!(a.ends_with("-incoming defer"));
        assert!(a.contains("-accel tcg -cpu max"));
        assert!(a.contains("-kernel"));
    }

    #[test]
    fn without_a_kernel_the_firmware_boots_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.kernel = None;
        spec.append.clear();
        spec.disk = Some("/img.raw".into());
        let mut paths = InstancePaths::new(Path::new("/dev/shm"), dir.path(), "t1", "g1");
        paths.disk = Some(PathBuf::from("/dev/shm/a,b.disk"));
        let l = Launch {
            spec,
            accel: Accel::Tcg,
            paths,
            incoming: false,
            owns_ram: true,
        };
        let a = l.args().join(" ");
        assert!(!a.contains("-kernel") && !a.contains("-append"), "{a}");
        assert!(
            a.contains("-drive file=/dev/shm/a,,b.disk,format=raw"),
            "{a}"
        );
        assert!(a.contains("if=none,id=disk0 -device virtio-blk-pci,drive=disk0,bootindex=1"));
    }
}
