//! A node's load and score, from the hardware profile its beacon publishes in the directory.
//!
//! `load` is what fraction of each resource is in use (CPU: 1-minute load average per hardware
//! thread, capped at 1; RAM: used / total; disk: used / total over the node's disks). `score` is
//! the node's headroom for the mesh, 0-100: for each resource it reports, the unused fraction
//! times the share of it the operator gives the mesh (`share.cpu` etc., percent), averaged. It
//! is what the dashboard's heatmap ranks nodes by until the compute service's measured
//! performance score exists; a node without a hardware profile has no load and no score.

use serde_json::{json, Value};

/// Fractions (0-1) of CPU, RAM and disk in use; `None` for what the profile lacks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeLoad {
    /// Load average per hardware thread, capped at 1.
    pub cpu: Option<f64>,
    /// Used RAM over total RAM.
    pub ram: Option<f64>,
    /// Used disk space over total disk space.
    pub disk: Option<f64>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn ratio(used: Option<f64>, total: Option<f64>) -> Option<f64> {
    match (used, total) {
        (Some(u), Some(t)) if t > 0.0 => Some((u / t).clamp(0.0, 1.0)),
        _ => None,
    }
}

impl NodeLoad {
    /// The load in a hardware profile (`{"cpu":{"load_1m","threads"},"ram":{..},"disks":[..]}`).
    pub fn of(hardware: &Value) -> NodeLoad {
        let cpu = ratio(
            num(&hardware["cpu"]["load_1m"]),
            num(&hardware["cpu"]["threads"]).or_else(|| num(&hardware["cpu"]["cores"])),
        );
        let ram = ratio(
            num(&hardware["ram"]["used_bytes"]),
            num(&hardware["ram"]["total_bytes"]),
        );
        let (mut used, mut total) = (0.0, 0.0);
        for d in hardware["disks"].as_array().into_iter().flatten() {
            if let (Some(t), Some(a)) = (num(&d["total_bytes"]), num(&d["available_bytes"])) {
                total += t;
                used += (t - a).max(0.0);
            }
        }
        NodeLoad {
            cpu,
            ram,
            disk: ratio(Some(used), Some(total)),
        }
    }

    /// The headroom score (0-100) given the shares (percent) in the profile; `None` when no
    /// resource is known.
    pub fn score(&self, hardware: &Value) -> Option<f64> {
        let share = |k: &str| {
            num(&hardware["share"][k])
                .unwrap_or(100.0)
                .clamp(0.0, 100.0)
                / 100.0
        };
        let parts: Vec<f64> = [
            (self.cpu, share("cpu")),
            (self.ram, share("ram")),
            (self.disk, share("storage")),
        ]
        .into_iter()
        .filter_map(|(load, share)| load.map(|l| (1.0 - l) * share))
        .collect();
        if parts.is_empty() {
            return None;
        }
        let mean = parts.iter().sum::<f64>() / parts.len() as f64;
        Some((mean * 1000.0).round() / 10.0)
    }

    /// The JSON form served as a node's `load`.
    pub fn to_json(self) -> Value {
        json!({ "cpu": self.cpu, "ram": self.ram, "disk": self.disk })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_and_score_from_a_profile() {
        let hw = json!({
            "cpu": {"load_1m": 1.0, "threads": 4, "cores": 2},
            "ram": {"used_bytes": 1024, "total_bytes": 4096},
            "disks": [{"total_bytes": 100, "available_bytes": 75}, {"total_bytes": 100, "available_bytes": 25}],
            "share": {"cpu": 100, "ram": 50, "storage": 100},
        });
        let l = NodeLoad::of(&hw);
        assert_eq!(l.cpu, Some(0.25));
        assert_eq!(l.ram, Some(0.25));
        assert_eq!(l.disk, Some(0.5));
        // cpu 0.75*1, ram 0.75*0.5, disk 0.5*1 -> mean 0.5417
        assert_eq!(l.score(&hw), Some(54.2));
    }

    #[test]
    fn an_overloaded_or_empty_profile() {
        let hot = json!({"cpu": {"load_1m": 23.5, "threads": 2}});
        assert_eq!(NodeLoad::of(&hot).cpu, Some(1.0));
        assert_eq!(NodeLoad::of(&hot).score(&hot), Some(0.0));
        let none = json!(null);
        assert_eq!(NodeLoad::of(&none), NodeLoad::default());
        assert_eq!(NodeLoad::of(&none).score(&none), None);
        let bad = json!({"ram": {"used_bytes": 5, "total_bytes": 0}});
        assert_eq!(NodeLoad::of(&bad).ram, None);
    }
}
