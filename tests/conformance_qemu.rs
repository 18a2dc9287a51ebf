//! Conformance under QEMU (Cortex-M4F, mps2-an386): the case list of `common`, generated, built
//! into bare-metal firmware (C and Rust), run, compared with the f64 reference and measured.
//! Needs arm-none-eabi-gcc, qemu-system-arm and the thumbv7em-none-eabihf Rust target, and FAILS
//! (never skips) when they are missing.

mod common;

use std::time::Duration;

use common::Case;
use kpgen::base::sequences::TestInputs;
use kpgen::qemu::Toolchain;
use kpgen::spec::Lang;
use kpgen::verify::{self, LangResult, Platform, RunOptions, Tolerance};

const SEQUENCES: usize = 3;

fn platform() -> Platform {
    Platform::Qemu(
        Toolchain::locate()
            .unwrap_or_else(|e| panic!("the cross toolchain is missing (run ci/setup): {e}")),
    )
}

fn result<'a>(
    results: &'a [LangResult],
    variant: &str,
    lang: Lang,
) -> Result<&'a LangResult, String> {
    results
        .iter()
        .find(|r| r.variant == variant && r.lang == lang)
        .ok_or_else(|| format!("no {variant} {} result in {results:#?}", lang.as_str()))
}

fn run_qemu(platform: &Platform, case: &Case) -> Result<(), String> {
    let target = common::target();
    let (_fixture, gen) = common::generate(case, &target)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-qemu-{}-", case.name()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let inputs = TestInputs::random(
        SEQUENCES,
        case.model.steps(),
        case.model.features,
        0x9e37 ^ case.model.seed,
        1.0,
    );
    let opts = RunOptions {
        langs: vec![Lang::C, Lang::Rust],
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: case.dense_baseline,
        every_step: false,
        work_dir: work.path().to_path_buf(),
    };
    let suite = verify::run_suite(platform, &target, &gen, &inputs, &opts, &mut |_| {})
        .map_err(|e| format!("the QEMU run failed: {e}"))?;
    let variants: &[&str] = if case.dense_baseline {
        &["model", "dense"]
    } else {
        &["model"]
    };
    if suite.results.len() != 2 * variants.len() {
        return Err(format!("unexpected results: {:#?}", suite.results));
    }
    common::check_suite("qemu", &suite)?;

    for r in &suite.results {
        let what = format!("{} {}", r.variant, r.lang.as_str());
        let cost = r
            .cost
            .as_ref()
            .ok_or_else(|| format!("{what}: no cost was measured"))?;
        let measured = cost.instructions_per_inference > 0
            && cost.instructions_per_step > 0
            && cost.flash_bytes > 0
            && cost.ram_bytes > 0
            && cost.stack_bytes > 0;
        if !measured {
            return Err(format!("{what}: a cost is missing: {cost:#?}"));
        }
        // One inference is `steps` steps plus (for C) the head; it cannot cost less than them.
        if cost.instructions_per_inference
            < cost.instructions_per_step * case.model.steps() as u64 / 2
        {
            return Err(format!("{what}: implausible instruction counts: {cost:#?}"));
        }
        match (r.lang, cost.stack_usage_bound) {
            (Lang::C, None) => return Err(format!("{what}: no -fstack-usage bound: {cost:#?}")),
            (Lang::C, Some(bound)) if bound < cost.stack_bytes => {
                return Err(format!(
                    "{what}: measured stack {} exceeds the static bound {bound}",
                    cost.stack_bytes
                ))
            }
            _ => {}
        }
    }

    if case.dense_baseline {
        for lang in [Lang::C, Lang::Rust] {
            let kp = result(&suite.results, "model", lang)?
                .cost
                .as_ref()
                .unwrap();
            let dense = result(&suite.results, "dense", lang)?
                .cost
                .as_ref()
                .unwrap();
            eprintln!(
                "{} {}: {} instructions per step, dense expansion {}",
                case.name(),
                lang.as_str(),
                kp.instructions_per_step,
                dense.instructions_per_step
            );
            if kp.instructions_per_step >= dense.instructions_per_step {
                return Err(format!(
                    "{}: the compressed model ({} instructions per step) is not cheaper than its dense expansion ({})",
                    lang.as_str(),
                    kp.instructions_per_step,
                    dense.instructions_per_step
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_cell_with_every_weight_kind() {
    let platform = platform();
    common::run_cases(&common::cell_cases(), |c| run_qemu(&platform, c));
}

#[test]
fn stacking_overlays_loops_activations_and_shapes() {
    let platform = platform();
    common::run_cases(&common::structure_cases(), |c| run_qemu(&platform, c));
}
