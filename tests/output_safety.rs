//! `--out` and `--work-dir` never lose a file kpgen did not write: a folder is replaced only when
//! kpgen's manifest lists everything in it unchanged; folders the build reads and the current
//! directory are never an output; a refused or failed write leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Kind, LayerSpec, ModelSpec, WeightKind};

/// A small LSTM with a KP weight, written into `dir`; returns the spec's path.
fn model_in(dir: &Path) -> PathBuf {
    let spec = ModelSpec::new(
        "safe",
        4,
        Some(3),
        vec![LayerSpec::new(Kind::Lstm, 4, WeightKind::Kp)],
    );
    spec.write_into(dir)
}

fn kpgen(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(cwd)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` with its contents, sorted: to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, acc: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, acc);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                acc.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut acc = Vec::new();
    walk(dir, dir, &mut acc);
    acc.sort();
    acc
}

fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    assert!(err.contains("nothing was written"), "{err}");
}

#[test]
fn the_specs_own_folder_is_never_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    model_in(&models);
    // A report.json of the user's no longer makes the folder look like kpgen's.
    std::fs::write(models.join("report.json"), "{\"mine\": true}").unwrap();
    let before = snapshot(dir.path());
    for out in ["models", ".", "models/.", "models/../models"] {
        let o = kpgen(dir.path(), &["build", "models/spec.yaml", "--out", out]);
        assert_refused(&o, "kpgen will not replace it");
    }
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused build changed files"
    );
}

#[test]
fn a_folder_a_tensor_is_read_from_is_never_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = dir.path().join("tensors");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&tensors).unwrap();
    std::fs::create_dir(&specs).unwrap();
    let spec = model_in(&tensors);
    // The spec lives in its own folder and reads its tensors from `../tensors/`.
    let text: String = std::fs::read_to_string(&spec)
        .unwrap()
        .split_inclusive([' ', '[', ','])
        .map(|piece| {
            if piece.contains(".npy") && !piece.starts_with('#') {
                format!("../tensors/{piece}")
            } else {
                piece.to_owned()
            }
        })
        .collect();
    assert!(text.contains("../tensors/"), "{text}");
    std::fs::write(specs.join("spec.yaml"), text).unwrap();
    std::fs::remove_file(&spec).unwrap();
    let built = kpgen(dir.path(), &["build", "specs/spec.yaml", "--out", "out"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let before = snapshot(dir.path());
    let o = kpgen(
        dir.path(),
        &["build", "specs/spec.yaml", "--out", "tensors"],
    );
    assert_refused(&o, "which this build reads");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn an_unrelated_folder_of_the_users_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let spec = model_in(dir.path());
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(mine.join("sub")).unwrap();
    std::fs::write(mine.join("report.json"), "{}").unwrap();
    std::fs::write(mine.join("sub/notes.txt"), "keep me").unwrap();
    let o = kpgen(
        dir.path(),
        &["build", spec.to_str().unwrap(), "--out", "mine"],
    );
    assert_refused(&o, "holds no kpgen manifest");
    assert_eq!(
        std::fs::read_to_string(mine.join("sub/notes.txt")).unwrap(),
        "keep me"
    );
    // An empty folder is taken.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "empty"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn kpgens_own_output_is_replaced_but_not_once_the_user_changed_it() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let out = dir.path().join("out");
    let first = kpgen(dir.path(), &["build", "spec.yaml", "--out", "out"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(out.join(kpgen::output::MANIFEST).is_file());
    let again = kpgen(dir.path(), &["build", "spec.yaml", "--out", "out"]);
    assert!(again.status.success(), "{}", stderr(&again));

    // A file of the user's inside the output blocks the replacement and survives it.
    std::fs::write(out.join("c/app.c"), "int main(void) { return 0; }\n").unwrap();
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "out"]);
    assert_refused(&o, "files kpgen did not write");
    assert!(stderr(&o).contains("c/app.c"));
    assert!(out.join("c/app.c").is_file());
    std::fs::remove_file(out.join("c/app.c")).unwrap();

    // So does an edit to a generated file.
    std::fs::write(out.join("report.json"), "edited\n").unwrap();
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "out"]);
    assert_refused(&o, "changed since kpgen wrote them");
    assert!(stderr(&o).contains("report.json"));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        "edited\n"
    );
}

#[test]
fn refused_and_failed_writes_leave_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let before = snapshot(dir.path());
    // Refused: the working directory itself.
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "."]);
    assert_refused(&o, "current directory");
    // Failed: the parent is a regular file.
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "file/out"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("file")).unwrap();
    assert_eq!(snapshot(dir.path()), before);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".kpgen")),
        "temporaries left: {names:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_is_not_followed_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/keep"), "x").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    let o = kpgen(dir.path(), &["build", "spec.yaml", "--out", "link"]);
    assert_refused(&o, "symbolic link");
    assert!(dir.path().join("real/keep").is_file());
}

/// A quick host run of the C in the work folder `work`.
const TEST_IN_WORK: [&str; 12] = [
    "test",
    "spec.yaml",
    "--host",
    "cc",
    "--count",
    "1",
    "--lang",
    "c",
    "--no-dense",
    "--work-dir",
    "work",
    "--seed=1",
];

#[test]
fn kpgen_test_refuses_its_out_before_running_and_keeps_a_users_work_folder() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let before = snapshot(dir.path());
    // `--host` needs no emulator; the refusal comes before any build.
    let o = kpgen(
        dir.path(),
        &[
            "test",
            "spec.yaml",
            "--host",
            "cc",
            "--count",
            "1",
            "--out",
            ".",
        ],
    );
    assert_refused(&o, "current directory");
    assert_eq!(snapshot(dir.path()), before);

    // A work folder is emptied only where kpgen made it: a user's `model-c` survives.
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("model-c")).unwrap();
    std::fs::write(work.join("model-c/keep"), "x").unwrap();
    let o = kpgen(dir.path(), &TEST_IN_WORK);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a kpgen work folder"), "{err}");
    assert!(work.join("model-c/keep").is_file());

    // Given an empty work folder, it runs and can run again in it.
    std::fs::remove_dir_all(&work).unwrap();
    for _ in 0..2 {
        let o = kpgen(dir.path(), &TEST_IN_WORK);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[cfg(unix)]
#[test]
fn an_interrupted_test_removes_its_work_folder() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A compiler that takes its time, so kpgen is surely mid-run when the signal comes.
    let slow_cc = dir.path().join("slow-cc");
    std::fs::write(&slow_cc, "#!/bin/sh\nsleep 5\nexec cc \"$@\"\n").unwrap();
    std::fs::set_permissions(&slow_cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .current_dir(dir.path())
        .args([
            "test",
            "spec.yaml",
            "--count",
            "1",
            "--lang",
            "c",
            "--no-dense",
            "--host",
        ])
        .arg(&slow_cc)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let work_dirs = || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("kpgen-test-")
            })
            .count()
    };
    let started = Instant::now();
    while work_dirs() == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(work_dirs(), 1, "kpgen test made no work folder");
    assert!(
        child.try_wait().unwrap().is_none(),
        "kpgen finished too early"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(work_dirs(), 0, "the interrupted run left its work folder");
}

#[test]
fn a_depfile_inside_the_output_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    model_in(dir.path());
    let o = kpgen(
        dir.path(),
        &["build", "spec.yaml", "--out", "out", "--depfile", "out/m.d"],
    );
    assert_refused(&o, "lies inside --out");
    assert!(!dir.path().join("out").exists());
    let o = kpgen(
        dir.path(),
        &["build", "spec.yaml", "--out", "out", "--depfile", "m.d"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let d = std::fs::read_to_string(dir.path().join("m.d")).unwrap();
    assert!(d.contains("out/c/safe.c") && d.contains("spec.yaml"), "{d}");
}
