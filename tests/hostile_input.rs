//! Hostile and careless input, end to end through the CLI: every case is refused with exit 2
//! and a message in kpgen's words, never hangs, never panics, and writes nothing; what is
//! accepted compiles. (Output-folder safety has its own file, output_safety.rs.)

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Kind, LayerSpec, ModelSpec, WeightKind};

fn model_in(dir: &Path) -> PathBuf {
    ModelSpec::new(
        "hostile",
        4,
        Some(3),
        vec![LayerSpec::new(Kind::Lstm, 4, WeightKind::Kp)],
    )
    .write_into(dir)
}

/// Runs kpgen with a deadline: a hang is a failure, not a stuck test.
fn kpgen_in(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(cwd)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("kpgen {args:?} hung for 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds `spec` (text) in `dir`; expects exit 2, `needle` in stderr, and no output folder.
fn refused(dir: &Path, spec: &str, extra: &[&str], needle: &str) -> String {
    std::fs::write(dir.join("spec.yaml"), spec).unwrap();
    let mut args = vec!["build", "spec.yaml", "--out", "out"];
    args.extend_from_slice(extra);
    let o = kpgen_in(dir, &args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    assert!(!dir.join("out").exists(), "a refused build wrote out/");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn good_spec(dir: &Path) -> String {
    std::fs::read_to_string(model_in(dir)).unwrap()
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    // A named pipe where a tensor should be: opening it would block forever.
    let fifo = dir.path().join("pipe.npy");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let first_npy = spec
        .split_whitespace()
        .find(|w| w.contains(".npy"))
        .unwrap()
        .trim_matches(|c| c == '[' || c == ',' || c == ']' || c == '}')
        .to_owned();
    refused(
        dir.path(),
        &spec.replacen(&first_npy, "pipe.npy", 1),
        &[],
        "named pipe",
    );
    // Devices, as the spec and as a tensor.
    let o = kpgen_in(dir.path(), &["build", "/dev/zero", "--out", "out"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    refused(
        dir.path(),
        &spec.replacen(&first_npy, "/dev/urandom.npy", 1),
        &[],
        "file not found",
    );
    std::os::unix::fs::symlink("/dev/urandom", dir.path().join("rand.npy")).unwrap();
    refused(
        dir.path(),
        &spec.replacen(&first_npy, "rand.npy", 1),
        &[],
        "not a regular file",
    );
}

#[test]
fn oversized_specs_and_names_are_refused_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    // A spec past the 1 MiB limit is not read at all.
    let huge = format!("{spec}# {}\n", "x".repeat(2 << 20));
    let err = refused(dir.path(), &huge, &[], "more than the limit");
    assert!(err.len() < 2000, "{} bytes of error text", err.len());
    // A long name inside the limit: the error elides it.
    let long = spec.replacen(
        "name: hostile",
        &format!("name: {}", "n".repeat(500_000)),
        1,
    );
    let err = refused(dir.path(), &long, &[], "more characters");
    assert!(err.len() < 5000, "{} bytes of error text", err.len());
}

#[test]
fn names_that_would_break_generated_code_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    for (name, needle) in [
        ("loop", "reserved word"),
        ("dyn", "reserved word"),
        ("core", "crate every Rust build sees"),
        ("stdint", "shadows a standard C header"),
        ("kp_harness", "kpgen's own symbols"),
        ("kp", "kpgen's own symbols"),
        ("\"a\\nb\"", "not a valid name"),
    ] {
        refused(
            dir.path(),
            &spec.replacen("name: hostile", &format!("name: {name}"), 1),
            &[],
            needle,
        );
    }
}

#[test]
fn control_characters_are_escaped_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    let evil = spec.replacen(
        "name: hostile",
        "name: \"x\\e[2J\\nkpgen: wrote everything\"",
        1,
    );
    let err = refused(dir.path(), &evil, &[], "not a valid name");
    assert!(!err.contains('\u{1b}'), "raw escape byte echoed:\n{err}");
    assert!(
        !err.lines().any(|l| l.starts_with("kpgen: wrote")),
        "a fake line was printed:\n{err}"
    );
}

#[test]
fn yaml_corners_are_refused_in_kpgens_words() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    let cases = [
        (
            spec.replacen(
                "name: hostile",
                "name: !!python/object/apply:os.system [ls]",
                1,
            ),
            "YAML tag `!!python/object/apply:os.system` is not accepted",
        ),
        (
            spec.replacen("layers:", "layers: !custom", 1),
            "YAML tag `!custom` is not accepted",
        ),
        (
            format!("{spec}---\nname: other\n"),
            "more than one YAML document",
        ),
        (
            spec.replacen("name: hostile", "name: hostile\nname: again", 1),
            "duplicate key `name`",
        ),
    ];
    for (text, needle) in &cases {
        let err = refused(dir.path(), text, &[], needle);
        for internal in [
            "DuplicateKeyPolicy",
            "from_str_multiple",
            "Options",
            "ScalarBytes",
        ] {
            assert!(
                !err.contains(internal),
                "library wording `{internal}`:\n{err}"
            );
        }
    }
    // A tab in the indentation is reported on its own line.
    let lines: Vec<&str> = spec.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("    units:"))
        .unwrap();
    let tabbed = spec.replacen("    units:", "\tunits:", 1);
    let err = refused(dir.path(), &tabbed, &[], "a tab in the indentation");
    assert!(err.contains(&format!("spec.yaml:{}:1", at + 1)), "{err}");
    // Invalid UTF-8 has a position.
    let mut bytes = spec.clone().into_bytes();
    let pos = spec.find("kind").unwrap();
    bytes[pos] = 0xff;
    std::fs::write(dir.path().join("spec.yaml"), &bytes).unwrap();
    let o = kpgen_in(dir.path(), &["build", "spec.yaml", "--out", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = 1 + spec[..pos].matches('\n').count();
    assert!(err.contains(&format!("spec.yaml:{line}:")), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
}

#[test]
fn type_errors_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    refused(
        dir.path(),
        &spec.replacen("units: 4", "units: [4]", 1),
        &[],
        "layers[0].units",
    );
}

#[test]
fn every_layer_is_checked_after_an_invalid_size() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        "stacked",
        4,
        Some(2),
        vec![
            LayerSpec::new(Kind::Lstm, 4, WeightKind::Dense),
            LayerSpec::new(Kind::Gru, 3, WeightKind::Dense),
        ],
    );
    let path = spec.write_into(dir.path());
    let text = std::fs::read_to_string(path).unwrap();
    // The input size is invalid and the second layer names a missing file: both reported.
    let text = text.replacen("features: 4", "features: 0", 1);
    let second = text.rfind("w_hh: ").unwrap();
    let broken = format!("{}w_hh: missing.npy\n{}", &text[..second], {
        let rest = &text[second..];
        &rest[rest.find('\n').map_or(rest.len(), |i| i + 1)..]
    });
    let err = refused(dir.path(), &broken, &[], "input.features");
    assert!(err.contains("layers[1].w_hh"), "{err}");
    assert!(err.contains("2 problems found"), "{err}");
}

#[test]
fn unrepresentable_values_and_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(
        "big",
        2,
        Some(2),
        vec![LayerSpec::dense(2, common::Act::None, WeightKind::Dense)],
    );
    let path = spec.write_into(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    // A float64 weight beyond float32's range.
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    let mut header = header.to_owned();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for v in [1.0f64, 1e300, 0.5, 0.25] {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.path().join("huge.npy"), npy).unwrap();
    let w = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("w: "))
        .unwrap()
        .to_owned();
    refused(
        dir.path(),
        &text.replacen(&format!("w: {w}"), "w: huge.npy", 1),
        &[],
        "beyond float32's range",
    );
    // steps x features past 2^31.
    refused(
        dir.path(),
        &text
            .replacen(
                "input: {features: 2, steps: 2}",
                "input: {features: 2, steps: 1048576}",
                1,
            )
            .replacen("features: 2,", "features: 1048576,", 1),
        &[],
        "beyond the 32-bit indices",
    );
}

