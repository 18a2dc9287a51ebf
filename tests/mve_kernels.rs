//! Every Helium (MVE) form of a product stage (`lower::kernel::Mve`: integer dot products
//! over chunks of the reduction, float vectors across four rows): one dense layer per form, its factor shapes chosen so that the plan gives its stages the form, the
//! chunk counts and the tail predicates the case names. Each case is generated for the
//! Cortex-M55 and
//! - run in QEMU (mps3-an547) in C compiled by gcc and by clang, compared bit for bit with the
//!   integer reference (float: within the default tolerance of the f64 reference);
//! - run on the host through the portable C twins of the vector pieces, with gcc and clang;
//! - compiled for the M55 with the strict flags under the cross gcc and clang.
//!
//! Rust has no Helium target, so the Rust printer writes the same row-major stage as scalar
//! MACs: the Cortex-M33 target with Helium switched on in its features gives that lowering a
//! core with a Rust target, where C (its portable twins, no `__ARM_FEATURE_MVE`) and Rust run
//! in QEMU against the same reference.
//! The float LSTM, GRU and FastGRNN updates with table activations and the int8 / int16 LSTM
//! update run four units per Helium vector (`kp_vlstm4`, ..., `kp_vlstm_q4`) and the rest one
//! at a time: layers of 8 and 6 units cover both, on
//! the M55 (C by gcc and by clang), on the host and compiled with both compilers, inputs large enough to reach the
//! table's clamp.
//! Each case checks that the generated C contains its form's pieces, so a change of plan
//! cannot leave a form untested. Needs arm-none-eabi-gcc, clang, qemu-system-arm and the
//! thumbv8m.main-none-eabihf Rust target, and FAILS (never skips) when they are missing.

mod common;

use std::path::{Path, PathBuf};

use kpgen::base::sequences::{SplitMix64, TestInputs};
use kpgen::base::tensor::write_npy_f32;
use kpgen::qemu::{CCompiler, Toolchain};
use kpgen::spec::{Lang, Precision};
use kpgen::target::Target;
use kpgen::verify::Platform;

enum Weights {
    /// W = A ⊗ B with A m x n and B p x q.
    Kron((usize, usize), (usize, usize)),
    /// A dense rows x cols W.
    Dense(usize, usize),
}

struct Form {
    name: &'static str,
    weights: Weights,
    precision: Precision,
    /// Text the generated C for the M55 must contain (the form's loads and dot products).
    marks: &'static [&'static str],
}

const FORMS: &[Form] = &[
    // Right-first (7,488 MACs against 9,280): B (16 x 20) on the int8 input, one chunk of 16
    // lanes and a predicated one of 4; then A (16 x 13) on the int16 temp, int8 weights
    // widened to 8 lanes: one chunk and a predicated one of 5.
    Form {
        name: "int8_kron_partial_chunks",
        weights: Weights::Kron((16, 13), (16, 20)),
        precision: Precision::Int8,
        marks: &[
            "kp_vld_s8x16(&",
            "kp_vld_s8x16_n(&",
            "kp_vdot_s8x16(",
            "kp_vld_s8x8(&",
            "kp_vld_s8x8_n(&",
            "kp_vld_s16x8_n(&",
            "kp_vdot_s16x8(",
        ],
    },
    // A (16 x 16) on the temp: two full chunks of 8 in a loop.
    Form {
        name: "int8_kron_chunk_loop",
        weights: Weights::Kron((16, 16), (16, 16)),
        precision: Precision::Int8,
        marks: &["for (int jv = 0; jv < 2; ++jv)", "kp_vld_s16x8(&"],
    },
    // int16 weights and activations, 64-bit accumulators: VMLALDAVA over 8 lanes.
    Form {
        name: "int16_kron_partial_chunks",
        weights: Weights::Kron((16, 13), (16, 20)),
        precision: Precision::Int16,
        marks: &["kp_vld_s16x8_n(&", "kp_vdot_s16x8_s64("],
    },
    // Float across four rows: B (16 x 16) then A (16 x 16), each block's outputs a scatter
    // store (the temp) or a gather, add and scatter (y, rows 16 apart).
    Form {
        name: "f32_kron_by_rows",
        weights: Weights::Kron((16, 16), (16, 16)),
        precision: Precision::F32,
        marks: &[
            "kp_vld_f32x4(&",
            "kp_vfma_n_f32x4(v",
            "kp_vst_f32x4_s(&t[",
            ", 4);",
            "kp_vadd_f32x4_s(&y[",
        ],
    },
    // A float dense weight: one column, the rows contiguous in y (a plain vector add).
    Form {
        name: "f32_dense_by_rows",
        weights: Weights::Dense(24, 40),
        precision: Precision::F32,
        marks: &["kp_vadd_f32x4_s(&y[", ", 1, v0, 4);"],
    },
    // Rows that are not a multiple of four: A (10 x 6) in blocks of 4, 3 and 3, B (6 x 7) in
    // blocks of 3: predicated weight loads and (scatter) stores.
    Form {
        name: "f32_kron_partial_rows",
        weights: Weights::Kron((10, 6), (6, 7)),
        precision: Precision::F32,
        marks: &["kp_vld_f32x4_n(&", ", 3);"],
    },
    // A dense weight: 40 columns = two chunks of 16 in a loop and a predicated one of 8.
    Form {
        name: "int8_dense",
        weights: Weights::Dense(24, 40),
        precision: Precision::Int8,
        marks: &["for (int jv = 0; jv < 2; ++jv)", "kp_vld_s8x16_n(&"],
    },
];

