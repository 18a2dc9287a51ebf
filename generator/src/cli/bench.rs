//! `kpgen bench`: kpgen's kernels against CMSIS-DSP under QEMU, and the baseline gate.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kpgen::target;

use super::args::BenchArgs;
use super::{
    report_errors, shown_path, ProgressView, EXIT_BAD_INPUT, EXIT_TEST_FAILED, EXIT_TOOL_FAILED,
};

pub fn bench(args: &BenchArgs) -> ExitCode {
    use kpgen::bench;
    let bad = |msg: String| {
        say!("kpgen bench: {msg}");
        ExitCode::from(EXIT_BAD_INPUT)
    };
    let mut layers = Vec::new();
    if args.standard {
        layers.extend(bench::standard_layers());
    }
    for text in &args.layers {
        match bench::parse_layer(text) {
            Ok(l) => layers.push(l),
            Err(e) => return bad(e),
        }
    }
    for spec in args.specs.iter().filter(|_| !args.model) {
        match bench::layer::model_layers(spec) {
            Ok(l) => layers.extend(l),
            Err(d) => return report_errors(&d),
        }
    }
    let mut models = Vec::new();
    if args.model {
        for spec in &args.specs {
            match kpgen::load(spec) {
                Ok(m) => models.push(m),
                Err(d) => return report_errors(&d),
            }
        }
        for text in &args.lstms {
            match bench::model::parse_lstm(text) {
                Ok((i, h)) => models.push(bench::model::synthetic_lstm(i, h)),
                Err(e) => return bad(e),
            }
        }
        if models.is_empty() {
            return bad(
                "--model measures the recurrent layers of --spec files or --lstm shapes: give one"
                    .into(),
            );
        }
    }
    if layers.is_empty() && !args.model {
        return bad("nothing to benchmark: give --standard, --layer or --spec".into());
    }
    if let Some(d) = &args.cmsis_nn {
        if let Err(e) = bench::nn::CmsisNn::at(d) {
            return bad(e);
        }
    }
    let names: Vec<String> = if args.targets.is_empty() {
        [
            "cortex-m0",
            "cortex-m4",
            "cortex-m7",
            "cortex-m33",
            "cortex-m55",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.targets.clone()
    };
    let mut targets = Vec::new();
    for n in &names {
        match target::lookup(n) {
            Ok(t) => targets.push(t),
            Err(d) => return report_errors(&d),
        }
    }
    let baseline = match &args.check {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<bench::BenchRun>(&t).map_err(|e| e.to_string()))
        {
            Ok(b) if b.compiler != args.cc => {
                return bad(format!(
                    "the baseline {} was measured with --cc {}, this run would use --cc {}: \
                     counts from different compilers are not comparable",
                    shown_path(p),
                    b.compiler,
                    args.cc
                ))
            }
            Ok(b) => Some(b),
            Err(e) => return bad(format!("cannot read the baseline {}: {e}", shown_path(p))),
        },
        None => None,
    };
    use kpgen::spec::Precision;
    let no_kernels = layers.is_empty();
    let options = bench::BenchOptions {
        layers,
        targets,
        force_f32: !args.precisions.is_empty(),
        precisions: if args.precisions.is_empty() {
            vec![Precision::F32, Precision::Int16, Precision::Int8]
        } else {
            args.precisions.clone()
        },
        work_dir: args.work_dir.clone(),
        // Model rows alone need no CMSIS-DSP.
        cmsis: if args.no_cmsis || no_kernels {
            bench::CmsisSource::Skip
        } else if let Some(d) = &args.cmsis_dsp {
            bench::CmsisSource::Dir(d.clone())
        } else {
            bench::CmsisSource::Fetch
        },
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        models,
        cmsis_nn: args.cmsis_nn.clone(),
        cc: args.cc,
    };
    let started = Instant::now();
    let view = ProgressView::new("kpgen bench");
    let run = bench::run(&options, &|event| view.show(event));
    view.finish();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            say!("kpgen bench: {e}");
            return ExitCode::from(match e {
                bench::BenchError::Tool(_) => EXIT_TOOL_FAILED,
                bench::BenchError::Failed(_) => EXIT_TEST_FAILED,
            });
        }
    };
    let table = bench::report::markdown(&run);
    out!("{table}");
    say!(
        "kpgen bench: {} measurements in {:.0} s",
        run.measurements.len() + run.model_rows.len(),
        started.elapsed().as_secs_f64()
    );
    let write = |path: &Path, text: &str| {
        kpgen::output::write_file(path, text)
            .map_err(|e| kpgen::base::diagnostic::shown(&e.to_string()))
    };
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&run).unwrap_or_default() + "\n";
        if let Err(e) = write(p, &json) {
            return bad(e);
        }
    }
    if let Some(p) = &args.markdown {
        // A file with the bench markers (docs/benchmark-tables.md) keeps all but the table.
        let text = std::fs::read_to_string(p)
            .ok()
            .and_then(|old| splice_between_markers(&old, &table))
            .unwrap_or_else(|| table.clone());
        if let Err(e) = write(p, &text) {
            return bad(e);
        }
    }
    // kpgen's own model rows must equal its integer reference; CMSIS-NN's check is shown.
    let wrong: Vec<_> = run
        .model_rows
        .iter()
        .filter(|r| r.implementation != bench::model::CMSIS_NN && r.status.starts_with("WRONG"))
        .collect();
    if !wrong.is_empty() {
        for r in &wrong {
            say!(
                "kpgen bench: {} layer {} on {} ({}), {}: {}",
                r.model,
                r.layer,
                r.target,
                r.precision,
                r.implementation,
                r.status
            );
        }
        return ExitCode::from(EXIT_TEST_FAILED);
    }
    if let Some(b) = &baseline {
        if !b.reason.is_empty() {
            say!("kpgen bench: baseline: {}", b.reason);
        }
        let (regressions, notes) = bench::compare(&run, b, 0.02);
        for n in &notes {
            say!("kpgen bench: {n}");
        }
        if !regressions.is_empty() {
            for r in &regressions {
                say!("kpgen bench: REGRESSION {r}");
            }
            say!(
                "kpgen bench: {} count(s) more than 2% above the baseline; if intended, \
                 update the baseline in the same commit and say why in its `reason`",
                regressions.len()
            );
            return ExitCode::from(EXIT_TEST_FAILED);
        }
        say!("kpgen bench: no regression against the baseline (2% gate)");
    }
    ExitCode::SUCCESS
}

