//! Sparse matrices given as their non-zeros (issue 29): a doping overlay or a pruned weight
//! written as a scipy.sparse `save_npz` file (CSR, CSC, COO) or as explicit index arrays (from
//! an `.npz` or a `.safetensors` file) is the same model as the full-size matrix it compresses,
//! so every precision generates byte-identical code (for one model in all six forms, and for
//! every bundled example and conformance model with an overlay or a pruned weight, the forms
//! taken in turn); and `kpgen test --host` passes on one.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    nonzeros, scipy_members, write_npz, write_safetensors, Act, LayerSpec, ModelSpec, Npy,
    WeightKind,
};
use kpgen::spec::Precision;

/// Straight-line and CSR doping overlays, a doped hybrid three-factor product, and a pruned
/// weight.
fn overlay_model() -> ModelSpec {
    ModelSpec::new(
        "sparse_forms",
        6,
        Some(3),
        vec![
            LayerSpec::lstm(16, WeightKind::Dkp).with("w_hh", WeightKind::DkpCsr),
            LayerSpec::gru(8, WeightKind::Dhkp3),
            LayerSpec::dense(4, Act::None, WeightKind::Sparse),
        ],
    )
}

/// The forms a test writes for each full-size overlay: the compact ones, and the full matrix as
/// the one member of an `.npz` (not a scipy.sparse file, so read as a full-size matrix).
const FORMS: [&str; 6] = [
    "scipy_csr",
    "scipy_csc",
    "scipy_coo",
    "coo_map",
    "csr_map_safetensors",
    "full_npz",
];

/// Writes the full-size matrix `file` (in `dir`) in compact `form` and returns the spec value
/// naming it.
fn compact(dir: &Path, file: &str, form: &str) -> String {
    let t = kpgen::base::tensor::load(file, dir).unwrap();
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let entries = nonzeros(cols, &t.data);
    let stem = file.trim_end_matches(".npy");
    match form {
        "scipy_csr" | "scipy_csc" | "scipy_coo" => {
            let format = &form[6..];
            let mut entries = entries;
            // COO in any order: written last to first.
            if format == "coo" {
                entries.reverse();
            }
            let name = format!("{stem}_{format}.npz");
            let members = scipy_members(format, rows, cols, &entries);
            write_npz(&dir.join(&name), &members, format == "csr");
            name
        }
        "coo_map" => {
            let name = format!("{stem}_parts.npz");
            let r: Vec<i64> = entries.iter().map(|e| e.0 as i64).collect();
            let c: Vec<i64> = entries.iter().map(|e| e.1 as i64).collect();
            let v: Vec<f32> = entries.iter().map(|e| e.2).collect();
            write_npz(
                &dir.join(&name),
                &[
                    ("r", Npy::i64(&r)),
                    ("c", Npy::i64(&c)),
                    ("v", Npy::f32(&v)),
                ],
                false,
            );
            format!("{{shape: [{rows}, {cols}], values: {name}:v, rows: {name}:r, cols: {name}:c}}")
        }
        "csr_map_safetensors" => {
            // Each row's columns last to first: unsorted CSR, which kpgen sorts.
            let mut indptr = vec![0i64];
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for r in 0..rows {
                for e in entries.iter().filter(|e| e.0 == r).rev() {
                    indices.push(e.1 as i64);
                    values.push(e.2);
                }
                indptr.push(indices.len() as i64);
            }
            let name = format!("{stem}.safetensors");
            write_safetensors(
                &dir.join(&name),
                &[
                    ("indptr", Npy::i32(&indptr)),
                    ("indices", Npy::i32(&indices)),
                    ("values", Npy::f32(&values)),
                ],
            );
            format!(
                "{{shape: [{rows}, {cols}], values: {name}:values, indptr: {name}:indptr, \
                 indices: {name}:indices}}"
            )
        }
        "full_npz" => {
            let name = format!("{stem}_full.npz");
            let data: Vec<f32> = t.data.iter().map(|&v| v as f32).collect();
            write_npz(
                &dir.join(&name),
                &[("S", Npy::f32(&data).shaped(&[rows, cols]))],
                true,
            );
            name
        }
        f => panic!("no form {f}"),
    }
}

/// The spec text with every full-size `dope:` and `sparse:` matrix written in `form`.
fn compact_spec(dir: &Path, spec: &str, form: &str) -> String {
    let (out, replaced) = compact_spec_with(dir, spec, |_| form);
    assert!(replaced >= 4, "only {replaced} sparse matrices in:\n{spec}");
    out
}

/// The spec text with the k-th full-size `dope:` or `sparse:` matrix written in `form(k)`, and
/// how many there were.
fn compact_spec_with<'f>(
    dir: &Path,
    spec: &str,
    form: impl Fn(usize) -> &'f str,
) -> (String, usize) {
    let mut out = spec.to_owned();
    let mut replaced = 0;
    for key in ["dope: ", "sparse: "] {
        for (i, _) in spec.match_indices(key) {
            let rest = &spec[i + key.len()..];
            let end = rest.find(['}', ',', '\n']).unwrap_or(rest.len());
            let file = rest[..end].trim();
            let value = compact(dir, file, form(replaced));
            out = out.replacen(&format!("{key}{file}"), &format!("{key}{value}"), 1);
            replaced += 1;
        }
    }
    (out, replaced)
}