fn write_case(dir: &Path, form: &Form) -> PathBuf {
    let mut rng = SplitMix64(0x3e5 ^ form.name.len() as u64);
    let mut tensor = |file: &str, shape: &[usize], scale: f32| {
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| rng.uniform(scale)).collect();
        write_npy_f32(&dir.join(file), shape, &data).expect("write a tensor");
    };
    let (rows, cols, w) = match form.weights {
        Weights::Kron((m, n), (p, q)) => {
            tensor("A.npy", &[m, n], 0.5);
            tensor("B.npy", &[p, q], 0.5);
            (m * p, n * q, "{kron: [A.npy, B.npy]}")
        }
        Weights::Dense(rows, cols) => {
            tensor("W.npy", &[rows, cols], 0.5);
            (rows, cols, "W.npy")
        }
    };
    tensor("b.npy", &[rows], 0.1);
    tensor("calib.npy", &[8, 2, cols], 1.0);
    let spec = format!(
        "name: mve_{name}\ninput: {{features: {cols}, steps: 2}}\ncalibration: calib.npy\n\
         layers:\n  - kind: dense\n    units: {rows}\n    w: {w}\n    \
         b: b.npy\n    activation: none\n",
        name = form.name
    );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).expect("write the spec");
    path
}

fn m55() -> Target {
    kpgen::target::lookup("cortex-m55").unwrap_or_else(|d| panic!("cortex-m55: {d:?}"))
}

/// The Cortex-M33 with Helium switched on: the M55's lowering on a core with a Rust target.
fn m33_with_helium() -> Target {
    let mut t = kpgen::target::lookup("cortex-m33").unwrap_or_else(|d| panic!("cortex-m33: {d:?}"));
    t.features.mve = true;
    t.plan.unroll_max_factor_elems = m55().plan.unroll_max_factor_elems;
    t
}

fn generate(dir: &Path, form: &Form, target: &Target) -> Result<kpgen::Generation, String> {
    let spec = write_case(dir, form);
    let mut model = kpgen::load(&spec).map_err(|d| d.render())?;
    model.precision = form.precision;
    let gen = kpgen::generate_model(&model, target).map_err(|d| d.render())?;
    common::check_marks(&gen, form.marks)?;
    Ok(gen)
}

fn run(platform: &Platform, target: &Target, langs: &[Lang], form: &Form) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let gen = generate(dir.path(), form, target)?;
    let inputs = TestInputs::random(3, 2, gen.plan.input_features, 0x5eed, 1.0);
    let work = dir.path().join("work");
    common::run_against_reference(platform, target, &gen, &inputs, langs, false, &work)
}

