//! Accuracy of kpgen's own single-precision activations (the generated code uses no libm),
//! measured against f64 over a dense grid, for the C runtime and the Rust runtime, in both
//! definitions: `exact` (polynomial exp and a division) and `table` (one interpolated sigmoid
//! table). The bounds asserted here are the ones docs/design.md states. Non-finite and extreme
//! inputs go through the C runtime under clang's UBSan and through the Rust runtime: every
//! result is defined, finite and in range.

mod common;

use std::process::Command;

use common::HOSTILE_FLOATS as HOSTILE;
use kpgen::model::cells::{sigmoid_as, sigmoid_table, tanh_as};
use kpgen::spec::Activations;

#[allow(dead_code)]
mod exact {
    include!("../runtime/rust/cells.rs");
    include!("../runtime/rust/act_exact.rs");
}

#[allow(dead_code)]
mod table {
    static KP_SIGMOID_F32: std::sync::LazyLock<Vec<f32>> =
        std::sync::LazyLock::new(|| kpgen::model::cells::sigmoid_table().to_vec());
    include!("../runtime/rust/cells.rs");
    include!("../runtime/rust/act_table.rs");
}

/// Grid over [-20, 20] in steps of 1/512, plus the clamp region.
fn grid() -> Vec<f32> {
    let mut xs: Vec<f32> = (-20 * 512..=20 * 512).map(|i| i as f32 / 512.0).collect();
    xs.extend([-100.0, -87.5, -30.0, 30.0, 88.5, 100.0]);
    xs
}

#[derive(Debug)]
struct Errors {
    exp_rel: f64,
    sigmoid_abs: f64,
    tanh_abs: f64,
}

fn measure(values: &[(f32, f32, f32, f32)]) -> Errors {
    let mut e = Errors {
        exp_rel: 0.0,
        sigmoid_abs: 0.0,
        tanh_abs: 0.0,
    };
    for &(x, exp, sig, tanh) in values {
        let x = x as f64;
        if (-87.0..=88.0).contains(&x) {
            e.exp_rel = e.exp_rel.max(((exp as f64) - x.exp()).abs() / x.exp());
        }
        e.sigmoid_abs = e
            .sigmoid_abs
            .max((sig as f64 - 1.0 / (1.0 + (-x).exp())).abs());
        e.tanh_abs = e.tanh_abs.max((tanh as f64 - x.tanh()).abs());
    }
    e
}

/// The stated bounds: exact to float rounding; the table within its interpolation and clamp
/// error (sigmoid: h²/12 · max|σ''| = 2.0e-5 with h = 0.05, the table's points moved by
/// -h²/12 · σ'' so the error averages zero; tanh: twice that at half the step,
/// and 1 - tanh(6.4) = 5.5e-6 at the clamp).
fn check(e: &Errors, what: &str, act: Activations) {
    println!(
        "{what}: exp max rel error {:.2e}, sigmoid max abs error {:.2e}, tanh max abs error {:.2e}",
        e.exp_rel, e.sigmoid_abs, e.tanh_abs
    );
    assert!(e.exp_rel < 4e-7, "{what} exp: {:e}", e.exp_rel);
    let (sig, tanh) = match act {
        Activations::Exact => (2e-7, 4e-7),
        Activations::Table => (2.1e-5, 4.1e-5),
    };
    assert!(e.sigmoid_abs < sig, "{what} sigmoid: {:e}", e.sigmoid_abs);
    assert!(e.tanh_abs < tanh, "{what} tanh: {:e}", e.tanh_abs);
}

fn rust_values(act: Activations, xs: &[f32]) -> Vec<(f32, f32, f32, f32)> {
    xs.iter()
        .map(|&x| match act {
            Activations::Exact => (x, exact::expf(x), exact::sigmoidf(x), exact::tanhf(x)),
            Activations::Table => (x, exact::expf(x), table::sigmoidf(x), table::tanhf(x)),
        })
        .collect()
}

