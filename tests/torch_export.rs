//! The PyTorch path: examples/torch/train_export.py trains a doped-KP LSTM and GRU (and a
//! hybrid-KP LSTM) in PyTorch on the digits data set and exports .safetensors + spec; kpgen's float reference reproduces
//! PyTorch's logits and classes, and `kpgen test` proves the generated C and Rust equal that
//! reference. Needs the PyTorch environment `ci/setup` creates (target/torch-venv); fails,
//! never skips, without it.

use std::process::Command;

use kpgen::base::sequences::TestInputs;
use kpgen::verify::reference_outputs;

mod common;

use common::{repo_root as repo, torch_python as python};

#[test]
fn kpgen_reproduces_a_pytorch_lstm() {
    reproduce("lstm");
}

#[test]
fn kpgen_reproduces_a_pytorch_gru() {
    reproduce("gru");
}

/// Hybrid KP: the LSTM's input matrix keeps its first 16 rows dense over a (6x2) ⊗ (8x4).
#[test]
fn kpgen_reproduces_a_pytorch_hybrid_lstm() {
    reproduce_with("lstm", &["--dense-rows", "16"]);
}

fn reproduce(cell: &str) {
    reproduce_with(cell, &[]);
}

fn reproduce_with(cell: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let run = Command::new(python())
        .arg(repo().join("examples/torch/train_export.py"))
        .args(["--cell", cell, "--epochs", "3"])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "train_export.py failed:\n{log}");

    // kpgen's f64 reference against PyTorch's float32 forward pass (exact activations, as
    // PyTorch computes them; the default table activations are held to these by
    // tests/examples.rs).
    let spec = out.join("spec.yaml");
    let mut model = kpgen::load(&spec).unwrap_or_else(|e| panic!("{}", e.render()));
    model.activations = kpgen::spec::Activations::Exact;
    if extra.contains(&"--dense-rows") {
        let w_ih = model.layers[0].cell.weights()[0];
        assert_eq!(w_ih.kind_name(), "hkp", "{}", w_ih.describe());
    }
    let inputs = TestInputs::from_file(&out.join("test_x.npy"), model.steps, model.input_features)
        .and_then(|i| i.with_lengths(&out.join("test_len.npy")))
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let reference = reference_outputs(&model, &inputs);
    let torch = kpgen::base::tensor::load("torch_logits.npy", &out).unwrap();
    let classes = model.output_size();
    assert_eq!(torch.shape, [reference.len(), classes]);
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let mut worst = 0.0f64;
    for (s, r) in reference.iter().enumerate() {
        let t = &torch.data[s * classes..(s + 1) * classes];
        for (a, b) in r.iter().zip(t) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        assert_eq!(argmax(r), argmax(t), "sequence {s}: classes differ");
    }
    assert!(
        worst < 1e-4,
        "reference vs PyTorch: relative error {worst:.2e}"
    );

    // The generated C and Rust against the reference, and the accuracy PyTorch reported.
    let test = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .arg("test")
        .arg(&spec)
        .arg("--inputs")
        .arg(out.join("test_x.npy"))
        .arg("--lengths")
        .arg(out.join("test_len.npy"))
        .arg("--labels")
        .arg(out.join("test_y.npy"))
        .args(["--host", "cc", "--no-dense", "--activations", "exact"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "kpgen test:\n{stdout}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let torch_accuracy = metrics["torch_accuracy"].as_f64().unwrap();
    assert!(
        stdout.contains(&format!("reference {:.2}%", 100.0 * torch_accuracy)),
        "accuracy differs from PyTorch's {torch_accuracy}:\n{stdout}"
    );
}
