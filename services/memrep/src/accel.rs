//! Which accelerator QEMU gets. /dev/kvm being present is not enough: on KVM-PVM hosts (nested,
//! as on our CI machines) KVM runs only guests built for PVM, and a stock kernel stops in its
//! first instructions. `auto` therefore uses KVM only when /dev/kvm opens and the host is not
//! a PVM host; `kvm` and `tcg` force the choice.

use std::path::Path;

/// The accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's binary translator (slow, always works).
    Tcg,
}

impl Accel {
    /// QEMU's `-accel` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The `-cpu` model that goes with it.
    pub fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }
}

/// What `auto` resolves to on this host, and why.
pub fn probe() -> (Accel, &'static str) {
    probe_at(Path::new("/dev/kvm"), Path::new("/sys/module/kvm_pvm"))
}

fn probe_at(dev: &Path, pvm: &Path) -> (Accel, &'static str) {
    if pvm.exists() {
        return (
            Accel::Tcg,
            "KVM-PVM host: stock guests cannot run under its KVM",
        );
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => (Accel::Kvm, "/dev/kvm usable"),
        Err(_) => (Accel::Tcg, "/dev/kvm missing or not accessible"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvm_and_missing_kvm_mean_tcg() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("none");
        assert_eq!(probe_at(&none, &none).0, Accel::Tcg);
        std::fs::write(dir.path().join("kvm"), b"").unwrap();
        assert_eq!(probe_at(&dir.path().join("kvm"), &none).0, Accel::Kvm);
        assert_eq!(probe_at(&dir.path().join("kvm"), dir.path()).0, Accel::Tcg);
    }
}
