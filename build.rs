//! Links the daemon with packed relative relocations (`DT_RELR`) where the toolchain and the C
//! library support them. The loader reads every relocation at start: 1.5 MiB of plain ones
//! against a few KiB packed (the resident memory this saves was within the memory
//! benchmark's noise, BENCHMARKS.md "Session 15"). Decided by linking and running a tiny
//! program, so a linker or glibc too old for it (binutils < 2.38, glibc < 2.36) builds the
//! binary as before.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // The probe must run where the binary will: only for a native Linux/glibc build.
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    if packed_relocations_work(Path::new(&out)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether a position-independent program with a relative relocation links with packed
/// relocations and then loads and runs.
fn packed_relocations_work(dir: &Path) -> bool {
    let src = dir.join("relr_probe.c");
    let exe = dir.join("relr_probe");
    let program = "static int x;\nint *p = &x;\nint main(void) { return *p; }\n";
    if std::fs::write(&src, program).is_err() {
        return false;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let linked = Command::new(cc)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success());
    linked
        && Command::new(&exe)
            .output()
            .is_ok_and(|o| o.status.success())
}
