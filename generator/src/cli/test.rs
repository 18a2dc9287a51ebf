//! `kpgen test`: build, run under QEMU (or on the host), compare, measure, report.

use std::process::ExitCode;
use std::time::Duration;

use kpgen::base::diagnostic::{Diagnostic, Place};
use kpgen::base::sequences::TestInputs;
use kpgen::qemu::Toolchain;
use kpgen::spec::Lang;
use kpgen::verify::{self, LangResult, Platform, RunOptions, Tolerance};

use super::args::TestArgs;
use super::build::{generate, output_error, output_error_for, read_paths, write_output};
use super::{report_errors, shown_path, ProgressView, EXIT_BAD_INPUT, EXIT_TEST_FAILED};

/// What `kpgen test` measured, as the HTML report shows it.
pub fn measured_of(suite: &verify::Suite) -> kpgen::report::html::Measured {
    kpgen::report::html::Measured {
        platform: suite.platform.clone(),
        sequences: suite.sequences,
        reference_accuracy: suite.reference_accuracy,
        rows: suite
            .results
            .iter()
            .map(|r| kpgen::report::html::MeasuredRow {
                variant: r.variant.to_owned(),
                lang: r.lang.as_str().to_owned(),
                pass: r.comparison.pass,
                max_abs_error: r.comparison.max_abs_error,
                accuracy: r.comparison.accuracy,
                instructions_per_step: r.cost.as_ref().map(|c| c.instructions_per_step),
                flash_bytes: r.cost.as_ref().map(|c| c.flash_bytes),
                ram_bytes: r.cost.as_ref().map(|c| c.ram_bytes),
                stack_bytes: r.cost.as_ref().map(|c| c.stack_bytes),
            })
            .collect(),
        notes: suite.notes.clone(),
    }
}

pub fn fmt_err(e: f64) -> String {
    format!("{e:.2e}")
}

/// The results table (with `--every-step`, how many outputs each run compared) and, after
/// QEMU runs, the cost table.
pub fn print_results(suite: &verify::Suite, tol: Tolerance) {
    let results: &[LangResult] = &suite.results;
    out!(
        "\n{:<6} {:<5} {:>10} {:>10} {:>8} {:>6}  result",
        "model",
        "lang",
        "max |err|",
        "max rel",
        "classes",
        "stream"
    );
    for r in results {
        let c = &r.comparison;
        out!(
            "{:<6} {:<5} {:>10} {:>10} {:>8} {:>6}  {}",
            r.variant,
            r.lang.as_str(),
            fmt_err(c.max_abs_error),
            fmt_err(c.max_rel_error),
            format!("{}/{}", c.sequences - c.class_mismatches, c.sequences),
            if c.streaming_matches { "same" } else { "DIFF" },
            match (c.pass, c.integer_mismatches) {
                (true, None) => format!("pass (tol {:.0e})", tol.abs),
                (true, Some(_)) => "pass (bit-exact)".to_owned(),
                (false, None) => format!("FAIL: {} outputs out of tolerance", c.failures),
                (false, Some(n)) => format!("FAIL: {n} codes differ from the integer reference"),
            }
        );
    }
    if results
        .iter()
        .any(|r| r.comparison.integer_mismatches.is_some())
    {
        out!(
            "(fixed point: the errors are the dequantized outputs against the float reference, \
             i.e. the quantization error; pass means equal to kpgen's integer reference)"
        );
    }
    if let Some(steps) = suite.steps {
        out!(
            "(every step: {steps} outputs compared per run, the valid steps of {} sequences)",
            suite.sequences
        );
    }
    if results.iter().any(|r| r.cost.is_some()) {
        out!(
            "\n{:<6} {:<5} {:>14} {:>12} {:>10} {:>8} {:>8} {:>10}",
            "model",
            "lang",
            "instr/infer",
            "instr/step",
            "flash B",
            "RAM B",
            "stack B",
            "su bound B"
        );
        for r in results {
            if let Some(c) = &r.cost {
                out!(
                    "{:<6} {:<5} {:>14} {:>12} {:>10} {:>8} {:>8} {:>10}",
                    r.variant,
                    r.lang.as_str(),
                    c.instructions_per_inference,
                    c.instructions_per_step,
                    c.flash_bytes,
                    c.ram_bytes,
                    c.stack_bytes,
                    c.stack_usage_bound
                        .map_or("-".to_owned(), |b| b.to_string())
                );
            }
        }
    }
}

