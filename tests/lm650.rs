//! The language-model-scale example (`examples/lm650/spec.yaml`: 2 stacked LSTM layers, input
//! and hidden 650, every weight doped KP at 25x fewer stored parameters than dense) builds for
//! Cortex-M7 within its flash and RAM budget, and its C and Rust match the float reference under
//! QEMU (`mps2-an500`).
//!
//! The factors are seeded random (no text corpus is usable offline), written here from Rust with
//! the same shapes, overlay size and scaling as `examples/lm650/make_factors.py` (the values
//! differ: that script uses numpy's generator), each overlay as the scipy.sparse CSR file the
//! committed spec names, so the test needs no Python.

mod common;

use std::path::Path;
use std::time::Duration;

use kpgen::base::sequences::TestInputs;
use kpgen::base::tensor::write_npy_f32;
use kpgen::qemu::Toolchain;
use kpgen::spec::Lang;
use kpgen::verify::{self, Platform, RunOptions, Tolerance};

use common::SplitMix64;

const HIDDEN: usize = 650;
const ROWS: usize = 4 * HIDDEN;
const COLS: usize = 650;
const A: (usize, usize) = (50, 26);
const B: (usize, usize) = (52, 25);
const NNZ: usize = 62_504;

/// `len` values uniform with standard deviation `std` (uniform in [-1, 1) has variance 1/3),
/// from 53-bit draws of the seeded SplitMix64 the conformance fixtures use.
fn values(rng: &mut SplitMix64, len: usize, std: f64) -> Vec<f32> {
    let scale = std * 3f64.sqrt();
    (0..len)
        .map(|_| (((rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0) * scale) as f32)
        .collect()
}

/// Writes the factors of one doped-KP weight: rows of kron(A, B) and of S each have expected
/// squared norm 1/2, so the rows of W have norm about 1.
fn write_dkp(dir: &Path, name: &str, rng: &mut SplitMix64) {
    let a = values(rng, A.0 * A.1, (0.5 / A.1 as f64).sqrt());
    let b = values(rng, B.0 * B.1, (1.0 / B.1 as f64).sqrt());
    write_npy_f32(&dir.join(format!("A_{name}.npy")), &[A.0, A.1], &a).unwrap();
    write_npy_f32(&dir.join(format!("B_{name}.npy")), &[B.0, B.1], &b).unwrap();
    // NNZ distinct positions: a partial Fisher-Yates shuffle of all positions.
    let mut positions: Vec<u32> = (0..(ROWS * COLS) as u32).collect();
    for k in 0..NNZ {
        let j = k + rng.below(positions.len() - k);
        positions.swap(k, j);
    }
    let nonzeros = values(rng, NNZ, (0.5 / (NNZ as f64 / ROWS as f64)).sqrt());
    let entries: Vec<(usize, usize, f32)> = positions[..NNZ]
        .iter()
        .zip(nonzeros)
        // A value of exactly zero would not be a stored non-zero.
        .map(|(&p, v)| {
            let p = p as usize;
            (p / COLS, p % COLS, if v == 0.0 { 1e-3 } else { v })
        })
        .collect();
    // As make_factors.py writes it: the file scipy.sparse.save_npz writes for CSR.
    let path = dir.join(format!("S_{name}.npz"));
    common::write_npz(
        &path,
        &common::scipy_members("csr", ROWS, COLS, &entries),
        true,
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 1 << 20, "{}: {size} bytes", path.display());
}

#[test]
fn lm650_doped_kp_fits_cortex_m7_and_matches_the_reference_in_qemu() {
    let toolchain = Toolchain::locate().expect("the QEMU tests need the cross tools: run ci/setup");
    let work = tempfile::tempdir().unwrap();
    let factors = work.path().join("factors");
    std::fs::create_dir_all(&factors).unwrap();
    let mut rng = SplitMix64(650);
    for layer in 0..2 {
        for m in ["ih", "hh"] {
            write_dkp(&factors, &format!("{m}{layer}"), &mut rng);
        }
        for m in ["ih", "hh"] {
            let b = values(&mut rng, ROWS, 0.05);
            write_npy_f32(&factors.join(format!("b_{m}{layer}.npy")), &[ROWS], &b).unwrap();
        }
    }
    // The committed spec, beside the factors it names.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lm650/spec.yaml");
    let spec = work.path().join("spec.yaml");
    std::fs::copy(&committed, &spec).unwrap();

    let target = kpgen::target::lookup("cortex-m7").unwrap();
    let generation = kpgen::generate(&spec, &target).unwrap_or_else(|e| panic!("{}", e.render()));
    let totals = &generation.report.totals;
    assert_eq!(totals.params_stored, 270_816);
    assert_eq!(totals.params_dense, 6_770_400);
    assert_eq!(totals.overlay_nnz, 4 * NNZ);
    assert!(
        (totals.compression - 25.0).abs() < 0.01,
        "{}",
        totals.compression
    );
    // Within the M7 part's 2 MB flash / 512 KB RAM; the dense model (27 MB) is not.
    kpgen::report::check_budget(&target, &generation.report)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    assert!(4 * totals.params_dense as u64 > target.memory.flash_size);

    let inputs = TestInputs::random(2, generation.model.steps, COLS, 7, 1.0);
    let opts = RunOptions {
        langs: vec![Lang::C, Lang::Rust],
        tolerance: Tolerance::default(),
        timeout: Duration::from_secs(120),
        dense_baseline: false,
        every_step: false,
        work_dir: work.path().join("run"),
    };
    let suite = verify::run_suite(
        &Platform::Qemu(toolchain),
        &target,
        &generation,
        &inputs,
        &opts,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(suite.results.len(), 2);
    for r in &suite.results {
        let c = &r.comparison;
        assert!(c.pass && c.streaming_matches, "{}: {c:?}", r.lang.as_str());
        let cost = r.cost.as_ref().expect("QEMU runs measure the cost");
        assert!(
            cost.flash_bytes <= target.budget.flash && cost.ram_bytes <= target.budget.ram,
            "{}: {cost:?}",
            r.lang.as_str()
        );
        // 640,016 MACs per step: at least one instruction each.
        assert!(cost.instructions_per_step > 640_016, "{cost:?}");
    }
}
