//! clang with AddressSanitizer and UndefinedBehaviorSanitizer as a "compiler" the harness can
//! be given (it takes a command, not flags).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `-fno-sanitize-recover=all`: the first report ends the program with a failure status.
pub const FLAGS: &str =
    "-fsanitize=undefined,address -fno-sanitize-recover=all -fno-omit-frame-pointer -g";

/// Writes `dir/clang-sanitize`, a wrapper adding [`FLAGS`] to every compile and link (before
/// the harness's strict flags, so -Werror still applies).
pub fn write_wrapper(dir: &Path) -> PathBuf {
    let path = dir.join("clang-sanitize");
    std::fs::write(&path, format!("#!/bin/sh\nexec clang {FLAGS} \"$@\"\n"))
        .expect("write the clang wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the clang wrapper executable");
    }
    path
}

/// Runs a sanitized program; returns its exit status and stderr (where reports go: the
/// harness keeps only stdout).
pub fn run(exe: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(exe)
        .env("ASAN_OPTIONS", "detect_leaks=1")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sanitizer's report of a failed harness run in `dir` (its program is `dir/fw`).
pub fn report(dir: &Path) -> String {
    let exe = dir.join("fw");
    if exe.is_file() {
        let (status, stderr) = run(&exe);
        format!("rerun ({status}):\n{stderr}")
    } else {
        "(no program was built)".to_owned()
    }
}
