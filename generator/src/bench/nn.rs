//! CMSIS-NN's LSTM beside a model's layer: its parameters from the layer's float weights through
//! CMSIS-NN's (TensorFlow Lite Micro's) quantization, computed here on the host, and the firmware
//! that runs `arm_lstm_unidirectional_s8` / `_s16` on them. CMSIS-NN is the user's own checkout
//! (`--cmsis-nn DIR`); nothing of it is copied into kpgen.
//!
//! The quantization, as CMSIS-NN's LSTM expects it:
//! - weights: int8, symmetric, one scale per gate and matrix (max |w| / 127);
//! - the input x: int8 asymmetric over its range (scale, zero point), or int16 symmetric;
//! - the hidden state h: int8 or int16, symmetric over (-1, 1) (scale 2⁻⁷ or 2⁻¹⁵);
//! - gate pre-activations: int16 at 2⁻¹² (the range ±8 `arm_nn_activation_s16` takes), so each
//!   product is requantized by the effective scale s_w · s_x / 2⁻¹²;
//! - gate outputs (sigmoid, tanh): int16 at 2⁻¹⁵; the cell state: int16 at 2^p, p the smallest
//!   power for which the float run's largest |c| fits;
//! - biases (b_ih + b_hh): int32 (int64 for s16) at s_w_ih · s_x, with the input's kernel sums
//!   times the input offset (−zero point) folded in (the effective bias); the recurrent
//!   effective bias is the kernel sums times h's offset, zero here.

use std::path::{Path, PathBuf};

use askama::Template;
use nalgebra::DMatrix;

use crate::model::cells::lstm_cell;
use crate::spec::{Activations, Precision};

/// A CMSIS-NN source tree (a checkout, or a snapshot with `Include/` and `Source/`).
#[derive(Debug, Clone)]
pub struct CmsisNn {
    pub root: PathBuf,
}

impl CmsisNn {
    pub fn at(root: &Path) -> Result<CmsisNn, String> {
        let probe = root.join("Include/arm_nnfunctions.h");
        if !probe.is_file() || !root.join("Source").is_dir() {
            return Err(format!(
                "{} is not a CMSIS-NN source tree (no {} or no Source/)",
                root.display(),
                probe.display()
            ));
        }
        Ok(CmsisNn {
            root: root.to_owned(),
        })
    }

    /// The sources `arm_lstm_unidirectional_s8` or `_s16` needs, found under `Source/`.
    pub fn lstm_sources(&self, precision: Precision) -> Result<Vec<PathBuf>, String> {
        let names: &[&str] = match precision {
            Precision::Int16 => &[
                "arm_lstm_unidirectional_s16.c",
                "arm_nn_lstm_step_s16.c",
                "arm_nn_lstm_calculate_gate_s16.c",
                "arm_nn_vec_mat_mul_result_acc_s16.c",
                "arm_elementwise_mul_s16_batch_offset.c",
            ],
            _ => &[
                "arm_lstm_unidirectional_s8.c",
                "arm_nn_lstm_step_s8.c",
                "arm_nn_lstm_calculate_gate_s8_s16.c",
                "arm_nn_vec_mat_mul_result_acc_s8_s16.c",
                "arm_elementwise_mul_s16_s8.c",
            ],
        };
        let common = [
            "arm_nn_activation_s16.c",
            "arm_elementwise_mul_s16.c",
            "arm_elementwise_mul_acc_s16.c",
            "arm_nntables.c",
        ];
        let mut all = Vec::new();
        collect_c(&self.root.join("Source"), &mut all);
        names
            .iter()
            .chain(common.iter())
            .map(|n| {
                all.iter()
                    .find(|p| p.file_name().is_some_and(|f| f == *n))
                    .cloned()
                    .ok_or_else(|| format!("the CMSIS-NN tree {} has no {n}", self.root.display()))
            })
            .collect()
    }

    pub fn include(&self) -> PathBuf {
        self.root.join("Include")
    }
}

fn collect_c(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_c(&p, out);
        } else if p.extension().is_some_and(|e| e == "c") {
            out.push(p);
        }
    }
}

/// TensorFlow Lite's QuantizeMultiplier: `real` = m · 2^shift with m a Q31 value in [0.5, 1).
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let mut shift = real.log2().floor() as i32 + 1;
    let mut q = (real / 2f64.powi(shift) * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    (q as i32, shift)
}

#[cfg(test)]
/// CMSIS-NN's `arm_nn_requantize` (double rounding): (val · m) Q31, then the shift.
fn requantize(val: i64, multiplier: i32, shift: i32) -> i64 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    let v = (val << left).clamp(i32::MIN as i64, i32::MAX as i64);
    // Saturating rounding doubling high multiply.
    let prod = v * multiplier as i64;
    let nudge = if prod >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    let high = (prod + nudge) / (1i64 << 31);
    if right == 0 {
        return high;
    }
    let mask = (1i64 << right) - 1;
    let remainder = high & mask;
    let threshold = (mask >> 1) + i64::from(high < 0);
    (high >> right) + i64::from(remainder > threshold)
}

