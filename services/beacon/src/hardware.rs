//! The hardware profile: what the node has and what share of it the operator offers.
//!
//! The profile doubles as the node's asset inventory for the scheduler and storage placement:
//! each resource carries the `[share]` percentage the operator allows.

use serde::Serialize;
use sysinfo::{Disks, Networks, System};

use crate::spike::Figures;
use crate::vulkan::{self, Gpu, Vulkan};

/// What the node reports to the queen.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// CPU model, cores and load.
    pub cpu: Cpu,
    /// RAM.
    pub ram: Ram,
    /// Mounted disks.
    pub disks: Vec<Disk>,
    /// Network interfaces.
    pub network: Vec<Interface>,
    /// GPUs from Vulkan (empty without a loader or device).
    pub gpus: Vec<Gpu>,
    /// Why `gpus` is empty, when the loader or instance was missing.
    pub gpu_note: Option<String>,
    /// The share of each resource the mesh may use (`[share]`, percent).
    pub share: Share,
}

/// CPU figures.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// The brand string of the first CPU.
    pub model: String,
    /// Logical CPUs.
    pub threads: usize,
    /// Physical cores, when known.
    pub cores: Option<usize>,
    /// Usage over all CPUs since the previous sample, 0-100.
    pub usage_percent: f32,
    /// 1-minute load average.
    pub load_1m: f64,
}

/// RAM figures.
#[derive(Debug, Clone, Serialize)]
pub struct Ram {
    /// Total bytes.
    pub total_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
}

/// One mounted disk.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Where it is mounted.
    pub mount: String,
    /// Its file system.
    pub fs: String,
    /// Total bytes.
    pub total_bytes: u64,
    /// Available bytes.
    pub available_bytes: u64,
}

/// One network interface.
#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    pub mac: String,
    /// Its addresses with prefix length.
    pub addresses: Vec<String>,
}

/// `[share]`, as reported.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Share {
    /// CPU percent.
    pub cpu: u8,
    /// GPU percent.
    pub gpu: u8,
    /// RAM percent.
    pub ram: u8,
    /// Storage percent.
    pub storage: u8,
}

impl From<&hyphae_core::config::ShareSection> for Share {
    fn from(s: &hyphae_core::config::ShareSection) -> Share {
        Share {
            cpu: s.cpu,
            gpu: s.gpu,
            ram: s.ram,
            storage: s.storage,
        }
    }
}

impl Profile {
    /// The figures the spike rule watches. VRAM use comes from `VK_EXT_memory_budget`; GPUs
    /// without it do not count, and without any it is 0 (VRAM never triggers a report alone).
    pub fn figures(&self) -> Figures {
        let ram = if self.ram.total_bytes == 0 {
            0.0
        } else {
            self.ram.used_bytes as f64 / self.ram.total_bytes as f64
        };
        Figures {
            cpu: f64::from(self.cpu.usage_percent) / 100.0,
            ram,
            vram: vulkan::vram_use(&self.gpus),
        }
    }
}

/// Samples the machine; keeps the `System` between samples (CPU usage needs two).
pub struct Sampler {
    system: System,
    vulkan: Option<Vulkan>,
    gpu_note: Option<String>,
    share: Share,
}

impl Sampler {
    /// A sampler; opens Vulkan once (GPUs do not come and go) and reads their memory at
    /// every sample.
    pub fn new(share: Share) -> Result<Sampler, sysinfo::Error> {
        let mut system = System::new()?;
        system.refresh_cpu_all();
        system.refresh_memory();
        let (vulkan, gpu_note) = match Vulkan::open() {
            Ok(v) => (Some(v), None),
            Err(note) => (None, Some(note)),
        };
        Ok(Sampler {
            system,
            vulkan,
            gpu_note,
            share,
        })
    }

    /// A fresh profile.
    pub fn sample(&mut self) -> Profile {
        self.system.refresh_cpu_all();
        self.system.refresh_memory();
        let cpus = self.system.cpus();
        let disks = Disks::new_with_refreshed_list()
            .map(|d| {
                d.iter()
                    .map(|d| Disk {
                        mount: d.mount_point().display().to_string(),
                        fs: d.file_system().to_string_lossy().into_owned(),
                        total_bytes: d.total_space(),
                        available_bytes: d.available_space(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let network = Networks::new_with_refreshed_list()
            .map(|n| {
                n.iter()
                    .map(|(name, data)| Interface {
                        name: name.to_string_lossy().into_owned(),
                        mac: data.mac_address().to_string(),
                        addresses: data
                            .ip_networks()
                            .iter()
                            .map(|n| format!("{}/{}", n.addr, n.prefix))
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Profile {
            cpu: Cpu {
                model: cpus
                    .first()
                    .map(|c| c.brand().to_string())
                    .unwrap_or_default(),
                threads: cpus.len(),
                cores: System::physical_core_count().ok(),
                usage_percent: self.system.global_cpu_usage(),
                load_1m: System::load_average().map(|l| l.one).unwrap_or(0.0),
            },
            ram: Ram {
                total_bytes: self.system.total_memory(),
                used_bytes: self.system.used_memory(),
            },
            disks,
            network,
            gpus: self.vulkan.as_ref().map(Vulkan::gpus).unwrap_or_default(),
            gpu_note: self.gpu_note.clone(),
            share: self.share,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_fractions_of_capacity() {
        let p = Profile {
            cpu: Cpu {
                model: "x".into(),
                threads: 4,
                cores: Some(2),
                usage_percent: 25.0,
                load_1m: 1.0,
            },
            ram: Ram {
                total_bytes: 1000,
                used_bytes: 250,
            },
            disks: vec![],
            network: vec![],
            gpus: vec![],
            gpu_note: None,
            share: Share {
                cpu: 50,
                gpu: 100,
                ram: 100,
                storage: 100,
            },
        };
        let f = p.figures();
        assert!((f.cpu - 0.25).abs() < 1e-9 && (f.ram - 0.25).abs() < 1e-9 && f.vram == 0.0);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["share"]["cpu"], 50);
    }

    #[test]
    fn a_real_sample_has_cpus_and_ram() {
        let mut s = Sampler::new(Share {
            cpu: 100,
            gpu: 100,
            ram: 100,
            storage: 100,
        })
        .unwrap();
        let p = s.sample();
        assert!(p.cpu.threads > 0 && p.ram.total_bytes > 0, "{p:?}");
    }
}
