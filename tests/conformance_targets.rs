//! Every built-in target under QEMU: a few models of `common` (each cell kind, a straight-line
//! and a CSR overlay, a stacked model, permuted multi-factor products) and the basic_motions
//! KP example are generated for the core, built into bare-metal firmware in C and, where the
//! target has a Rust triple, in Rust, run on the target's QEMU board, compared with the f64
//! reference and measured; the Cortex-M55 also with its C compiled by clang.
//! Also the CLI side: `kpgen targets`, the flash/RAM budget check and C-only testing on a core
//! without Rust. Needs arm-none-eabi-gcc, qemu-system-arm and the rustup thumb targets (ci/setup),
//! and FAILS (never skips) when they are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Case;
use kpgen::base::sequences::TestInputs;
use kpgen::qemu::{CCompiler, Toolchain};
use kpgen::spec::Lang;
use kpgen::target::{Fpu, Target};
use kpgen::verify::{self, Platform, RunOptions, Tolerance};

const SEQUENCES: usize = 2;

/// The models every target runs, by case name (kept small: the Cortex-M0 board has 64 KB RAM).
const CASES: &[&str] = &[
    "lstm_kp",
    "gru_dkp",
    "fastgrnn_dense",
    "lstm32_dkp_csr",
    "stacked_lstm_gru_softmax",
    "perm_kp3_every_cell",
];

/// QEMU firmware whose C `cc` compiles.
fn platform(cc: CCompiler) -> Platform {
    Platform::Qemu(
        Toolchain::locate_with(cc)
            .unwrap_or_else(|e| panic!("the cross toolchain is missing (run ci/setup): {e}")),
    )
}

fn target(name: &str) -> Target {
    kpgen::target::lookup(name).unwrap_or_else(|d| panic!("{name}: {}", d.render()))
}

/// C, plus Rust where the target has a triple.
fn langs(target: &Target) -> Vec<Lang> {
    match target.rust.triple {
        Some(_) => vec![Lang::C, Lang::Rust],
        None => vec![Lang::C],
    }
}

fn cases() -> Vec<Case> {
    let all = common::all_cases();
    let picked: Vec<Case> = all
        .into_iter()
        .filter(|c| CASES.contains(&c.name()))
        .collect();
    assert_eq!(
        picked.len(),
        CASES.len(),
        "a case of CASES is gone from common"
    );
    picked
}

fn run_case(platform: &Platform, target: &Target, case: &Case) -> Result<(), String> {
    let (_fixture, gen) = common::generate(case, target)?;
    kpgen::report::check_budget(target, &gen.report).map_err(|d| d.render())?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-{}-{}-", target.name, case.name()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let inputs = TestInputs::random(
        SEQUENCES,
        case.model.steps(),
        case.model.features,
        0x51ed ^ case.model.seed,
        1.0,
    );
    let langs = langs(target);
    let opts = RunOptions {
        langs: langs.clone(),
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: case.dense_baseline,
        every_step: false,
        work_dir: work.path().to_path_buf(),
    };
    let suite = verify::run_suite(platform, target, &gen, &inputs, &opts, &mut |_| {})
        .map_err(|e| format!("the QEMU run failed: {e}"))?;
    let variants = if case.dense_baseline { 2 } else { 1 };
    if suite.results.len() != variants * langs.len() {
        return Err(format!("unexpected results: {:#?}", suite.results));
    }
    common::check_suite(&target.name, &suite)?;
    for r in &suite.results {
        let what = format!("{} {} {}", target.name, r.variant, r.lang.as_str());
        let cost = r
            .cost
            .as_ref()
            .ok_or_else(|| format!("{what}: no cost was measured"))?;
        let measured = cost.instructions_per_inference > 0
            && cost.instructions_per_inference != u64::MAX
            && cost.instructions_per_step > 0
            && cost.flash_bytes > 0
            && cost.ram_bytes > 0
            && cost.stack_bytes > 0;
        if !measured {
            return Err(format!("{what}: a cost is missing: {cost:#?}"));
        }
        if cost.instructions_per_inference
            < cost.instructions_per_step * case.model.steps() as u64 / 2
        {
            return Err(format!("{what}: implausible instruction counts: {cost:#?}"));
        }
        // The -fstack-usage bound covers the model's own functions only: on soft-float cores
        // the libgcc float routines it calls (precompiled, no .su) add frames beyond it.
        if let (Lang::C, Fpu::Single | Fpu::Double) = (r.lang, target.features.fpu) {
            match cost.stack_usage_bound {
                Some(bound) if bound >= cost.stack_bytes => {}
                other => {
                    return Err(format!(
                        "{what}: measured stack {} is not within the -fstack-usage bound {other:?}",
                        cost.stack_bytes
                    ))
                }
            }
        }
        eprintln!(
            "{what}: {} instructions per inference, {} per step, flash {} B, RAM {} B, stack {} B",
            cost.instructions_per_inference,
            cost.instructions_per_step,
            cost.flash_bytes,
            cost.ram_bytes,
            cost.stack_bytes
        );
    }
    if case.dense_baseline {
        for &lang in &langs {
            let per_step = |variant: &str| {
                suite
                    .results
                    .iter()
                    .find(|r| r.variant == variant && r.lang == lang)
                    .and_then(|r| r.cost.as_ref())
                    .map(|c| c.instructions_per_step)
                    .unwrap_or(0)
            };
            if per_step("model") >= per_step("dense") {
                return Err(format!(
                    "{} {}: the compressed model ({} instructions per step) is not cheaper than its dense expansion ({})",
                    target.name,
                    lang.as_str(),
                    per_step("model"),
                    per_step("dense")
                ));
            }
        }
    }
    Ok(())
}

