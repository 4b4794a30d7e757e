//! Link flags for the binaries: a static-pie (the recommended install,
//! README "Start-up") gets its relocations packed as RELR.
//!
//! A static-pie relocates itself when it starts. Its 26 000 relative
//! relocations take 626 KiB as RELA entries, read through page faults at
//! every start; packed as RELR (`-z pack-relative-relocs`) they take
//! 7 KiB, and a `configlist` costs about a tenth less CPU (README,
//! "Drops and configlist start-up").
//!
//! Only for a static glibc build made on the machine it targets, with a
//! glibc of 2.36 or later: older ones do not apply RELR at start (a
//! dynamic build would also need that glibc where it runs).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let static_glibc = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if static_glibc && var("HOST") == var("TARGET") && glibc_has_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// This machine's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`).
fn glibc_has_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
