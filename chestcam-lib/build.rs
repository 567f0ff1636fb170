//! Link-time set-up (see build_link.rs) and the C++ shim over ATen
//! functions tch does not expose (csrc/shim.cpp), compiled against the
//! headers of the libtorch torch-sys found.
include!("build_link.rs");

fn main() {
    chestcam_link_args();
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-changed=csrc/cuda_shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    let root = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib folder has a parent")
        .to_path_buf();
    let include = root.join("include");
    // PyPI's torch 2.11 wheels use the C++11 ABI, as torch-sys finds.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/shim.cpp")
        .compile("chestcam_shim");
    cuda_shim(&lib, &include, &abi);
}

/// The CUDA part of the shim (CUDA graphs, device memory statistics). It
/// needs the CUDA runtime headers, which PyPI's torch brings in its nvidia
/// wheels (site-packages/nvidia/cu13/include) and libtorch_cuda; without
/// them it is compiled as stubs that answer "no CUDA support".
fn cuda_shim(lib: &str, include: &std::path::Path, abi: &str) {
    let lib = std::path::Path::new(lib);
    let site = lib.parent().and_then(|t| t.parent());
    let cuda_include = site
        .map(|s| s.join("nvidia/cu13/include"))
        .filter(|p| p.join("cuda_runtime_api.h").exists());
    // The cu13 runtime wheel leaves out the `crt/` headers that
    // cuda_runtime.h includes; triton (a dependency of torch on Linux)
    // ships them with its own copy of the CUDA headers.
    let crt_include = site
        .map(|s| s.join("triton/backends/nvidia/include"))
        .filter(|p| p.join("crt/host_config.h").exists());
    let has_cuda_libs = lib.join("libtorch_cuda.so").exists()
        && lib.join("libc10_cuda.so").exists()
        && site.is_some_and(|s| s.join("nvidia/cu13/lib/libcudart.so.13").exists());
    let mut b = cc::Build::new();
    b.cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/cuda_shim.cpp");
    let crt_ok = cuda_include
        .as_ref()
        .is_some_and(|ci| ci.join("crt/host_config.h").exists() || crt_include.is_some());
    match (cuda_include, has_cuda_libs && crt_ok) {
        (Some(ci), true) => {
            b.include(ci).define("USE_CUDA", None);
            if let Some(crt) = crt_include {
                b.include(crt);
            }
            println!("cargo:rustc-link-search=native={}", lib.display());
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
            println!("cargo:rustc-link-lib=dylib=torch_cuda");
        }
        _ => {
            println!("cargo:warning=CUDA headers or libraries not found beside libtorch: CUDA graphs are compiled out");
            b.define("CHESTCAM_NO_CUDA", None);
        }
    }
    b.compile("chestcam_cuda_shim");
}