/// The table's error has no bias: over [0, 12.8] (and so, by symmetry, over any interval
/// symmetric about 0) it averages to zero within float rounding, where plain interpolation of
/// the true values would average -h²/12 · σ'' (up to 8e-6 per interval), pulling gates toward
/// 1/2 at every step of a recurrent state.
#[test]
fn the_table_error_averages_zero() {
    let n = 256 * 64;
    let (mut sum, mut worst_interval) = (0f64, 0f64);
    for k in 0..256 {
        let mut interval = 0f64;
        for j in 0..64 {
            let x = (k * 64 + j) as f64 / (64.0 * 20.0) + 1.0 / (128.0 * 20.0);
            let e = table::sigmoidf(x as f32) as f64 - 1.0 / (1.0 + (-x).exp());
            interval += e / 64.0;
        }
        worst_interval = worst_interval.max(interval.abs());
        sum += interval * 64.0;
    }
    let mean = sum / n as f64;
    println!("table sigmoid: mean error {mean:.2e}, worst interval mean {worst_interval:.2e}");
    assert!(mean.abs() < 2e-7, "mean {mean:e}");
    assert!(worst_interval < 6e-7, "interval mean {worst_interval:e}");
}

#[test]
fn rust_activations_are_accurate() {
    for act in [Activations::Exact, Activations::Table] {
        let values = rust_values(act, &grid());
        check(&measure(&values), &format!("rust {}", act.as_str()), act);
    }
}

