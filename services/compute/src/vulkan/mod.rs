//! The Vulkan backend (ash): one device, its compute queue, buffers from `gpu-allocator`,
//! cached pipelines, descriptor sets per submission, staging transfers and a fence.
//!
//! Work is expressed as a small program: input buffers (uploaded through one staging buffer, or
//! zero-filled), a list of kernel dispatches separated by memory barriers, and the buffers to
//! read back (through one read-back buffer). An MLP's layers run as one submission without
//! round trips to the host.

mod buffers;
mod device;
mod pipelines;

use std::sync::Mutex;
use std::time::Duration;

use ash::vk;
use gpu_allocator::vulkan::{Allocator, AllocatorCreateDesc};
use gpu_allocator::MemoryLocation;

pub use device::{list_devices, DeviceChoice, DeviceInfo};
pub use pipelines::Kernel;

use crate::activation::Activation;
use crate::error::ComputeError;
use crate::matrix::{product_shape, Matrix};
use buffers::GpuBuffer;
use device::OpenDevice;
use pipelines::PipelineCache;

/// How long one submission may run before the backend gives up on it.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(600);
/// SGEMM's block of C per workgroup (see `shaders/sgemm.comp`).
const SGEMM_BLOCK: u32 = 64;
/// Workgroup size of the element-wise and softmax kernels.
const LINEAR_GROUP: u32 = 256;

/// One buffer of a program.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Uploaded from these values.
    Data(&'a [f32]),
    /// This many zeros (an output or scratch buffer).
    Zeroed(usize),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Data(d) => d.len(),
            Input::Zeroed(n) => *n,
        }
    }
}

/// One kernel dispatch of a program.
#[derive(Debug, Clone)]
pub struct Step {
    /// The kernel.
    pub kernel: Kernel,
    /// Indices of the program's buffers, in the kernel's binding order.
    pub buffers: Vec<usize>,
    /// The push constants.
    pub push: Vec<u32>,
    /// Workgroup counts.
    pub groups: [u32; 3],
}

impl Step {
    /// `C = A·B` for an `m×k` A and a `k×n` B held in buffers `a`, `b`, `c`.
    pub fn sgemm(a: usize, b: usize, c: usize, m: u32, k: u32, n: u32) -> Step {
        Step {
            kernel: Kernel::Sgemm,
            buffers: vec![a, b, c],
            push: vec![m, n, k],
            groups: [n.div_ceil(SGEMM_BLOCK), m.div_ceil(SGEMM_BLOCK), 1],
        }
    }

    /// `X = act(X + bias)` for a `rows×cols` X in buffer `x`, bias in buffer `bias`.
    pub fn bias_activation(x: usize, bias: usize, rows: u32, cols: u32, act: Activation) -> Step {
        let total = rows.saturating_mul(cols);
        Step {
            kernel: Kernel::BiasActivation,
            buffers: vec![x, bias],
            push: vec![rows, cols, act.code()],
            groups: [total.div_ceil(LINEAR_GROUP).clamp(1, 65_535), 1, 1],
        }
    }

    /// Row-wise softmax of a `rows×cols` X in buffer `x`.
    pub fn softmax(x: usize, rows: u32, cols: u32) -> Step {
        Step {
            kernel: Kernel::Softmax,
            buffers: vec![x],
            push: vec![rows, cols],
            groups: [rows.clamp(1, 65_535), 1, 1],
        }
    }
}

struct Inner {
    pipelines: PipelineCache,
    allocator: Option<Allocator>,
    pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
}

/// The Vulkan compute backend on one device. Submissions are serialised (one queue).
pub struct VulkanBackend {
    inner: Mutex<Inner>,
    dev: OpenDevice,
}

fn vk_err(what: &'static str) -> impl Fn(vk::Result) -> ComputeError {
    move |e| ComputeError::Vulkan(format!("{what}: {e}"))
}

