//! The conformance harness behind `kpgen test`: builds the generated C and Rust into test
//! firmware, runs it under QEMU (or natively, for host tests), compares every output with the
//! float reference and measures the cost (guest instructions, flash, RAM, stack).

pub mod firmware;
pub mod reference;
pub mod saved;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::base::sequences::TestInputs;
use crate::model::Model;
use crate::qemu::{Toolchain, ToolchainError};
use crate::spec::Lang;
use crate::target::Target;
use crate::verify::reference::Reference;
use crate::Generation;

/// Where the firmware runs.
#[derive(Debug, Clone)]
pub enum Platform {
    /// Bare metal under qemu-system-arm.
    Qemu(Toolchain),
    /// Natively, compiled with this C compiler (host tests; no cost figures).
    Host { cc: String },
}

/// Tolerance: |y − ref| ≤ abs · max(1, |ref|).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerance {
    pub abs: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { abs: 1e-4 }
    }
}

/// How far one implementation's outputs are from the reference.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub sequences: usize,
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    /// Outputs outside the tolerance.
    pub failures: usize,
    /// Sequences whose arg-max class differs from the reference's.
    pub class_mismatches: usize,
    /// `reset` + `step` x steps reproduced `infer` bit for bit.
    pub streaming_matches: bool,
    /// Fraction of sequences whose arg-max is the label, when labels were given.
    pub accuracy: Option<f64>,
    /// Fixed point: output codes that differ from the integer reference's (must be 0). The
    /// errors above then compare the dequantized outputs with the float reference: the
    /// quantization error, reported, not judged by the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer_mismatches: Option<usize>,
    /// With `--every-step`: how many outputs (one per valid step of every sequence) were
    /// compared; the errors, failures and mismatches above then cover all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    pub pass: bool,
}

/// Measured cost of one implementation (QEMU only).
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub instructions_per_inference: u64,
    pub instructions_per_step: u64,
    /// Bytes of flash the model adds to the firmware (code, weights, runtime it pulls in).
    pub flash_bytes: u64,
    /// Bytes of static RAM the model adds (its state struct).
    pub ram_bytes: u64,
    /// Peak stack of one `infer` call, measured by stack painting.
    pub stack_bytes: u64,
    /// C only: upper bound from -fstack-usage over the call chain of `infer`.
    pub stack_usage_bound: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LangResult {
    pub lang: Lang,
    /// The model variant: `model` or `dense` (every matrix expanded).
    pub variant: &'static str,
    pub comparison: Comparison,
    pub cost: Option<Cost>,
    /// What the generated code computed (for `--save-outputs`; not in report.json).
    #[serde(skip)]
    pub outputs: Outputs,
}

/// Outputs of one run, per sequence and step: `[sequence][step][output]`, the steps being
/// every valid step with `--every-step`, else only the last valid one.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Floats; for a fixed-point model the dequantized codes.
    pub values: Vec<Vec<Vec<f32>>>,
    /// A fixed-point model's output codes.
    pub codes: Option<Vec<Vec<Vec<i32>>>>,
}

/// Errors that stop a run (as opposed to a failed comparison).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {lang} firmware stopped with a fault (exit code {code}: {kind})\n{output}")]
    Fault {
        lang: &'static str,
        code: i32,
        kind: &'static str,
        output: String,
    },
    #[error("the {lang} firmware did not finish within {seconds} s\n{output}")]
    Timeout {
        lang: &'static str,
        seconds: u64,
        output: String,
    },
    #[error("the {lang} firmware's output could not be read: {detail}\n{output}")]
    Protocol {
        lang: &'static str,
        detail: String,
        output: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl HarnessError {
    /// Process exit code of `kpgen test` for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            HarnessError::Fault { .. } => 4,
            HarnessError::Timeout { .. } => 5,
            HarnessError::Output(crate::output::OutputError::Refused(_)) => 2,
            _ => 3,
        }
    }
}

/// The reference outputs for every input sequence (after its last valid step).
pub fn reference_outputs(model: &Model, inputs: &TestInputs) -> Vec<Vec<f64>> {
    last_steps(reference_step_outputs(model, inputs, false))
}

