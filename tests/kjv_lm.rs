//! The language-model pipeline of examples/kjv_lm: its Python unit tests (corpus on a slice,
//! perplexity by hand, every compression method, resumable training), the real corpus against
//! its committed SHA-256 record, and a seconds-long tiny LM (H = 16, a few hundred words) taken
//! through kpgen: its LSTM stack built for the host and for QEMU Cortex-M7 in f32 and int8, the
//! test windows fed through the streaming `step` API (`kpgen test --every-step`), and the
//! perplexity computed from the hidden states the generated C and Rust saved. f32 must give the
//! companion's perplexity to rounding; int8 is reported. Needs `bible` (bible-kjv) and the
//! PyTorch environment, both from ci/setup; fails, never skips, without them.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{repo_root as repo, torch_python as python};

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{log}");
    log
}

fn script(name: &str) -> PathBuf {
    repo().join("examples/kjv_lm").join(name)
}

#[test]
fn python_unit_tests_pass() {
    run(
        Command::new(python())
            .args(["-m", "unittest", "discover", "-s"])
            .arg(repo().join("examples/kjv_lm"))
            .args(["-p", "test_*.py"]),
        "the kjv_lm unit tests",
    );
}

/// The whole corpus, prepared from `bible` here, has the committed sizes and SHA-256.
#[test]
fn corpus_is_reproduced_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let log = run(
        Command::new(python())
            .arg(script("corpus.py"))
            .arg("--out")
            .arg(dir.path())
            .arg("--check"),
        "corpus.py --check",
    );
    assert!(log.contains("identical to"), "{log}");
}

/// RESULTS.md's and README.md's tables are what results.py writes from the committed records
/// (the full table is trained outside CI; this is its script's smoke form).
#[test]
fn results_tables_are_what_the_records_give() {
    let log = run(
        Command::new("python3")
            .arg(script("results.py"))
            .arg("--check")
            .current_dir(repo()),
        "results.py --check",
    );
    assert!(log.contains("agree with RESULTS.md and README.md"), "{log}");
}

fn perplexities(json: &Path) -> (f64, Vec<(String, f64, f64)>) {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let companion = v["companion_perplexity"].as_f64().unwrap();
    let generated = v["generated"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, r)| {
            (
                k.clone(),
                r["perplexity"].as_f64().unwrap(),
                r["max_abs_h_difference"].as_f64().unwrap(),
            )
        })
        .collect();
    (companion, generated)
}

/// Trains a tiny DKP LM on the real corpus, exports its LSTM stack and runs it through kpgen.
#[test]
fn tiny_lm_perplexity_from_the_generated_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("corpus");
    run(
        Command::new(python())
            .arg(script("corpus.py"))
            .arg("--out")
            .arg(&corpus),
        "corpus.py",
    );
    let runs = d.join("run");
    let log = run(
        Command::new(python())
            .arg(script("train.py"))
            .arg("--corpus")
            .arg(&corpus)
            .arg("--out")
            .arg(&runs)
            .args(["--method", "dkp", "--ratio", "4", "--hidden", "16"])
            .args(["--batch", "4", "--bptt", "10", "--epochs", "2"])
            .args(["--limit-tokens", "400", "--eval-tokens", "300"]),
        "train.py",
    );
    assert!(log.contains("valid perplexity"), "{log}");
    let export = d.join("export");
    run(
        Command::new(python())
            .arg(script("export.py"))
            .arg("--corpus")
            .arg(&corpus)
            .arg("--run")
            .arg(&runs)
            .arg("--out")
            .arg(&export)
            .args(["--sequences", "2", "--steps", "6"]),
        "export.py",
    );
    let spec = export.join("spec.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("dope: {shape: [64, 16]"), "{text}");

    let kpgen = env!("CARGO_BIN_EXE_kpgen");

    // The start of the test split streamed through the generated C on the host, as the
    // companion evaluates it (10 columns, state carried): the same perplexity in f32.
    let records = d.join("records");
    let log = run(
        Command::new(python())
            .arg(script("host_eval.py"))
            .env("KPGEN", kpgen)
            .arg("--corpus")
            .arg(&corpus)
            .arg("--run")
            .arg(&runs)
            .args(["--limit", "300", "--record"])
            .arg(&records),
        "host_eval.py",
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(records.join("run-host-test.json")).unwrap())
            .unwrap();
    let f32_rel = v["generated"]["f32"]["relative_to_companion"]
        .as_f64()
        .unwrap();
    let int8_rel = v["generated"]["int8"]["relative_to_companion"]
        .as_f64()
        .unwrap();
    assert!(
        f32_rel.abs() < 1e-4,
        "f32 perplexity off by {f32_rel}:\n{log}"
    );
    assert!(
        int8_rel.abs() < 0.1,
        "int8 perplexity off by {int8_rel}:\n{log}"
    );

    for (platform, precision) in [
        ("host", "f32"),
        ("host", "int8"),
        ("qemu", "f32"),
        ("qemu", "int8"),
    ] {
        let saved = d.join(format!("saved-{platform}-{precision}"));
        let mut cmd = Command::new(kpgen);
        cmd.arg("test")
            .arg(&spec)
            .arg("--inputs")
            .arg(export.join("inputs.npy"))
            .args(["--every-step", "--no-dense", "--precision", precision])
            .arg("--save-outputs")
            .arg(&saved)
            .arg("--work-dir")
            .arg(d.join(format!("work-{platform}-{precision}")));
        if precision != "f32" {
            cmd.arg("--calibrate").arg(export.join("calib.npy"));
        }
        if platform == "host" {
            cmd.args(["--host", "cc"]);
        } else {
            cmd.args(["--target", "cortex-m7"]);
        }
        let log = run(&mut cmd, &format!("kpgen test ({platform}, {precision})"));
        assert!(log.contains("2 passed, 0 failed"), "{log}");

        let json = d.join(format!("ppl-{platform}-{precision}.json"));
        run(
            Command::new(python())
                .arg(script("perplexity.py"))
                .arg("--run")
                .arg(&runs)
                .arg("--export")
                .arg(&export)
                .arg("--hidden")
                .arg(saved.join("model-c.npy"))
                .arg("--hidden")
                .arg(saved.join("model-rust.npy"))
                .arg("--json")
                .arg(&json),
            "perplexity.py",
        );
        let (companion, generated) = perplexities(&json);
        assert_eq!(generated.len(), 2);
        for (file, ppl, h_diff) in generated {
            eprintln!(
                "{platform} {precision} {file}: perplexity {ppl:.4} (companion {companion:.4}), \
                 max |h - h_companion| {h_diff:.2e}"
            );
            assert!(ppl.is_finite() && ppl > 1.0, "{file}: perplexity {ppl}");
            if precision == "f32" {
                // The generated code's float hidden states give the companion's perplexity to
                // rounding (table activations: |h error| a few 1e-5).
                assert!(
                    (ppl - companion).abs() <= 1e-4 * companion,
                    "{platform} {file}: perplexity {ppl}, companion {companion}"
                );
                assert!(
                    h_diff < 2e-4,
                    "{platform} {file}: |h - h_companion| {h_diff}"
                );
            } else {
                // int8: reported beside the float one; it stays within a few percent here.
                assert!(
                    (ppl - companion).abs() <= 0.1 * companion,
                    "{platform} {file}: int8 perplexity {ppl}, companion {companion}"
                );
            }
        }
    }
}
