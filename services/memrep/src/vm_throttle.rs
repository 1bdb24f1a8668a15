//! The throttle of one running VM as the runner uses it: at start its vCPU threads (QMP
//! `query-cpus-fast`) go into a per-VM cgroup, on every scheduler step the scheduler's
//! `throttle_pct` is applied as a CPU quota, and at the end (stop, delete, crash) the cgroup
//! is removed once QEMU is gone. Status and metrics show what is applied, or why nothing is.

use std::sync::Arc;

use hyphae_core::metrics::MetricsRegistry;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::cgroup_throttle::{vcpu_threads, AppliedQuota, ThrottleRoot, VmCgroup};
use crate::qemu::QemuProcess;

type Labels = Vec<(String, String)>;

/// The throttle's Prometheus families (`hyphae_memrep_…`).
#[derive(Clone, Default)]
pub struct ThrottleMetrics {
    applied_pct: Family<Labels, Gauge>,
    quota_us: Family<Labels, Gauge>,
    cgroup_version: Gauge,
}

impl ThrottleMetrics {
    /// Registers the families; `version` is 1 or 2, 0 when throttling is unavailable.
    pub fn register(registry: &MetricsRegistry, version: i64) -> ThrottleMetrics {
        let m = ThrottleMetrics::default();
        m.cgroup_version.set(version);
        registry.register("memrep", |r| {
            r.register(
                "throttle_applied_pct",
                "CPU percent taken from a VM's vCPUs by its cgroup quota",
                m.applied_pct.clone(),
            );
            r.register(
                "throttle_quota_us",
                "CFS quota of a VM's vCPUs per 100 ms period (-1: unlimited)",
                m.quota_us.clone(),
            );
            r.register(
                "throttle_cgroup_version",
                "cgroup version enforcing the throttle (0: unavailable)",
                m.cgroup_version.clone(),
            );
        });
        m
    }
}

/// Where throttling comes from on this node: a cgroup root, or why there is none.
#[derive(Clone)]
pub struct ThrottleEnv {
    /// The root, or the reason throttling is unavailable.
    pub root: Result<Arc<ThrottleRoot>, String>,
    /// The families to update.
    pub metrics: ThrottleMetrics,
}

/// One VM's enforcement.
pub struct VmThrottle {
    vm: String,
    cgroup: Option<VmCgroup>,
    metrics: ThrottleMetrics,
    /// What status shows: `v1 PATH`, `v2 PATH` (the cgroup's path in its hierarchy), or
    /// `unavailable: WHY`.
    pub description: String,
}

impl VmThrottle {
    /// Puts the vCPU threads of `qemu` into a new cgroup for VM `vm`. Failing that, the VM
    /// runs unthrottled and the description says why.
    pub async fn start(env: &ThrottleEnv, vm: &str, qemu: &mut QemuProcess) -> VmThrottle {
        let mut t = VmThrottle {
            vm: vm.to_string(),
            cgroup: None,
            metrics: env.metrics.clone(),
            description: String::new(),
        };
        let root = match &env.root {
            Ok(r) => r.clone(),
            Err(why) => {
                t.description = format!("unavailable: {why}");
                return t;
            }
        };
        let tids = match qemu.qmp.execute("query-cpus-fast", None).await {
            Ok(v) => vcpu_threads(&v),
            Err(e) => {
                t.description = format!("unavailable: query-cpus-fast: {e}");
                return t;
            }
        };
        let Some(pid) = qemu.pid() else {
            t.description = "unavailable: QEMU has exited".into();
            return t;
        };
        if tids.is_empty() {
            t.description = "unavailable: QEMU reported no vCPU threads".into();
            return t;
        }
        let vcpus = qemu.launch.spec.vcpus;
        let name = vm.to_string();
        let made = tokio::task::spawn_blocking(move || root.create(&name, pid, &tids, vcpus)).await;
        match made {
            Ok(Ok(cg)) => {
                t.description = format!("{} {}", cg.version().as_str(), cg.hierarchy_path());
                tracing::info!(vm, cgroup = %t.description, "vCPU threads in their cgroup");
                t.cgroup = Some(cg);
                t.publish();
            }
            Ok(Err(e)) => t.description = format!("unavailable: {e}"),
            Err(e) => t.description = format!("unavailable: {e}"),
        }
        t
    }

    /// Applies `throttle_pct`; returns what is applied (`None` when throttling is
    /// unavailable or the write failed, which is logged and described).
    pub fn apply(&mut self, throttle_pct: u8) -> Option<AppliedQuota> {
        let cg = self.cgroup.as_mut()?;
        let before = cg.applied().throttle_pct;
        match cg.apply(throttle_pct) {
            Ok(a) => {
                let a = a.clone();
                if before != throttle_pct {
                    tracing::info!(vm = %self.vm, throttle_pct, cpu_max = %a.cpu_max, "CPU quota applied");
                    self.publish();
                }
                Some(a)
            }
            Err(e) => {
                tracing::warn!(vm = %self.vm, error = %e, "CPU quota not applied");
                self.description = format!("failed: {e}");
                None
            }
        }
    }

    fn publish(&self) {
        let Some(cg) = &self.cgroup else { return };
        let labels = vec![("vm".to_string(), self.vm.clone())];
        let a = cg.applied();
        self.metrics
            .applied_pct
            .get_or_create(&labels)
            .set(i64::from(a.throttle_pct));
        let quota = a
            .cpu_max
            .split_whitespace()
            .next()
            .and_then(|q| q.parse::<i64>().ok())
            .unwrap_or(-1);
        self.metrics.quota_us.get_or_create(&labels).set(quota);
    }

    /// Removes the cgroup (call once QEMU is gone) and the VM's metric series.
    pub async fn finish(mut self) {
        let labels = vec![("vm".to_string(), self.vm.clone())];
        self.metrics.applied_pct.remove(&labels);
        self.metrics.quota_us.remove(&labels);
        if let Some(cg) = self.cgroup.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cg)).await;
        }
    }
}