#[test]
fn target_files_cannot_inject_code() {
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    std::fs::write(dir.path().join("spec.yaml"), &spec).unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/cortex-m4.toml"),
    )
    .unwrap();
    let cases = [
        (
            base.replacen(
                "name = \"cortex-m4\"",
                "name = \"m4\\n#define float double\"",
                1,
            ),
            "name",
        ),
        (
            base.replacen(
                "arch_macros = [\"__ARM_ARCH_7EM__\"]",
                "arch_macros = [\"__ARM_ARCH_7EM__\\n#include </etc/passwd>\"]",
                1,
            ),
            "c.arch_macros[0]",
        ),
        (
            base.replacen("\"-mthumb\"", "\"-mthumb -DX=1\"", 1),
            "c.cflags[1]",
        ),
        (
            base.replacen(
                "description = \"",
                "description = \"*/ int injected; /* ",
                1,
            ),
            "description",
        ),
    ];
    for (toml, field) in &cases {
        std::fs::write(dir.path().join("evil.toml"), toml).unwrap();
        let o = kpgen_in(
            dir.path(),
            &[
                "build",
                "spec.yaml",
                "--target",
                "evil.toml",
                "--out",
                "out",
            ],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(field), "expected field `{field}` in:\n{err}");
        assert!(!dir.path().join("out").exists());
    }
    // The unchanged file as a target file works.
    std::fs::write(dir.path().join("m4.toml"), &base).unwrap();
    let o = kpgen_in(
        dir.path(),
        &["build", "spec.yaml", "--target", "m4.toml", "--out", "out"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_byte_counts_get_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    for value in ["-1", "lots", "99999999999999999999"] {
        let o = kpgen_in(
            dir.path(),
            &[
                "build",
                "spec.yaml",
                "--flash-budget",
                value,
                "--out",
                "out",
            ],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("expected a number of bytes"), "{err}");
        assert!(!err.contains("-- -1"), "clap's tip for a positional: {err}");
    }
}

#[cfg(unix)]
#[test]
fn closed_or_broken_output_streams_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    // stderr closed: the refusal still exits 2 (not 101, a panic).
    let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir.path())
        .args(["build", "missing.yaml", "--out", "out"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(2));
    // stdout a pipe closed by the reader: `kpgen shapes … | head -c1`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .args(["shapes", "4096", "4096", "--top", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(101), "{}", stderr(&out));
    // stderr full is the same write error as closed; a write to /dev/full shows it.
    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_kpgen"))
            .current_dir(dir.path())
            .args(["build", "missing.yaml", "--out", "out"])
            .stderr(full)
            .status()
            .unwrap();
        assert_eq!(o.code(), Some(2));
    }
    let _ = std::io::stderr().flush();
}

