//! Any float input is safe: NaN, ±Inf, ±FLT_MAX and subnormals, as a sensor glitch or an
//! overflowing product sends them, go through every cell kind (LSTM, GRU, FastGRNN, dense with
//! every activation) in f32 with table and exact activations, int8 and int16. The generated C
//! runs under clang's AddressSanitizer and UndefinedBehaviorSanitizer (float-cast-overflow
//! included: a NaN or out-of-range float converted to int stops the run), the generated Rust
//! on the host (a panic stops the run). Fixed point must equal the integer reference bit for
//! bit (which quantizes NaN to the lowest code); f32 outputs after the glitch must be finite:
//! the recurrent state is not poisoned.

mod common;
#[path = "random/sanitize.rs"]
mod sanitize;

use std::time::Duration;

use common::{Case, HOSTILE_FLOATS as HOSTILE};
use kpgen::base::sequences::TestInputs;
use kpgen::spec::{Activations, Lang, Precision};
use kpgen::verify::{self, firmware, Platform, RunOptions, Tolerance};

/// Seeded random sequences in which the first steps (all but the last, when there are two or
/// more) carry the hostile values, one kind per sequence and a mix in the last one.
fn hostile_inputs(steps: usize, features: usize) -> TestInputs {
    let mut inputs = TestInputs::random(HOSTILE.len() + 1, steps, features, 0xBAD, 1.0);
    let glitched = if steps > 1 { steps - 1 } else { steps };
    for (s, seq) in inputs.sequences.iter_mut().enumerate() {
        for t in 0..glitched.min(3) {
            for f in 0..features {
                let v = match HOSTILE.get(s) {
                    Some(&v) => v,
                    None => HOSTILE[(t * features + f) % HOSTILE.len()],
                };
                // Every other value, so products mix hostile and finite terms.
                if (t + f) % 2 == 0 || s < HOSTILE.len() {
                    seq[t * features + f] = v;
                }
            }
        }
    }
    inputs
}

fn check(
    case: &Case,
    precision: Precision,
    activations: Activations,
    cc: &str,
) -> Result<(), String> {
    let target = common::target();
    let fixture = case.model.write();
    let mut model = kpgen::load(&fixture.spec_path).map_err(|d| d.render())?;
    model.precision = precision;
    model.activations = activations;
    let gen = kpgen::generate_model(&model, &target).map_err(|d| d.render())?;
    let steps = case.model.steps();
    let inputs = hostile_inputs(steps, case.model.features);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let opts = RunOptions {
        langs: vec![Lang::C, Lang::Rust],
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(60),
        dense_baseline: false,
        every_step: false,
        work_dir: work.path().to_path_buf(),
    };
    let what = format!("{} {}", precision.as_str(), activations.as_str());
    for (lang, platform) in [
        (Lang::C, Platform::Host { cc: cc.to_owned() }),
        (
            Lang::Rust,
            Platform::Host {
                cc: "cc".to_owned(),
            },
        ),
    ] {
        let dir = work.path().join(lang.as_str());
        let out =
            match firmware::build_and_run(&platform, &target, &gen, lang, &inputs, &dir, &opts) {
                Ok(o) => o,
                Err(e) => {
                    let report = if lang == Lang::C {
                        sanitize::report(&dir)
                    } else {
                        String::new()
                    };
                    return Err(format!("{what} {}: {e}\n{report}", lang.as_str()));
                }
            };
        if !out.streaming_matches {
            return Err(format!(
                "{what} {}: step does not reproduce infer",
                lang.as_str()
            ));
        }
        match (&gen.quant, verify::integer_outputs(&gen, &inputs)) {
            (Some(q), Some(expected)) => {
                let reference = vec![vec![0.0; model.output_size()]; inputs.sequences.len()];
                let c = verify::compare_fixed(q, &out.outputs, &expected, &reference, None, true);
                if c.integer_mismatches != Some(0) {
                    return Err(format!(
                        "{what} {}: {:?} outputs differ from the integer reference",
                        lang.as_str(),
                        c.integer_mismatches
                    ));
                }
            }
            _ if steps > 1 => {
                // The last step is clean: whatever the glitch did, the state is finite again.
                if let Some((s, y)) = out
                    .outputs
                    .iter()
                    .enumerate()
                    .find(|(_, y)| y.iter().any(|v| !v.is_finite()))
                {
                    return Err(format!(
                        "{what} {}: sequence {s} ends in {y:?} after a clean step",
                        lang.as_str()
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn any_float_input_is_safe_in_c_and_rust() {
    let tools = tempfile::tempdir().unwrap();
    let cc = sanitize::write_wrapper(tools.path());
    let cc = cc.to_string_lossy().into_owned();
    let mut cases: Vec<Case> = common::cell_cases()
        .into_iter()
        .filter(|c| c.name().ends_with("_dkp"))
        .collect();
    cases.push(common::everything_model());
    let mut failures = Vec::new();
    for case in &cases {
        for (p, a) in [
            (Precision::F32, Activations::Table),
            (Precision::F32, Activations::Exact),
            (Precision::Int8, Activations::Table),
            (Precision::Int16, Activations::Table),
        ] {
            if let Err(e) = check(case, p, a, &cc) {
                failures.push(format!("---- case `{}` ----\n{e}", case.name()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} hostile-input runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