/// The f64 reference of `kpgen test` computes the table definition, not the true functions:
/// the generated f32 code differs from it by float rounding only.
#[test]
fn the_reference_models_the_table() {
    let (mut sig, mut tanh) = (0f64, 0f64);
    for &(x, _, s, t) in &rust_values(Activations::Table, &grid()) {
        sig = sig.max((s as f64 - sigmoid_as(Activations::Table, x as f64)).abs());
        tanh = tanh.max((t as f64 - tanh_as(Activations::Table, x as f64)).abs());
    }
    println!("f32 table against the f64 table: sigmoid {sig:.2e}, tanh {tanh:.2e}");
    assert!(sig < 2e-7, "sigmoid {sig:e}");
    assert!(tanh < 4e-7, "tanh {tanh:e}");
    // The table itself: 258 f32 values, the last repeated, rising from 1/2 to sigmoid(12.8).
    let t = sigmoid_table();
    assert_eq!(t.len(), 258);
    assert_eq!(t[0], 0.5);
    assert_eq!(t[256], t[257]);
    assert!(t.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn rust_activations_are_defined_for_any_input() {
    for act in [Activations::Exact, Activations::Table] {
        for (x, e, s, t) in rust_values(act, &HOSTILE) {
            assert!(e.is_finite() && e >= 0.0, "{act:?} exp({x}) = {e}");
            assert!((0.0..=1.0).contains(&s), "{act:?} sigmoid({x}) = {s}");
            assert!((-1.0..=1.0).contains(&t), "{act:?} tanh({x}) = {t}");
        }
    }
    let mut y = [f32::NAN, 1.0, f32::INFINITY, -f32::INFINITY];
    table::softmax(&mut y);
    assert!(y.iter().all(|v| v.is_finite()), "softmax: {y:?}");
}

/// The C runtime pieces of one definition, as the generated code includes them.
fn c_runtime(act: Activations) -> String {
    match act {
        Activations::Exact => [
            include_str!("../runtime/c/expf.c"),
            include_str!("../runtime/c/sigmoidf.c"),
            include_str!("../runtime/c/tanhf.c"),
        ]
        .join("\n"),
        Activations::Table => {
            let values: Vec<String> = sigmoid_table().iter().map(|v| format!("{v:e}f")).collect();
            [
                include_str!("../runtime/c/fmaf.c"),
                include_str!("../runtime/c/expf.c"),
                &format!(
                    "static const float KP_SIGMOID_F32[258] = {{{}}};\n",
                    values.join(", ")
                ),
                include_str!("../runtime/c/sigmoid_tab.c"),
                include_str!("../runtime/c/sigmoidf_table.c"),
                include_str!("../runtime/c/tanhf_table.c"),
            ]
            .join("\n")
        }
    }
}

/// Compiles and runs a C program that prints `x exp(x) sigmoid(x) tanh(x)` (C's %a) for
/// every input of `xs` through `act`'s runtime, with `cc` and `flags`; returns the rows.
fn run_c(cc: &str, flags: &[&str], act: Activations, xs: &[f32]) -> Vec<(f32, f32, f32, f32)> {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = xs.iter().map(|x| hex_float(*x)).collect();
    let main = format!(
        "#include <stdint.h>\n#include <stdio.h>\n{}\n\
         static const uint32_t xs[{}] = {{{}}};\n\
         int main(void) {{\n\
             for (int k = 0; k < {}; ++k) {{\n\
                 union {{ uint32_t u; float f; }} v;\n\
                 v.u = xs[k];\n\
                 printf(\"%a %a %a %a\\n\", (double)v.f, (double)kp_expf(v.f), \
                        (double)kp_sigmoidf(v.f), (double)kp_tanhf(v.f));\n\
             }}\n\
             return 0;\n\
         }}\n",
        c_runtime(act),
        xs.len(),
        inputs.join(", "),
        xs.len()
    );
    let src = dir.path().join("act.c");
    std::fs::write(&src, main).unwrap();
    let exe = dir.path().join("act");
    let out = Command::new(cc)
        .args([
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{cc} {act:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<(f32, f32, f32, f32)> = text
        .lines()
        .map(|line| {
            let v: Vec<f32> = line.split(' ').map(|w| hexf(w) as f32).collect();
            (v[0], v[1], v[2], v[3])
        })
        .collect();
    assert_eq!(rows.len(), xs.len());
    rows
}

/// The bits of `x` as a C integer literal.
fn hex_float(x: f32) -> String {
    format!("0x{:08x}u", x.to_bits())
}

#[test]
fn c_activations_are_accurate_and_match_rust() {
    let xs = grid();
    for act in [Activations::Exact, Activations::Table] {
        // -ffp-contract=off: the same rounding as Rust, which never fuses a*b+c.
        let rows = run_c("gcc", &["-ffp-contract=off"], act, &xs);
        for (p, x) in rows.iter().zip(&xs) {
            assert_eq!(
                p.0.to_bits(),
                x.to_bits(),
                "the C grid and the Rust grid differ"
            );
        }
        check(&measure(&rows), &format!("c {}", act.as_str()), act);
        // Without contraction, C and Rust compute the same bits.
        for (c, r) in rows.iter().zip(rust_values(act, &xs)) {
            assert_eq!(c.1.to_bits(), r.1.to_bits(), "exp({})", c.0);
            assert_eq!(c.2.to_bits(), r.2.to_bits(), "{act:?} sigmoid({})", c.0);
            assert_eq!(c.3.to_bits(), r.3.to_bits(), "{act:?} tanh({})", c.0);
        }
    }
}

/// NaN, infinities, ±FLT_MAX and subnormals through the C runtime under UBSan (a NaN or an
/// out-of-range float converted to int is reported, and the run fails): defined, finite, in
/// range, and the same as the Rust runtime.
#[test]
fn c_activations_are_defined_for_any_input_under_ubsan() {
    let flags = [
        "-fsanitize=undefined,float-cast-overflow",
        "-fno-sanitize-recover=all",
        "-ffp-contract=off",
    ];
    for act in [Activations::Exact, Activations::Table] {
        let rows = run_c("clang", &flags, act, &HOSTILE);
        for (c, r) in rows.iter().zip(rust_values(act, &HOSTILE)) {
            assert!(
                c.1.is_finite() && c.1 >= 0.0,
                "{act:?} exp({}) = {}",
                c.0,
                c.1
            );
            assert!(
                (0.0..=1.0).contains(&c.2),
                "{act:?} sigmoid({}) = {}",
                c.0,
                c.2
            );
            assert!(
                (-1.0..=1.0).contains(&c.3),
                "{act:?} tanh({}) = {}",
                c.0,
                c.3
            );
            assert_eq!(
                (c.1.to_bits(), c.2.to_bits(), c.3.to_bits()),
                (r.1.to_bits(), r.2.to_bits(), r.3.to_bits()),
                "{act:?} at {}: C and Rust differ",
                r.0
            );
        }
    }
}

/// Parses C's `%a` hexadecimal float output (and `nan`, `inf`).
fn hexf(s: &str) -> f64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = match s {
        "nan" => f64::NAN,
        "inf" => f64::INFINITY,
        _ => {
            let s = s.trim_start_matches("0x");
            let (mant, exp) = s.split_once('p').unwrap();
            let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
            let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
            for (i, c) in frac.chars().enumerate() {
                v += c.to_digit(16).unwrap() as f64 / 16f64.powi(i as i32 + 1);
            }
            v * 2f64.powi(exp.parse().unwrap())
        }
    };
    if neg {
        -v
    } else {
        v
    }
}
