//! Link-time set-up (see build_link.rs) and the C++ shim over ATen
//! functions tch does not expose (csrc/shim.cpp), compiled against the
//! headers of the libtorch torch-sys found.
include!("build_link.rs");

fn main() {
    chestcam_link_args();
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
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
}