/// One gate's quantized parameters.
pub struct GateQ {
    pub name: &'static str,
    pub activation: &'static str,
    pub w_ih: Vec<i8>,
    pub w_hh: Vec<i8>,
    pub eb_ih: Vec<i64>,
    pub eb_hh: Vec<i64>,
    pub input: (i32, i32),
    pub hidden: (i32, i32),
}

/// A whole LSTM layer quantized for CMSIS-NN, plus the quantized input sequence.
pub struct LstmQ {
    pub precision: Precision,
    pub inputs: usize,
    pub hidden: usize,
    pub steps: usize,
    pub x: Vec<i32>,
    pub input_offset: i32,
    pub h_scale: f64,
    pub output_offset: i32,
    pub forget_to_cell: (i32, i32),
    pub input_to_cell: (i32, i32),
    pub output: (i32, i32),
    pub cell_scale_power: i32,
    /// Gates in CMSIS-NN's struct order: forget, input, cell, output.
    pub gates: Vec<GateQ>,
}

/// The float LSTM (the reference's cell equations, exact sigmoid and tanh) over `x`
/// (steps × inputs): every step's h, and the largest |c| seen.
pub fn float_lstm(
    w_ih: &DMatrix<f64>,
    w_hh: &DMatrix<f64>,
    bias: &[f64],
    x: &[f64],
    steps: usize,
) -> (Vec<Vec<f64>>, f64) {
    let n = w_hh.ncols();
    let inputs = w_ih.ncols();
    let (mut h, mut c) = (vec![0.0; n], vec![0.0; n]);
    let mut out = Vec::with_capacity(steps);
    let mut c_max: f64 = 0.0;
    for t in 0..steps {
        let xt = &x[t * inputs..(t + 1) * inputs];
        let z: Vec<f64> = (0..4 * n)
            .map(|r| {
                bias[r]
                    + (0..inputs).map(|j| w_ih[(r, j)] * xt[j]).sum::<f64>()
                    + (0..n).map(|j| w_hh[(r, j)] * h[j]).sum::<f64>()
            })
            .collect();
        lstm_cell(Activations::Exact, &z, &mut c, &mut h);
        c_max = c.iter().fold(c_max, |m, v| m.max(v.abs()));
        out.push(h.clone());
    }
    (out, c_max)
}

