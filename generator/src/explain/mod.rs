//! `kpgen explain`: the intermediate form after one stage of the pipeline, readable or as JSON.
//! A view only: it prints what [`spec`], [`model`], [`plan`], [`quant`] and [`lower`] produced
//! and decides nothing itself, so what it shows is exactly what `kpgen build` goes on to emit.

mod program;
mod stages;

use serde::Serialize;

use crate::lower::Program;
use crate::model::Model;
use crate::plan::Plan;
use crate::quant::QuantPlan;
use crate::spec::SpecDocument;

/// The stage after which `explain` shows the build, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The YAML as written, with line numbers; not yet validated.
    Spec,
    /// The validated model: layers, weight forms and shapes, biases, the files read.
    Model,
    /// Per matrix: factor shapes, multiplication order, stages, unrolling and tiles, overlay
    /// encoding; per layer: constants; the state buffers.
    Plan,
    /// Fixed point: formats, scales, requantization, accumulator widths and overflow bounds.
    Quant,
    /// The language-neutral program: tables, state arrays, kernels and the step's ops.
    Lower,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Spec => "spec",
            Stage::Model => "model",
            Stage::Plan => "plan",
            Stage::Quant => "quant",
            Stage::Lower => "lower",
        }
    }
}

/// One stage's intermediate form, printed two ways.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub stage: Stage,
    /// Indented text for people, one item per line.
    pub text: String,
    /// The same content as a JSON value, `{"stage": ..., ...}`.
    pub json: serde_json::Value,
}

impl Explanation {
    fn new(stage: Stage, text: String, body: serde_json::Value) -> Explanation {
        let mut json = serde_json::json!({ "stage": stage });
        if let (Some(obj), serde_json::Value::Object(body)) = (json.as_object_mut(), body) {
            obj.extend(body);
        }
        Explanation { stage, text, json }
    }
}

/// The spec as parsed.
pub fn spec(doc: &SpecDocument) -> Explanation {
    let (text, json) = stages::spec(doc);
    Explanation::new(Stage::Spec, text, json)
}

/// The validated model.
pub fn model(model: &Model) -> Explanation {
    let (text, json) = stages::model(model);
    Explanation::new(Stage::Model, text, json)
}

/// The plan for one target, with the flash estimate of the program it lowers to.
pub fn plan(plan: &Plan, flash: &crate::lower::flash::FlashEstimate) -> Explanation {
    let (text, json) = stages::plan(plan, flash);
    Explanation::new(Stage::Plan, text, json)
}

/// The quantization of a fixed-point build; a float build has none, which the text says.
pub fn quant(plan: &Plan, quant: Option<&QuantPlan>) -> Explanation {
    let (text, json) = stages::quant(plan, quant);
    Explanation::new(Stage::Quant, text, json)
}

/// The lowered program.
pub fn lower(program: &Program) -> Explanation {
    let (text, json) = program::explain(program);
    Explanation::new(Stage::Lower, text, json)
}
