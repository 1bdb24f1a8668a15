//! GPUs and their memory from Vulkan: the loader is opened at run time (ash's `loaded`
//! feature), so a node without `libvulkan.so.1` or without a device simply has no GPU.
//!
//! The instance stays open for the life of the sampler: the devices are enumerated once, and
//! each sample only asks for the memory properties again. Where a device has
//! `VK_EXT_memory_budget`, that query also returns each heap's current usage and budget (what
//! this process may still allocate), which feeds the spike rule's VRAM figure.

use serde::Serialize;

/// One Vulkan physical device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// The driver's device name.
    pub name: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` or `other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its memory heaps.
    pub heaps: Vec<Heap>,
    /// Total of the device-local heaps (VRAM), bytes.
    pub vram_bytes: u64,
    /// Whether the device has `VK_EXT_memory_budget` (so `vram_used_bytes` and the heaps'
    /// `used_bytes`/`budget_bytes` are known).
    pub memory_budget: bool,
    /// Bytes in use on the device-local heaps, by every process (from the memory budget).
    pub vram_used_bytes: Option<u64>,
}

/// One memory heap of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heap {
    /// Size in bytes.
    pub size: u64,
    /// Whether it is on the device (VRAM) rather than host memory visible to it.
    pub device_local: bool,
    /// Bytes in use (`VK_EXT_memory_budget` only).
    pub used_bytes: Option<u64>,
    /// Bytes this process could still use (`VK_EXT_memory_budget` only).
    pub budget_bytes: Option<u64>,
}

impl Gpu {
    /// VRAM in use as a fraction of VRAM, when the device reports usage.
    pub fn vram_use(&self) -> Option<f64> {
        let used = self.vram_used_bytes?;
        (self.vram_bytes > 0).then(|| used as f64 / self.vram_bytes as f64)
    }
}

/// The share of VRAM in use over every GPU that reports it (0 when none does): the spike
/// rule's VRAM figure.
pub fn vram_use(gpus: &[Gpu]) -> f64 {
    let (used, total) = gpus
        .iter()
        .filter_map(|g| Some((g.vram_used_bytes?, g.vram_bytes)))
        .fold((0u64, 0u64), |(u, t), (gu, gt)| {
            (u.saturating_add(gu), t.saturating_add(gt))
        });
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    }
}

struct Device {
    handle: ash::vk::PhysicalDevice,
    name: String,
    kind: &'static str,
    budget: bool,
}

/// An open Vulkan instance and its devices.
pub struct Vulkan {
    // Keeps the loader library loaded while `instance` is alive.
    _entry: ash::Entry,
    instance: ash::Instance,
    devices: Vec<Device>,
}

impl std::fmt::Debug for Vulkan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vulkan")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

fn kind_of(t: ash::vk::PhysicalDeviceType) -> &'static str {
    match t {
        ash::vk::PhysicalDeviceType::DISCRETE_GPU => "discrete",
        ash::vk::PhysicalDeviceType::INTEGRATED_GPU => "integrated",
        ash::vk::PhysicalDeviceType::VIRTUAL_GPU => "virtual",
        ash::vk::PhysicalDeviceType::CPU => "cpu",
        _ => "other",
    }
}

