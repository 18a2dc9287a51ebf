//! `kpgen build`, and the option handling `kpgen test` shares with it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use kpgen::base::diagnostic::{Diagnostic, Diagnostics, Place};
use kpgen::target;

use super::args::{BuildArgs, BuildOptions};
use super::{report_errors, shown_path, EXIT_BAD_INPUT};

impl BuildOptions {
    pub fn builder(&self) -> kpgen::Builder {
        let mut b = kpgen::Builder::new(&self.spec).target(&self.target);
        if let Some(p) = self.precision {
            b = b.precision(p);
        }
        if let Some(a) = self.activations {
            b = b.activations(a);
        }
        if let Some(o) = self.optimize {
            b = b.optimize(o);
        }
        if let Some(c) = &self.calibrate {
            b = b.calibrate(c);
        }
        if let Some(f) = self.flash_budget {
            b = b.flash_budget(f);
        }
        if let Some(r) = self.ram_budget {
            b = b.ram_budget(r);
        }
        b
    }
}

pub fn generate(opts: &BuildOptions) -> Result<(target::Target, kpgen::Generation), Diagnostics> {
    let (target, generation) = opts.builder().generate()?;
    let model = &generation.model;
    if model.precision.is_fixed() && model.calibration.is_none() {
        say!(
            "kpgen: note: no calibration data (spec `calibration:` or --calibrate): scales come from {}",
            kpgen::DEFAULT_CALIBRATION
        );
    }
    Ok((target, generation))
}

pub fn build(args: &BuildArgs) -> ExitCode {
    let started = Instant::now();
    let (_, generation) = match generate(&args.build) {
        Ok(g) => g,
        Err(e) => return report_errors(&e),
    };
    let protected = read_paths(&args.build, &generation);
    if let Some(d) = &args.depfile {
        // Checked before the output is written, so a refusal writes nothing.
        let inside_out = std::path::absolute(d)
            .ok()
            .zip(std::path::absolute(&args.out).ok())
            .is_some_and(|(d, o)| d.starts_with(o));
        if d.is_dir() || inside_out {
            let d = Diagnostic::new(
                Place::file(Path::new("--depfile")),
                format!(
                    "{} is a folder or lies inside --out: expected a file beside the output",
                    shown_path(d)
                ),
            );
            return report_errors(&d.into());
        }
    }
    if let Err(e) = write_output(&args.out, &generation.files, &protected) {
        return report_errors(&e);
    }
    if let Some(depfile) = &args.depfile {
        let name = &generation.model.name;
        let targets = [
            args.out.join(format!("c/{name}.c")),
            args.out.join(format!("c/{name}.h")),
        ];
        let text = kpgen::output::depfile_text(&targets, &protected);
        if let Err(e) = kpgen::output::write_file(depfile, &text) {
            say!("kpgen: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let t = &generation.report.totals;
    say!(
        "kpgen: wrote {} ({} files) in {:.2} s: {} parameters stored for {} dense ({:.2}x), {} MACs per step (dense {})",
        shown_path(&args.out),
        generation.files.len(),
        started.elapsed().as_secs_f64(),
        t.params_stored,
        t.params_dense,
        t.compression,
        t.macs_per_step,
        t.dense_macs_per_step
    );
    ExitCode::SUCCESS
}

/// Writes the output folder (see `kpgen::output`), refusing to touch what the build read.
pub fn write_output(
    out: &Path,
    files: &[kpgen::emit::GeneratedFile],
    protected: &[PathBuf],
) -> Result<(), Diagnostics> {
    kpgen::output::write_output(out, files, protected).map_err(|e| output_error(&e))
}

pub fn output_error(e: &kpgen::output::OutputError) -> Diagnostics {
    output_error_for("--out", e)
}

/// [`output_error`] for the output folder given by `flag` (`--out`, `--save-outputs`).
pub fn output_error_for(flag: &str, e: &kpgen::output::OutputError) -> Diagnostics {
    let mut d = Diagnostic::new(Place::file(Path::new(flag)), e.to_string());
    if let Some(h) = e.help() {
        d = d.with_help(h.replace("--out", flag));
    }
    d.into()
}

/// Everything a build reads: its output may not replace their folders.
pub fn read_paths(opts: &BuildOptions, generation: &kpgen::Generation) -> Vec<PathBuf> {
    opts.builder().inputs(generation)
}