/// Quantizes an LSTM layer (PyTorch gate order i, f, g, o) and its input sequence for
/// CMSIS-NN's int8 (`Precision::Int8`) or 16x8 (`Precision::Int16`) kernel.
pub fn quantize_lstm(
    w_ih: &DMatrix<f64>,
    w_hh: &DMatrix<f64>,
    bias: &[f64],
    x: &[f64],
    steps: usize,
    c_max: f64,
    precision: Precision,
) -> LstmQ {
    let n = w_hh.ncols();
    let inputs = w_ih.ncols();
    let s16 = precision == Precision::Int16;
    // The input: int8 asymmetric over its range (0 inside it), int16 symmetric.
    let (lo, hi) = x
        .iter()
        .fold((0.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
    let (s_x, zp_x) = if s16 {
        (lo.abs().max(hi).max(1e-9) / 32767.0, 0i32)
    } else {
        let s = ((hi - lo) / 255.0).max(1e-9);
        (s, ((-128.0 - lo / s).round() as i32).clamp(-128, 127))
    };
    let (qmin, qmax) = if s16 { (-32768, 32767) } else { (-128, 127) };
    let xq: Vec<i32> = x
        .iter()
        .map(|&v| ((v / s_x).round() as i32 + zp_x).clamp(qmin, qmax))
        .collect();
    let s_h = if s16 { 1.0 / 32768.0 } else { 1.0 / 128.0 };
    let zp_h = 0;
    // Cell state at 2^p: the largest |c| of the float run (at least 1) below 2^(p+15).
    let cell_scale_power = (c_max.max(1.0).log2().ceil() as i32) - 15;
    let gate_scale = 2f64.powi(-12);
    let quant_rows = |m: &DMatrix<f64>, rows: std::ops::Range<usize>| -> (Vec<i8>, f64) {
        let max = rows
            .clone()
            .flat_map(|r| (0..m.ncols()).map(move |c| (r, c)))
            .map(|rc| m[rc].abs())
            .fold(0.0f64, f64::max);
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q = rows
            .flat_map(|r| (0..m.ncols()).map(move |c| (r, c)))
            .map(|rc| (m[rc] / s).round().clamp(-127.0, 127.0) as i8)
            .collect();
        (q, s)
    };
    // CMSIS-NN's order forget, input, cell, output; PyTorch's rows i, f, g, o.
    let order = [
        ("forget", 1usize, "ARM_SIGMOID"),
        ("input", 0, "ARM_SIGMOID"),
        ("cell", 2, "ARM_TANH"),
        ("output", 3, "ARM_SIGMOID"),
    ];
    let gates = order
        .iter()
        .map(|&(name, k, activation)| {
            let rows = k * n..(k + 1) * n;
            let (wi, s_wi) = quant_rows(w_ih, rows.clone());
            let (wh, s_wh) = quant_rows(w_hh, rows.clone());
            let b_scale = s_wi * s_x;
            let eb_ih = rows
                .clone()
                .enumerate()
                .map(|(r, row)| {
                    let kernel_sum: i64 = wi[r * inputs..(r + 1) * inputs]
                        .iter()
                        .map(|&w| w as i64)
                        .sum();
                    (bias[row] / b_scale).round() as i64 - zp_x as i64 * kernel_sum
                })
                .collect();
            let eb_hh = (0..n)
                .map(|r| {
                    let kernel_sum: i64 = wh[r * n..(r + 1) * n].iter().map(|&w| w as i64).sum();
                    -(zp_h as i64) * kernel_sum
                })
                .collect();
            GateQ {
                name,
                activation,
                w_ih: wi,
                w_hh: wh,
                eb_ih,
                eb_hh,
                input: quantize_multiplier(b_scale / gate_scale),
                hidden: quantize_multiplier(s_wh * s_h / gate_scale),
            }
        })
        .collect();
    let p = 2f64.powi(cell_scale_power);
    LstmQ {
        precision,
        inputs,
        hidden: n,
        steps,
        x: xq,
        input_offset: -zp_x,
        h_scale: s_h,
        output_offset: zp_h,
        forget_to_cell: quantize_multiplier(2f64.powi(-15)),
        input_to_cell: quantize_multiplier(2f64.powi(-30) / p),
        output: quantize_multiplier(2f64.powi(-30) / s_h),
        cell_scale_power,
        gates,
    }
}

#[derive(Template)]
#[template(path = "bench/cmsis_nn_lstm.c", escape = "none")]
struct LstmMain<'a> {
    layer: &'a str,
    func: &'static str,
    act_type: &'static str,
    bias_type: &'static str,
    steps: usize,
    inputs: usize,
    hidden: usize,
    x_values: String,
    input_offset: i32,
    forget_to_cell: (i32, i32),
    input_to_cell: (i32, i32),
    cell_clip: i32,
    cell_scale_power: i32,
    output: (i32, i32),
    output_offset: i32,
    gates: Vec<GateText>,
}

struct GateText {
    name: &'static str,
    activation: &'static str,
    w_ih: String,
    w_hh: String,
    eb_ih: String,
    eb_hh: String,
    input: (i32, i32),
    hidden: (i32, i32),
}

fn c_list<T: std::fmt::Display>(v: &[T], suffix: &str) -> String {
    v.chunks(16)
        .map(|c| {
            let items: Vec<String> = c.iter().map(|x| format!("{x}{suffix}")).collect();
            format!("    {},", items.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The CMSIS-NN function run for a precision.
pub fn lstm_function(precision: Precision) -> &'static str {
    match precision {
        Precision::Int16 => "arm_lstm_unidirectional_s16",
        _ => "arm_lstm_unidirectional_s8",
    }
}

/// The firmware's main: the quantized layer, its input sequence and the measured call.
pub fn lstm_main(q: &LstmQ, layer: &str) -> Result<String, String> {
    let s16 = q.precision == Precision::Int16;
    // int64 literals need their suffix; the int32 ones fit as they are.
    let bias_suffix = if s16 { "LL" } else { "" };
    LstmMain {
        layer,
        func: lstm_function(q.precision),
        act_type: if s16 { "int16_t" } else { "int8_t" },
        bias_type: if s16 { "int64_t" } else { "int32_t" },
        steps: q.steps,
        inputs: q.inputs,
        hidden: q.hidden,
        x_values: c_list(&q.x, ""),
        input_offset: q.input_offset,
        forget_to_cell: q.forget_to_cell,
        input_to_cell: q.input_to_cell,
        cell_clip: 32767,
        cell_scale_power: q.cell_scale_power,
        output: q.output,
        output_offset: q.output_offset,
        gates: q
            .gates
            .iter()
            .map(|g| GateText {
                name: g.name,
                activation: g.activation,
                w_ih: c_list(&g.w_ih, ""),
                w_hh: c_list(&g.w_hh, ""),
                eb_ih: c_list(&g.eb_ih, bias_suffix),
                eb_hh: c_list(&g.eb_hh, bias_suffix),
                input: g.input,
                hidden: g.hidden,
            })
            .collect(),
    }
    .render()
    .map(super::ending_with_newline)
    .map_err(|e| format!("render the CMSIS-NN main: {e}"))
}

/// The largest |h_cmsis − h_float| over the first [`CHECKED_STEPS`] steps (the parameters'
/// check: the first step tests the input path and biases, the next ones the recurrent weights,
/// before drift builds up), and the largest at the last step (what a classifier head would
/// read, after the sequence's drift); `got` holds the printed codes, step by step.
pub const CHECKED_STEPS: usize = 3;

pub fn errors(q: &LstmQ, got: &[i32], reference: &[Vec<f64>]) -> (f64, f64) {
    let step_error = |t: usize| -> f64 {
        reference.get(t).map_or(f64::INFINITY, |r| {
            r.iter()
                .zip(got.get(t * q.hidden..).unwrap_or(&[]))
                .map(|(&want, &code)| (f64::from(code - q.output_offset) * q.h_scale - want).abs())
                .fold(0.0, f64::max)
        })
    };
    let first = (0..CHECKED_STEPS.min(reference.len()))
        .map(step_error)
        .fold(0.0, f64::max);
    (first, step_error(reference.len().saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstm_shapes_parse_and_bad_ones_say_what_is_expected() {
        use crate::bench::model::parse_lstm;
        assert_eq!(parse_lstm("40x128"), Ok((40, 128)));
        for bad in ["40", "40x", "0x4", "4x2000", "ax4"] {
            assert!(parse_lstm(bad).unwrap_err().contains(bad));
        }
        let m = crate::bench::model::synthetic_lstm(3, 5);
        assert_eq!((m.input_features, m.layers[0].units, m.steps), (3, 5, 100));
    }

    #[test]
    fn errors_see_a_wrong_recurrent_step_and_the_last_step() {
        let q = quantize_lstm(
            &DMatrix::from_element(8, 1, 0.5),
            &DMatrix::from_element(8, 2, 0.5),
            &[0.0; 8],
            &[0.5, -0.5, 0.25, 0.0],
            4,
            1.0,
            Precision::Int8,
        );
        let reference = vec![vec![0.5, -0.5]; 4];
        let right: Vec<i32> = vec![64, -64, 64, -64, 64, -64, 64, -64];
        assert_eq!(errors(&q, &right, &reference), (0.0, 0.0));
        // Step 2 (the first that reads h) off by 0.25: the parameters' check sees it.
        let mut wrong = right.clone();
        wrong[2] = 96;
        assert_eq!(errors(&q, &wrong, &reference).0, 0.25);
        // Only the last step off: drift, shown but outside the checked steps.
        let mut drift = right.clone();
        drift[7] = -32;
        assert_eq!(errors(&q, &drift, &reference), (0.0, 0.25));
    }

    #[test]
    fn multipliers_follow_tflite() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        let (m, s) = quantize_multiplier(2f64.powi(-15));
        assert_eq!((m, s), (1 << 30, -14));
        for real in [0.3, 1.7e-4, 12.5] {
            let (m, s) = quantize_multiplier(real);
            let back = m as f64 / 2f64.powi(31) * 2f64.powi(s);
            assert!((back - real).abs() / real < 1e-9, "{real}: {m} {s}");
            assert_eq!(requantize(1000, m, s), (1000.0 * real).round() as i64);
        }
    }

    #[test]
    fn quantized_layer_has_cmsis_nn_shapes_and_folded_biases() {
        let (n, inputs, steps) = (3, 2, 4);
        let w_ih = DMatrix::from_fn(4 * n, inputs, |r, c| (r as f64 - c as f64) / 10.0);
        let w_hh = DMatrix::from_fn(4 * n, n, |r, c| (c as f64 - r as f64) / 20.0);
        let bias = vec![0.1; 4 * n];
        let x: Vec<f64> = (0..steps * inputs).map(|i| i as f64 / 8.0 - 0.2).collect();
        let (h, c_max) = float_lstm(&w_ih, &w_hh, &bias, &x, steps);
        assert_eq!(h.len(), steps);
        let q = quantize_lstm(&w_ih, &w_hh, &bias, &x, steps, c_max, Precision::Int8);
        assert_eq!(q.gates.len(), 4);
        assert_eq!(q.gates[0].name, "forget");
        assert_eq!(q.gates[0].w_ih.len(), n * inputs);
        assert_eq!(q.x.len(), steps * inputs);
        // The input's zero point is folded: eb = round(b / s) + offset · Σ w.
        assert!(q.input_offset != 0);
        let main = lstm_main(&q, "test").unwrap();
        assert!(main.contains("arm_lstm_unidirectional_s8"));
    }
}
