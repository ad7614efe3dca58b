//! Finding an adapter, opening a device with the limits training needs, and turning wgpu's
//! asynchronous errors (validation, out-of-memory, device loss) into `Error` values.

use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// How the user picks a device: `--device N|NAME`, or `WGTRAIN_DEVICE`; `WGPU_BACKEND`
/// (e.g. `vulkan`, `metal`, `dx12`) restricts the backends searched.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Index into `wgtrain devices`, or a case-insensitive part of the adapter's name.
    pub device: Option<String>,
    /// Force a matmul variant (see `MatmulVariant::parse`); also `WGTRAIN_MATMUL`.
    pub matmul_variant: Option<String>,
    /// Use a smaller storage-binding size than the device allows (tests of the chunking path).
    pub max_binding_bytes: Option<u64>,
    /// Time every dispatch (see `gpu::profile`): timestamp queries where the adapter has them.
    /// Slower; for `wgtrain profile`.
    pub profile: bool,
    /// How kernels are chosen (see `gpu::autotune`): by device type (default), or measured and
    /// cached per adapter and driver.
    pub tuning: super::Tuning,
    /// The kernel cache file (default: `autotune::cache_file()`, in the user's cache folder).
    pub cache_file: Option<std::path::PathBuf>,
    /// Compile pipelines only on the device's own queue: no helper device compiling ahead on
    /// adapters that compile at first dispatch (see `gpu::ahead`); also `WGTRAIN_SERIAL_COMPILE=1`.
    pub serial_compile: bool,
}

/// What `wgtrain devices` shows about an adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Position in the list, the N of `--device N`.
    pub index: usize,
    /// The adapter's name, matched by `--device NAME`.
    pub name: String,
    /// The graphics API it is reached through (`Vulkan`, `Metal`, `Dx12`, `Gl`).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (lavapipe) or `Other`.
    pub device_type: String,
    /// Driver name and version, as the driver reports them (may be empty).
    pub driver: String,
    /// Whether it can run compute shaders (wgtrain needs them).
    pub compute: bool,
    /// The most the adapter offers (wgtrain asks for part of it).
    pub limits: wgpu::Limits,
}

fn instance() -> wgpu::Instance {
    // Respects WGPU_BACKEND and the other WGPU_* variables.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all().with_env()))
}

fn summary(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        compute: adapter.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS),
        limits: adapter.limits(),
    }
}

/// Every adapter wgpu can see, in the order `--device N` counts them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().enumerate().map(|(i, a)| summary(i, a)).collect()
}

/// Preference when the user names no device: discrete, integrated, virtual, then CPU.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn choose(adapters: Vec<wgpu::Adapter>, want: Option<&str>) -> Result<wgpu::Adapter> {
    let names = || {
        let list: Vec<String> = adapters.iter().enumerate().map(|(i, a)| format!("{i}: {}", a.get_info().name)).collect();
        if list.is_empty() {
            "none found".to_string()
        } else {
            list.join(", ")
        }
    };
    let compute = |a: &wgpu::Adapter| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
    let pick = match want {
        Some(w) if w.parse::<usize>().is_ok() => {
            let i: usize = w.parse().unwrap_or(0);
            adapters.get(i).cloned().ok_or_else(|| Error::NoAdapter(format!("device {w}: no adapter with that index (adapters: {})", names())))?
        }
        Some(w) => {
            let lw = w.to_lowercase();
            adapters
                .iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&lw))
                .cloned()
                .ok_or_else(|| Error::NoAdapter(format!("device '{w}': no adapter name contains it (adapters: {})", names())))?
        }
        None => adapters
            .iter()
            .filter(|a| compute(a))
            .min_by_key(|a| rank(a.get_info().device_type))
            .cloned()
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    "no adapter with compute shaders ({}); without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1",
                    names()
                ))
            })?,
    };
    if !compute(&pick) {
        return Err(Error::NoAdapter(format!("{} cannot run compute shaders", pick.get_info().name)));
    }
    Ok(pick)
}

/// The limits wgtrain asks for: WebGPU's downlevel defaults, raised to what the adapter offers
/// for the things training needs (big storage buffers, many bindings, big workgroups).
fn training_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let mut l = wgpu::Limits::downlevel_defaults();
    l.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
    l.max_buffer_size = adapter.max_buffer_size;
    l.max_storage_buffers_per_shader_stage = adapter.max_storage_buffers_per_shader_stage;
    l.max_uniform_buffer_binding_size = adapter.max_uniform_buffer_binding_size;
    l.max_compute_workgroup_storage_size = adapter.max_compute_workgroup_storage_size;
    l.max_compute_invocations_per_workgroup = adapter.max_compute_invocations_per_workgroup;
    l.max_compute_workgroup_size_x = adapter.max_compute_workgroup_size_x;
    l.max_compute_workgroup_size_y = adapter.max_compute_workgroup_size_y;
    l.max_compute_workgroup_size_z = adapter.max_compute_workgroup_size_z;
    l.max_compute_workgroups_per_dimension = adapter.max_compute_workgroups_per_dimension;
    l.max_bindings_per_bind_group = adapter.max_bindings_per_bind_group;
    l.max_dynamic_uniform_buffers_per_pipeline_layout = adapter.max_dynamic_uniform_buffers_per_pipeline_layout;
    l
}

/// The optional features wgtrain uses where the adapter has them: subgroups (matmul v5) and,
/// when profiling, timestamp queries.
fn wanted_features(opts: &GpuOptions) -> wgpu::Features {
    let mut f = wgpu::Features::SUBGROUP;
    if opts.profile {
        f |= wgpu::Features::TIMESTAMP_QUERY;
    }
    f
}

/// An open device and what we know about it.
pub struct GpuContext {
    /// The open device: buffers, pipelines, error scopes.
    pub device: wgpu::Device,
    /// Its queue: submissions and buffer writes.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend, type and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was opened with, which every dispatch and binding must respect.
    pub limits: wgpu::Limits,
    /// Subgroup operations enabled, on subgroups of at least 8 invocations.
    subgroups_of_8: bool,
    /// First error wgpu reported outside an error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the adapter `opts.device` (or `WGTRAIN_DEVICE`) names, else the best one with compute
    /// shaders, and starts collecting its asynchronous errors.
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        let want = opts.device.clone().or_else(|| std::env::var("WGTRAIN_DEVICE").ok().filter(|s| !s.is_empty()));
        let adapter = choose(adapters(), want.as_deref())?;
        let info = adapter.get_info();
        let limits = training_limits(&adapter.limits());
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: adapter.features() & wanted_features(opts),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;

        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let slot = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None::<String>));
        let slot = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| format!("{reason:?}: {msg}"));
        });
        let subgroups_of_8 = device.features().contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8;
        Ok(Self { device, queue, info, limits, subgroups_of_8, uncaptured, lost })
    }

    /// Fails with the first error wgpu reported asynchronously, or device loss.
    pub fn check(&self, context: &str) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(Error::DeviceLost(m));
        }
        if let Some(m) = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::Gpu { context: context.to_string(), message: m });
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes; an error becomes `Error::Gpu`.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu { context: context.to_string(), message: e.to_string() });
        }
        self.check(context)?;
        Ok(out)
    }

    /// Whether the adapter is a software implementation running on the CPU (e.g. lavapipe).
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether kernels may use subgroup operations on subgroups of at least 8 invocations
    /// (shaders/matmul_v5_subgroup.wgsl shares 8 rows of A across them).
    pub fn has_subgroups_of_8(&self) -> bool {
        self.subgroups_of_8
    }
}