fn generate(spec: &Path, precision: Precision) -> kpgen::Generation {
    let mut model = kpgen::load(spec).unwrap_or_else(|d| panic!("{}", d.render()));
    model.precision = precision;
    kpgen::generate_model(&model, &common::target()).unwrap_or_else(|d| panic!("{}", d.render()))
}

/// Every file `compact` generates equals the one `full` generates, in every precision.
fn assert_same_code(full: &Path, compact: &Path, what: &str) {
    for precision in [Precision::F32, Precision::Int8, Precision::Int16] {
        let want = generate(full, precision);
        let got = generate(compact, precision);
        let paths =
            |g: &kpgen::Generation| g.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&got), paths(&want), "{what} {precision:?}");
        for (g, w) in got.files.iter().zip(&want.files) {
            assert!(
                g.contents == w.contents,
                "{what} {precision:?}: {} differs from the full-matrix build",
                g.path
            );
        }
    }
}

/// Every bundled example and conformance model that has a doping overlay or a pruned weight,
/// with each of them in another form (the forms taken in turn), generates the same files as
/// from its full-size matrices.
#[test]
fn every_example_and_conformance_model_with_an_overlay_generates_the_same_code() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = Vec::new();
    let mut turn = 0;
    let mut check = |dir: &Path, name: String, checked: &mut Vec<String>| {
        let full = dir.join("spec.yaml");
        let text = std::fs::read_to_string(&full).unwrap();
        let (compact, n) = compact_spec_with(dir, &text, |k| FORMS[(turn + k) % FORMS.len()]);
        if n == 0 {
            return;
        }
        turn += n;
        let path = dir.join("compact.yaml");
        std::fs::write(&path, compact).unwrap();
        assert_same_code(&full, &path, &name);
        checked.push(name);
    };
    for set in ["basic_motions", "digits", "japanese_vowels"] {
        for entry in std::fs::read_dir(examples.join(set)).unwrap() {
            let from = entry.unwrap().path();
            if !from.join("spec.yaml").is_file() {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            for file in std::fs::read_dir(&from).unwrap() {
                let file = file.unwrap().path();
                if file.is_file() {
                    std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
                }
            }
            let name = format!("{set}/{}", from.file_name().unwrap().to_string_lossy());
            check(dir.path(), name, &mut checked);
        }
    }
    let examples_checked = checked.len();
    for case in common::all_cases()
        .into_iter()
        .chain(common::coverage_cases())
    {
        let dir = tempfile::tempdir().unwrap();
        case.model.write_into(dir.path());
        check(dir.path(), case.model.name.clone(), &mut checked);
    }
    eprintln!("same code from the compact forms: {}", checked.join(", "));
    assert!(examples_checked >= 6, "{checked:?}");
    assert!(checked.len() >= examples_checked + 10, "{checked:?}");
}

#[test]
fn compact_forms_generate_the_same_code_as_full_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let full = overlay_model().write_into(dir.path());
    let text = std::fs::read_to_string(&full).unwrap();
    let specs: Vec<(&str, std::path::PathBuf)> = FORMS
        .iter()
        .map(|form| {
            let path = dir.path().join(format!("spec_{form}.yaml"));
            std::fs::write(&path, compact_spec(dir.path(), &text, form)).unwrap();
            (*form, path)
        })
        .collect();
    for precision in [Precision::F32, Precision::Int8, Precision::Int16] {
        let want = generate(&full, precision);
        let features = common::plan_features(&want.plan);
        assert!(
            features.contains(&common::Feature::OverlayCsr)
                && features.contains(&common::Feature::OverlayStraightLine)
                && features.contains(&common::Feature::Sparse),
            "{features:?}"
        );
        for (form, spec) in &specs {
            let got = generate(spec, precision);
            assert_eq!(
                got.files.len(),
                want.files.len(),
                "{form} {precision:?}: file count"
            );
            for (g, w) in got.files.iter().zip(&want.files) {
                assert_eq!(g.path, w.path, "{form} {precision:?}");
                assert!(
                    g.contents == w.contents,
                    "{form} {precision:?}: {} differs from the full-matrix build",
                    g.path
                );
            }
        }
    }
}