fn u32_dim(x: usize, what: &str) -> Result<u32, ComputeError> {
    u32::try_from(x).map_err(|_| ComputeError::TooLarge(format!("{what} {x} exceeds u32")))
}

impl VulkanBackend {
    /// Opens the device `choice` selects and prepares the command buffer and the allocator.
    pub fn open(choice: &DeviceChoice) -> Result<VulkanBackend, ComputeError> {
        let dev = OpenDevice::open(choice)?;
        let allocator = Allocator::new(&AllocatorCreateDesc {
            instance: dev.instance.clone(),
            device: dev.device.clone(),
            physical_device: dev.physical,
            debug_settings: Default::default(),
            buffer_device_address: false,
            allocation_sizes: Default::default(),
        })
        .map_err(|e| ComputeError::Vulkan(format!("creating the allocator: {e}")))?;
        let d = &dev.device;
        // SAFETY: valid create infos on a live device; destroyed in `Drop`.
        let pool = unsafe {
            d.create_command_pool(
                &vk::CommandPoolCreateInfo::default()
                    .queue_family_index(dev.queue_family)
                    .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                None,
            )
        }
        .map_err(vk_err("creating the command pool"))?;
        let cmd = unsafe {
            d.allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .level(vk::CommandBufferLevel::PRIMARY)
                    .command_buffer_count(1),
            )
        }
        .map_err(vk_err("allocating the command buffer"))?[0];
        let fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(vk_err("creating the fence"))?;
        Ok(VulkanBackend {
            inner: Mutex::new(Inner {
                pipelines: PipelineCache::default(),
                allocator: Some(allocator),
                pool,
                cmd,
                fence,
            }),
            dev,
        })
    }

    /// The device in use.
    pub fn device(&self) -> &DeviceInfo {
        &self.dev.info
    }

    /// `a × b` on the device.
    #[tracing::instrument(skip_all, fields(m = a.rows(), k = a.cols(), n = b.cols()))]
    pub fn sgemm(&self, a: &Matrix, b: &Matrix) -> Result<Matrix, ComputeError> {
        let (m, k, n) = product_shape(a, b)?;
        if m == 0 || n == 0 || k == 0 {
            return Matrix::zeros(m, n);
        }
        let step = Step::sgemm(
            0,
            1,
            2,
            u32_dim(m, "rows")?,
            u32_dim(k, "inner")?,
            u32_dim(n, "cols")?,
        );
        let out = self.execute(
            &[
                Input::Data(a.data()),
                Input::Data(b.data()),
                Input::Zeroed(m * n),
            ],
            &[step],
            &[2],
        )?;
        Matrix::from_vec(m, n, out.into_iter().next().unwrap_or_default())
    }

    /// `act(x + bias)` (bias per column) on the device.
    pub fn bias_activation(
        &self,
        x: &Matrix,
        bias: &[f32],
        act: Activation,
    ) -> Result<Matrix, ComputeError> {
        if bias.len() != x.cols() {
            return Err(ComputeError::Shape(format!(
                "bias has {} values for {} columns",
                bias.len(),
                x.cols()
            )));
        }
        if x.data().is_empty() {
            return Ok(x.clone());
        }
        let step = Step::bias_activation(
            0,
            1,
            u32_dim(x.rows(), "rows")?,
            u32_dim(x.cols(), "cols")?,
            act,
        );
        let out = self.execute(&[Input::Data(x.data()), Input::Data(bias)], &[step], &[0])?;
        Matrix::from_vec(
            x.rows(),
            x.cols(),
            out.into_iter().next().unwrap_or_default(),
        )
    }

    /// Row-wise softmax on the device.
    pub fn softmax_rows(&self, x: &Matrix) -> Result<Matrix, ComputeError> {
        if x.data().is_empty() {
            return Ok(x.clone());
        }
        let step = Step::softmax(0, u32_dim(x.rows(), "rows")?, u32_dim(x.cols(), "cols")?);
        let out = self.execute(&[Input::Data(x.data())], &[step], &[0])?;
        Matrix::from_vec(
            x.rows(),
            x.cols(),
            out.into_iter().next().unwrap_or_default(),
        )
    }

    /// Runs a program: uploads `inputs`, runs `steps` in order with barriers between them, and
    /// returns the contents of the buffers listed in `read`.
    pub fn execute(
        &self,
        inputs: &[Input<'_>],
        steps: &[Step],
        read: &[usize],
    ) -> Result<Vec<Vec<f32>>, ComputeError> {
        self.validate(inputs, steps, read)?;
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| ComputeError::Vulkan("backend poisoned by an earlier panic".into()))?;
        let inner = &mut *inner;
        let mut res = Resources::default();
        let result = self.run_program(inner, &mut res, inputs, steps, read);
        let d = &self.dev.device;
        if result.is_err() {
            // A failed or timed-out submission may still use the resources.
            // SAFETY: the device is live.
            let _ = unsafe { d.device_wait_idle() };
        }
        if let Some(allocator) = inner.allocator.as_mut() {
            for b in &mut res.buffers {
                b.free(d, allocator);
            }
        }
        if res.pool != vk::DescriptorPool::null() {
            // SAFETY: the submission finished (fence waited or device idle).
            unsafe { d.destroy_descriptor_pool(res.pool, None) };
        }
        result
    }

    fn validate(
        &self,
        inputs: &[Input<'_>],
        steps: &[Step],
        read: &[usize],
    ) -> Result<(), ComputeError> {
        let limits = &self.dev.limits;
        for i in inputs {
            let bytes = (i.len() as u64) * 4;
            if bytes > u64::from(limits.max_storage_buffer_range) {
                return Err(ComputeError::TooLarge(format!(
                    "a buffer of {bytes} bytes exceeds the device's storage buffer range of {}",
                    limits.max_storage_buffer_range
                )));
            }
        }
        for s in steps {
            if s.buffers.len() != s.kernel.bindings() || s.push.len() != s.kernel.push_words() {
                return Err(ComputeError::Vulkan(format!(
                    "malformed {:?} step",
                    s.kernel
                )));
            }
            if s.buffers.iter().any(|&b| b >= inputs.len()) {
                return Err(ComputeError::Vulkan(
                    "step names a buffer that does not exist".into(),
                ));
            }
            for (g, max) in s.groups.iter().zip(limits.max_compute_work_group_count) {
                if *g == 0 || *g > max {
                    return Err(ComputeError::TooLarge(format!(
                        "{:?} needs {g} workgroups in a dimension, the device allows {max}",
                        s.kernel
                    )));
                }
            }
        }
        if read.iter().any(|&b| b >= inputs.len()) {
            return Err(ComputeError::Vulkan(
                "read-back of a buffer that does not exist".into(),
            ));
        }
        Ok(())
    }

    fn run_program(
        &self,
        inner: &mut Inner,
        res: &mut Resources,
        inputs: &[Input<'_>],
        steps: &[Step],
        read: &[usize],
    ) -> Result<Vec<Vec<f32>>, ComputeError> {
        let d = &self.dev.device;
        let allocator = inner
            .allocator
            .as_mut()
            .ok_or_else(|| ComputeError::Vulkan("allocator gone".into()))?;
        let up_bytes: u64 = inputs
            .iter()
            .map(|i| match i {
                Input::Data(x) => x.len() as u64 * 4,
                Input::Zeroed(_) => 0,
            })
            .sum();
        let down_bytes: u64 = read.iter().map(|&r| inputs[r].len() as u64 * 4).sum();
        // Buffer 0: upload staging; 1: read-back; 2..: the program's buffers.
        res.buffers.push(GpuBuffer::new(
            d,
            allocator,
            "upload",
            up_bytes,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryLocation::CpuToGpu,
        )?);
        res.buffers.push(GpuBuffer::new(
            d,
            allocator,
            "readback",
            down_bytes,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryLocation::GpuToCpu,
        )?);
        for i in inputs {
            res.buffers.push(GpuBuffer::new(
                d,
                allocator,
                "storage",
                i.len() as u64 * 4,
                vk::BufferUsageFlags::STORAGE_BUFFER
                    | vk::BufferUsageFlags::TRANSFER_DST
                    | vk::BufferUsageFlags::TRANSFER_SRC,
                MemoryLocation::GpuOnly,
            )?);
        }
        {
            let staging = res.buffers[0].mapped_mut()?;
            let mut off = 0usize;
            for i in inputs {
                if let Input::Data(x) = i {
                    for (dst, v) in staging[off..off + x.len() * 4]
                        .chunks_exact_mut(4)
                        .zip(x.iter())
                    {
                        dst.copy_from_slice(&v.to_ne_bytes());
                    }
                    off += x.len() * 4;
                }
            }
        }
        // Descriptor sets: one per step, from a pool made for this program.
        let descriptors: u32 = steps.iter().map(|s| s.kernel.bindings() as u32).sum();
        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(descriptors.max(1))];
        // SAFETY: valid create info; destroyed by `execute`.
        res.pool = unsafe {
            d.create_descriptor_pool(
                &vk::DescriptorPoolCreateInfo::default()
                    .max_sets((steps.len() as u32).max(1))
                    .pool_sizes(&sizes),
                None,
            )
        }
        .map_err(vk_err("creating a descriptor pool"))?;
        let mut sets = Vec::with_capacity(steps.len());
        for s in steps {
            let p = inner.pipelines.get(d, s.kernel)?;
            let layouts = [p.set_layout];
            // SAFETY: the pool has room for one set per step.
            let set = unsafe {
                d.allocate_descriptor_sets(
                    &vk::DescriptorSetAllocateInfo::default()
                        .descriptor_pool(res.pool)
                        .set_layouts(&layouts),
                )
            }
            .map_err(vk_err("allocating a descriptor set"))?[0];
            let infos: Vec<[vk::DescriptorBufferInfo; 1]> = s
                .buffers
                .iter()
                .map(|&b| {
                    [vk::DescriptorBufferInfo::default()
                        .buffer(res.buffers[2 + b].buffer)
                        .offset(0)
                        .range(vk::WHOLE_SIZE)]
                })
                .collect();
            let writes: Vec<vk::WriteDescriptorSet> = infos
                .iter()
                .enumerate()
                .map(|(binding, info)| {
                    vk::WriteDescriptorSet::default()
                        .dst_set(set)
                        .dst_binding(binding as u32)
                        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                        .buffer_info(info)
                })
                .collect();
            // SAFETY: the set and buffers are live.
            unsafe { d.update_descriptor_sets(&writes, &[]) };
            sets.push(set);
        }

        let cmd = inner.cmd;
        // SAFETY: recording into our own command buffer, which is idle (the previous
        // submission's fence was waited on); every handle used is live until the fence.
        unsafe {
            d.reset_command_buffer(cmd, vk::CommandBufferResetFlags::empty())
                .map_err(vk_err("resetting the command buffer"))?;
            d.begin_command_buffer(
                cmd,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(vk_err("beginning the command buffer"))?;
            let mut off = 0u64;
            for (i, input) in inputs.iter().enumerate() {
                let dst = &res.buffers[2 + i];
                match input {
                    Input::Data(x) => {
                        let bytes = x.len() as u64 * 4;
                        if bytes > 0 {
                            let region = [vk::BufferCopy::default()
                                .src_offset(off)
                                .dst_offset(0)
                                .size(bytes)];
                            d.cmd_copy_buffer(cmd, res.buffers[0].buffer, dst.buffer, &region);
                        }
                        off += bytes;
                    }
                    Input::Zeroed(_) => d.cmd_fill_buffer(cmd, dst.buffer, 0, vk::WHOLE_SIZE, 0),
                }
            }
            barrier(
                d,
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::AccessFlags::TRANSFER_WRITE,
                vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE,
            );
            for (s, &set) in steps.iter().zip(&sets) {
                let p = inner.pipelines.get(d, s.kernel)?;
                d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, p.pipeline);
                d.cmd_bind_descriptor_sets(
                    cmd,
                    vk::PipelineBindPoint::COMPUTE,
                    p.layout,
                    0,
                    &[set],
                    &[],
                );
                let push: Vec<u8> = s.push.iter().flat_map(|w| w.to_ne_bytes()).collect();
                d.cmd_push_constants(cmd, p.layout, vk::ShaderStageFlags::COMPUTE, 0, &push);
                d.cmd_dispatch(cmd, s.groups[0], s.groups[1], s.groups[2]);
                barrier(
                    d,
                    cmd,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::PipelineStageFlags::COMPUTE_SHADER | vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::SHADER_WRITE,
                    vk::AccessFlags::SHADER_READ
                        | vk::AccessFlags::SHADER_WRITE
                        | vk::AccessFlags::TRANSFER_READ,
                );
            }
            let mut off = 0u64;
            for &r in read {
                let bytes = inputs[r].len() as u64 * 4;
                if bytes > 0 {
                    let region = [vk::BufferCopy::default()
                        .src_offset(0)
                        .dst_offset(off)
                        .size(bytes)];
                    d.cmd_copy_buffer(
                        cmd,
                        res.buffers[2 + r].buffer,
                        res.buffers[1].buffer,
                        &region,
                    );
                }
                off += bytes;
            }
            barrier(
                d,
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST,
                vk::AccessFlags::TRANSFER_WRITE,
                vk::AccessFlags::HOST_READ,
            );
            d.end_command_buffer(cmd)
                .map_err(vk_err("ending the command buffer"))?;
            let cmds = [cmd];
            let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
            d.queue_submit(self.dev.queue, &submit, inner.fence)
                .map_err(vk_err("submitting"))?;
            let waited = d.wait_for_fences(&[inner.fence], true, SUBMIT_TIMEOUT.as_nanos() as u64);
            // Reset for the next submission whatever happened (execute idles the device on error).
            let _ = d.reset_fences(&[inner.fence]);
            waited.map_err(vk_err("waiting for the GPU"))?;
        }
        let back = res.buffers[1].mapped()?;
        let mut off = 0usize;
        let mut out = Vec::with_capacity(read.len());
        for &r in read {
            let n = inputs[r].len();
            let v: Vec<f32> = back[off..off + n * 4]
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            off += n * 4;
            out.push(v);
        }
        Ok(out)
    }
}

