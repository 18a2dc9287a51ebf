//! kpgen: generates verified, allocation-free C99 and no_std Rust for recurrent networks whose
//! weight matrices are Kronecker products (W = A ⊗ B) or doped Kronecker products (A ⊗ B + S).
//!
//! The pipeline is a chain of typed stages, each a folder that imports only the stages below it
//! (see ARCHITECTURE.md): [`base`] → [`spec`] (YAML as written) and [`target`] → [`model`]
//! (validated, tensors loaded) → [`plan`] (factor shapes, stages, multiplication order,
//! unrolling, overlay encoding, buffers) → [`quant`] (fixed point) → [`lower`] (the
//! language-neutral program) → [`emit`] (C and Rust text through askama templates) →
//! [`report`]. [`generate`] runs them all and returns the files in memory; [`output`] writes
//! them; [`explain`] shows any stage's result (`kpgen explain`). [`verify`] holds the independent float reference and runs the check under QEMU
//! ([`qemu`]); [`bench`](mod@bench) measures the kernels.

pub mod base;
pub mod bench;
pub mod builder;
pub mod emit;
pub mod explain;
pub mod lower;
pub mod model;
pub mod output;
pub mod plan;
pub mod qemu;
pub mod quant;
pub mod report;
pub mod spec;
pub mod target;
pub mod verify;

use std::path::Path;

use base::diagnostic::{Diagnostic, Diagnostics, Place};
pub use builder::Builder;
use emit::GeneratedFile;
use model::Model;
use plan::Plan;
use quant::QuantPlan;
use report::Report;
use target::Target;

/// Everything one build produces, in memory.
#[derive(Debug, Clone)]
pub struct Generation {
    pub model: Model,
    pub plan: Plan,
    /// The quantization of int8 / int16 builds.
    pub quant: Option<QuantPlan>,
    pub report: Report,
    pub files: Vec<GeneratedFile>,
}

/// Reads and validates a spec and the tensors it names, from the file system within the
/// default [`base::input::Limits`].
pub fn load(spec_path: &Path) -> Result<Model, Diagnostics> {
    load_with(&base::input::Reader::disk(), spec_path)
}

/// [`load_with`] for a build on `target`: the spec's densely stored tensors are first checked
/// against the target's flash budget from their headers, at the width of the build's precision
/// (`precision`, a `--precision` override, else the spec's), so an over-budget model is refused
/// before any tensor body is read.
pub fn load_for_target(
    reader: &base::input::Reader,
    spec_path: &Path,
    target: &Target,
    precision: Option<spec::Precision>,
) -> Result<Model, Diagnostics> {
    let doc = spec::read_spec_with(reader, spec_path)?;
    let precision = precision.unwrap_or_else(|| {
        doc.spec
            .precision
            .as_ref()
            .map(|p| p.value)
            .unwrap_or_default()
    });
    model::check_flash_from_headers(reader, &doc, target.budget.flash, &target.name, precision)?;
    model::load_model_with(reader, &doc)
}

/// [`load`] through `reader`: other limits, or files held in memory ([`base::input::Memory`]).
pub fn load_with(reader: &base::input::Reader, spec_path: &Path) -> Result<Model, Diagnostics> {
    let doc = spec::read_spec_with(reader, spec_path)?;
    model::load_model_with(reader, &doc)
}

/// Plans and emits a loaded model for a target. The target's flash and RAM budgets are
/// checked as soon as the plan exists, before calibration (flash by its stored data, a lower
/// bound), and again on the whole flash estimate (code and data) of the lowered program,
/// before any text is generated.
pub fn generate_model(model: &Model, target: &Target) -> Result<Generation, Diagnostics> {
    let plan = plan::plan_model(model, target);
    // The estimates come from the plan alone (quantization changes none of them).
    let mut report = report::build_report(model, &plan, None);
    report::check_budget(target, &report)?;
    let quant = if model.precision.is_fixed() {
        Some(quantize(model, &plan)?)
    } else {
        None
    };
    report.quantization = quant.clone();
    report.notes = target::build_notes(target, model.precision);
    let program = lower::program(&plan, quant.as_ref());
    report.flash = Some(lower::flash::estimate(&program, &target.code));
    report::check_budget(target, &report)?;
    let mut files = emit::emit(&program).map_err(|e| {
        Diagnostic::new(
            Place::file(Path::new("templates")),
            format!("internal error while rendering templates: {e}"),
        )
    })?;
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    files.push(GeneratedFile {
        path: "report.json".to_owned(),
        contents: json + "\n",
    });
    files.push(GeneratedFile {
        path: "report.html".to_owned(),
        contents: report::html::render(&report, &plan, None),
    });
    Ok(Generation {
        model: model.clone(),
        plan,
        quant,
        report,
        files,
    })
}

/// Sequences calibration uses when the spec and the command line name none.
pub const DEFAULT_CALIBRATION: &str =
    "64 seeded random sequences uniform in [-1, 1) (fewer when they are very long; no \
     calibration data given)";

/// At most this many input values in the default calibration set (64 sequences of up to 16,384
/// values each).
const DEFAULT_CALIBRATION_VALUES: usize = 64 * 16384;

/// Calibrates (on the model's calibration file, or the documented default) and quantizes.
pub(crate) fn quantize(model: &Model, plan: &Plan) -> Result<QuantPlan, Diagnostics> {
    let (inputs, what) = match &model.calibration {
        Some(path) => (
            base::sequences::TestInputs::from_file(path, model.steps, model.input_features)?,
            path.display().to_string(),
        ),
        None => {
            // 64 sequences, fewer for very long ones: the default set stays at most
            // DEFAULT_CALIBRATION_VALUES values (a 1M-step model calibrates on one sequence).
            let per_sequence = (model.steps * model.input_features).max(1);
            let count = (DEFAULT_CALIBRATION_VALUES / per_sequence).clamp(1, 64);
            (
                base::sequences::TestInputs::random(
                    count,
                    model.steps,
                    model.input_features,
                    0x5EED,
                    1.0,
                ),
                DEFAULT_CALIBRATION.to_owned(),
            )
        }
    };
    quant::quantize(plan, &inputs, what).map_err(|e| {
        Diagnostic::new(
            Place::file(model.calibration.as_deref().unwrap_or(Path::new("spec"))),
            format!("cannot quantize model `{}`: {e}", model.name),
        )
        .into()
    })
}

/// The whole build: spec file in, generated files out (nothing is written).
pub fn generate(spec_path: &Path, target: &Target) -> Result<Generation, Diagnostics> {
    let model = load(spec_path)?;
    generate_model(&model, target)
}