#[test]
fn a_backslash_in_the_work_dir_still_builds_the_rust_test() {
    if cfg!(windows) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let o = kpgen_in(
        dir.path(),
        &[
            "test",
            "spec.yaml",
            "--host",
            "cc",
            "--count",
            "1",
            "--no-dense",
            "--lang",
            "rust",
            "--work-dir",
            "we\\ird \"dir\"",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The text of a one-dense-layer spec (`inputs` → `units`) written into `dir`, whose weight
/// `w` is `file`, a header-only `.npy` promising `shape` and holding no data.
fn spec_with_header_only_w(
    dir: &Path,
    name: &str,
    (inputs, units): (usize, usize),
    file: &str,
    shape: &str,
) -> String {
    let spec = ModelSpec::new(
        name,
        inputs,
        Some(2),
        vec![LayerSpec::dense(
            units,
            common::Act::None,
            WeightKind::Dense,
        )],
    );
    let text = std::fs::read_to_string(spec.write_into(dir)).unwrap();
    std::fs::write(dir.join(file), common::header_only_npy(shape)).unwrap();
    let w = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("w: "))
        .unwrap()
        .to_owned();
    text.replacen(&format!("w: {w}"), &format!("w: {file}"), 1)
}

/// The flash budget is checked from the tensors' headers before their bodies are read: a
/// header promising 400 MB is refused for the budget, not read (it holds no data at all).
#[test]
fn budgets_are_checked_from_headers_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec_with_header_only_w(dir.path(), "budget", (2, 2), "lying.npy", "(10000, 10000)");
    let err = refused_wrapped(dir.path(), &text, &[], "no tensor was read");
    assert!(err.contains("100000002 values"), "{err}");
}

/// The header check counts the build's value width: 800,000 weights are 3.2 MB at f32, over
/// the Cortex-M4's 1 MiB budget, but 800 KB at int8, which the check lets through (this file
/// then fails where its missing body is read, not for the budget).
#[test]
fn header_budget_check_counts_the_precision_width() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec_with_header_only_w(
        dir.path(),
        "budget_width",
        (800, 1000),
        "big.npy",
        "(1000, 800)",
    );
    let err = refused_wrapped(dir.path(), &text, &[], "no tensor was read");
    assert!(err.contains("bytes of flash at f32"), "{err}");
    let err = refused(dir.path(), &text, &["--precision", "int8"], "").replace("\n  │ ", " ");
    assert!(
        !err.contains("no tensor was read"),
        "int8 refused by the f32 width:\n{err}"
    );
}