/// QEMU firmware whose C `cc` compiles.
fn qemu(cc: CCompiler) -> Platform {
    Platform::Qemu(
        Toolchain::locate_with(cc)
            .unwrap_or_else(|e| panic!("the cross toolchain is missing (run ci/setup): {e}")),
    )
}

fn check_all(what: impl Fn(&Form) -> Result<(), String>) {
    let failures: Vec<String> = FORMS
        .iter()
        .filter_map(|f| what(f).err().map(|e| format!("{}: {e}", f.name)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With the C compiled by gcc and by clang, whose `arm_mve.h` and code differ.
#[test]
fn every_helium_form_is_bit_exact_on_the_m55_under_qemu() {
    for cc in [CCompiler::Gcc, CCompiler::Clang] {
        let platform = qemu(cc);
        check_all(|f| run(&platform, &m55(), &[Lang::C], f).map_err(|e| format!("{cc}: {e}")));
    }
}

/// The same lowering on the host, where no `__ARM_FEATURE_MVE` is defined: the portable twins
/// of the vector types, loads (with their tail counts) and dot products give the same bits,
/// with gcc and clang.
#[test]
fn every_helium_form_is_bit_exact_through_the_portable_c_on_the_host() {
    for cc in ["gcc", "clang"] {
        let platform = Platform::Host { cc: cc.to_owned() };
        check_all(|f| run(&platform, &m55(), &[Lang::C], f).map_err(|e| format!("{cc}: {e}")));
    }
}

/// Rust's scalar form of the row-major stages, and C's portable twins on a core without
/// Helium, in QEMU.
#[test]
fn the_helium_lowering_is_bit_exact_in_rust_and_portable_c_on_the_m33() {
    let platform = qemu(CCompiler::Gcc);
    check_all(|f| run(&platform, &m33_with_helium(), &[Lang::C, Lang::Rust], f));
}

/// The C of every form compiles for the M55 with the strict flags under the cross gcc and
/// clang (whose `-Wunused-function` also sees a vector piece nothing calls).
#[test]
fn the_c_of_every_helium_form_compiles_cleanly_with_gcc_and_clang() {
    let target = m55();
    check_all(|form| {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let gen = generate(dir.path(), form, &target)?;
        common::compiles_with_gcc_and_clang(&gen, &target, dir.path())
    });
}

/// The recurrent layers whose f32 updates run in Helium lanes.
#[derive(Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
    FastGrnn,
}

impl Cell {
    fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::FastGrnn => "fastgrnn",
        }
    }

    /// What the generated C must contain: the vector update of four units and the scalar
    /// rest.
    fn marks(self, precision: Precision) -> [&'static str; 2] {
        if precision.is_fixed() {
            return [
                "kp_vlstm_q4(z, c, h, n, cf, hf, k);",
                "kp_lstm_q_units(z, c, h, n, cf, hf, rest);",
            ];
        }
        match self {
            Cell::Lstm => [
                "kp_vlstm4(z, c, h, n, k);",
                "kp_lstm_units(z, c, h, n, rest);",
            ],
            Cell::Gru => ["kp_vgru4(z, h, n, k);", "kp_gru_units(z, h, n, rest);"],
            Cell::FastGrnn => [
                "kp_vfastgrnn4(pre, b_z, b_h, zeta, nu, h, k);",
                "kp_fastgrnn_units(pre, b_z, b_h, zeta, nu, h, n, rest);",
            ],
        }
    }
}

