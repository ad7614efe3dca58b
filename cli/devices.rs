//! `wgtrain devices`: every adapter wgpu can see, with the limits that matter for training.

use std::process::ExitCode;

use wgtrain::gpu::list_adapters;

pub fn run() -> anyhow::Result<ExitCode> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        println!("no adapters found; on a machine without a GPU install lavapipe: apt-get install mesa-vulkan-drivers libvulkan1");
        return Ok(ExitCode::FAILURE);
    }
    for a in adapters {
        println!("[{}] {}", a.index, a.name);
        println!("    backend {}, type {}, driver {}", a.backend, a.device_type, a.driver);
        println!("    compute shaders: {}", if a.compute { "yes" } else { "no" });
        let l = &a.limits;
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, storage buffers per stage {}, workgroups per dimension {}, invocations per workgroup {}, workgroup memory {} KiB",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size >> 10
        );
    }
    Ok(ExitCode::SUCCESS)
}