/// [`refused`], with `needle` looked for in the message unwrapped (miette wraps long lines).
fn refused_wrapped(dir: &Path, spec: &str, extra: &[&str], needle: &str) -> String {
    let err = refused(dir, spec, extra, "").replace("\n  │ ", " ");
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    err
}

/// A doping overlay given as its non-zeros that breaks a promise of its arrays: each is refused
/// with exit 2, the spec's line and field and the array named, and nothing written. The spec's
/// `w_hh` is 16x4; `S.npz` is written per case.
#[test]
fn sparse_matrices_that_lie_are_refused() {
    use common::{scipy_members, write_npz, Npy};
    let dir = tempfile::tempdir().unwrap();
    let spec = good_spec(dir.path());
    let kron_hh = spec
        .lines()
        .find_map(|l| l.trim().strip_prefix("w_hh: "))
        .unwrap()
        .to_owned();
    let with_dope = |dope: &str| {
        spec.replacen(
            &kron_hh,
            &format!("{}, dope: {dope}}}", kron_hh.trim_end_matches('}')),
            1,
        )
    };
    let line = 1 + spec[..spec.find("w_hh: ").unwrap()].matches('\n').count();
    let field = "layers[0].w_hh.dope";
    // One entry at (1, 2) as scipy CSR, then the member `key` replaced.
    let csr = |key: &str, npy: Npy| {
        let mut members = scipy_members("csr", 16, 4, &[(1, 2, 0.5)]);
        for m in &mut members {
            if m.0 == key {
                m.1 = npy.clone();
            }
        }
        members
    };
    let mut truncated = Npy::f32(&[0.5]).shaped(&[1000]);
    truncated.bytes.truncate(4);
    let huge = Npy::f32(&[0.5]).shaped(&[1 << 40]);
    let cases: Vec<(Vec<(&str, Npy)>, &str)> = vec![
        (
            csr("indices", Npy::i32(&[4])),
            "`S.npz:indices` holds 4 at position 0: column indices must be from 0 to 3",
        ),
        (
            csr("indices", Npy::f32(&[2.0])),
            "`S.npz:indices` is float32: column indices must be an integer array",
        ),
        (
            csr("indices", Npy::i32(&[2, 3])),
            "`S.npz:indices` holds 2 column indices: expected 1 (one per value)",
        ),
        (
            csr(
                "indptr",
                Npy::i32(&[0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
            ),
            "`S.npz:indptr` decreases at row 1 (1 then 0): row pointers must never decrease",
        ),
        (
            csr("indptr", Npy::i32(&[0, 1])),
            "`S.npz:indptr` holds 2 row pointers: expected 17",
        ),
        (
            csr("shape", Npy::i64(&[16, 5])),
            "`S.npz` holds a 16x5 sparse matrix: the overlay must be 16x4",
        ),
        (
            csr("data", Npy::f32(&[f32::NAN])),
            "`S.npz:data` holds a non-finite value (NaN) at position 0 (row 1, column 2)",
        ),
        (
            csr("data", Npy::i32(&[1])),
            "`S.npz:data` is int32: the values must be floats",
        ),
        (
            csr("data", truncated),
            "truncated: header says 1000 elements of float32",
        ),
        (
            csr("format", Npy::text("bsr")),
            "format \"bsr\": kpgen reads csr, csc and coo",
        ),
        (
            scipy_members("coo", 16, 4, &[(1, 2, 0.5), (3, 0, 0.25), (1, 2, 0.5)]),
            "row 1, column 2 is given twice (values 0 and 2 of `S.npz:data`)",
        ),
        // A header claiming 2^40 non-zeros: refused from the header, before any body is read.
        (csr("data", huge.clone()), "no tensor was read"),
    ];
    for (members, needle) in &cases {
        write_npz(&dir.path().join("S.npz"), members, false);
        let err = refused_wrapped(dir.path(), &with_dope("S.npz"), &[], needle);
        if !needle.contains("no tensor was read") {
            assert!(
                err.contains(&format!("spec.yaml:{line}:")) && err.contains(field),
                "no line {line} or field {field} in:\n{err}"
            );
        }
    }
    // With a budget that admits 2^40 values, the load refuses the lie before allocating for it.
    write_npz(&dir.path().join("S.npz"), &csr("data", huge), false);
    refused_wrapped(
        dir.path(),
        &with_dope("S.npz"),
        &["--flash-budget", "99999999999999"],
        "truncated: header says 1099511627776 elements",
    );
    // The explicit form: the same checks, plus its own shape and keys.
    write_npz(
        &dir.path().join("P.npz"),
        &[
            ("r", Npy::i64(&[1, 16])),
            ("c", Npy::i64(&[2, 0])),
            ("v", Npy::f32(&[0.5, 0.25])),
        ],
        false,
    );
    let explicit = [
        (
            "{shape: [16, 4], values: P.npz:v, rows: P.npz:r, cols: P.npz:c}",
            "`P.npz:r` holds 16 at position 1: row indices must be from 0 to 15",
            field.to_owned(),
        ),
        (
            "{shape: [15, 4], values: P.npz:v, rows: P.npz:r, cols: P.npz:c}",
            "shape [15, 4]: the overlay must be 16x4",
            format!("{field}.shape"),
        ),
        (
            "{shape: [16, 4], values: P.npz:v, rows: P.npz:r}",
            "either `rows` and `cols` (coordinates) or `indptr` and `indices`",
            field.to_owned(),
        ),
        (
            "{shape: [16, 4], values: P.npz:v, rows: P.npz:r, cols: P.npz:x}",
            "no member \"x\"",
            format!("{field}.cols"),
        ),
        (
            "{shape: [16, 4], values: P.npz:v, rows: P.npz:r, cols: P.npz:c, order: C}",
            "unknown field `order`",
            format!("spec.yaml:{line}:"),
        ),
    ];
    for (value, needle, field) in &explicit {
        let err = refused_wrapped(dir.path(), &with_dope(value), &[], needle);
        assert!(err.contains(field.as_str()), "no field {field} in:\n{err}");
    }
    // Unsorted compressed rows are sorted, not refused; stored zeros are dropped.
    write_npz(
        &dir.path().join("S.npz"),
        &[
            ("format", Npy::text("csr")),
            ("shape", Npy::i64(&[16, 4])),
            (
                "indptr",
                Npy::i32(&[0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
            ),
            ("indices", Npy::i32(&[3, 0, 1])),
            ("data", Npy::f32(&[0.5, 0.25, 0.0])),
        ],
        true,
    );
    std::fs::write(dir.path().join("spec.yaml"), with_dope("S.npz")).unwrap();
    let o = kpgen_in(dir.path(), &["explain", "spec.yaml", "--stage", "model"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("+ S (2 non-zeros"), "{out}");
}
