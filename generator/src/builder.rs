//! One build, configured in code: the `kpgen build` command line, and build-time generation
//! from a Cargo build script (in the manner of prost-build).
//!
//! ```no_run
//! // In the `main` of build.rs (kpgen as a build-dependency, default-features = false):
//! kpgen::Builder::new("model/spec.yaml")
//!     .target("cortex-m4")
//!     .write()
//!     .unwrap_or_else(|e| panic!("{e}"));
//! // src/main.rs:
//! // include!(concat!(env!("OUT_DIR"), "/basic_motions_kp.rs"));
//! // ... basic_motions_kp::Model::new() ...
//! ```

use std::path::{Path, PathBuf};

use crate::base::diagnostic::{Diagnostic, Diagnostics, Place};
use crate::base::input::Reader;
use crate::explain::{self, Explanation};
use crate::model::Model;
use crate::output::{self, OutputError};
use crate::spec::{Activations, Optimize, Precision};
use crate::target::{self, Target};
use crate::Generation;

/// A build's inputs and options; [`Builder::generate`] runs it in memory, [`Builder::write`]
/// also writes it (for build scripts).
#[derive(Debug, Clone)]
pub struct Builder {
    spec: PathBuf,
    target: String,
    precision: Option<Precision>,
    activations: Option<Activations>,
    optimize: Option<Optimize>,
    calibrate: Option<PathBuf>,
    flash_budget: Option<u64>,
    ram_budget: Option<u64>,
    out_dir: Option<PathBuf>,
    cargo_metadata: bool,
}

/// What [`Builder::write`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// The model's name (the spec's `name`).
    pub name: String,
    /// The whole output (`c/`, `rust/`, `report.json`): `OUT_DIR/kpgen/NAME`.
    pub output: PathBuf,
    /// `OUT_DIR/NAME.rs`, which declares the generated crate as the module `NAME`: bring it in
    /// with `include!(concat!(env!("OUT_DIR"), "/NAME.rs"))`.
    pub module: PathBuf,
    /// Every file the build read (spec, tensors, calibration, target file).
    pub inputs: Vec<PathBuf>,
}

/// Why [`Builder::write`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec, a tensor or an option is wrong: the rendered problems, file:line:field each.
    #[error("{}", .0.render())]
    Invalid(Diagnostics),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("no output folder: set Builder::out_dir, or run from a Cargo build script (OUT_DIR)")]
    NoOutDir,
}

impl From<Diagnostics> for BuildError {
    fn from(d: Diagnostics) -> Self {
        BuildError::Invalid(d)
    }
}

impl Builder {
    /// A build of the spec at `spec` for the Cortex-M4, in the spec's precision.
    pub fn new(spec: impl Into<PathBuf>) -> Self {
        Builder {
            spec: spec.into(),
            target: "cortex-m4".to_owned(),
            precision: None,
            activations: None,
            optimize: None,
            calibrate: None,
            flash_budget: None,
            ram_budget: None,
            out_dir: None,
            cargo_metadata: true,
        }
    }

