//! Opening Vulkan: the loader at run time (ash `loaded`), an instance, the physical device
//! chosen by class, and a logical device with one compute queue.

use ash::vk;
use serde::Serialize;

use crate::error::ComputeError;

/// What the worker reports about one Vulkan physical device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Index in the loader's enumeration.
    pub index: usize,
    /// The driver's device name.
    pub name: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` or `other`.
    pub class: &'static str,
    /// Whether it has a queue family that can run compute.
    pub compute: bool,
    /// Whether it is a software rasteriser (lavapipe): correctness only, never preferred.
    pub software: bool,
}

/// Which device to open.
#[derive(Debug, Clone, Default)]
pub struct DeviceChoice {
    /// Only devices whose name contains this (case-insensitive).
    pub name_contains: Option<String>,
    /// Whether a CPU (software) device such as lavapipe may be chosen.
    pub allow_software: bool,
}

/// An open logical device and what the backend needs from its instance.
pub struct OpenDevice {
    pub(crate) _entry: ash::Entry,
    pub(crate) instance: ash::Instance,
    pub(crate) physical: vk::PhysicalDevice,
    pub(crate) device: ash::Device,
    pub(crate) queue: vk::Queue,
    pub(crate) queue_family: u32,
    pub(crate) limits: vk::PhysicalDeviceLimits,
    pub(crate) info: DeviceInfo,
}

fn vk_err(what: &str) -> impl Fn(vk::Result) -> ComputeError + '_ {
    move |e| ComputeError::Vulkan(format!("{what}: {e}"))
}

fn class_of(t: vk::PhysicalDeviceType) -> (&'static str, u32) {
    match t {
        vk::PhysicalDeviceType::DISCRETE_GPU => ("discrete", 4),
        vk::PhysicalDeviceType::INTEGRATED_GPU => ("integrated", 3),
        vk::PhysicalDeviceType::VIRTUAL_GPU => ("virtual", 2),
        vk::PhysicalDeviceType::CPU => ("cpu", 1),
        _ => ("other", 0),
    }
}

fn load() -> Result<(ash::Entry, ash::Instance), ComputeError> {
    // SAFETY: loading the system's Vulkan loader runs its initialisers, as every Vulkan
    // program does; the entry is kept alive as long as the instance (in `OpenDevice`).
    let entry = unsafe { ash::Entry::load() }
        .map_err(|e| ComputeError::Vulkan(format!("no Vulkan loader: {e}")))?;
    let app = vk::ApplicationInfo::default()
        .application_name(c"hyphae-compute")
        .api_version(vk::API_VERSION_1_1);
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: a valid create info without layers or extensions.
    let instance =
        unsafe { entry.create_instance(&info, None) }.map_err(vk_err("creating an instance"))?;
    Ok((entry, instance))
}

fn describe(
    instance: &ash::Instance,
    index: usize,
    pd: vk::PhysicalDevice,
) -> (DeviceInfo, Option<u32>, u32) {
    // SAFETY: `pd` was enumerated from this live instance.
    let props = unsafe { instance.get_physical_device_properties(pd) };
    let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
    let family = families
        .iter()
        .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
        .map(|i| i as u32);
    let name = props
        .device_name_as_c_str()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (class, rank) = class_of(props.device_type);
    let software = props.device_type == vk::PhysicalDeviceType::CPU;
    (
        DeviceInfo {
            index,
            name,
            class,
            compute: family.is_some(),
            software,
        },
        family,
        rank,
    )
}

/// Every Vulkan device on this node; empty with the reason when there is no loader.
pub fn list_devices() -> Result<Vec<DeviceInfo>, ComputeError> {
    let (_entry, instance) = load()?;
    // SAFETY: the instance is live; destroyed at the end of this function.
    let devices = unsafe { instance.enumerate_physical_devices() };
    let out = devices.map(|ds| {
        ds.into_iter()
            .enumerate()
            .map(|(i, pd)| describe(&instance, i, pd).0)
            .collect()
    });
    // SAFETY: nothing created from the instance outlives it.
    unsafe { instance.destroy_instance(None) };
    out.map_err(vk_err("enumerating devices"))
}

impl OpenDevice {
    /// Opens the best device allowed by `choice`: discrete > integrated > virtual > CPU.
    pub fn open(choice: &DeviceChoice) -> Result<OpenDevice, ComputeError> {
        let (entry, instance) = load()?;
        match Self::open_on(&entry, &instance, choice) {
            Ok(d) => Ok(d),
            Err(e) => {
                // SAFETY: no device was created from the instance. The entry (the loaded
                // library) must outlive this call: it is dropped only after it.
                unsafe { instance.destroy_instance(None) };
                drop(entry);
                Err(e)
            }
        }
    }

    fn open_on(
        entry: &ash::Entry,
        instance: &ash::Instance,
        choice: &DeviceChoice,
    ) -> Result<OpenDevice, ComputeError> {
        // SAFETY: the instance is live.
        let devices = unsafe { instance.enumerate_physical_devices() }
            .map_err(vk_err("enumerating devices"))?;
        let wanted = choice.name_contains.as_ref().map(|s| s.to_lowercase());
        let best = devices
            .iter()
            .enumerate()
            .filter_map(|(i, &pd)| {
                let (info, family, rank) = describe(instance, i, pd);
                let family = family?;
                if info.software && !choice.allow_software {
                    return None;
                }
                if let Some(w) = &wanted {
                    if !info.name.to_lowercase().contains(w) {
                        return None;
                    }
                }
                Some((rank, pd, family, info))
            })
            .max_by_key(|(rank, ..)| *rank)
            .ok_or_else(|| {
                ComputeError::Vulkan(format!(
                    "no usable compute device among {} (software allowed: {}, name filter: {:?})",
                    devices.len(),
                    choice.allow_software,
                    choice.name_contains
                ))
            })?;
        let (_, physical, queue_family, info) = best;
        let priorities = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        let create = vk::DeviceCreateInfo::default().queue_create_infos(&queues);
        // SAFETY: `physical` belongs to the instance; one queue of a family that exists.
        let device = unsafe { instance.create_device(physical, &create, None) }
            .map_err(vk_err("creating the device"))?;
        // SAFETY: queue 0 of the family requested above.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        // SAFETY: as above.
        let limits = unsafe { instance.get_physical_device_properties(physical) }.limits;
        Ok(OpenDevice {
            _entry: entry.clone(),
            instance: instance.clone(),
            physical,
            device,
            queue,
            queue_family,
            limits,
            info,
        })
    }
}

impl Drop for OpenDevice {
    fn drop(&mut self) {
        // SAFETY: the backend drops every object made from the device before the device
        // (field order in `VulkanBackend`); the instance goes last.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
