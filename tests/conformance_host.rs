//! Conformance on the host: every layer kind x weight kind and the structural cases of
//! `common`, generated, compiled natively (gcc: C and Rust; clang: C) and compared with the f64
//! reference on seeded random sequences. The generated C must also compile warning-free with
//! the strict flags under both compilers.

mod common;

use std::time::Duration;

use common::Case;
use kpgen::base::sequences::TestInputs;
use kpgen::spec::Lang;
use kpgen::verify::{self, firmware, Platform, RunOptions, Tolerance};

const SEQUENCES: usize = 4;

/// Every check of one case; independent checks all run, so one report shows every problem.
fn run_host(case: &Case) -> Result<(), String> {
    let target = common::target();
    let (_fixture, gen) = common::generate(case, &target)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("kpgen-host-{}-", case.name()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let mut errors = Vec::new();

    // The generated C alone, strict flags, both compilers.
    let gen_dir = work.path().join("gen");
    kpgen::output::write_tree(&gen_dir, &gen.files).map_err(|e| e.to_string())?;
    for cc in ["gcc", "clang"] {
        if let Err(e) = firmware::check_c_compiles(cc, &gen_dir.join("c"), &[]) {
            errors.push(format!(
                "the generated C does not compile cleanly with {cc}: {e}"
            ));
        }
    }

    let inputs = TestInputs::random(
        SEQUENCES,
        case.model.steps(),
        case.model.features,
        0x5eed ^ case.model.seed,
        1.0,
    );
    for (cc, langs) in [("gcc", vec![Lang::C, Lang::Rust]), ("clang", vec![Lang::C])] {
        if let Err(e) = run_with(cc, &langs, case, &target, &gen, &inputs, work.path()) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn run_with(
    cc: &str,
    langs: &[Lang],
    case: &Case,
    target: &kpgen::target::Target,
    gen: &kpgen::Generation,
    inputs: &TestInputs,
    work: &std::path::Path,
) -> Result<(), String> {
    let opts = RunOptions {
        langs: langs.to_vec(),
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: case.dense_baseline,
        every_step: false,
        work_dir: work.join(format!("run-{cc}")),
    };
    let platform = Platform::Host { cc: cc.to_owned() };
    let suite = verify::run_suite(&platform, target, gen, inputs, &opts, &mut |_| {})
        .map_err(|e| format!("the host run with {cc} failed: {e}"))?;
    let expected = langs.len() * if case.dense_baseline { 2 } else { 1 };
    if suite.results.len() != expected {
        return Err(format!(
            "{cc}: expected {expected} results, got {:#?}",
            suite.results
        ));
    }
    common::check_suite(cc, &suite)?;
    if suite.results.iter().any(|r| r.cost.is_some()) {
        return Err(format!(
            "{cc}: a host run reported costs: {:#?}",
            suite.results
        ));
    }
    Ok(())
}

#[test]
fn every_cell_with_every_weight_kind() {
    common::run_cases(&common::cell_cases(), run_host);
}

#[test]
fn stacking_overlays_loops_activations_and_shapes() {
    common::run_cases(&common::structure_cases(), run_host);
}

/// The permutation case has a permuted product in every layer (every cell kind), each in the
/// order the fixture expected: `common::permuted` agrees with the plan.
#[test]
fn the_permutation_case_permutes_a_product_in_every_layer() {
    use kpgen::plan::Product;
    let case = common::structure_cases()
        .into_iter()
        .find(|c| c.name() == "perm_kp3_every_cell")
        .expect("the case");
    let (_fixture, gen) = common::generate(&case, &common::target()).unwrap();
    for l in &gen.plan.layers {
        let permuted: Vec<_> = l
            .matrices
            .iter()
            .filter_map(|m| match &m.product {
                Product::MultiKron { factors, order, .. } if kpgen::plan::in_place(order) => {
                    assert_eq!(common::permuted(factors).as_ref(), Some(order), "{}", m.id);
                    Some(m.id.clone())
                }
                _ => None,
            })
            .collect();
        assert!(!permuted.is_empty(), "layer {} permutes nothing", l.index);
    }
}
