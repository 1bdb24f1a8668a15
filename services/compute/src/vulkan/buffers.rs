//! Buffers whose memory comes from `gpu-allocator` (sub-allocated from large blocks, as a real
//! allocator should; not one `vkAllocateMemory` per buffer).

use ash::vk;
use gpu_allocator::vulkan::{Allocation, AllocationCreateDesc, AllocationScheme, Allocator};
use gpu_allocator::MemoryLocation;

use crate::error::ComputeError;

/// One buffer and its memory.
pub struct GpuBuffer {
    pub(crate) buffer: vk::Buffer,
    allocation: Option<Allocation>,
}

impl GpuBuffer {
    /// A buffer of `size` bytes (at least 4) with `usage`, in `location`.
    pub fn new(
        device: &ash::Device,
        allocator: &mut Allocator,
        name: &str,
        size: u64,
        usage: vk::BufferUsageFlags,
        location: MemoryLocation,
    ) -> Result<GpuBuffer, ComputeError> {
        let size = size.max(4);
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: a valid create info on a live device; destroyed in `free`.
        let buffer = unsafe { device.create_buffer(&info, None) }
            .map_err(|e| ComputeError::Vulkan(format!("creating buffer {name}: {e}")))?;
        // SAFETY: `buffer` was just created on this device.
        let requirements = unsafe { device.get_buffer_memory_requirements(buffer) };
        let allocation = allocator.allocate(&AllocationCreateDesc {
            name,
            requirements,
            location,
            linear: true,
            allocation_scheme: AllocationScheme::GpuAllocatorManaged,
        });
        let allocation = match allocation {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: unbound, unused buffer.
                unsafe { device.destroy_buffer(buffer, None) };
                return Err(ComputeError::Vulkan(format!(
                    "allocating {size} bytes for {name}: {e}"
                )));
            }
        };
        // SAFETY: the allocation satisfies the buffer's requirements (the allocator's contract).
        let bound =
            unsafe { device.bind_buffer_memory(buffer, allocation.memory(), allocation.offset()) };
        let mut me = GpuBuffer {
            buffer,
            allocation: Some(allocation),
        };
        if let Err(e) = bound {
            me.free(device, allocator);
            return Err(ComputeError::Vulkan(format!(
                "binding memory of {name}: {e}"
            )));
        }
        Ok(me)
    }

    /// The mapped bytes of a host-visible buffer.
    pub fn mapped_mut(&mut self) -> Result<&mut [u8], ComputeError> {
        self.allocation
            .as_mut()
            .and_then(|a| a.mapped_slice_mut())
            .ok_or_else(|| ComputeError::Vulkan("buffer is not host-visible".into()))
    }

    /// The mapped bytes of a host-visible buffer, read-only.
    pub fn mapped(&self) -> Result<&[u8], ComputeError> {
        self.allocation
            .as_ref()
            .and_then(|a| a.mapped_slice())
            .ok_or_else(|| ComputeError::Vulkan("buffer is not host-visible".into()))
    }

    /// Destroys the buffer and returns its memory to the allocator.
    pub fn free(&mut self, device: &ash::Device, allocator: &mut Allocator) {
        // SAFETY: callers free only after the fence of every submission using it signalled.
        unsafe { device.destroy_buffer(self.buffer, None) };
        if let Some(a) = self.allocation.take() {
            if let Err(e) = allocator.free(a) {
                tracing::warn!(error = %e, "freeing GPU memory");
            }
        }
    }
}