/// Each sequence's last entry of `[sequence][step][output]` outputs (every sequence has at
/// least one valid step).
fn last_steps<T>(steps: Vec<Vec<Vec<T>>>) -> Vec<Vec<T>> {
    steps
        .into_iter()
        .map(|mut s| s.pop().unwrap_or_default())
        .collect()
}

/// Runs each sequence's valid steps (converted by `rows`) through `model` with `step` after
/// `reset`, the streamed firmware's order, and keeps the output after every step, or after
/// the last one only: `[sequence][kept step][output]`.
fn stepwise<M, T, O>(
    inputs: &TestInputs,
    every_step: bool,
    model: &mut M,
    rows: impl Fn(&[f32]) -> Vec<T>,
    reset: impl Fn(&mut M),
    step: impl Fn(&mut M, &[T]) -> Vec<O>,
) -> Vec<Vec<Vec<O>>> {
    inputs
        .sequences
        .iter()
        .zip(&inputs.lengths)
        .map(|(s, &len)| {
            reset(model);
            let x = rows(&s[..len * inputs.features]);
            let mut out: Vec<Vec<O>> = x
                .chunks(inputs.features.max(1))
                .map(|row| step(model, row))
                .collect();
            if !every_step {
                out.drain(..out.len().saturating_sub(1));
            }
            out
        })
        .collect()
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Fraction of predicted classes equal to the labels.
pub fn accuracy(predicted: impl Iterator<Item = usize>, labels: &[usize]) -> f64 {
    let hits = predicted.zip(labels).filter(|(p, l)| p == *l).count();
    hits as f64 / labels.len().max(1) as f64
}

/// Compares outputs with the reference.
pub fn compare(
    outputs: &[Vec<f32>],
    reference: &[Vec<f64>],
    labels: Option<&[usize]>,
    streaming_matches: bool,
    tol: Tolerance,
) -> Comparison {
    let mut max_abs: f64 = 0.0;
    let mut max_rel: f64 = 0.0;
    let mut failures = 0;
    let mut class_mismatches = 0;
    for (y, r) in outputs.iter().zip(reference) {
        for (&a, &b) in y.iter().zip(r) {
            let err = (a as f64 - b).abs();
            if !err.is_finite() || err > tol.abs * b.abs().max(1.0) {
                failures += 1;
            }
            max_abs = max_abs.max(if err.is_finite() { err } else { f64::INFINITY });
            max_rel = max_rel.max(err / b.abs().max(f64::MIN_POSITIVE));
        }
        if y.len() > 1 && argmax(y.iter().map(|&v| v as f64)) != argmax(r.iter().copied()) {
            class_mismatches += 1;
        }
    }
    let complete = outputs.len() == reference.len();
    let accuracy = labels.map(|l| {
        accuracy(
            outputs.iter().map(|y| argmax(y.iter().map(|&v| v as f64))),
            l,
        )
    });
    Comparison {
        sequences: outputs.len(),
        max_abs_error: max_abs,
        max_rel_error: max_rel,
        failures,
        class_mismatches,
        streaming_matches,
        accuracy,
        integer_mismatches: None,
        steps: None,
        pass: complete && failures == 0 && streaming_matches,
    }
}

/// The reference outputs through [`Reference::step`], as the streamed firmware runs:
/// `[sequence][step][output]`, after every valid step or (`every_step` false) the last one.
pub fn reference_step_outputs(
    model: &Model,
    inputs: &TestInputs,
    every_step: bool,
) -> Vec<Vec<Vec<f64>>> {
    stepwise(
        inputs,
        every_step,
        &mut Reference::new(model),
        |x| x.iter().map(|&v| f64::from(v)).collect(),
        Reference::reset,
        Reference::step,
    )
}

/// The integer reference's output codes of a fixed-point generation, laid out as
/// [`reference_step_outputs`]'s.
pub fn integer_step_outputs(
    gen: &Generation,
    inputs: &TestInputs,
    every_step: bool,
) -> Option<Vec<Vec<Vec<i32>>>> {
    let quant = gen.quant.as_ref()?;
    use crate::quant::intref::{quantize_input, IntReference};
    Some(stepwise(
        inputs,
        every_step,
        &mut IntReference::new(&gen.plan, quant),
        |x| quantize_input(quant, x),
        IntReference::reset,
        IntReference::step,
    ))
}

/// The integer reference's output codes for every input sequence (after its last valid step).
pub fn integer_outputs(gen: &Generation, inputs: &TestInputs) -> Option<Vec<Vec<i32>>> {
    integer_step_outputs(gen, inputs, false).map(last_steps)
}

/// Compares a fixed-point run: codes bit for bit with the integer reference, and the
/// dequantized outputs with the float reference (reported, not judged).
pub fn compare_fixed(
    quant: &crate::quant::QuantPlan,
    outputs: &[Vec<f32>],
    expected: &[Vec<i32>],
    reference: &[Vec<f64>],
    labels: Option<&[usize]>,
    streaming_matches: bool,
) -> Comparison {
    let mismatches = outputs
        .iter()
        .zip(expected)
        .map(|(y, e)| {
            y.iter()
                .zip(e)
                .filter(|(a, b)| **a as f64 != **b as f64)
                .count()
                + y.len().abs_diff(e.len())
        })
        .sum::<usize>();
    let real: Vec<Vec<f32>> = outputs
        .iter()
        .map(|y| {
            let codes: Vec<i32> = y.iter().map(|&v| v as i32).collect();
            crate::quant::intref::dequantize_output(quant, &codes)
                .into_iter()
                .map(|v| v as f32)
                .collect()
        })
        .collect();
    let mut c = compare(
        &real,
        reference,
        labels,
        streaming_matches,
        Tolerance { abs: f64::INFINITY },
    );
    c.failures = mismatches;
    c.integer_mismatches = Some(mismatches);
    c.pass = outputs.len() == expected.len() && mismatches == 0 && streaming_matches;
    c
}

/// Options of one conformance run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub langs: Vec<Lang>,
    pub tolerance: Tolerance,
    pub timeout: Duration,
    /// Also build and measure the model with every matrix expanded to dense.
    pub dense_baseline: bool,
    /// Where to build; kept after the run when given.
    pub work_dir: PathBuf,
    /// Run each sequence through reset + step and compare the output after every valid step
    /// (with the float reference's, and the integer reference's for fixed point).
    pub every_step: bool,
}

