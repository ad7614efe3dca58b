//! Every shader parses and validates with naga, and agrees with its host side: parameter
//! structs field by field, entry points, binding numbers and access. No GPU needed.

use naga::valid::{Capabilities, GlobalUse, SubgroupOperationSet, ValidationFlags, Validator};
use wgtrain::gpu::kernels::{all_params, Access, ALL_KERNELS, SHADERS};

use crate::common::Test;

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("every_shader_parses_and_validates", every_shader_parses_and_validates),
        Test::cpu("every_shader_file_is_registered", every_shader_file_is_registered),
        Test::cpu("params_structs_match_their_wgsl_twins", params_structs_match_their_wgsl_twins),
        Test::cpu("kernels_match_entry_points_and_bindings", kernels_match_entry_points_and_bindings),
    ]
}

fn parse(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    // Subgroup operations are allowed in compute shaders: the host uses a shader that needs
    // them (matmul_v5_subgroup) only where the device has them.
    let info = Validator::new(ValidationFlags::all(), Capabilities::default() | Capabilities::SUBGROUP)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::BASIC | SubgroupOperationSet::BALLOT)
        .validate(&module)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl does not validate:\n{}", e.emit_to_string(source)));
    (module, info)
}

fn every_shader_parses_and_validates() {
    assert!(SHADERS.len() >= 7);
    for s in SHADERS {
        parse(s.name, s.source);
    }
}

fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            assert!(SHADERS.iter().any(|s| s.name == stem), "{} is not in kernels::SHADERS", path.display());
        }
    }
}

fn params_structs_match_their_wgsl_twins() {
    for (name, fields, size) in all_params() {
        let mut seen = 0;
        for s in SHADERS {
            let (module, _) = parse(s.name, s.source);
            for (_, ty) in module.types.iter() {
                if ty.name.as_deref() != Some(name) {
                    continue;
                }
                let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{name} in {} is not a struct", s.name) };
                let wgsl: Vec<(String, usize)> = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize)).collect();
                let rust: Vec<(String, usize)> = fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
                assert_eq!(wgsl, rust, "struct {name}: shaders/{}.wgsl and the Rust struct differ", s.name);
                assert_eq!(*span as usize, size, "struct {name}: size differs in shaders/{}.wgsl", s.name);
                seen += 1;
            }
        }
        assert!(seen > 0, "no shader declares struct {name}");
    }
}

fn kernels_match_entry_points_and_bindings() {
    for k in ALL_KERNELS {
        let source = SHADERS.iter().find(|s| s.name == k.shader).unwrap_or_else(|| panic!("no shader {}", k.shader)).source;
        let (module, info) = parse(k.shader, source);
        let index = module
            .entry_points
            .iter()
            .position(|e| e.name == k.entry)
            .unwrap_or_else(|| panic!("shaders/{}.wgsl has no entry point {}", k.shader, k.entry));
        let uses = info.get_entry_point(index);
        let mut bound = Vec::new();
        for (handle, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else { continue };
            if uses[handle].is_empty() {
                continue;
            }
            assert_eq!(binding.group, 0, "{}::{}: only group 0 is bound", k.shader, k.entry);
            if binding.binding == 0 {
                assert_eq!(var.space, naga::AddressSpace::Uniform, "{}::{}: binding 0 must be the uniform parameters", k.shader, k.entry);
                continue;
            }
            let declared = k.storage.iter().find(|(b, _)| *b == binding.binding);
            let Some((_, access)) = declared else {
                panic!("{}::{} uses binding {} that the host does not bind", k.shader, k.entry, binding.binding)
            };
            let naga::AddressSpace::Storage { access: wgsl_access } = var.space else {
                panic!("binding {} is not storage", binding.binding)
            };
            let writable = wgsl_access.contains(naga::StorageAccess::STORE);
            assert_eq!(
                writable,
                *access == Access::ReadWrite,
                "{}::{}: binding {} access differs from the host",
                k.shader,
                k.entry,
                binding.binding
            );
            if !writable {
                assert!(!uses[handle].contains(GlobalUse::WRITE));
            }
            bound.push(binding.binding);
        }
        bound.sort();
        let mut expected: Vec<u32> = k.storage.iter().map(|(b, _)| *b).collect();
        expected.sort();
        assert_eq!(bound, expected, "{}::{}: host binds {:?}, the entry point uses {:?}", k.shader, k.entry, expected, bound);
    }
}