pub fn test(args: &TestArgs) -> ExitCode {
    let (target, generation) = match generate(&args.build) {
        Ok(g) => g,
        Err(e) => return report_errors(&e),
    };
    let model = &generation.model;
    let mut protected = read_paths(&args.build, &generation);
    protected.extend(
        [&args.inputs, &args.lengths, &args.labels, &args.work_dir]
            .into_iter()
            .flatten()
            .cloned(),
    );
    // Refused before the (long) run, not after it.
    let mut resolved_out = None;
    if let Some(out) = &args.out {
        match kpgen::output::check_output(out, &protected) {
            Ok(p) => resolved_out = Some(p),
            Err(e) => return report_errors(&output_error(&e)),
        }
    }
    if let Some(saved) = &args.save_outputs {
        match kpgen::output::check_output(saved, &protected) {
            // One folder inside the other: the second write would replace the first's files.
            Ok(p)
                if resolved_out
                    .as_ref()
                    .is_some_and(|o| o.starts_with(&p) || p.starts_with(o)) =>
            {
                let e = kpgen::output::OutputError::Refused(format!(
                    "--save-outputs {} and --out {} overlap: give two separate folders",
                    saved.display(),
                    args.out.as_deref().unwrap_or(saved).display()
                ));
                return report_errors(&output_error_for("--save-outputs", &e));
            }
            Ok(_) => {}
            Err(e) => return report_errors(&output_error_for("--save-outputs", &e)),
        }
    }
    let inputs = match &args.inputs {
        Some(path) => {
            let read = TestInputs::from_file(path, model.steps, model.input_features)
                .and_then(|i| match &args.lengths {
                    Some(l) => i.with_lengths(l),
                    None => Ok(i),
                })
                .and_then(|i| match &args.labels {
                    Some(l) => i.with_labels(l, model.output_size()),
                    None => Ok(i),
                });
            match read {
                Ok(i) => i,
                Err(e) => return report_errors(&e),
            }
        }
        None if args.count == 0 => {
            return report_errors(
                &Diagnostic::new(
                    Place::file("--count".as_ref()),
                    "expected at least one sequence",
                )
                .into(),
            )
        }
        None => TestInputs::random(
            args.count,
            model.steps,
            model.input_features,
            args.seed,
            1.0,
        ),
    };
    if args.tolerance.is_nan() || args.tolerance <= 0.0 {
        return report_errors(
            &Diagnostic::new(
                Place::file("--tolerance".as_ref()),
                "expected a positive tolerance",
            )
            .into(),
        );
    }
    let platform = match &args.host {
        Some(cc) => Platform::Host { cc: cc.clone() },
        // A missing tool exits as any other harness error does.
        None => match Toolchain::locate_with(args.cc).map_err(verify::HarnessError::from) {
            Ok(tc) => Platform::Qemu(tc),
            Err(e) => {
                say!("kpgen test: {e}");
                return ExitCode::from(e.exit_code() as u8);
            }
        },
    };
    let tmp;
    let _pending;
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("kpgen-test-").tempdir() {
            Ok(t) => {
                tmp = t;
                _pending = kpgen::output::remove_on_interrupt(tmp.path());
                tmp.path().to_path_buf()
            }
            Err(e) => {
                say!("kpgen test: cannot create a work directory: {e}");
                return ExitCode::from(3);
            }
        },
    };
    let mut langs = if args.langs.is_empty() {
        vec![Lang::C, Lang::Rust]
    } else {
        args.langs.clone()
    };
    if target.rust.triple.is_none() && matches!(platform, Platform::Qemu(_)) {
        if args.langs.contains(&Lang::Rust) {
            say!(
                "kpgen test: target `{}` has no Rust target triple: Rust firmware cannot be built for it (test C with --lang c)",
                target.name
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        langs.retain(|&l| l != Lang::Rust);
        say!(
            "kpgen test: note: target `{}` has no Rust target triple: testing C only",
            target.name
        );
    }
    let opts = RunOptions {
        langs,
        tolerance: Tolerance {
            abs: args.tolerance,
        },
        timeout: Duration::from_secs(args.timeout),
        dense_baseline: !args.no_dense,
        work_dir,
        every_step: args.every_step,
    };
    let where_ = match &platform {
        Platform::Qemu(tc) => format!(
            "QEMU {} ({}), C compiled by {}",
            target.qemu.machine,
            target.name,
            tc.compiler()
        ),
        Platform::Host { cc } => format!("the host ({cc})"),
    };
    say!(
        "kpgen test: {} on {}, {} sequence(s) of {} steps{}",
        model.name,
        where_,
        inputs.sequences.len(),
        inputs.steps,
        if args.every_step {
            ", the output of every step compared"
        } else {
            ""
        }
    );
    let view = ProgressView::new("kpgen test");
    let outcome = verify::run_suite(
        &platform,
        &target,
        &generation,
        &inputs,
        &opts,
        &mut |event| view.show(event),
    );
    view.finish();
    let suite = match outcome {
        Ok(s) => s,
        Err(e) => {
            say!("kpgen test: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    print_results(&suite, opts.tolerance);
    if let Some(acc) = suite.reference_accuracy {
        out!("\naccuracy on the labels: reference {:.2}%", 100.0 * acc);
        for r in &suite.results {
            if let Some(a) = r.comparison.accuracy {
                out!(
                    "  {} {}: {:.2}% ({:+.2} points)",
                    r.variant,
                    r.lang.as_str(),
                    100.0 * a,
                    100.0 * (a - acc)
                );
            }
        }
    }
    if let Some(out) = &args.out {
        let mut files = generation.files.clone();
        let mut report = generation.report.clone();
        report.measured = serde_json::to_value(&suite).ok();
        let measured = measured_of(&suite);
        for f in &mut files {
            match f.path.as_str() {
                "report.json" => {
                    f.contents = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
                }
                "report.html" => {
                    f.contents =
                        kpgen::report::html::render(&report, &generation.plan, Some(&measured));
                }
                _ => {}
            }
        }
        if let Err(e) = write_output(out, &files, &protected) {
            return report_errors(&e);
        }
        say!("kpgen test: wrote {}", shown_path(out));
    }
    if let Some(dir) = &args.save_outputs {
        let files = verify::saved::files(
            &suite,
            args.every_step.then_some(inputs.steps),
            generation.plan.output_size,
        );
        if let Err(e) = kpgen::output::write_output_files(dir, &files, &protected) {
            return report_errors(&output_error_for("--save-outputs", &e));
        }
        say!("kpgen test: saved the outputs in {}", shown_path(dir));
    }
    if suite.results.iter().all(|r| r.comparison.pass) {
        out!("\nkpgen test: {} passed, 0 failed", suite.results.len());
        ExitCode::SUCCESS
    } else {
        let failed = suite.results.iter().filter(|r| !r.comparison.pass).count();
        out!(
            "\nkpgen test: {} passed, {failed} failed",
            suite.results.len() - failed
        );
        ExitCode::from(EXIT_TEST_FAILED)
    }
}