/// The line that opens the generated table in a Markdown file (it may go on with a comment).
const BENCH_BEGIN: &str = "<!-- bench:begin";
/// The line that closes it.
const BENCH_END: &str = "<!-- bench:end -->";

/// `old` with the lines between its bench markers replaced by `table`, or `None` when `old`
/// lacks either marker line.
fn splice_between_markers(old: &str, table: &str) -> Option<String> {
    let begin = old.find(BENCH_BEGIN)?;
    let after_begin = begin + old[begin..].find('\n')? + 1;
    let end = after_begin + old[after_begin..].find(BENCH_END)?;
    Some(format!(
        "{}{}\n{}",
        &old[..after_begin],
        table.trim_end_matches('\n'),
        &old[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::splice_between_markers;

    #[test]
    fn markdown_replaces_only_the_marked_table() {
        let old =
            "# Title\ntext\n<!-- bench:begin (note) -->\nold table\n<!-- bench:end -->\nafter\n";
        assert_eq!(
            splice_between_markers(old, "| new |\n").as_deref(),
            Some(
                "# Title\ntext\n<!-- bench:begin (note) -->\n| new |\n<!-- bench:end -->\nafter\n"
            )
        );
        assert_eq!(splice_between_markers("no markers\n", "| new |"), None);
    }
}
