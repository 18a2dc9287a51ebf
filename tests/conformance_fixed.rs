//! Fixed point (int8, int16): every layer kind x weight kind and the structural cases, compiled
//! natively (gcc: C and Rust; clang: C), must reproduce kpgen's integer reference bit for bit,
//! through the `_q` API, on seeded random sequences; the generated C must compile warning-free
//! with the strict flags. Under QEMU, every core runs one model per cell kind that uses every
//! weight kind, in all three precisions (float32 against the float reference's tolerance).

mod common;

use std::time::Duration;

use common::Case;
use kpgen::base::sequences::TestInputs;
use kpgen::qemu::Toolchain;
use kpgen::spec::{Lang, Precision};
use kpgen::verify::{self, firmware, Platform, RunOptions, Tolerance};

const SEQUENCES: usize = 4;

fn generate(
    case: &Case,
    target: &kpgen::target::Target,
    precision: Precision,
) -> Result<(common::Fixture, kpgen::Generation), String> {
    let (fixture, gen) = common::generate_in(case, target, precision)?;
    if gen.quant.is_some() != precision.is_fixed() {
        return Err(format!(
            "{precision:?}: quantization present: {}",
            gen.quant.is_some()
        ));
    }
    case.check_plan(&gen.plan, target)?;
    Ok((fixture, gen))
}

fn run(
    platform: &Platform,
    langs: &[Lang],
    case: &Case,
    target: &kpgen::target::Target,
    precision: Precision,
) -> Result<(), String> {
    let (_fixture, gen) = generate(case, target, precision)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-fixed-{}-", case.name()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    if let Platform::Host { .. } = platform {
        let gen_dir = work.path().join("gen");
        kpgen::output::write_tree(&gen_dir, &gen.files).map_err(|e| e.to_string())?;
        for cc in ["gcc", "clang"] {
            if let Err(e) = firmware::check_c_compiles(cc, &gen_dir.join("c"), &[]) {
                errors.push(format!(
                    "{precision:?}: the C does not compile cleanly with {cc}: {e}"
                ));
            }
        }
    }
    // Inputs a little beyond the default calibration range [-1, 1): saturation is exercised.
    let inputs = TestInputs::random(
        SEQUENCES,
        case.model.steps(),
        case.model.features,
        0x5eed ^ case.model.seed,
        1.25,
    );
    let opts = RunOptions {
        langs: langs.to_vec(),
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(120),
        dense_baseline: false,
        every_step: false,
        work_dir: work.path().join("run"),
    };
    match verify::run_suite(platform, target, &gen, &inputs, &opts, &mut |_| {}) {
        Ok(suite) => {
            for r in &suite.results {
                let exact =
                    precision == Precision::F32 || r.comparison.integer_mismatches == Some(0);
                if !exact || !r.comparison.pass {
                    errors.push(format!(
                        "{} {precision:?} {}: differs from the reference: {:#?}",
                        target.name,
                        r.lang.as_str(),
                        r.comparison
                    ));
                }
            }
            if suite.results.len() != langs.len() {
                errors.push(format!(
                    "expected {} results: {:#?}",
                    langs.len(),
                    suite.results
                ));
            }
        }
        Err(e) => errors.push(format!(
            "{} {precision:?}: the run failed: {e}",
            target.name
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn all_cases() -> Vec<Case> {
    let mut cases = common::all_cases();
    cases.extend(common::coverage_cases());
    cases
}

#[test]
fn every_case_in_int8_and_int16_on_the_host() {
    let target = common::target();
    common::run_cases(&all_cases(), |case| {
        let mut errors = Vec::new();
        for p in [Precision::Int8, Precision::Int16] {
            for (cc, langs) in [("gcc", vec![Lang::C, Lang::Rust]), ("clang", vec![Lang::C])] {
                let platform = Platform::Host { cc: cc.to_owned() };
                if let Err(e) = run(&platform, &langs, case, &target, p) {
                    errors.push(format!("{cc}: {e}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    });
}

#[test]
fn every_core_every_precision_every_cell_and_weight_kind_under_qemu() {
    let tc = match Toolchain::locate() {
        Ok(tc) => tc,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("the cross toolchain is required in CI: {e}"),
    };
    let platform = Platform::Qemu(tc);
    let cases = common::coverage_cases();
    common::run_cases(&cases, |case| {
        let mut errors = Vec::new();
        for name in kpgen::target::builtin_names() {
            let target = kpgen::target::lookup(name).map_err(|d| d.render())?;
            let mut langs = vec![Lang::C];
            if target.rust.triple.is_some() {
                langs.push(Lang::Rust);
            }
            for p in [Precision::F32, Precision::Int8, Precision::Int16] {
                if let Err(e) = run(&platform, &langs, case, &target, p) {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    });
}
