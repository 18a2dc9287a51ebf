//! `kpgen explain`: every stage of the bundled example as text (insta snapshots guard it), the
//! JSON form checked against the pipeline's own values, a model using every construct, and
//! the errors.

mod common;

use std::path::Path;
use std::process::Command;

use kpgen::explain::Stage;
use kpgen::spec::Precision;

/// Relative, so the text is the same on every machine (tests run in generator/).
const BUNDLED: &str = "../examples/basic_motions/kp/spec.yaml";

fn explain(spec: &Path, stage: Stage, precision: Option<Precision>) -> kpgen::explain::Explanation {
    let mut b = kpgen::Builder::new(spec).target("cortex-m4");
    if let Some(p) = precision {
        b = b.precision(p);
    }
    b.explain(stage)
        .unwrap_or_else(|e| panic!("explain {stage:?}: {}", e.render()))
}

fn bundled(stage: Stage, precision: Option<Precision>) -> String {
    explain(Path::new(BUNDLED), stage, precision).text
}

#[test]
fn bundled_spec() {
    insta::assert_snapshot!(bundled(Stage::Spec, None));
}

#[test]
fn bundled_model() {
    insta::assert_snapshot!(bundled(Stage::Model, None));
}

#[test]
fn bundled_plan() {
    insta::assert_snapshot!(bundled(Stage::Plan, None));
}

#[test]
fn bundled_quant_int8() {
    insta::assert_snapshot!(bundled(Stage::Quant, Some(Precision::Int8)));
}

#[test]
fn bundled_lower_f32() {
    insta::assert_snapshot!(bundled(Stage::Lower, None));
}

#[test]
fn bundled_lower_int16() {
    insta::assert_snapshot!(bundled(Stage::Lower, Some(Precision::Int16)));
}

#[test]
fn a_float_build_has_no_quantization() {
    let e = explain(Path::new(BUNDLED), Stage::Quant, None);
    assert!(e.text.contains("f32 build"), "{}", e.text);
    assert!(e.json["quantization"].is_null(), "{}", e.json);
}

/// The JSON carries the pipeline's values: compare it with a generation of the same build.
#[test]
fn json_matches_the_generation() {
    let spec = Path::new(BUNDLED);
    let (_, g) = kpgen::Builder::new(spec)
        .target("cortex-m4")
        .precision(Precision::Int8)
        .generate()
        .unwrap();
    let json = |stage| explain(spec, stage, Some(Precision::Int8)).json;

    let s = json(Stage::Spec);
    assert_eq!(s["stage"], "spec");
    assert_eq!(s["name"]["value"], "basic_motions_kp");
    assert_eq!(s["name"]["line"], 3);
    assert_eq!(s["layers"][0]["fields"]["w_ih"]["line"], 9);

    let m = json(Stage::Model);
    assert_eq!(m["layers"].as_array().unwrap().len(), g.model.layers.len());
    assert_eq!(m["layers"][0]["weights"][0]["form"], "kp");
    assert_eq!(m["layers"][0]["weights"][0]["stored_params"], 56);
    assert_eq!(m["precision"], "int8");

    let p = json(Stage::Plan);
    assert_eq!(p["stage"], "plan");
    let plan = serde_json::to_value(&g.plan).unwrap();
    assert_eq!(p["layers"], plan["layers"]);
    assert_eq!(p["buffers"], plan["buffers"]);

    let q = json(Stage::Quant);
    let quant = serde_json::to_value(g.quant.as_ref().unwrap()).unwrap();
    assert_eq!(q["matrices"], quant["matrices"]);
    assert_eq!(q["input"], quant["input"]);

    let l = json(Stage::Lower);
    let kernels: Vec<&str> = l["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(kernels, ["l0_w_ih_mv", "l0_w_hh_mv", "l1_w_mv"]);
    // Every kernel the C declares is in the program.
    let c = &g
        .files
        .iter()
        .find(|f| f.path.ends_with(".c"))
        .unwrap()
        .contents;
    for k in &kernels {
        assert!(c.contains(&format!("{k}(")), "{k} not in the C");
    }
    assert_eq!(l["fixed"]["bits"], 8);
}

/// A model with every construct (stacked LSTM, GRU, FastGRNN; unrolled and tiled factors;
/// straight-line and CSR overlays; a softmax head) on a DSP core in int8 and int16.
#[test]
fn every_construct_is_shown() {
    let case = common::everything_model();
    let fx = case.model.write();
    for precision in [Precision::Int8, Precision::Int16] {
        let plan = explain(&fx.spec_path, Stage::Plan, Some(precision)).text;
        for want in [
            "layer 0: lstm",
            "layer 1: gru",
            "layer 2: fastgrnn",
            "layer 3: dense",
            "unrolled",
            "register tile",
            "dual 16-bit MACs",
            "CSR, row pointers u8",
            "straight-line",
        ] {
            assert!(plan.contains(want), "{precision:?}: no `{want}` in\n{plan}");
        }
        let quant = explain(&fx.spec_path, Stage::Quant, Some(precision)).text;
        for want in [
            "gru: gates Q.12",
            "fastgrnn: sigmoid(zeta)",
            "activation softmax",
            "overlay:",
        ] {
            assert!(
                quant.contains(want),
                "{precision:?}: no `{want}` in\n{quant}"
            );
        }
        let lower = explain(&fx.spec_path, Stage::Lower, Some(precision));
        for want in [
            "tiles ",
            "dual MACs over groups of",
            "Σ_(k in",
            "gru cell",
            "fastgrnn cell",
            "softmax(",
        ] {
            assert!(
                lower.text.contains(want),
                "{precision:?}: no `{want}` in\n{}",
                lower.text
            );
        }
        let tables = lower.json["tables"].as_array().unwrap();
        assert!(tables.iter().any(|t| t["elem"] == "u8"), "no index table");
    }
}

#[test]
fn the_command_prints_text_and_json() {
    for stage in ["spec", "model", "plan", "quant", "lower"] {
        let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
            .args(["explain", BUNDLED, "--precision", "int8", "--stage", stage])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{stage}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stdout.is_empty());
        let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
            .args(["explain", BUNDLED, "--json", "--stage", stage])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{stage}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["stage"], stage);
    }
}

