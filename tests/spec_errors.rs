//! Bad input is refused with a message naming the file, line and field, exit code 2, and
//! nothing written. Each case's full rendered diagnostic is an insta snapshot.

use std::path::Path;
use std::process::Command;

use kpgen::base::tensor::{npy_f32_bytes, write_npy_f32};

/// A directory holding valid tensors for a small LSTM (6 features, 8 units) with a dense head.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("f")).unwrap();
    let fill = |n: usize| {
        (0..n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 20.0)
            .collect::<Vec<_>>()
    };
    let t = |name: &str, shape: &[usize]| {
        let n = shape.iter().product();
        write_npy_f32(&d.join("f").join(name), shape, &fill(n)).unwrap();
    };
    t("A_ih.npy", &[4, 3]);
    t("B_ih.npy", &[8, 2]);
    t("A_hh.npy", &[4, 2]);
    t("B_hh.npy", &[8, 4]);
    t("S_hh.npy", &[32, 8]);
    t("S_small.npy", &[8, 8]);
    t("b.npy", &[32]);
    t("b_short.npy", &[30]);
    t("W_ih.npy", &[32, 6]);
    t("W_out.npy", &[4, 8]);
    t("b_out.npy", &[4]);
    t("vec.npy", &[5]);
    t("one.npy", &[1, 1]);
    // Hybrid KP of w_ih (32x6): 8 dense rows over (4x3) ⊗ (6x2).
    t("U_ih.npy", &[8, 6]);
    t("U_wide.npy", &[8, 5]);
    t("A_rest.npy", &[4, 3]);
    t("B_rest.npy", &[6, 2]);
    // A NaN in the middle of a factor.
    let mut nan = fill(8);
    nan[5] = f32::NAN;
    write_npy_f32(&d.join("f/A_nan.npy"), &[4, 2], &nan).unwrap();
    // Truncated: the header promises 32 values, the file holds 20.
    let full = npy_f32_bytes(&[8, 4], &fill(32));
    std::fs::write(d.join("f/B_short.npy"), &full[..full.len() - 48]).unwrap();
    // int32 values where floats are expected.
    let mut ints = npy_f32_bytes(&[4, 2], &fill(8));
    let pos = ints.windows(3).position(|w| w == b"<f4").unwrap();
    ints[pos..pos + 3].copy_from_slice(b"<i4");
    std::fs::write(d.join("f/A_int.npy"), ints).unwrap();
    // A directory where a file is expected.
    std::fs::create_dir(d.join("f/dir.npy")).unwrap();
    dir
}

const GOOD: &str = "name: motion
input: {features: 6, steps: 10}
layers:
  - kind: lstm
    units: 8
    w_ih: {kron: [f/A_ih.npy, f/B_ih.npy]}
    w_hh: {kron: [f/A_hh.npy, f/B_hh.npy], dope: f/S_hh.npy}
    b_ih: f/b.npy
    b_hh: f/b.npy
  - kind: dense
    units: 4
    w: f/W_out.npy
    b: f/b_out.npy
    activation: softmax
";