/// An f32 `cell` layer of `units` (8 inputs, 3 steps) and a dense head, weights scaled so that
/// gates saturate (the table's clamp) as well as sit in its middle.
fn write_cell(dir: &Path, cell: Cell, units: usize) -> PathBuf {
    let mut rng = SplitMix64(0x157 ^ units as u64);
    let mut tensor = |file: &str, shape: &[usize], scale: f32| {
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| rng.uniform(scale)).collect();
        write_npy_f32(&dir.join(file), shape, &data).expect("write a tensor");
    };
    let fields = match cell {
        Cell::Lstm | Cell::Gru => {
            let gates = if matches!(cell, Cell::Lstm) { 4 } else { 3 };
            tensor("w_ih.npy", &[gates * units, 8], 3.0);
            tensor("w_hh.npy", &[gates * units, units], 1.0);
            tensor("b_ih.npy", &[gates * units], 0.5);
            tensor("b_hh.npy", &[gates * units], 0.5);
            "w_ih: w_ih.npy\n    w_hh: w_hh.npy\n    b_ih: b_ih.npy\n    b_hh: b_hh.npy"
        }
        Cell::FastGrnn => {
            tensor("w.npy", &[units, 8], 3.0);
            tensor("u.npy", &[units, units], 1.0);
            tensor("b_z.npy", &[units], 0.5);
            tensor("b_h.npy", &[units], 0.5);
            "w: w.npy\n    u: u.npy\n    b_z: b_z.npy\n    b_h: b_h.npy\n    zeta: 1.5\n    \
             nu: -2.0"
        }
    };
    tensor("head_w.npy", &[3, units], 1.0);
    tensor("head_b.npy", &[3], 0.1);
    tensor("calib.npy", &[8, 3, 8], 2.0);
    let spec = format!(
        "name: mve_{kind}{units}\ninput: {{features: 8, steps: 3}}\ncalibration: calib.npy\nlayers:\n  - kind: {kind}\n    \
         units: {units}\n    {fields}\n  - kind: dense\n    units: 3\n    w: head_w.npy\n    \
         b: head_b.npy\n    activation: none\n",
        kind = cell.name()
    );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).expect("write the spec");
    path
}

fn run_cell(
    platform: &Platform,
    cell: Cell,
    units: usize,
    precision: Precision,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = write_cell(dir.path(), cell, units);
    let target = m55();
    let mut model = kpgen::load(&spec).map_err(|d| d.render())?;
    model.precision = precision;
    let gen = kpgen::generate_model(&model, &target).map_err(|d| d.render())?;
    common::check_marks(&gen, &cell.marks(precision))?;
    let inputs = TestInputs::random(4, 3, 8, 0x1157, 2.0);
    let work = dir.path().join("work");
    common::run_against_reference(platform, &target, &gen, &inputs, &[Lang::C], true, &work)
}

/// Each float cell, and the int8 and int16 LSTM, of 8 units (two vectors) and of 6 (a vector
/// and two units one at a time) on the M55 in QEMU (C compiled by gcc and by clang) and through the portable C on the host (gcc,
/// clang), against the reference at every step (fixed point bit for bit with the integer
/// reference); and its C compiled for the M55 with gcc and clang.
#[test]
fn the_helium_cell_updates_match_the_reference_on_the_m55_and_the_host() {
    let (qemu_gcc, qemu_clang) = (qemu(CCompiler::Gcc), qemu(CCompiler::Clang));
    let mut failures = Vec::new();
    let cases = [
        (Cell::Lstm, Precision::F32),
        (Cell::Gru, Precision::F32),
        (Cell::FastGrnn, Precision::F32),
        (Cell::Lstm, Precision::Int8),
        (Cell::Lstm, Precision::Int16),
    ];
    for (cell, precision) in cases {
        for units in [8, 6] {
            let case = format!("{}{units} {}", cell.name(), precision.as_str());
            for (name, platform) in [
                ("qemu gcc", &qemu_gcc),
                ("qemu clang", &qemu_clang),
                (
                    "gcc",
                    &Platform::Host {
                        cc: "gcc".to_owned(),
                    },
                ),
                (
                    "clang",
                    &Platform::Host {
                        cc: "clang".to_owned(),
                    },
                ),
            ] {
                if let Err(e) = run_cell(platform, cell, units, precision) {
                    failures.push(format!("{name} {case}: {e}"));
                }
            }
            let dir = tempfile::tempdir().expect("a temporary folder");
            let spec = write_cell(dir.path(), cell, units);
            let target = m55();
            let mut model = kpgen::load(&spec).unwrap_or_else(|d| panic!("{}", d.render()));
            model.precision = precision;
            let gen =
                kpgen::generate_model(&model, &target).unwrap_or_else(|d| panic!("{}", d.render()));
            if let Err(e) = common::compiles_with_gcc_and_clang(&gen, &target, dir.path()) {
                failures.push(format!("{case}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