/// What one program allocated; freed by `execute` whatever happened.
#[derive(Default)]
struct Resources {
    buffers: Vec<GpuBuffer>,
    pool: vk::DescriptorPool,
}

/// A global memory barrier between two stages.
///
/// # Safety
/// `cmd` is recording on `d`.
unsafe fn barrier(
    d: &ash::Device,
    cmd: vk::CommandBuffer,
    src: vk::PipelineStageFlags,
    dst: vk::PipelineStageFlags,
    src_access: vk::AccessFlags,
    dst_access: vk::AccessFlags,
) {
    let mb = [vk::MemoryBarrier::default()
        .src_access_mask(src_access)
        .dst_access_mask(dst_access)];
    // SAFETY: the caller's contract.
    unsafe { d.cmd_pipeline_barrier(cmd, src, dst, vk::DependencyFlags::empty(), &mb, &[], &[]) };
}

impl Drop for VulkanBackend {
    fn drop(&mut self) {
        let d = &self.dev.device;
        // SAFETY: wait for all work, then destroy what we created; the device itself goes when
        // `dev` drops after this.
        unsafe {
            let _ = d.device_wait_idle();
        }
        if let Ok(inner) = self.inner.get_mut() {
            inner.pipelines.destroy(d);
            drop(inner.allocator.take());
            // SAFETY: idle device; these were created by `open`.
            unsafe {
                d.destroy_fence(inner.fence, None);
                d.destroy_command_pool(inner.pool, None);
            }
        }
    }
}