/// Runs `kpgen build` on `spec` in `dir`; returns (exit code, stderr).
fn build(dir: &Path, spec: &str) -> (i32, String) {
    std::fs::write(dir.join("spec.yaml"), spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir)
        .args(["build", "spec.yaml", "--out", "out"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Applies `edit` to the good spec, checks the refusal, returns the message.
fn refused(edit: impl Fn(&str) -> String) -> String {
    let dir = fixture();
    let (code, stderr) = build(dir.path(), &edit(GOOD));
    assert_eq!(code, 2, "expected exit code 2, stderr:\n{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "a refused build must write nothing"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    stderr
}

macro_rules! case {
    ($name:ident, $edit:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(refused($edit));
        }
    };
}

fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |s: &str| {
        assert!(s.contains(from), "fixture lacks `{from}`");
        s.replacen(from, to, 1)
    }
}

#[test]
fn the_good_spec_builds() {
    let dir = fixture();
    let (code, stderr) = build(dir.path(), GOOD);
    assert_eq!(code, 0, "{stderr}");
    for f in [
        "c/motion.h",
        "c/motion.c",
        "rust/Cargo.toml",
        "rust/src/lib.rs",
        "report.json",
    ] {
        assert!(dir.path().join("out").join(f).is_file(), "missing {f}");
    }
}

case!(
    malformed_yaml,
    replace(
        "input: {features: 6, steps: 10}",
        "input: {features: 6, steps: 10"
    )
);
case!(
    unknown_top_level_field,
    replace("name: motion\n", "name: motion\nprecison: int8\n")
);
case!(
    unknown_layer_field,
    replace("    units: 8\n", "    units: 8\n    dropout: 0.1\n")
);
case!(
    unknown_layer_kind,
    replace("kind: lstm", "kind: transformer")
);
case!(
    unknown_activation,
    replace("activation: softmax", "activation: swish")
);
case!(wrong_type, replace("units: 8", "units: many"));
case!(missing_file, replace("f/A_ih.npy", "f/nope.npy"));
case!(unreadable_file, replace("f/A_ih.npy", "f/dir.npy"));
case!(truncated_tensor, replace("f/B_hh.npy", "f/B_short.npy"));
case!(non_float_tensor, replace("f/A_hh.npy", "f/A_int.npy"));
case!(nan_value, replace("f/A_hh.npy", "f/A_nan.npy"));
case!(unknown_extension, replace("f/A_ih.npy", "f/A_ih.csv"));
case!(
    factors_do_not_multiply_out,
    replace("[f/A_ih.npy, f/B_ih.npy]", "[f/A_hh.npy, f/B_ih.npy]")
);
case!(
    three_factors,
    replace(
        "[f/A_ih.npy, f/B_ih.npy]",
        "[f/A_ih.npy, f/B_ih.npy, f/B_ih.npy]"
    )
);
case!(
    one_factor,
    replace("[f/A_ih.npy, f/B_ih.npy]", "[f/A_ih.npy]")
);
case!(
    scalar_factor,
    replace(
        "[f/A_ih.npy, f/B_ih.npy]",
        "[f/A_ih.npy, f/B_ih.npy, f/one.npy]"
    )
);
case!(
    dense_rows_wrong_columns,
    replace(
        "{kron: [f/A_ih.npy, f/B_ih.npy]}",
        "{kron: [f/A_rest.npy, f/B_rest.npy], dense_rows: f/U_wide.npy}"
    )
);
case!(
    dense_rows_all_rows,
    replace(
        "{kron: [f/A_ih.npy, f/B_ih.npy]}",
        "{kron: [f/A_rest.npy, f/B_rest.npy], dense_rows: f/W_ih.npy}"
    )
);
case!(
    dense_rows_product_misses_the_rest,
    replace(
        "{kron: [f/A_ih.npy, f/B_ih.npy]}",
        "{kron: [f/A_ih.npy, f/B_ih.npy], dense_rows: f/U_ih.npy}"
    )
);
case!(
    dense_rows_without_kron,
    replace(
        "{kron: [f/A_ih.npy, f/B_ih.npy]}",
        "{lowrank: [f/A_ih.npy, f/B_ih.npy], dense_rows: f/U_ih.npy}"
    )
);
case!(units_disagree_with_tensor, replace("units: 8", "units: 16"));
case!(
    dense_weight_wrong_shape,
    replace("w: f/W_out.npy", "w: f/W_ih.npy")
);
case!(
    two_weight_forms,
    replace(
        "w_ih: {kron: [f/A_ih.npy, f/B_ih.npy]}",
        "w_ih: {kron: [f/A_ih.npy, f/B_ih.npy], sparse: f/W_ih.npy}"
    )
);
case!(
    lowrank_wrong_shape,
    replace(
        "w_ih: {kron: [f/A_ih.npy, f/B_ih.npy]}",
        "w_ih: {lowrank: [f/A_ih.npy, f/B_ih.npy]}"
    )
);
case!(
    sparse_wrong_shape,
    replace("w: f/W_out.npy", "w: {sparse: f/W_ih.npy}")
);
case!(
    overlay_wrong_shape,
    replace("dope: f/S_hh.npy", "dope: f/S_small.npy")
);
case!(
    bias_wrong_length,
    replace("b_ih: f/b.npy", "b_ih: f/b_short.npy")
);
case!(
    missing_required_field,
    replace(
        "    w_hh: {kron: [f/A_hh.npy, f/B_hh.npy], dope: f/S_hh.npy}\n",
        ""
    )
);
case!(
    field_of_another_kind,
    replace(
        "    b_hh: f/b.npy\n",
        "    b_hh: f/b.npy\n    activation: relu\n"
    )
);
case!(invalid_name, replace("name: motion", "name: 3d-motion"));
case!(reserved_name, replace("name: motion", "name: static"));
case!(zero_features, replace("features: 6", "features: 0"));
case!(
    unknown_precision,
    replace("name: motion\n", "name: motion\nprecision: int4\n")
);
case!(
    unknown_activations,
    replace("name: motion\n", "name: motion\nactivations: fast\n")
);
case!(
    unknown_optimize,
    replace("name: motion\n", "name: motion\noptimize: fast\n")
);
case!(
    missing_calibration_file,
    replace(
        "name: motion\n",
        "name: motion\nprecision: int8\ncalibration: f/missing_calib.npy\n"
    )
);
case!(
    calibration_wrong_shape,
    replace(
        "name: motion\n",
        "name: motion\nprecision: int16\ncalibration: f/b.npy\n"
    )
);
case!(no_layers, |_: &str| {
    "name: motion\ninput: {features: 6}\nlayers: []\n".to_owned()
});
case!(several_problems_at_once, |s: &str| s
    .replacen("f/A_ih.npy", "f/nope.npy", 1)
    .replacen("b_ih: f/b.npy", "b_ih: f/b_short.npy", 1)
    .replacen("w: f/W_out.npy", "w: f/vec.npy", 1));

#[test]
fn a_failed_build_leaves_the_previous_output_untouched() {
    let dir = fixture();
    let (code, _) = build(dir.path(), GOOD);
    assert_eq!(code, 0);
    let header = std::fs::read_to_string(dir.path().join("out/c/motion.h")).unwrap();
    let (code, _) = build(dir.path(), &GOOD.replace("f/A_ih.npy", "f/nope.npy"));
    assert_eq!(code, 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/c/motion.h")).unwrap(),
        header
    );
}

#[test]
fn a_directory_that_is_not_kpgen_output_is_not_replaced() {
    let dir = fixture();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/notes.txt"), "mine").unwrap();
    let (code, stderr) = build(dir.path(), GOOD);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds no kpgen manifest"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn an_unknown_target_is_refused() {
    let dir = fixture();
    std::fs::write(dir.path().join("spec.yaml"), GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir.path())
        .args([
            "build",
            "spec.yaml",
            "--target",
            "cortex-m99",
            "--out",
            "out",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown target `cortex-m99`"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}

/// `kpgen bench` with `args` in a fresh folder; returns (exit code, stderr). Every case here
/// is refused before anything is built or fetched.
fn bench(args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let dir = fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir.path())
        .arg("bench")
        .args(args)
        .args(["--work-dir", "work"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    )
}

#[test]
fn bench_refuses_bad_layers_targets_and_baselines_with_exit_2() {
    let (code, stderr, dir) = bench(&["--layer", "16x16"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read layer `16x16`") && stderr.contains("MxN*PxQ"),
        "{stderr}"
    );
    assert!(!dir.path().join("work").exists(), "nothing built");
    let (code, stderr, _) = bench(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nothing to benchmark"), "{stderr}");
    let (code, stderr, _) = bench(&["--layer", "4x4*4x4", "--target", "cortex-m99"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown target `cortex-m99`"), "{stderr}");
    let (code, stderr, _) = bench(&["--layer", "4x4*4x4", "--check", "missing.json"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read the baseline missing.json"),
        "{stderr}"
    );
    let (code, stderr, _) = bench(&["--spec", "missing.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    // A baseline measured with another compiler is no baseline for this run.
    let dir = fixture();
    std::fs::write(
        dir.path().join("gcc.json"),
        r#"{"cmsis_dsp": "not run", "measurements": []}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir.path())
        .args([
            "bench", "--layer", "4x4*4x4", "--cc", "clang", "--check", "gcc.json",
        ])
        .args(["--work-dir", "work"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("measured with --cc gcc, this run would use --cc clang"),
        "{stderr}"
    );
    assert!(!dir.path().join("work").exists(), "nothing built");
    let (code, stderr, _) = bench(&["--layer", "4x4*4x4", "--cc", "icc"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("possible values: gcc, clang"), "{stderr}");
}

#[test]
fn bench_model_refuses_missing_models_bad_shapes_and_bad_cmsis_nn_trees_with_exit_2() {
    let (code, stderr, dir) = bench(&["--model"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--spec files or --lstm shapes"), "{stderr}");
    assert!(!dir.path().join("work").exists(), "nothing built");
    let (code, stderr, _) = bench(&["--model", "--lstm", "40x"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad LSTM shape `40x`") && stderr.contains("INPUTSxUNITS"),
        "{stderr}"
    );
    let (code, stderr, _) = bench(&["--model", "--lstm", "6x32", "--cmsis-nn", "nowhere"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a CMSIS-NN source tree"), "{stderr}");
    // --cmsis-nn and --lstm belong to --model.
    let (code, stderr, _) = bench(&["--layer", "4x4*4x4", "--cmsis-nn", "nowhere"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--model"), "{stderr}");
}