/// The spec stage shows a spec that later stages refuse; they refuse it as `build` does.
#[test]
fn a_spec_that_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "name: broken\ninput: {features: 3}\nlayers:\n  - kind: dense\n    units: 2\n    w: missing.npy\n    b: missing_b.npy\n",
    )
    .unwrap();
    let e = explain(&spec, Stage::Spec, None);
    assert!(
        e.text.contains("line   6    w: dense missing.npy"),
        "{}",
        e.text
    );
    let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .args(["explain", spec.to_str().unwrap(), "--stage", "model"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing.npy"), "{err}");
    assert!(o.stdout.is_empty());
    // Nothing was written beside the spec.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
}

/// Three and four factors: the plan names the factor order, both orders' MACs and the temp
/// regions; the report records the factors; the lowered program reads the second region.
#[test]
fn multi_factor_products_show_their_stages() {
    use common::{Act, LayerSpec, ModelSpec, WeightKind};
    let fx = ModelSpec::new(
        "explain_kp3",
        6,
        Some(2),
        vec![
            LayerSpec::lstm(8, WeightKind::Kp3),
            LayerSpec::dense(4, Act::None, WeightKind::Kp4),
        ],
    )
    .write();
    let plan = explain(&fx.spec_path, Stage::Plan, None);
    for want in [
        "(one mode product each), temp",
        "values in two regions",
        "other order",
        "stage 3:",
        "stage 4:",
    ] {
        assert!(plan.text.contains(want), "no `{want}` in\n{}", plan.text);
    }
    let stages = plan.json["layers"][1]["matrices"][0]["product"]["stages"]
        .as_array()
        .unwrap();
    assert_eq!(stages.len(), 4);
    assert_eq!(
        plan.json["layers"][1]["matrices"][0]["product"]["kind"],
        "multi_kron"
    );
    // Stage 2 writes the second region, stage 3 reads it.
    assert!(
        stages[1]["out_offset"].as_u64().unwrap() > 0,
        "{}",
        plan.json
    );
    assert_eq!(stages[2]["in_offset"], stages[1]["out_offset"]);
    let (_, g) = kpgen::Builder::new(&fx.spec_path).generate().unwrap();
    let report: serde_json::Value = serde_json::to_value(&g.report).unwrap();
    let m = &report["layers"][1]["matrices"][0];
    assert_eq!(m["factors"]["dims"].as_array().unwrap().len(), 4, "{m}");
    assert_eq!(m["factor_order"].as_array().unwrap().len(), 4, "{m}");
}
