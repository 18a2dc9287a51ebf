//! Accuracy of kpgen's own single-precision exp, sigmoid and tanh (the generated code uses no
//! libm), measured against f64 over a dense grid, for the C runtime and the Rust runtime. The
//! bounds asserted here are the ones docs/design.md states.

use std::process::Command;

#[path = "../runtime/rust/cells.rs"]
mod cells;

/// Grid over [-20, 20] in steps of 1/512, plus the clamp region.
fn grid() -> Vec<f32> {
    let mut xs: Vec<f32> = (-20 * 512..=20 * 512).map(|i| i as f32 / 512.0).collect();
    xs.extend([-100.0, -87.5, -30.0, 30.0, 88.5, 100.0]);
    xs
}

struct Errors {
    exp_rel: f64,
    sigmoid_abs: f64,
    tanh_abs: f64,
}

fn measure(values: impl Iterator<Item = (f32, f32, f32, f32)>) -> Errors {
    let mut e = Errors {
        exp_rel: 0.0,
        sigmoid_abs: 0.0,
        tanh_abs: 0.0,
    };
    for (x, exp, sig, tanh) in values {
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

fn check(e: &Errors, lang: &str) {
    println!(
        "{lang}: exp max rel error {:.2e}, sigmoid max abs error {:.2e}, tanh max abs error {:.2e}",
        e.exp_rel, e.sigmoid_abs, e.tanh_abs
    );
    assert!(e.exp_rel < 4e-7, "{lang} exp: {:e}", e.exp_rel);
    assert!(e.sigmoid_abs < 2e-7, "{lang} sigmoid: {:e}", e.sigmoid_abs);
    assert!(e.tanh_abs < 4e-7, "{lang} tanh: {:e}", e.tanh_abs);
}

#[test]
fn rust_activations_are_accurate() {
    let e = measure(
        grid()
            .into_iter()
            .map(|x| (x, cells::expf(x), cells::sigmoidf(x), cells::tanhf(x))),
    );
    check(&e, "rust");
}

#[test]
fn c_activations_are_accurate_and_match_rust() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = [
        include_str!("../runtime/c/expf.c"),
        include_str!("../runtime/c/sigmoidf.c"),
        include_str!("../runtime/c/tanhf.c"),
    ]
    .join("\n");
    // The C program walks the same grid as `grid()` and prints each input with its results.
    let main = format!(
        "#include <stdint.h>\n#include <stdio.h>\n{runtime}\n\
         static void row(float x) {{\n\
             printf(\"%a %a %a %a\\n\", (double)x, (double)kp_expf(x), (double)kp_sigmoidf(x), (double)kp_tanhf(x));\n\
         }}\n\
         int main(void) {{\n\
             static const float extra[] = {{-100.0f, -87.5f, -30.0f, 30.0f, 88.5f, 100.0f}};\n\
             for (int32_t i = -20 * 512; i <= 20 * 512; ++i) {{\n\
                 row((float)i / 512.0f);\n\
             }}\n\
             for (int k = 0; k < 6; ++k) {{\n\
                 row(extra[k]);\n\
             }}\n\
             return 0;\n\
         }}\n"
    );
    let src = dir.path().join("act.c");
    std::fs::write(&src, main).unwrap();
    let exe = dir.path().join("act");
    // -ffp-contract=off: the same rounding as Rust, which never fuses a*b+c.
    let out = Command::new("gcc")
        .args([
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-ffp-contract=off",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let xs = grid();
    let parsed: Vec<(f32, f32, f32, f32)> = text
        .lines()
        .map(|line| {
            let v: Vec<f32> = line.split(' ').map(|w| hexf(w) as f32).collect();
            (v[0], v[1], v[2], v[3])
        })
        .collect();
    for (p, x) in parsed.iter().zip(&xs) {
        assert_eq!(p.0, *x, "the C grid and the Rust grid differ");
    }
    assert_eq!(parsed.len(), xs.len());
    check(&measure(parsed.iter().copied()), "c");
    // Without contraction, C and Rust compute the same bits.
    for &(x, exp, sig, tanh) in &parsed {
        assert_eq!(exp.to_bits(), cells::expf(x).to_bits(), "exp({x})");
        assert_eq!(sig.to_bits(), cells::sigmoidf(x).to_bits(), "sigmoid({x})");
        assert_eq!(tanh.to_bits(), cells::tanhf(x).to_bits(), "tanh({x})");
    }
}

/// Parses C's `%a` hexadecimal float output.
fn hexf(s: &str) -> f64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let s = s.trim_start_matches("0x");
    let (mant, exp) = s.split_once('p').unwrap();
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
    for (i, c) in frac.chars().enumerate() {
        v += c.to_digit(16).unwrap() as f64 / 16f64.powi(i as i32 + 1);
    }
    let v = v * 2f64.powi(exp.parse().unwrap());
    if neg {
        -v
    } else {
        v
    }
}
