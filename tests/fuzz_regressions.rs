//! Replays the fuzz seed corpus (`fuzz/corpus/<target>/`) and every crash input fuzzing found
//! (`fuzz/regressions/<target>/`, kept after the fix) through the fuzz targets' own bodies, on
//! stable and without libFuzzer: a panic here is a regression. `ci/fuzz` runs the real fuzzing.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod kpgen_fuzz;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_and_regressions_do_not_crash() {
    let mut replayed = 0;
    for &(target, body) in kpgen_fuzz::TARGETS {
        let corpus = inputs("corpus", target);
        assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ has no seed");
        for path in corpus.iter().chain(&inputs("regressions", target)) {
            let data = std::fs::read(path).expect("read input");
            let run = std::panic::catch_unwind(|| body(&data));
            assert!(run.is_ok(), "{target}: {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= kpgen_fuzz::TARGETS.len());
}

/// The whole-build seeds written from spec text (`raw_*`) reach code generation, so fuzzing
/// starts deep in the pipeline.
#[test]
fn raw_build_seeds_build() {
    let seeds = inputs("corpus", "whole_build");
    let raw: Vec<&PathBuf> = seeds
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("raw_"))
        })
        .collect();
    assert!(!raw.is_empty());
    for path in raw {
        let data = std::fs::read(path).expect("read seed");
        assert_eq!(
            kpgen_fuzz::whole_build_outcome(&data),
            kpgen_fuzz::Outcome::Built,
            "{}",
            path.display()
        );
    }
}

#[test]
fn every_corpus_folder_names_a_target() {
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for e in entries {
            let name = e.expect("read_dir entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                kpgen_fuzz::TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} is not a fuzz target"
            );
        }
    }
}
