//! The generated C of every conformance model (tests/common: all cases and the coverage
//! cases), in f32, int8 and int16, compiled by clang with AddressSanitizer and
//! UndefinedBehaviorSanitizer (`-fno-sanitize-recover=all`: the first report ends the program)
//! and run on the host through kpgen's harness: any sanitizer report fails, and the outputs
//! must still match the references. Needs clang's sanitizer runtime (ci/setup installs it).

mod common;
#[path = "random/sanitize.rs"]
mod sanitize;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::Case;
use kpgen::base::sequences::TestInputs;
use kpgen::spec::{Lang, Precision};
use kpgen::verify::{self, firmware, Platform, RunOptions, Tolerance};

fn check(case: &Case, precision: Precision, cc: &Path) -> Result<(), String> {
    let target = common::target();
    let (_fixture, gen) = common::generate_in(case, &target, precision)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-sanitize-{}-", case.name()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    // Inputs beyond the calibration range: the saturating paths run too.
    let inputs = TestInputs::random(
        3,
        case.model.steps(),
        case.model.features,
        0x5eed ^ case.model.seed,
        1.25,
    );
    let opts = RunOptions {
        langs: vec![Lang::C],
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: false,
        every_step: false,
        work_dir: work.path().to_path_buf(),
    };
    let platform = Platform::Host {
        cc: cc.to_string_lossy().into_owned(),
    };
    let dir = work.path().join("c");
    let p = precision.as_str();
    let run_out = firmware::build_and_run(&platform, &target, &gen, Lang::C, &inputs, &dir, &opts);
    let run_out = match run_out {
        Ok(r) => r,
        Err(e) => {
            // The harness keeps only stdout: rerun the program for the sanitizer's report.
            let report = sanitize::report(&dir);
            return Err(format!("{p}: the sanitized C failed: {e}\n{report}"));
        }
    };
    let reference = verify::reference_outputs(&gen.model, &inputs);
    let c = match (&gen.quant, verify::integer_outputs(&gen, &inputs)) {
        (Some(q), Some(expected)) => verify::compare_fixed(
            q,
            &run_out.outputs,
            &expected,
            &reference,
            None,
            run_out.streaming_matches,
        ),
        _ => verify::compare(
            &run_out.outputs,
            &reference,
            None,
            run_out.streaming_matches,
            Tolerance::default(),
        ),
    };
    let exact = gen.quant.is_none() || c.integer_mismatches == Some(0);
    if c.pass && exact {
        Ok(())
    } else {
        Err(format!(
            "{p}: the sanitized C differs from the reference: {c:#?}"
        ))
    }
}

/// The sanitizers are really on: an out-of-bounds read (ASan) and a signed overflow (UBSan),
/// built by the same wrapper, must each stop the program with a report.
fn check_the_sanitizers_fire(cc: &Path, dir: &Path) {
    for (name, body, needle) in [
        // Through a pointer, where only ASan (not UBSan's bounds check) can see it.
        (
            "oob",
            "static int a[4]; int *volatile p = a; return p[4];",
            "AddressSanitizer: global-buffer-overflow",
        ),
        (
            "overflow",
            "volatile int32_t m = INT32_MAX; return (int)(m + 1);",
            "signed integer overflow",
        ),
    ] {
        let src = dir.join(format!("{name}.c"));
        let exe = dir.join(name);
        std::fs::write(
            &src,
            format!("#include <stdint.h>\nint main(void)\n{{\n    {body}\n}}\n"),
        )
        .unwrap();
        let out = Command::new(cc)
            .args(["-std=c99", "-O2"])
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", cc.display()));
        assert!(
            out.status.success(),
            "clang cannot build with {} (is the sanitizer runtime, Debian's \
             libclang-rt-dev, installed? ci/setup installs it):\n{}",
            sanitize::FLAGS,
            String::from_utf8_lossy(&out.stderr)
        );
        let (status, stderr) = sanitize::run(&exe);
        assert!(
            !status.success() && stderr.contains(needle),
            "the sanitizers did not catch `{body}` ({status}):\n{stderr}"
        );
    }
}

#[test]
fn generated_c_is_clean_under_asan_and_ubsan() {
    let tools = tempfile::tempdir().unwrap();
    let cc = sanitize::write_wrapper(tools.path());
    check_the_sanitizers_fire(&cc, tools.path());

    let mut cases = common::all_cases();
    cases.extend(common::coverage_cases());
    let jobs: Vec<(&Case, Precision)> = cases
        .iter()
        .flat_map(|c| [Precision::F32, Precision::Int8, Precision::Int16].map(|p| (c, p)))
        .collect();
    // Two workers: sanitized compiles dominate and the machine has two cores.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(&(case, p)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = check(case, p, &cc) {
                        let mut f = failures.lock().unwrap();
                        f.push(format!("---- case `{}` ----\n{e}", case.name()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} sanitized runs failed:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
}
