// Shared by the build scripts of `chestcam-lib` and `tests` (include!d):
// link-time set-up so binaries and tests run without LD_LIBRARY_PATH.

/// Emit an rpath to libtorch's lib folder (exported by torch-sys as
/// `DEP_TCH_LIBTORCH_LIB`) and keep `libtorch_cuda.so` linked when present:
/// nothing references its symbols, so `--as-needed` would drop it and CUDA
/// would never be available.
fn chestcam_link_args() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: binaries need LD_LIBRARY_PATH");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        // The CUDA shim (csrc/cuda_shim.cpp) calls the CUDA runtime through
        // c10's inline helpers: link torch's own libcudart.so.13 (from the
        // nvidia wheel beside torch), found at run time through this rpath
        // or LD_LIBRARY_PATH. Only binaries that use the shim keep it.
        let site = std::path::Path::new(&lib).parent().and_then(|t| t.parent());
        if let Some(cuda_lib) = site
            .map(|s| s.join("nvidia/cu13/lib"))
            .filter(|p| p.join("libcudart.so.13").exists())
        {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", cuda_lib.display());
            println!("cargo:rustc-link-arg=-L{}", cuda_lib.display());
            println!("cargo:rustc-link-arg=-l:libcudart.so.13");
        }
    }
}
