//! Stamps the build: the git commit (with `-dirty` for uncommitted changes) and the target
//! triple, for `logcatch --version`, so an operator can tell what a host runs. On x86_64 it also
//! compiles `src/fastcopy/memmove.c` (see src/fastcopy.rs), exported as the C library's
//! `memcpy` and `memmove` in the static (musl) build only.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c}-dirty")
        }
        Some(c) => c,
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=LOGCATCH_COMMIT={commit}");
    println!("cargo:rustc-env=LOGCATCH_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    fastcopy();
    for f in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
}

fn fastcopy() {
    println!("cargo::rustc-check-cfg=cfg(logcatch_fastcopy)");
    println!("cargo:rerun-if-changed=src/fastcopy/memmove.c");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        return;
    }
    let mut b = cc::Build::new();
    b.file("src/fastcopy/memmove.c")
        .opt_level(2)
        .flag("-ffreestanding")
        .flag("-fno-tree-loop-distribute-patterns")
        .flag("-fno-stack-protector")
        .warnings(true);
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        b.define("LOGCATCH_OVERRIDE_LIBC", None);
    }
    b.compile("logcatch_fastcopy");
    println!("cargo:rustc-cfg=logcatch_fastcopy");
}
