//! GPUs and their memory from Vulkan: the loader is opened at run time (ash's `loaded`
//! feature), so a node without `libvulkan.so.1` or without a device simply has no GPU.

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
}

/// One memory heap of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heap {
    /// Size in bytes.
    pub size: u64,
    /// Whether it is on the device (VRAM) rather than host memory visible to it.
    pub device_local: bool,
}

/// Every GPU the Vulkan loader reports; empty without a loader or a device (never an error:
/// a node without a GPU is normal). The reason, when there is one, is the second value.
pub fn gpus() -> (Vec<Gpu>, Option<String>) {
    // SAFETY: loading the system's Vulkan loader runs its initialisers; that is what every
    // Vulkan program does. The entry outlives every call below.
    let entry = match unsafe { ash::Entry::load() } {
        Ok(e) => e,
        Err(e) => return (Vec::new(), Some(format!("no Vulkan loader: {e}"))),
    };
    let app = ash::vk::ApplicationInfo::default()
        .application_name(c"hyphae-beacon")
        .api_version(ash::vk::API_VERSION_1_0);
    let info = ash::vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: a valid create info with no extensions or layers; destroyed below.
    let instance = match unsafe { entry.create_instance(&info, None) } {
        Ok(i) => i,
        Err(e) => return (Vec::new(), Some(format!("no Vulkan instance: {e}"))),
    };
    let mut out = Vec::new();
    // SAFETY: the instance is live for these queries.
    let devices = unsafe { instance.enumerate_physical_devices() }.unwrap_or_default();
    for device in devices {
        // SAFETY: `device` comes from this instance.
        let props = unsafe { instance.get_physical_device_properties(device) };
        let memory = unsafe { instance.get_physical_device_memory_properties(device) };
        let name = props
            .device_name_as_c_str()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = match props.device_type {
            ash::vk::PhysicalDeviceType::DISCRETE_GPU => "discrete",
            ash::vk::PhysicalDeviceType::INTEGRATED_GPU => "integrated",
            ash::vk::PhysicalDeviceType::VIRTUAL_GPU => "virtual",
            ash::vk::PhysicalDeviceType::CPU => "cpu",
            _ => "other",
        };
        let count = (memory.memory_heap_count as usize).min(memory.memory_heaps.len());
        let heaps: Vec<Heap> = memory.memory_heaps[..count]
            .iter()
            .map(|h| Heap {
                size: h.size,
                device_local: h.flags.contains(ash::vk::MemoryHeapFlags::DEVICE_LOCAL),
            })
            .collect();
        let vram_bytes = heaps
            .iter()
            .filter(|h| h.device_local)
            .map(|h| h.size)
            .sum();
        out.push(Gpu {
            name,
            kind,
            heaps,
            vram_bytes,
        });
    }
    // SAFETY: nothing created from the instance is alive any more.
    unsafe { instance.destroy_instance(None) };
    (out, None)
}
