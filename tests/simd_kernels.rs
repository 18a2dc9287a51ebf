//! Every SIMD form of a fixed-point product stage on a DSP core: one KP dense layer per form,
//! its factor shapes chosen so that the plan gives the stage that form, generated for the
//! Cortex-M4, run in QEMU in C and Rust and compared bit for bit with the integer reference.
//!
//! The forms (`lower::kernel::Simd`): a stage reading its input contiguously along the
//! reduction (int8 × int8 with SXTB16 on both sides, int8 × int16 pairs, int16 × int16), and
//! a stage reading it with a stride along the reduction and contiguously across columns (the
//! first stage of a left-first order; the plan lays temporaries out contiguously for the stage
//! that reads them), whose pairs are built two columns at a time (int8: two halfwords joined,
//! then SXTB16; int16: PKHBT and PKHTB) and for an odd last column one at a time. Each case also checks that the generated C contains
//! the form it is meant to exercise, so a change of plan cannot leave a form untested.
//! Needs arm-none-eabi-gcc, qemu-system-arm and the thumbv7em-none-eabihf Rust target, and
//! FAILS (never skips) when they are missing.

mod common;

use std::path::Path;

use kpgen::base::sequences::{SplitMix64, TestInputs};
use kpgen::base::tensor::write_npy_f32;
use kpgen::qemu::Toolchain;
use kpgen::spec::{Lang, Precision};
use kpgen::verify::Platform;

struct Form {
    name: &'static str,
    /// A is m x n, B is p x q: W = A ⊗ B is (m·p) x (n·q).
    a: (usize, usize),
    b: (usize, usize),
    precision: Precision,
    /// Text the generated C must contain (the form's loads and pairing).
    marks: &'static [&'static str],
}

const FORMS: &[Form] = &[
    // Left-first (720 MACs against 936): A (96 values, a loop) reads x with stride q = 5 and
    // five columns: two pairs of columns and a lone one.
    Form {
        name: "int8_strided_input_int8",
        a: (8, 12),
        b: (6, 5),
        precision: Precision::Int8,
        marks: &["kp_read16(&", "kp_pkhbt((uint32_t)"],
    },
    Form {
        name: "int16_strided_input_int16",
        a: (8, 12),
        b: (6, 5),
        precision: Precision::Int16,
        marks: &[
            "kp_pkhtb(x",
            "kp_pkhbt((uint32_t)",
            "kp_shift_sat16_s64_32(",
        ],
    },
    // Contiguous forms: a looped B (16 x 16) applied first to x, then to the temporary.
    Form {
        name: "int8_contiguous",
        a: (4, 4),
        b: (16, 16),
        precision: Precision::Int8,
        marks: &["kp_sxtb16_ror8(x", "kp_smlad("],
    },
    Form {
        name: "int16_contiguous",
        a: (4, 4),
        b: (16, 16),
        precision: Precision::Int16,
        marks: &["kp_smlald("],
    },
];

fn write_case(dir: &Path, form: &Form) -> std::path::PathBuf {
    let (m, n) = form.a;
    let (p, q) = form.b;
    let (rows, cols) = (m * p, n * q);
    let mut rng = SplitMix64(0x51d ^ (m * 1000 + n * 100 + p * 10 + q) as u64);
    let mut tensor = |file: &str, shape: &[usize], scale: f32| {
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| rng.uniform(scale)).collect();
        write_npy_f32(&dir.join(file), shape, &data).expect("write a tensor");
    };
    tensor("A.npy", &[m, n], 0.5);
    tensor("B.npy", &[p, q], 0.5);
    tensor("b.npy", &[rows], 0.1);
    tensor("calib.npy", &[8, 2, cols], 1.0);
    let spec = format!(
        "name: simd_{name}\ninput: {{features: {cols}, steps: 2}}\ncalibration: calib.npy\n\
         layers:\n  - kind: dense\n    units: {rows}\n    w: {{kron: [A.npy, B.npy]}}\n    \
         b: b.npy\n    activation: none\n",
        name = form.name
    );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).expect("write the spec");
    path
}

fn run(platform: &Platform, langs: &[Lang], form: &Form) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = write_case(dir.path(), form);
    let target = common::target();
    let mut model = kpgen::load(&spec).map_err(|d| d.render())?;
    model.precision = form.precision;
    let gen = kpgen::generate_model(&model, &target).map_err(|d| d.render())?;
    common::check_marks(&gen, form.marks)?;
    let inputs = TestInputs::random(3, 2, model.input_features, 0x5eed, 1.0);
    let work = dir.path().join("work");
    common::run_against_reference(platform, &target, &gen, &inputs, langs, false, &work)
}

#[test]
fn every_simd_form_is_bit_exact_in_c_and_rust_under_qemu() {
    let platform = Platform::Qemu(
        Toolchain::locate()
            .unwrap_or_else(|e| panic!("the cross toolchain is missing (run ci/setup): {e}")),
    );
    let failures: Vec<String> = FORMS
        .iter()
        .filter_map(|f| {
            run(&platform, &[Lang::C, Lang::Rust], f)
                .err()
                .map(|e| format!("{}: {e}", f.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same kernels on the host, where no `__ARM_FEATURE_DSP` is defined: the portable C twin
/// of every SIMD piece (SXTB16, SMLAD, SMLALD, PKHBT, PKHTB) must give the same bits, with gcc
/// and clang.
#[test]
fn every_simd_form_is_bit_exact_through_the_portable_c_on_the_host() {
    let failures: Vec<String> = ["gcc", "clang"]
        .iter()
        .flat_map(|cc| {
            let platform = Platform::Host {
                cc: (*cc).to_owned(),
            };
            FORMS
                .iter()
                .filter_map(|f| {
                    run(&platform, &[Lang::C], f)
                        .err()
                        .map(|e| format!("{cc} {}: {e}", f.name))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The C of every form, generated for every core with the DSP extension, compiles with the
/// strict flags under the cross gcc and under clang (whose `-Wunused-function` also sees the
/// static helpers that only a portable branch calls).
#[test]
fn the_c_of_every_form_compiles_cleanly_for_every_dsp_core_with_gcc_and_clang() {
    let mut failures = Vec::new();
    for name in ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"] {
        let target = kpgen::target::lookup(name).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        assert!(target.features.dsp, "{name} has the DSP extension");
        for form in FORMS {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let spec = write_case(dir.path(), form);
            let mut model = kpgen::load(&spec).unwrap_or_else(|d| panic!("{}", d.render()));
            model.precision = form.precision;
            let gen =
                kpgen::generate_model(&model, &target).unwrap_or_else(|d| panic!("{}", d.render()));
            if let Err(e) = common::compiles_with_gcc_and_clang(&gen, &target, dir.path()) {
                failures.push(format!("{name} {}: {e}", form.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