#[test]
fn kpgen_test_passes_on_a_scipy_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let full = overlay_model().write_into(dir.path());
    let text = std::fs::read_to_string(&full).unwrap();
    std::fs::write(
        dir.path().join("compact.yaml"),
        compact_spec(dir.path(), &text, "scipy_csr"),
    )
    .unwrap();
    for precision in ["f32", "int8"] {
        let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
            .current_dir(dir.path())
            .args([
                "test",
                "compact.yaml",
                "--host",
                "cc",
                "--count",
                "2",
                "--precision",
                precision,
            ])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains("4 passed, 0 failed"),
            "{precision}: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `kpgen explain --stage model` shows each overlay's non-zeros and density, whichever form it
/// was given in; the spec view shows the map form's arrays.
#[test]
fn explain_shows_the_non_zeros_and_density() {
    let dir = tempfile::tempdir().unwrap();
    let full = overlay_model().write_into(dir.path());
    let text = std::fs::read_to_string(&full).unwrap();
    std::fs::write(
        dir.path().join("compact.yaml"),
        compact_spec(dir.path(), &text, "coo_map"),
    )
    .unwrap();
    let explain = |spec: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
            .current_dir(dir.path())
            .args(["explain", spec])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    for spec in ["spec.yaml", "compact.yaml"] {
        let model = explain(spec, &["--stage", "model"]);
        // w_hh of the LSTM: 129 non-zeros of 64 x 16 (CSR); the pruned head keeps 10%.
        assert!(model.contains("+ S (129 non-zeros, 12.60%)"), "{model}");
        assert!(
            model.contains("w 4x8: sparse (3 non-zeros, 9.38%)"),
            "{model}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&explain(spec, &["--stage", "model", "--json"])).unwrap();
        let w_hh = &json["layers"][0]["weights"][1];
        assert_eq!(w_hh["nnz"], 129, "{w_hh}");
        assert!((w_hh["density"].as_f64().unwrap() - 129.0 / 1024.0).abs() < 1e-12);
    }
    let spec = explain("compact.yaml", &["--stage", "spec"]);
    assert!(
        spec.contains("dope {shape [64, 16], values l0_w_hh_S_parts.npz:v, rows l0_w_hh_S_parts.npz:r, cols l0_w_hh_S_parts.npz:c}"),
        "{spec}"
    );
}

/// Any matrix may be a scipy.sparse file: a plain weight and a Kronecker factor given so are
/// expanded and generate what their `.npy` files do; one declaring a shape too large to expand
/// is refused without allocating it.
#[test]
fn any_matrix_may_be_a_scipy_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = ModelSpec::new(
        "scipy_any",
        6,
        Some(3),
        vec![
            LayerSpec::lstm(8, WeightKind::Kp),
            LayerSpec::dense(4, Act::None, WeightKind::Dense),
        ],
    )
    .write_into(dir.path());
    let text = std::fs::read_to_string(&full).unwrap();
    let mut compact = text.clone();
    for (file, format) in [("l0_w_hh_A.npy", "coo"), ("l1_w.npy", "csc")] {
        assert!(text.contains(file), "{text}");
        let t = kpgen::base::tensor::load(file, dir.path()).unwrap();
        let name = file.replace(".npy", ".npz");
        let members = scipy_members(
            format,
            t.shape[0],
            t.shape[1],
            &nonzeros(t.shape[1], &t.data),
        );
        write_npz(&dir.path().join(&name), &members, true);
        compact = compact.replacen(file, &name, 1);
    }
    let path = dir.path().join("compact.yaml");
    std::fs::write(&path, &compact).unwrap();
    assert_same_code(&full, &path, "scipy factor and dense weight");

    // 100000 x 100000 declared, one value: refused as a dense matrix, not allocated.
    let members = scipy_members("csr", 100_000, 100_000, &[(0, 0, 1.0)]);
    write_npz(&dir.path().join("huge.npz"), &members, true);
    std::fs::write(&path, compact.replacen("l1_w.npz", "huge.npz", 1)).unwrap();
    let err = kpgen::load(&path)
        .unwrap_err()
        .render()
        .replace("\n  │ ", " ");
    assert!(
        err.contains("holds a 100000x100000 sparse matrix") && err.contains("layers[1].w"),
        "{err}"
    );
}

/// Files scipy 1.17 wrote with `scipy.sparse.save_npz` (`format` a `|S3` byte string, `shape`
/// int64, int32 indices, `_is_array` beside a sparse array; the fuzz corpus keeps them) read as
/// the matrix they hold: [[0, 1.5, 0], [2, 0, -3]].
#[test]
fn scipy_written_files_read_back() {
    use kpgen::base::input::Reader;
    use kpgen::base::sparse::{assemble, read_scipy};
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/npz");
    let want = [(0, 1, 1.5), (1, 0, 2.0), (1, 2, -3.0)];
    for file in ["scipy_csr.npz", "scipy_csc.npz", "scipy_coo.npz"] {
        let stored = read_scipy(&Reader::disk(), &corpus.join(file), file)
            .unwrap()
            .unwrap_or_else(|| panic!("{file} is not read as a scipy.sparse file"));
        let m = assemble(&stored).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3), "{file}");
        assert_eq!(m.entries, want, "{file}");
    }
    // A COO file as newer scipy may write it: one 2 x nnz `coords` instead of `row` and `col`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coords.npz");
    write_npz(
        &path,
        &[
            ("format", Npy::text("coo")),
            ("shape", Npy::i64(&[2, 3])),
            ("coords", Npy::i64(&[1, 0, 2, 1]).shaped(&[2, 2])),
            ("data", Npy::f32(&[-3.0, 1.5])),
        ],
        false,
    );
    let stored = read_scipy(&Reader::disk(), &path, "coords.npz")
        .unwrap()
        .unwrap();
    assert_eq!(assemble(&stored).unwrap().entries, [want[0], want[2]]);
}
