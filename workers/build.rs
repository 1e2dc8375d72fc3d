//! Builds the lld zygote shim (workers/zygote/lld_zygote.c) as a shared
//! object for `LD_PRELOAD`; the engine embeds it (see `sandbox::zygote`).

use std::path::PathBuf;

fn main() {
    let source = "zygote/lld_zygote.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("lld-zygote.so");
    // cc builds static archives; a preloaded object must be shared, so the
    // compiler cc found is run directly.
    let compiler = cc::Build::new().opt_level(2).warnings(true).get_compiler();
    let status = compiler
        .to_command()
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .arg("-ldl")
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "compiling {source} failed");
}
