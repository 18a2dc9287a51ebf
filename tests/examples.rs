//! Every committed example builds, and its C and Rust reproduce the trained float model under
//! QEMU Cortex-M4 on the whole test set: the same class for every sample, outputs within the
//! conformance tolerance. The trainer's own logits (an independent numpy forward pass) are
//! checked against kpgen's reference too, so the spec semantics match the training code.
//! In int8 and int16, calibrated on each example's training sequences (`calib_x.npy`), the C
//! and Rust equal the integer reference bit for bit under QEMU, and the accuracy stays within
//! 1 point (int8) and half a point (int16) of the float model's.

mod common;

use std::time::Duration;

use kpgen::base::sequences::TestInputs;
use kpgen::base::tensor;
use kpgen::qemu::Toolchain;
use kpgen::spec::{Activations, Lang, Precision};
use kpgen::verify::{self, Platform, RunOptions, Tolerance};

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

#[test]
fn every_example_matches_its_trained_model_in_qemu() {
    let toolchain = Toolchain::locate().expect("the QEMU tests need the cross tools: run ci/setup");
    let target = kpgen::target::lookup("cortex-m4").unwrap();
    for spec in common::bundled_examples() {
        let dir = spec.parent().unwrap();
        let generation = kpgen::generate(&spec, &target)
            .unwrap_or_else(|e| panic!("{}: {}", spec.display(), e.render()));
        let model = &generation.model;
        let inputs =
            TestInputs::from_file(&dir.join("test_x.npy"), model.steps, model.input_features)
                .and_then(|i| i.with_lengths(&dir.join("test_len.npy")))
                .and_then(|i| i.with_labels(&dir.join("test_y.npy"), model.output_size()))
                .unwrap_or_else(|e| panic!("{}: {}", spec.display(), e.render()));

        // kpgen's reference with exact activations against the trainer's logits.
        let logits = tensor::load_float("test_logits.npy", dir).unwrap();
        let mut exact = model.clone();
        exact.activations = Activations::Exact;
        let reference = verify::reference_outputs(&exact, &inputs);
        // The built model's table activations stay within 2e-3 (relative to max(1, |y|)) of
        // the exact ones on every output.
        let table = verify::reference_outputs(model, &inputs);
        for (i, (t, e)) in table.iter().zip(&reference).enumerate() {
            for (a, b) in t.iter().zip(e) {
                assert!(
                    (a - b).abs() <= 2e-3 * b.abs().max(1.0),
                    "{}: sequence {i}: table activations {a} vs exact {b}",
                    spec.display()
                );
            }
        }
        let flipped = table
            .iter()
            .zip(&reference)
            .filter(|(t, e)| argmax(t) != argmax(e))
            .count();
        assert_eq!(
            flipped,
            0,
            "{}: table activations change the class of {flipped} sequences",
            spec.display()
        );
        let classes = model.output_size();
        for (i, r) in reference.iter().enumerate() {
            let trained = &logits.data[i * classes..(i + 1) * classes];
            for (a, b) in r.iter().zip(trained) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{}: sequence {i}: reference {a} vs trained {b}",
                    spec.display()
                );
            }
            assert_eq!(
                argmax(r),
                argmax(trained),
                "{}: sequence {i}",
                spec.display()
            );
        }

        let work = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            langs: vec![Lang::C, Lang::Rust],
            tolerance: Tolerance::default(),
            timeout: Duration::from_secs(120),
            dense_baseline: false,
            every_step: false,
            work_dir: work.path().to_path_buf(),
        };
        let suite = verify::run_suite(
            &Platform::Qemu(toolchain.clone()),
            &target,
            &generation,
            &inputs,
            &opts,
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
        for r in &suite.results {
            let c = &r.comparison;
            assert!(c.pass, "{} ({}): {c:?}", spec.display(), r.lang.as_str());
            assert_eq!(c.class_mismatches, 0, "{}", spec.display());
            // Same classes as the reference, hence the same accuracy as the float model.
            assert_eq!(c.accuracy, suite.reference_accuracy, "{}", spec.display());
            assert_eq!(c.sequences, inputs.sequences.len());
            let cost = r.cost.as_ref().expect("QEMU runs measure the cost");
            assert!(cost.instructions_per_inference > 0 && cost.flash_bytes > 0);
        }

        for (precision, max_drop) in [(Precision::Int8, 0.01), (Precision::Int16, 0.005)] {
            let mut fixed_model = model.clone();
            fixed_model.precision = precision;
            assert!(
                fixed_model.calibration.is_some(),
                "{}: no calibration",
                spec.display()
            );
            let gen = kpgen::generate_model(&fixed_model, &target)
                .unwrap_or_else(|e| panic!("{}: {}", spec.display(), e.render()));
            let suite = verify::run_suite(
                &Platform::Qemu(toolchain.clone()),
                &target,
                &gen,
                &inputs,
                &opts,
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("{} {precision:?}: {e}", spec.display()));
            let float = suite.reference_accuracy.expect("labelled");
            for r in &suite.results {
                let c = &r.comparison;
                let what = format!("{} {precision:?} {}", spec.display(), r.lang.as_str());
                assert!(c.pass && c.integer_mismatches == Some(0), "{what}: {c:?}");
                let acc = c.accuracy.expect("labelled");
                assert!(
                    acc >= float - max_drop - 1e-9,
                    "{what}: accuracy {acc} vs float {float}"
                );
            }
        }
    }
}