    /// A built-in target (`kpgen targets`) or the path of a target `.toml` file.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// The arithmetic, replacing the spec's `precision`.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = Some(precision);
        self
    }

    /// How f32 code evaluates sigmoid and tanh, replacing the spec's `activations`.
    pub fn activations(mut self, activations: Activations) -> Self {
        self.activations = Some(activations);
        self
    }

    /// What the plan optimizes for (speed or size), replacing the spec's `optimize`.
    pub fn optimize(mut self, optimize: Optimize) -> Self {
        self.optimize = Some(optimize);
        self
    }

    /// Calibration sequences for int8/int16, replacing the spec's `calibration`.
    pub fn calibrate(mut self, inputs: impl Into<PathBuf>) -> Self {
        self.calibrate = Some(inputs.into());
        self
    }

    /// The flash budget in bytes, replacing the target's.
    pub fn flash_budget(mut self, bytes: u64) -> Self {
        self.flash_budget = Some(bytes);
        self
    }

    /// The RAM budget in bytes, replacing the target's.
    pub fn ram_budget(mut self, bytes: u64) -> Self {
        self.ram_budget = Some(bytes);
        self
    }

    /// Where [`Builder::write`] writes (default: the build script's `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether [`Builder::write`] prints `cargo:rerun-if-changed` for every file the build
    /// reads (default: yes), so Cargo reruns the build script exactly when one changes.
    pub fn cargo_metadata(mut self, print: bool) -> Self {
        self.cargo_metadata = print;
        self
    }

    /// The spec this build reads.
    pub fn spec(&self) -> &Path {
        &self.spec
    }

    /// Loads, checks and generates in memory; writes nothing. Budgets are checked from the
    /// tensor headers before any tensor is read, and again from the plan.
    pub fn generate(&self) -> Result<(Target, Generation), Diagnostics> {
        let target = self.configured_target()?;
        let model = self.configured_model(&target)?;
        let generation = crate::generate_model(&model, &target)?;
        Ok((target, generation))
    }

    /// The target with this build's budget overrides.
    fn configured_target(&self) -> Result<Target, Diagnostics> {
        let mut target = target::lookup(&self.target)?;
        target.budget.flash = self.flash_budget.unwrap_or(target.budget.flash);
        target.budget.ram = self.ram_budget.unwrap_or(target.budget.ram);
        Ok(target)
    }

    /// The loaded model with this build's precision and calibration overrides.
    fn configured_model(&self, target: &Target) -> Result<Model, Diagnostics> {
        let mut model =
            crate::load_for_target(&Reader::disk(), &self.spec, target, self.precision)?;
        if let Some(p) = self.precision {
            model.precision = p;
        }
        if let Some(a) = self.activations {
            model.activations = a;
        }
        if let Some(o) = self.optimize {
            model.optimize = o;
        }
        if let Some(c) = &self.calibrate {
            model.calibration = Some(c.clone());
        }
        Ok(model)
    }

    /// Runs the pipeline up to `stage` and shows its result (`kpgen explain`). The spec stage
    /// needs only a parsable spec; later stages need what `generate` needs, except that the
    /// plan's flash and RAM estimates are not held to the budget, so an over-budget plan can
    /// be inspected.
    pub fn explain(&self, stage: explain::Stage) -> Result<Explanation, Diagnostics> {
        if stage == explain::Stage::Spec {
            let doc = crate::spec::read_spec_with(&Reader::disk(), &self.spec)?;
            return Ok(explain::spec(&doc));
        }
        let target = self.configured_target()?;
        let model = self.configured_model(&target)?;
        if stage == explain::Stage::Model {
            return Ok(explain::model(&model));
        }
        let plan = crate::plan::plan_model(&model, &target);
        let quant = if model.precision.is_fixed() {
            Some(crate::quantize(&model, &plan)?)
        } else {
            None
        };
        if stage == explain::Stage::Quant {
            return Ok(explain::quant(&plan, quant.as_ref()));
        }
        let program = crate::lower::program(&plan, quant.as_ref());
        if stage == explain::Stage::Plan {
            // The flash estimate counts the lowered program (in fixed point, quantized).
            let flash = crate::lower::flash::estimate(&program, &target.code);
            return Ok(explain::plan(&plan, &flash));
        }
        Ok(explain::lower(&program))
    }

    /// Every file a generation read: its output may not replace their folders, and a build
    /// system reruns the build when one changes.
    pub fn inputs(&self, generation: &Generation) -> Vec<PathBuf> {
        let mut paths = generation.model.sources.clone();
        if !paths.contains(&self.spec) {
            paths.push(self.spec.clone());
        }
        paths.extend(generation.model.calibration.clone());
        if Path::new(&self.target).is_file() {
            paths.push(PathBuf::from(&self.target));
        }
        paths
    }

    /// Generates and writes `OUT_DIR/kpgen/NAME/` (the whole output, replaced only when it is
    /// kpgen's) and `OUT_DIR/NAME.rs` (the Rust crate as a module, for `include!`).
    pub fn write(&self) -> Result<Built, BuildError> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(BuildError::NoOutDir)?,
        };
        // On failure the spec is still watched, so fixing it reruns the build script.
        let (_, generation) = self
            .generate()
            .inspect_err(|_| self.print_rerun(std::slice::from_ref(&self.spec)))?;
        let inputs = self.inputs(&generation);
        let name = generation.model.name.clone();
        let output = out_dir.join("kpgen").join(&name);
        output::write_output(&output, &generation.files, &inputs)?;
        let module = out_dir.join(format!("{name}.rs"));
        output::write_file(&module, &module_text(&self.spec, &name, &output)?)?;
        self.print_rerun(&inputs);
        Ok(Built {
            name,
            output,
            module,
            inputs,
        })
    }

    fn print_rerun(&self, paths: &[PathBuf]) {
        if self.cargo_metadata {
            for p in paths {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

/// `OUT_DIR/NAME.rs`: the generated crate's root as the module `NAME`.
fn module_text(spec: &Path, name: &str, output: &Path) -> Result<String, BuildError> {
    let lib = std::path::absolute(output.join("rust/src/lib.rs"))
        .map_err(|e| OutputError::Refused(format!("resolve {}: {e}", output.display())))?;
    let lib = lib.to_str().ok_or_else(|| {
        BuildError::Invalid(
            Diagnostic::new(
                Place::file(output),
                "the output folder's path is not UTF-8: Rust's #[path] cannot name it",
            )
            .into(),
        )
    })?;
    // `{:?}` of a str is a Rust string literal, every character escaped as Rust requires.
    Ok(format!(
        "// Generated by kpgen::Builder from {spec:?}: the model `{name}` as a module.\n\
         // Bring it in with: include!(concat!(env!(\"OUT_DIR\"), \"/{name}.rs\"));\n\
         // The crate-level attributes of the standalone crate (#![no_std]) mean nothing here.\n\
         #[allow(unused_attributes)]\n\
         #[path = {lib:?}]\n\
         pub mod {name};\n",
        spec = spec.display().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_file_quotes_its_path() {
        let text =
            module_text(Path::new("m/spec.yaml"), "m", Path::new("/o \"q\"/kpgen/m")).unwrap();
        assert!(
            text.contains(r#"#[path = "/o \"q\"/kpgen/m/rust/src/lib.rs"]"#),
            "{text}"
        );
        assert!(text.contains("pub mod m;"), "{text}");
    }
}