impl Vulkan {
    /// Opens the loader and an instance; the error says why there is no GPU (no loader, no
    /// instance), which is normal on most nodes.
    pub fn open() -> Result<Vulkan, String> {
        // SAFETY: loading the system's Vulkan loader runs its initialisers; that is what every
        // Vulkan program does. The entry is kept for as long as the instance.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| format!("no Vulkan loader: {e}"))?;
        // 1.1 for vkGetPhysicalDeviceMemoryProperties2 (the memory budget's query); a 1.0
        // loader still answers with a 1.0 instance, and then budgets are not asked for.
        // SAFETY: a plain query of the loader.
        let loader_version = unsafe { entry.try_enumerate_instance_version() }
            .ok()
            .flatten()
            .unwrap_or(ash::vk::API_VERSION_1_0);
        let api = if loader_version >= ash::vk::API_VERSION_1_1 {
            ash::vk::API_VERSION_1_1
        } else {
            ash::vk::API_VERSION_1_0
        };
        let app = ash::vk::ApplicationInfo::default()
            .application_name(c"hyphae-beacon")
            .api_version(api);
        let info = ash::vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: a valid create info with no extensions or layers; destroyed in `drop`.
        let instance = unsafe { entry.create_instance(&info, None) }
            .map_err(|e| format!("no Vulkan instance: {e}"))?;
        // SAFETY: the instance is live.
        let handles = unsafe { instance.enumerate_physical_devices() }.unwrap_or_default();
        let devices = handles
            .into_iter()
            .map(|handle| {
                // SAFETY: `handle` comes from this live instance.
                let props = unsafe { instance.get_physical_device_properties(handle) };
                let name = props
                    .device_name_as_c_str()
                    .map(|c| c.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // SAFETY: as above.
                let extensions = unsafe { instance.enumerate_device_extension_properties(handle) }
                    .unwrap_or_default();
                let has_budget = extensions.iter().any(|e| {
                    e.extension_name_as_c_str().ok() == Some(ash::ext::memory_budget::NAME)
                });
                Device {
                    handle,
                    name,
                    kind: kind_of(props.device_type),
                    budget: has_budget
                        && api >= ash::vk::API_VERSION_1_1
                        && props.api_version >= ash::vk::API_VERSION_1_1,
                }
            })
            .collect();
        Ok(Vulkan {
            _entry: entry,
            instance,
            devices,
        })
    }

    /// Every device with its heaps as they are now (usage and budget where known).
    pub fn gpus(&self) -> Vec<Gpu> {
        self.devices.iter().map(|d| self.gpu(d)).collect()
    }

    fn gpu(&self, d: &Device) -> Gpu {
        let mut budget = ash::vk::PhysicalDeviceMemoryBudgetPropertiesEXT::default();
        let memory = if d.budget {
            let mut props2 =
                ash::vk::PhysicalDeviceMemoryProperties2::default().push_next(&mut budget);
            // SAFETY: the device is from this live instance, which is 1.1 (checked in `open`),
            // and `props2` chains only the budget struct the device said it has.
            unsafe {
                self.instance
                    .get_physical_device_memory_properties2(d.handle, &mut props2)
            };
            props2.memory_properties
        } else {
            // SAFETY: the device is from this live instance.
            unsafe {
                self.instance
                    .get_physical_device_memory_properties(d.handle)
            }
        };
        let count = (memory.memory_heap_count as usize).min(memory.memory_heaps.len());
        let heaps: Vec<Heap> = memory.memory_heaps[..count]
            .iter()
            .enumerate()
            .map(|(i, h)| Heap {
                size: h.size,
                device_local: h.flags.contains(ash::vk::MemoryHeapFlags::DEVICE_LOCAL),
                used_bytes: d.budget.then(|| budget.heap_usage[i]),
                budget_bytes: d.budget.then(|| budget.heap_budget[i]),
            })
            .collect();
        heaps_to_gpu(d.name.clone(), d.kind, heaps, d.budget)
    }
}

/// Sums the device-local heaps into the GPU's VRAM figures.
fn heaps_to_gpu(name: String, kind: &'static str, heaps: Vec<Heap>, budget: bool) -> Gpu {
    let local = || heaps.iter().filter(|h| h.device_local);
    let vram_bytes = local().map(|h| h.size).sum();
    let vram_used_bytes = budget.then(|| local().filter_map(|h| h.used_bytes).sum());
    Gpu {
        name,
        kind,
        memory_budget: budget,
        vram_used_bytes,
        vram_bytes,
        heaps,
    }
}

impl Drop for Vulkan {
    fn drop(&mut self) {
        // SAFETY: nothing created from the instance outlives it (physical devices are not
        // created objects).
        unsafe { self.instance.destroy_instance(None) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(size: u64, local: bool, used: Option<u64>) -> Heap {
        Heap {
            size,
            device_local: local,
            used_bytes: used,
            budget_bytes: used.map(|u| size - u),
        }
    }

    #[test]
    fn vram_use_counts_device_local_heaps_of_reporting_gpus() {
        let with = heaps_to_gpu(
            "a".into(),
            "discrete",
            vec![heap(800, true, Some(200)), heap(1000, false, Some(900))],
            true,
        );
        assert_eq!((with.vram_bytes, with.vram_used_bytes), (800, Some(200)));
        assert_eq!(with.vram_use(), Some(0.25));
        let without = heaps_to_gpu("b".into(), "integrated", vec![heap(200, true, None)], false);
        assert_eq!(without.vram_used_bytes, None);
        // A GPU that cannot say what it uses does not dilute the figure.
        assert!((vram_use(&[with.clone(), without]) - 0.25).abs() < 1e-9);
        assert_eq!(vram_use(&[]), 0.0);
    }

    /// On a machine with the loader and a device (lavapipe at least, from scripts/deps.sh),
    /// the devices, their heaps, and where supported the usage, are read.
    #[test]
    fn the_local_devices_have_heaps() {
        let Ok(vk) = Vulkan::open() else {
            eprintln!("no Vulkan loader or instance here; nothing to check");
            return;
        };
        for g in vk.gpus() {
            assert!(!g.heaps.is_empty(), "{g:?}");
            if g.memory_budget {
                assert!(g.vram_used_bytes.is_some(), "{g:?}");
            }
        }
    }
}