fn example_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic_motions/kp/spec.yaml")
}

/// The basic_motions KP example in C on one sequence: passes, and its cost is printed so
/// runs with `--nocapture` show instructions per inference on every core.
fn run_example(platform: &Platform, target: &Target) -> Result<(), String> {
    let gen = kpgen::generate(&example_spec(), target).map_err(|d| d.render())?;
    kpgen::report::check_budget(target, &gen.report).map_err(|d| d.render())?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-{}-example-", target.name))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let m = &gen.model;
    let inputs = TestInputs::random(1, m.steps, m.input_features, 7, 1.0);
    let opts = RunOptions {
        langs: vec![Lang::C],
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: false,
        every_step: false,
        work_dir: work.path().to_path_buf(),
    };
    let suite = verify::run_suite(platform, target, &gen, &inputs, &opts, &mut |_| {})
        .map_err(|e| format!("the QEMU run failed: {e}"))?;
    common::check_suite(&target.name, &suite)?;
    let cost = suite.results[0].cost.as_ref().ok_or("no cost measured")?;
    eprintln!(
        "{} basic_motions/kp c: {} instructions per inference ({} steps), flash {} B",
        target.name, cost.instructions_per_inference, m.steps, cost.flash_bytes
    );
    Ok(())
}

fn conformance(target: &Target, cc: CCompiler) {
    let platform = platform(cc);
    common::run_cases(&cases(), |c| run_case(&platform, target, c));
    run_example(&platform, target).unwrap_or_else(|e| panic!("{}: example: {e}", target.name));
}