/// Everything one `kpgen test` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub target: String,
    pub platform: String,
    pub sequences: usize,
    /// With `--every-step`: outputs compared per run (the valid steps of all sequences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    pub tolerance: Tolerance,
    /// Accuracy of the float reference, when labels were given.
    pub reference_accuracy: Option<f64>,
    pub results: Vec<LangResult>,
    /// What was not run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The float reference's outputs in the layout of [`Outputs::values`] (for
    /// `--save-outputs`; not in report.json).
    #[serde(skip)]
    pub reference: Vec<Vec<Vec<f64>>>,
}

/// Runs the generated model (and, if asked, its dense expansion) in every requested language
/// and compares each with the float reference; progress goes to `log`.
pub fn run_suite(
    platform: &Platform,
    target: &Target,
    generation: &Generation,
    inputs: &TestInputs,
    opts: &RunOptions,
    log: &mut dyn FnMut(crate::base::progress::Progress),
) -> Result<Suite, HarnessError> {
    // One reference run: every step with --every-step, else each sequence's last.
    let reference_steps = reference_step_outputs(&generation.model, inputs, opts.every_step);
    let reference = last_steps(reference_steps.clone());
    let mut variants = vec![("model", generation.clone())];
    let mut notes = Vec::new();
    if opts.dense_baseline {
        // Estimated from the plan before anything is generated: a dense expansion too large
        // for the emulated memory would only fail to link (after minutes and gigabytes for a
        // language-model-sized layer), so say so and go on.
        let dense_model = generation.model.expanded_to_dense();
        let estimate = crate::report::build_report(
            &dense_model,
            &crate::plan::plan_model(&dense_model, target),
            None,
        );
        let (flash, _) = crate::report::estimated_flash(&estimate);
        let ram = crate::report::estimated_ram(&estimate);
        let emulated = matches!(platform, Platform::Qemu(_));
        if emulated && (flash > target.memory.flash_size || ram > target.memory.ram_size) {
            let note = format!(
                "dense expansion skipped: it needs an estimated {flash} B of flash and {ram} B of \
                 RAM; the emulated {} maps {} B and {} B",
                target.qemu.machine, target.memory.flash_size, target.memory.ram_size
            );
            log(crate::base::progress::Progress::Note(&format!("  {note}")));
            notes.push(note);
        } else {
            let dense = crate::generate_model(&dense_model, &target.unbudgeted())
                .map_err(|e| HarnessError::Internal(e.to_string()))?;
            variants.push(("dense", dense));
        }
    }
    log(crate::base::progress::Progress::Total(
        variants.len() * opts.langs.len(),
    ));
    let mut results = Vec::new();
    for (variant, gen) in &variants {
        // The integer reference of this variant, once for all languages.
        let expected_steps = integer_step_outputs(gen, inputs, opts.every_step);
        let expected = expected_steps.clone().map(last_steps);
        for &lang in &opts.langs {
            let started = std::time::Instant::now();
            let dir = opts.work_dir.join(format!("{variant}-{}", lang.as_str()));
            let run = firmware::build_and_run(platform, target, gen, lang, inputs, &dir, opts)?;
            let mut comparison = match (&gen.quant, &expected) {
                (Some(q), Some(expected)) => compare_fixed(
                    q,
                    &run.outputs,
                    expected,
                    &reference,
                    inputs.labels.as_deref(),
                    run.streaming_matches,
                ),
                _ => compare(
                    &run.outputs,
                    &reference,
                    inputs.labels.as_deref(),
                    run.streaming_matches,
                    opts.tolerance,
                ),
            };
            if let Some(steps) = &run.step_outputs {
                // Every valid step, by the same rules; the last steps are the outputs above,
                // so these errors and failures include theirs.
                let flat: Vec<Vec<f32>> = steps.iter().flatten().cloned().collect();
                let flat_ref: Vec<Vec<f64>> = reference_steps.iter().flatten().cloned().collect();
                let per_step = match (&gen.quant, &expected_steps) {
                    (Some(q), Some(expected)) => {
                        let expected: Vec<Vec<i32>> = expected.iter().flatten().cloned().collect();
                        compare_fixed(q, &flat, &expected, &flat_ref, None, run.streaming_matches)
                    }
                    _ => compare(
                        &flat,
                        &flat_ref,
                        None,
                        run.streaming_matches,
                        opts.tolerance,
                    ),
                };
                comparison.max_abs_error = per_step.max_abs_error;
                comparison.max_rel_error = per_step.max_rel_error;
                comparison.failures = per_step.failures;
                comparison.integer_mismatches = per_step.integer_mismatches;
                comparison.steps = Some(per_step.sequences);
                comparison.pass = comparison.pass && per_step.pass;
            }
            log(crate::base::progress::Progress::Done(&format!(
                "  {variant} {:<4}: built and ran in {:.1} s, {}",
                lang.as_str(),
                started.elapsed().as_secs_f64(),
                match (comparison.pass, gen.quant.is_some()) {
                    (true, false) => "matches the reference",
                    (true, true) => "matches the integer reference bit for bit",
                    (false, false) => "DIFFERS from the reference",
                    (false, true) => "DIFFERS from the integer reference",
                }
            )));
            let outputs = saved::outputs_of(gen, &run);
            results.push(LangResult {
                lang,
                variant,
                comparison,
                cost: run.cost,
                outputs,
            });
        }
    }
    Ok(Suite {
        target: target.name.clone(),
        platform: match platform {
            Platform::Qemu(tc) => format!(
                "qemu-system-arm -M {}, C compiled by {}",
                target.qemu.machine,
                tc.compiler()
            ),
            Platform::Host { cc } => format!("host ({cc})"),
        },
        sequences: inputs.sequences.len(),
        steps: opts
            .every_step
            .then(|| inputs.lengths.iter().sum::<usize>()),
        tolerance: opts.tolerance,
        reference_accuracy: inputs
            .labels
            .as_deref()
            .map(|l| accuracy(reference.iter().map(|r| argmax(r.iter().copied())), l)),
        results,
        notes,
        reference: reference_steps,
    })
}
