//! Records which build this is, for `vastwatch --version` and (later) `vastwatch_build_info`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VASTWATCH_BUILD_ID");
    for path in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("VASTWATCH_BUILD_ID").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    });
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!(
        "cargo:rustc-env=VASTWATCH_BUILD={} {profile} {target}",
        commit.as_deref().unwrap_or("unknown")
    );
}