/// Every built-in target, so a target added as a file in targets/ is tested with no new code.
/// Two at a time (the CI machine's cores); every failure is reported, not just the first.
#[test]
fn every_builtin_target() {
    let targets = kpgen::target::builtin_targets();
    assert!(targets.len() >= 6, "{} built-in targets", targets.len());
    let queue = std::sync::Mutex::new(targets.iter().collect::<Vec<_>>());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(t) = queue.lock().unwrap().pop() else {
                    return;
                };
                let run = std::panic::catch_unwind(|| conformance(t, CCompiler::Gcc));
                if let Err(e) = run {
                    let why = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    failures.lock().unwrap().push(format!("{}: {why}", t.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The Cortex-M55 again with its C compiled by clang (`kpgen test --cc clang`): its Helium
/// code goes through clang's `arm_mve.h` and vectoriser, so it gets its own run.
#[test]
fn the_m55_with_clang() {
    conformance(&target("cortex-m55"), CCompiler::Clang);
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

fn kpgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .args(args)
        .output()
        .expect("run kpgen")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn targets_lists_every_core_with_its_features() {
    let out = kpgen(&["targets"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in kpgen::target::builtin_names() {
        assert!(listing.contains(name), "{name} missing:\n{listing}");
    }
    let m55 = listing
        .lines()
        .find(|l| l.starts_with("cortex-m55 "))
        .unwrap();
    assert!(m55.contains("C only"), "{m55}");
    let m0 = listing
        .lines()
        .find(|l| l.starts_with("cortex-m0 "))
        .unwrap();
    assert!(m0.contains("M0+") && m0.contains("none"), "{m0}");
}

#[test]
fn an_over_budget_model_is_refused_unless_the_budget_is_raised() {
    let spec =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic_motions/dense/spec.yaml");
    let spec = spec.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out_arg = out_dir.to_str().unwrap();

    // 5252 float32 parameters (21 KB): over a 4 KB flash budget.
    let refused = kpgen(&[
        "build",
        spec,
        "--target",
        "cortex-m0",
        "--flash-budget",
        "4096",
        "--out",
        out_arg,
    ]);
    let msg = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("cortex-m0") && msg.contains("21008") && msg.contains("4096"),
        "{msg}"
    );
    assert!(!out_dir.exists(), "a refused build wrote {out_arg}");

    // The same with `test`, on the RAM side (768 bytes of state).
    let refused = kpgen(&["test", spec, "--target", "cortex-m0", "--ram-budget", "512"]);
    let msg = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("RAM") && msg.contains("768") && msg.contains("512"),
        "{msg}"
    );

    // Raising the budgets lets it through.
    let built = kpgen(&[
        "build",
        spec,
        "--target",
        "cortex-m0",
        "--flash-budget",
        "32768",
        "--ram-budget",
        "1024",
        "--out",
        out_arg,
    ]);
    assert!(built.status.success(), "{}", text(&built));
    assert!(out_dir.join("report.json").is_file());

    // A library check on a built-in budget: within the M0's 64 KB / 8 KB.
    let gen = kpgen::generate(Path::new(spec), &target("cortex-m0")).unwrap();
    assert!(kpgen::report::check_budget(&target("cortex-m0"), &gen.report).is_ok());
    let mut tiny = target("cortex-m0");
    tiny.budget.flash = 100;
    tiny.budget.ram = 100;
    let errors = kpgen::report::check_budget(&tiny, &gen.report).unwrap_err();
    assert_eq!(errors.0.len(), 2, "{}", errors.render());
}

#[test]
fn a_core_without_rust_tests_c_only_and_refuses_lang_rust() {
    let fixture = common::all_cases()
        .into_iter()
        .find(|c| c.name() == "gru_dkp")
        .unwrap()
        .model
        .write();
    let spec = fixture.spec_path.to_str().unwrap();
    let out = kpgen(&[
        "test",
        spec,
        "--target",
        "cortex-m55",
        "--count",
        "1",
        "--no-dense",
    ]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("note:") && msg.contains("C only"), "{msg}");
    assert!(msg.contains("1 passed, 0 failed"), "{msg}");

    let out = kpgen(&["test", spec, "--target", "cortex-m55", "--lang", "rust"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("no Rust"), "{msg}");
}

/// The generated C compiles for its own core and stops with #error, naming the target and its
/// flags, for every other core (here: each target's C built with every other target's flags).
#[test]
fn generated_c_refuses_a_mismatched_core() {
    let spec = example_spec();
    let work = tempfile::tempdir().unwrap();
    let names = kpgen::target::builtin_names();
    for name in &names {
        let t = target(name);
        let gen = kpgen::generate(&spec, &t).unwrap_or_else(|d| panic!("{}", d.render()));
        let dir = work.path().join(name);
        kpgen::output::write_tree(&dir, &gen.files).unwrap();
        let source = dir.join(format!("c/{}.c", gen.plan.name));
        for other in &names {
            let o = target(other);
            let out = Command::new("arm-none-eabi-gcc")
                .args(&o.c.cflags)
                .args(["-std=c99", "-O1", "-c", "-o", "/dev/null"])
                .arg(&source)
                .output()
                .expect("run arm-none-eabi-gcc");
            // Compatible cores share the core macro (M4 and M7; M33 code builds for M55).
            let compatible = o.c.arch_macros.iter().any(|m| t.c.arch_macros.contains(m))
                || (*name == "cortex-m33" && *other == "cortex-m55");
            let err = text(&out);
            if compatible {
                assert!(
                    out.status.success(),
                    "{name} code with {other} flags: {err}"
                );
            } else {
                assert!(
                    !out.status.success(),
                    "{name} code built with {other} flags"
                );
                assert!(
                    err.contains(&format!("was generated for {name}")),
                    "{name} code with {other} flags: {err}"
                );
            }
        }
    }
}
