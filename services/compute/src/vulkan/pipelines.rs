//! The compute pipelines, built once per kernel on first use and cached for the device's life.

use std::collections::HashMap;

use ash::vk;

use crate::error::ComputeError;

/// The kernels the shaders in `shaders/` provide (SPIR-V compiled by build.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `C = A·B` (bindings A, B, C; push M, N, K).
    Sgemm,
    /// `X = act(X + bias)` in place (bindings X, bias; push rows, cols, act).
    BiasActivation,
    /// Row-wise softmax in place (binding X; push rows, cols).
    Softmax,
}

impl Kernel {
    fn spirv(self) -> &'static [u8] {
        match self {
            Kernel::Sgemm => include_bytes!(concat!(env!("OUT_DIR"), "/sgemm.spv")),
            Kernel::BiasActivation => include_bytes!(concat!(env!("OUT_DIR"), "/bias_act.spv")),
            Kernel::Softmax => include_bytes!(concat!(env!("OUT_DIR"), "/softmax.spv")),
        }
    }

    /// How many storage buffers the kernel binds.
    pub fn bindings(self) -> usize {
        match self {
            Kernel::Sgemm => 3,
            Kernel::BiasActivation => 2,
            Kernel::Softmax => 1,
        }
    }

    /// How many `u32` push constants it takes.
    pub fn push_words(self) -> usize {
        match self {
            Kernel::Sgemm | Kernel::BiasActivation => 3,
            Kernel::Softmax => 2,
        }
    }
}

/// One built pipeline and the layouts it needs.
pub struct Pipeline {
    pub(crate) set_layout: vk::DescriptorSetLayout,
    pub(crate) layout: vk::PipelineLayout,
    pub(crate) pipeline: vk::Pipeline,
    module: vk::ShaderModule,
}

/// The cache of built pipelines.
#[derive(Default)]
pub struct PipelineCache {
    built: HashMap<Kernel, Pipeline>,
}

impl PipelineCache {
    /// The pipeline of `kernel`, built on first use.
    pub fn get(&mut self, device: &ash::Device, kernel: Kernel) -> Result<&Pipeline, ComputeError> {
        match self.built.entry(kernel) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => Ok(v.insert(build(device, kernel)?)),
        }
    }

    /// Destroys every pipeline; called before the device goes.
    pub fn destroy(&mut self, device: &ash::Device) {
        for (_, p) in self.built.drain() {
            // SAFETY: the device is idle (the backend waits) and nothing uses these any more.
            unsafe {
                device.destroy_pipeline(p.pipeline, None);
                device.destroy_pipeline_layout(p.layout, None);
                device.destroy_descriptor_set_layout(p.set_layout, None);
                device.destroy_shader_module(p.module, None);
            }
        }
    }
}

fn build(device: &ash::Device, kernel: Kernel) -> Result<Pipeline, ComputeError> {
    let err =
        |what: &'static str| move |e: vk::Result| ComputeError::Vulkan(format!("{what}: {e}"));
    let code = ash::util::read_spv(&mut std::io::Cursor::new(kernel.spirv()))
        .map_err(|e| ComputeError::Vulkan(format!("bad SPIR-V for {kernel:?}: {e}")))?;
    // SAFETY (all calls below): valid create infos on a live device; each object is destroyed
    // in `PipelineCache::destroy` or right here on failure.
    let module = unsafe {
        device.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
    }
    .map_err(err("creating a shader module"))?;
    let bindings: Vec<vk::DescriptorSetLayoutBinding> = (0..kernel.bindings() as u32)
        .map(|b| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(b)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE)
        })
        .collect();
    let set_layout = unsafe {
        device.create_descriptor_set_layout(
            &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
            None,
        )
    }
    .map_err(err("creating a descriptor set layout"))?;
    let ranges = [vk::PushConstantRange::default()
        .stage_flags(vk::ShaderStageFlags::COMPUTE)
        .offset(0)
        .size((kernel.push_words() * 4) as u32)];
    let layouts = [set_layout];
    let layout = unsafe {
        device.create_pipeline_layout(
            &vk::PipelineLayoutCreateInfo::default()
                .set_layouts(&layouts)
                .push_constant_ranges(&ranges),
            None,
        )
    }
    .map_err(err("creating a pipeline layout"))?;
    let stage = vk::PipelineShaderStageCreateInfo::default()
        .stage(vk::ShaderStageFlags::COMPUTE)
        .module(module)
        .name(c"main");
    let info = [vk::ComputePipelineCreateInfo::default()
        .stage(stage)
        .layout(layout)];
    let pipeline =
        unsafe { device.create_compute_pipelines(vk::PipelineCache::null(), &info, None) }
            .map_err(|(_, e)| {
                ComputeError::Vulkan(format!("creating the {kernel:?} pipeline: {e}"))
            })?
            .into_iter()
            .next()
            .ok_or_else(|| ComputeError::Vulkan("no pipeline returned".into()))?;
    Ok(Pipeline {
        set_layout,
        layout,
        pipeline,
        module,
    })
}
