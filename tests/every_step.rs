//! `kpgen test --every-step` and `--save-outputs`: the generated code's output after every valid
//! step, compared with the references and saved as `.npy` arrays (what a language model's
//! perplexity is computed from), on the bundled basic_motions KP model.
//!
//! Host runs (gcc, C and Rust) in f32 and int8; one QEMU run on the Cortex-M4, whose measured
//! costs must equal those of a run without `--every-step`; and the refusal of a folder kpgen did
//! not write.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kpgen::base::sequences::SplitMix64;
use kpgen::base::tensor::{self, npy_f32_bytes, npy_i32_bytes, Tensor};

const STEPS: usize = 100;
const FEATURES: usize = 6;
const OUTPUTS: usize = 4;
/// Valid steps of the three test sequences: whole, mid-way, and one step.
const LENGTHS: [usize; 3] = [STEPS, 37, 1];

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/basic_motions/kp/spec.yaml")
}

fn kpgen(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(cwd)
        .arg("test")
        .arg(spec())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_passes(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

/// Seeded inputs in [-1, 1) and their lengths, written into `dir` as x.npy and len.npy.
fn write_inputs(dir: &Path) {
    let mut rng = SplitMix64(7);
    let x: Vec<f32> = (0..LENGTHS.len() * STEPS * FEATURES)
        .map(|_| rng.uniform(1.0))
        .collect();
    let lens: Vec<i32> = LENGTHS.iter().map(|&l| l as i32).collect();
    std::fs::write(
        dir.join("x.npy"),
        npy_f32_bytes(&[LENGTHS.len(), STEPS, FEATURES], &x),
    )
    .unwrap();
    std::fs::write(dir.join("len.npy"), npy_i32_bytes(&[LENGTHS.len()], &lens)).unwrap();
}

fn load(path: &Path) -> Tensor {
    tensor::load(path.to_str().unwrap(), Path::new("")).unwrap()
}

/// Element [i, t, k] of a sequences × steps × outputs array.
fn at(t: &Tensor, i: usize, step: usize, k: usize) -> f64 {
    t.data[(i * STEPS + step) * OUTPUTS + k]
}

/// Runs `--every-step` and a plain run on the same inputs and checks what both saved.
/// `codes`: a fixed-point run, which also saves the int32 codes.
fn every_step_against_final(precision: &str, codes: bool, tolerance: f64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_inputs(d);
    let common = [
        "--host",
        "cc",
        "--precision",
        precision,
        "--inputs",
        "x.npy",
        "--lengths",
        "len.npy",
        "--no-dense",
    ];
    let every = kpgen(
        d,
        &[
            &common[..],
            &["--every-step", "--save-outputs", "every", "--out", "out"],
        ]
        .concat(),
    );
    assert_passes(&every);
    let total: usize = LENGTHS.iter().sum();
    assert!(
        text(&every).contains(&format!("{total} outputs compared per run")),
        "{}",
        text(&every)
    );
    let last = kpgen(d, &[&common[..], &["--save-outputs", "last"]].concat());
    assert_passes(&last);

    // report.json counts the compared steps, per run and in all.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/report.json")).unwrap()).unwrap();
    let measured = &report["measured"];
    assert_eq!(measured["sequences"], LENGTHS.len());
    assert_eq!(measured["steps"], total);
    for r in measured["results"].as_array().unwrap() {
        assert_eq!(r["comparison"]["steps"], total, "{r}");
        assert_eq!(r["comparison"]["sequences"], LENGTHS.len(), "{r}");
    }

    let reference = load(&d.join("every/reference.npy"));
    assert_eq!(reference.shape, vec![LENGTHS.len(), STEPS, OUTPUTS]);
    let mut names = vec!["reference.npy".to_owned()];
    for lang in ["c", "rust"] {
        let stem = format!("model-{lang}");
        names.push(format!("{stem}.npy"));
        let steps = load(&d.join(format!("every/{stem}.npy")));
        let finals = load(&d.join(format!("last/{stem}.npy")));
        assert_eq!(steps.shape, vec![LENGTHS.len(), STEPS, OUTPUTS], "{stem}");
        assert_eq!(finals.shape, vec![LENGTHS.len(), OUTPUTS], "{stem}");
        let step_codes = codes.then(|| {
            names.push(format!("{stem}-codes.npy"));
            let c = load(&d.join(format!("every/{stem}-codes.npy")));
            let f = load(&d.join(format!("last/{stem}-codes.npy")));
            assert_eq!(c.shape, vec![LENGTHS.len(), STEPS, OUTPUTS], "{stem}");
            assert_eq!(f.shape, vec![LENGTHS.len(), OUTPUTS], "{stem}");
            (c, f)
        });
        for (i, &len) in LENGTHS.iter().enumerate() {
            for t in 0..STEPS {
                for k in 0..OUTPUTS {
                    let (y, r) = (at(&steps, i, t, k), at(&reference, i, t, k));
                    if t >= len {
                        assert!(y.is_nan() && r.is_nan(), "{stem} [{i},{t},{k}] not padded");
                        if let Some((c, _)) = &step_codes {
                            assert_eq!(at(c, i, t, k), f64::from(i32::MIN));
                        }
                        continue;
                    }
                    assert!(
                        (y - r).abs() <= tolerance * r.abs().max(1.0),
                        "{stem} [{i},{t},{k}]: {y} against the reference's {r}"
                    );
                }
            }
            // The last valid step is what the run without --every-step computed, bit for bit.
            for k in 0..OUTPUTS {
                let (y, f) = (at(&steps, i, len - 1, k), finals.data[i * OUTPUTS + k]);
                assert_eq!(
                    (y as f32).to_bits(),
                    (f as f32).to_bits(),
                    "{stem} sequence {i} output {k}"
                );
                if let Some((c, fc)) = &step_codes {
                    assert_eq!(at(c, i, len - 1, k), fc.data[i * OUTPUTS + k]);
                }
            }
        }
    }
    // Exactly the files announced, plus kpgen's manifest.
    names.push(".kpgen-manifest.json".to_owned());
    names.sort();
    let mut found: Vec<String> = std::fs::read_dir(d.join("every"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names);
}

#[test]
fn host_f32_every_step_is_saved_padded_and_ends_where_a_plain_run_does() {
    every_step_against_final("f32", false, 1e-4);
}

#[test]
fn host_int8_every_step_is_bit_exact_and_saves_the_codes() {
    // The dequantized int8 outputs carry the quantization error (reported, not judged by
    // kpgen test); the integer reference is checked bit for bit by kpgen itself.
    every_step_against_final("int8", true, 0.25);
}

#[test]
fn save_outputs_refuses_a_folder_kpgen_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let o = kpgen(
        dir.path(),
        &["--host", "cc", "--count", "1", "--save-outputs", "mine"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("--save-outputs"), "{t}");
    assert!(t.contains("no kpgen manifest"), "{t}");
    assert!(t.contains("nothing was written"), "{t}");
    // Refused before running: nothing built, the folder as it was.
    assert!(!t.contains("built and ran"), "{t}");
    let entries: Vec<_> = std::fs::read_dir(&mine).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );
    // Nor may it overlap --out.
    let o = kpgen(
        dir.path(),
        &[
            "--host",
            "cc",
            "--count",
            "1",
            "--out",
            "o",
            "--save-outputs",
            "o/saved",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("overlap"), "{}", text(&o));
    assert!(!dir.path().join("o").exists());
}

#[test]
fn qemu_every_step_passes_and_leaves_the_measured_cost_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let every = kpgen(
        d,
        &[
            "--target",
            "cortex-m4",
            "--count",
            "2",
            "--no-dense",
            "--every-step",
            "--save-outputs",
            "saved",
            "--out",
            "every",
        ],
    );
    assert_passes(&every);
    assert!(
        text(&every).contains(&format!("{} outputs compared per run", 2 * STEPS)),
        "{}",
        text(&every)
    );
    let saved = load(&d.join("saved/model-c.npy"));
    assert_eq!(saved.shape, vec![2, STEPS, OUTPUTS]);
    assert!(saved.data.iter().all(|v| v.is_finite()));
    let plain = kpgen(
        d,
        &[
            "--target",
            "cortex-m4",
            "--count",
            "2",
            "--no-dense",
            "--out",
            "plain",
        ],
    );
    assert_passes(&plain);
    let cost = |out: &str, lang: &str| -> serde_json::Value {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(out).join("report.json")).unwrap(),
        )
        .unwrap();
        let c = report["measured"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["lang"] == lang)
            .unwrap()["cost"]
            .clone();
        assert!(c["instructions_per_step"].as_u64().unwrap() > 0, "{c}");
        c
    };
    for lang in ["c", "rust"] {
        let (e, p) = (cost("every", lang), cost("plain", lang));
        assert_eq!(e, p, "{lang}: the cost with --every-step, then without");
    }
}
