//! The backends a worker opened, and which one computes tiles.

use std::sync::Arc;
use std::time::Instant;

use hyphae_core::config::ComputeSection;
use serde_json::json;

use crate::cpu::CpuBackend;
use crate::error::ComputeError;
use crate::vulkan::{self, DeviceChoice, VulkanBackend};
use crate::Matrix;

/// The worker's backends: the CPU always, a Vulkan device when one could be opened.
pub struct Backends {
    /// The CPU backend.
    pub cpu: CpuBackend,
    /// The Vulkan backend, if opened.
    pub vulkan: Option<VulkanBackend>,
    /// Why there is no Vulkan backend.
    pub vulkan_error: Option<String>,
    /// Self-benchmark of the tile backend (GFLOP/s at n = 256): the scheduler's first score.
    pub gflops: f64,
}

impl Backends {
    /// Opens what `config` allows; `cpu_share` is `[share] cpu` in percent.
    pub fn open(config: &ComputeSection, cpu_share: u8) -> Arc<Backends> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if config.threads > 0 {
            config.threads
        } else {
            (cores * usize::from(cpu_share.max(1)) / 100).max(1)
        };
        let cpu = CpuBackend::new(threads);
        let (vulkan, vulkan_error) = if config.vulkan {
            let choice = DeviceChoice {
                name_contains: config.vulkan_device.clone(),
                allow_software: config.vulkan_software,
            };
            match VulkanBackend::open(&choice) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, Some("disabled by [compute] vulkan = false".into()))
        };
        let mut me = Backends {
            cpu,
            vulkan,
            vulkan_error,
            gflops: 0.0,
        };
        me.gflops = me.self_benchmark().unwrap_or(0.001);
        Arc::new(me)
    }

    /// Whether tiles go to the GPU: only a hardware device (lavapipe is ~1% of a CPU BLAS).
    fn tile_gpu(&self) -> Option<&VulkanBackend> {
        self.vulkan.as_ref().filter(|v| !v.device().software)
    }

    /// `a × b` on the tile backend; returns the backend's name too.
    pub fn gemm(&self, a: &Matrix, b: &Matrix) -> Result<(Matrix, String), ComputeError> {
        match self.tile_gpu() {
            Some(v) => Ok((v.sgemm(a, b)?, format!("vulkan:{}", v.device().name))),
            None => Ok((self.cpu.sgemm(a, b)?, "cpu".into())),
        }
    }

    fn self_benchmark(&self) -> Result<f64, ComputeError> {
        let n = 256;
        let a = Matrix::random(n, n, 1)?;
        let b = Matrix::random(n, n, 2)?;
        self.gemm(&a, &b)?; // warm-up (pipelines, thread pool)
        let t = Instant::now();
        self.gemm(&a, &b)?;
        Ok(2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64().max(1e-9) / 1e9)
    }

    /// `/devices`: every Vulkan device, the open one, and the CPU backend.
    pub fn describe(&self) -> serde_json::Value {
        let all = vulkan::list_devices();
        json!({
            "cpu": {"threads": self.cpu.threads()},
            "vulkan": {
                "open": self.vulkan.as_ref().map(|v| v.device().clone()),
                "error": self.vulkan_error,
                "devices": all.as_ref().ok(),
                "loader_error": all.as_ref().err().map(|e| e.to_string()),
            },
            "tile_backend": self.tile_gpu().map_or("cpu".to_string(), |v| format!("vulkan:{}", v.device().name)),
            "gflops": self.gflops,
        })
    }
}
