//! Fixed point: calibration and quantization of a plan (int8 / int16, CMSIS-NN conventions).
//!
//! Runs between planning and lowering. The float plan is executed on the calibration inputs
//! (`calibrate`) to find the range of every vector the integer code stores; then every stored
//! matrix, bias and constant is quantized and every accumulation is given a requantization and a
//! proven overflow bound ([`quantize`]). The formats:
//! - weights: symmetric per stored matrix (per factor for KP, per overlay), int8 or int16;
//! - the model input: int8 asymmetric (scale and zero point from the calibrated min/max) or
//!   int16 symmetric; every row of a product reading it starts its accumulator at
//!   −zero_point·Σ_j w_ij, so the sum is exactly Σ w·(x − zero_point);
//! - KP / low-rank intermediates T: int16 with their own calibrated scale;
//! - gate pre-activations: int32 accumulators in Q.12, fed to the activations as int16 Q3.12;
//!   sigmoid and tanh by 513-entry int16 tables with linear interpolation, Q15 results;
//! - LSTM cell state: int16 with a power-of-two scale from calibration;
//! - hidden states: int8 / int16 with a power-of-two scale (Q7 / Q15 for LSTM and GRU, whose
//!   hidden state is bounded by 1; calibrated for FastGRNN);
//! - dense outputs: an int32 accumulator at 1/256 of the output quantum, narrowed to the output
//!   format (int8 asymmetric for the model output, symmetric otherwise).

pub mod fixed;
pub mod intref;

use std::collections::HashMap;

use serde::Serialize;

use crate::base::sequences::TestInputs;
use crate::model::cells;
use crate::plan::{LayerConstants, MatrixPlan, Operand, Plan, Product, Source, Stage};
use crate::spec::{Activation, Activations, Precision};
use fixed::{Requant, GATE_FRAC};

/// A quantized vector format: real = (q − zero_point) · scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QFormat {
    pub bits: u32,
    pub scale: f64,
    pub zero_point: i32,
}

impl QFormat {
    fn power_of_two(bits: u32, frac: u32) -> QFormat {
        QFormat {
            bits,
            scale: 2f64.powi(-(frac as i32)),
            zero_point: 0,
        }
    }

    fn symmetric(bits: u32, max_abs: f64) -> QFormat {
        QFormat {
            bits,
            scale: if max_abs > 0.0 {
                max_abs / qmax(bits) as f64
            } else {
                1.0
            },
            zero_point: 0,
        }
    }

    /// int8 asymmetric over [min, max] (widened to include 0).
    fn asymmetric(bits: u32, min: f64, max: f64) -> QFormat {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        if hi - lo <= 0.0 {
            return QFormat::symmetric(bits, 0.0);
        }
        let levels = ((1i64 << bits) - 1) as f64;
        let scale = (hi - lo) / levels;
        let qmin = -(1i64 << (bits - 1)) as f64;
        let zero_point = (qmin - lo / scale).round() as i32;
        QFormat {
            bits,
            scale,
            zero_point,
        }
    }
}

/// One stored matrix (or overlay) in integers, and how its accumulator becomes output.
#[derive(Debug, Clone, Serialize)]
pub struct StageQuant {
    /// Row-major integer weights (for an overlay: in entry order).
    #[serde(skip)]
    pub values: Vec<i32>,
    pub weight_bits: u32,
    pub weight_scale: f64,
    pub input_scale: f64,
    pub output_scale: f64,
    pub requant: Requant,
    /// The accumulator is int64 (the int32 bound failed).
    pub wide: bool,
    /// Largest |accumulator| any input can produce: Σ_j |w_ij| · max|x_j|.
    pub bound: i64,
    /// Output to a temp: saturate to int16 and store; otherwise add to an int32 destination.
    pub narrow: bool,
    /// A temp whose scale is the accumulator's times 2^k: requantizing is a rounding shift by
    /// k (three instructions instead of a 64-bit multiply), see [`requant_acc`].
    pub shift_only: Option<u32>,
    /// Where the input codes have a zero point: each row's accumulator starts at
    /// −zero_point·Σ_j w_ij (rows of the stage; for an overlay, its non-empty rows in order),
    /// so the sum is Σ w·(x − zero_point) exactly. Empty when the zero point is 0.
    #[serde(skip)]
    pub row_offsets: Vec<i64>,
}

impl StageQuant {
    /// A shift-only temp whose rounded, shifted accumulator provably fits 32 bits: |acc| is at
    /// most the bound plus the largest zero-point share, and the rounding moves it by ≤ 1.
    pub fn shifted_fits_i32(&self) -> bool {
        let max_abs = self.bound.saturating_add(
            self.row_offsets
                .iter()
                .map(|o| o.saturating_abs())
                .max()
                .unwrap_or(0),
        );
        self.shift_only
            .is_some_and(|k| (max_abs >> k).saturating_add(1) < i64::from(i32::MAX))
    }
}

/// The codes a stage reads: their scale, zero point and largest |code − zero point|.
#[derive(Debug, Clone, Copy)]
struct InputCodes {
    scale: f64,
    zero_point: i32,
    max: i64,
}

impl InputCodes {
    fn of(f: QFormat) -> InputCodes {
        InputCodes {
            scale: f.scale,
            zero_point: f.zero_point,
            max: (1i64 << (f.bits - 1)) + f.zero_point.unsigned_abs() as i64,
        }
    }

    /// An int16 temp (no zero point).
    fn temp(scale: f64) -> InputCodes {
        InputCodes {
            scale,
            zero_point: 0,
            max: 1 << 15,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MatrixQuant {
    pub id: String,
    pub stages: Vec<StageQuant>,
    pub overlay: Option<StageQuant>,
    /// The first intermediate's scale (every stage's `output_scale` holds its own).
    pub temp_scale: Option<f64>,
}

/// Per-layer integer constants.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "cell", rename_all = "snake_case")]
pub enum LayerQuant {
    Lstm {
        #[serde(skip)]
        bias: Vec<i32>,
        cell_frac: u32,
        hidden_frac: u32,
    },
    Gru {
        /// b_ih (3H) then b_hh (3H).
        #[serde(skip)]
        bias: Vec<i32>,
        hidden_frac: u32,
    },
    FastGrnn {
        #[serde(skip)]
        b_z: Vec<i32>,
        #[serde(skip)]
        b_h: Vec<i32>,
        zeta: i32,
        nu: i32,
        hidden_frac: u32,
    },
    Dense {
        #[serde(skip)]
        bias: Vec<i32>,
        activation: Activation,
        /// Fraction bits the accumulator carries beyond the output quantum (none/relu), or the
        /// Q.12 gate format (sigmoid, tanh, softmax).
        acc_shift: u32,
        output: QFormat,
    },
}

/// Fraction bits a dense accumulator keeps below the output quantum.
pub const DENSE_ACC_SHIFT: u32 = 8;

/// The quantized model: everything the integer reference and the emitters need.
#[derive(Debug, Clone, Serialize)]
pub struct QuantPlan {
    pub precision: Precision,
    pub act_bits: u32,
    pub input: QFormat,
    pub output: QFormat,
    pub calibration: String,
    /// In the order of `Plan::matrices()`.
    pub matrices: Vec<MatrixQuant>,
    pub layers: Vec<LayerQuant>,
}

impl QuantPlan {
    pub fn matrix(&self, id: &str) -> Option<&MatrixQuant> {
        self.matrices.iter().find(|m| m.id == id)
    }
}

// ---- calibration: the float plan, executed ----------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
}

impl Range {
    const EMPTY: Range = Range {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, v: f64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn max_abs(self) -> f64 {
        if self.min > self.max {
            0.0
        } else {
            self.min.abs().max(self.max.abs())
        }
    }
}

/// The range name of the intermediate stage `k` of matrix `id` writes: `ID:t` for the first
/// stage (the only intermediate of a two-stage product), `ID:tK` after it.
fn temp_range_name(id: &str, k: usize) -> String {
    if k == 0 {
        format!("{id}:t")
    } else {
        format!("{id}:t{k}")
    }
}

/// Ranges of every vector, by name: buffers, `input`, `output`, and each matrix's
/// intermediates ([`temp_range_name`]).
#[derive(Debug, Default)]
struct Ranges(HashMap<String, Range>);

impl Ranges {
    fn add_all(&mut self, name: &str, values: &[f64]) {
        let r = self.0.entry(name.to_owned()).or_insert(Range::EMPTY);
        for &v in values {
            r.add(v);
        }
    }

    fn get(&self, name: &str) -> Range {
        self.0.get(name).copied().unwrap_or(Range::EMPTY)
    }
}

/// dest[offset ..] += W x through the plan's stages, recording the intermediate's range.
fn matvec_f64(m: &MatrixPlan, x: &[f64], dest: &mut [f64], ranges: &mut Ranges) {
    let mut temp = vec![0.0; m.product.temp_len().unwrap_or(0)];
    for (k, s) in m.product.stages().iter().enumerate() {
        match (s.input, s.output) {
            (Operand::Temp, Operand::Temp) => {
                // Reads one region of the temp and writes the other.
                let input = temp.clone();
                s.run_f64(&input, &mut temp, 0);
            }
            (_, Operand::Temp) => s.run_f64(x, &mut temp, 0),
            (Operand::Temp, _) => s.run_f64(&temp, dest, m.dest_offset),
            _ => s.run_f64(x, dest, m.dest_offset),
        }
        if s.output == Operand::Temp {
            let region = &temp[s.out_offset..s.out_offset + s.output_span()];
            ranges.add_all(&temp_range_name(&m.id, k), region);
        }
    }
    if let Some(ov) = &m.overlay {
        for &(r, c, v) in &ov.entries {
            dest[m.dest_offset + r] += v as f64 * x[c];
        }
    }
}

/// One step of the float plan; buffers by name (including `y`).
fn step_f64(plan: &Plan, bufs: &mut HashMap<String, Vec<f64>>, x: &[f64], ranges: &mut Ranges) {
    for l in &plan.layers {
        let input = match &l.input {
            Source::ModelInput => x.to_vec(),
            Source::Buffer(b) => bufs[b].clone(),
        };
        let hidden_name = l.output.clone().unwrap_or_default();
        let hidden = bufs.get(&hidden_name).cloned().unwrap_or_default();
        let n = l.units;
        let mut mv = |m: &MatrixPlan, src: &[f64], bufs: &mut HashMap<String, Vec<f64>>| {
            let dest = bufs.get_mut(&m.dest).expect("planned buffer");
            matvec_f64(m, src, dest, ranges);
        };
        match &l.constants {
            LayerConstants::Lstm {
                bias,
                cell_state,
                gates,
            } => {
                bufs.insert(gates.clone(), bias.iter().map(|&b| b as f64).collect());
                mv(&l.matrices[0], &input, bufs);
                mv(&l.matrices[1], &hidden, bufs);
                let z = bufs[gates].clone();
                let mut c = bufs[cell_state].clone();
                let mut h = vec![0.0; n];
                cells::lstm_cell(Activations::Exact, &z, &mut c, &mut h);
                ranges.add_all(cell_state, &c);
                bufs.insert(cell_state.clone(), c);
                bufs.insert(hidden_name.clone(), h);
            }
            LayerConstants::Gru {
                bias_ih,
                bias_hh,
                gates,
            } => {
                let b: Vec<f64> = bias_ih.iter().chain(bias_hh).map(|&b| b as f64).collect();
                bufs.insert(gates.clone(), b);
                mv(&l.matrices[0], &input, bufs);
                mv(&l.matrices[1], &hidden, bufs);
                let z = bufs[gates].clone();
                let (zi, zh) = z.split_at(3 * n);
                let h = bufs.get_mut(&hidden_name).expect("hidden");
                cells::gru_cell(Activations::Exact, zi, zh, h);
            }
            LayerConstants::FastGrnn {
                b_z,
                b_h,
                zeta,
                nu,
                gates,
            } => {
                bufs.insert(gates.clone(), vec![0.0; n]);
                mv(&l.matrices[0], &input, bufs);
                mv(&l.matrices[1], &hidden, bufs);
                let pre = bufs[gates].clone();
                let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                let h = bufs.get_mut(&hidden_name).expect("hidden");
                let (zeta, nu) = (*zeta as f64, *nu as f64);
                cells::fastgrnn_cell(
                    Activations::Exact,
                    &pre,
                    &wide(b_z),
                    &wide(b_h),
                    zeta,
                    nu,
                    h,
                );
            }
            LayerConstants::Dense {
                bias,
                activation,
                acc,
            } => {
                let dest = &l.matrices[0].dest;
                bufs.insert(dest.clone(), bias.iter().map(|&b| b as f64).collect());
                mv(&l.matrices[0], &input, bufs);
                let mut y = bufs[dest].clone();
                cells::activate(Activations::Exact, *activation, &mut y);
                let out = l.output.clone().unwrap_or_else(|| "y".to_owned());
                if acc.is_some() || out != *dest {
                    bufs.insert(out, y);
                } else {
                    bufs.insert(dest.clone(), y);
                }
            }
        }
        let out = l.output.clone().unwrap_or_else(|| "y".to_owned());
        let v = bufs.get(&out).cloned().unwrap_or_default();
        ranges.add_all(&out, &v);
    }
}

/// Runs the float plan over every calibration sequence, every step (zero-padded tails
/// included), and returns the ranges it saw.
fn calibrate(plan: &Plan, inputs: &TestInputs) -> Ranges {
    let mut ranges = Ranges::default();
    for (seq, &len) in inputs.sequences.iter().zip(&inputs.lengths) {
        let mut bufs: HashMap<String, Vec<f64>> = plan
            .buffers
            .iter()
            .map(|b| (b.name.clone(), vec![0.0; b.len]))
            .collect();
        bufs.insert("y".to_owned(), vec![0.0; plan.output_size]);
        for t in 0..len {
            let x: Vec<f64> = seq[t * plan.input_features..(t + 1) * plan.input_features]
                .iter()
                .map(|&v| v as f64)
                .collect();
            ranges.add_all("input", &x);
            step_f64(plan, &mut bufs, &x, &mut ranges);
            let y = bufs["y"].clone();
            ranges.add_all("output", &y);
        }
    }
    ranges
}

// ---- quantization -----------------------------------------------------------------------------

/// Why a model cannot be quantized.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QuantError(pub String);

fn qmax(bits: u32) -> i64 {
    (1i64 << (bits - 1)) - 1
}

/// The symmetric per-tensor scale of weights `values` in `bits` bits.
fn weight_scale(values: &[f32], bits: u32) -> f64 {
    let max_abs = values.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    QFormat::symmetric(bits, max_abs).scale
}

fn quantize_values(values: &[f32], bits: u32) -> (Vec<i32>, f64) {
    let scale = weight_scale(values, bits);
    let q = values
        .iter()
        .map(|&v| fixed::saturate((v as f64 / scale).round() as i64, bits))
        .collect();
    (q, scale)
}

/// Chooses the accumulator width and checks that the requantization cannot overflow.
fn finish_stage(
    id: &str,
    values: Vec<i32>,
    rows: impl Iterator<Item = Vec<usize>>,
    (weight_bits, weight_scale): (u32, f64),
    input: InputCodes,
    output_scale: f64,
    narrow: bool,
) -> Result<StageQuant, QuantError> {
    let rows: Vec<Vec<usize>> = rows.collect();
    let bound = rows
        .iter()
        .map(|idx| {
            idx.iter()
                .map(|&k| values[k].unsigned_abs() as i64)
                .sum::<i64>()
                * input.max
        })
        .max()
        .unwrap_or(0);
    let row_offsets = if input.zero_point == 0 {
        Vec::new()
    } else {
        rows.iter()
            .map(|idx| {
                -(input.zero_point as i64) * idx.iter().map(|&k| values[k] as i64).sum::<i64>()
            })
            .collect()
    };
    if row_offsets.iter().any(|o| i32::try_from(*o).is_err()) {
        return Err(QuantError(format!(
            "matrix {id}: the input zero point's share of a row does not fit 32 bits"
        )));
    }
    let input_scale = input.scale;
    // A stage whose every product is 0 (all-zero weights or inputs) adds nothing: multiplier
    // 0, whatever huge multiplier its scales imply (a left shift of 32 or more otherwise).
    let requant = if bound == 0 {
        Requant::from_real(0.0)
    } else {
        Requant::from_real(weight_scale * input_scale / output_scale)
    };
    let left = requant.shift.max(0) as u32;
    let fits_i32 = 1i64
        .checked_shl(left)
        .filter(|_| left < 63)
        .and_then(|scale| bound.checked_mul(scale))
        .is_some_and(|v| v <= i32::MAX as i64);
    let wide = !fits_i32;
    // A temp at exactly 2^k accumulator quanta, whose rounding bias cannot overflow int32.
    let ratio = output_scale / (weight_scale * input_scale);
    let k = ratio.log2().round();
    let shift_only = (narrow
        && ratio.is_finite()
        && (0.0..=30.0).contains(&k)
        && ratio == k.exp2()
        && (wide || bound + (1i64 << (k as u32)) <= i32::MAX as i64))
        .then_some(k as u32);
    // The multiply-and-shift requantization of a wide accumulator has limits; a shift-only
    // temp does not use it (its int64 sum is shifted, clamped and saturated to int16).
    if wide && shift_only.is_none() {
        let reduced = requant.reduced() as i128;
        let out = bound as f64 * requant.real();
        if requant.shift > 14
            || (bound as i128) * reduced >= 1i128 << 62
            || out >= (1u64 << 30) as f64
        {
            return Err(QuantError(format!(
                "matrix {id}: no accumulator can hold its products (bound {bound}, multiplier \
                 {:.3e}): overflow cannot be excluded",
                requant.real()
            )));
        }
    }
    Ok(StageQuant {
        values,
        weight_bits,
        weight_scale,
        input_scale,
        output_scale,
        requant,
        wide,
        bound,
        narrow,
        shift_only,
        row_offsets,
    })
}

/// Quantizes one stored stage.
fn quantize_stage(
    id: &str,
    s: &Stage,
    weight_bits: u32,
    input: InputCodes,
    output_scale: f64,
) -> Result<StageQuant, QuantError> {
    let (values, scale) = quantize_values(&s.values, weight_bits);
    let rows = (0..s.p).map(|i| (i * s.q..(i + 1) * s.q).collect::<Vec<_>>());
    finish_stage(
        id,
        values,
        rows,
        (weight_bits, scale),
        input,
        output_scale,
        s.output == Operand::Temp,
    )
}

/// The integer matrix-vector product of a quantized matrix: dest[offset..] += requant(W x).
/// Shared by the integer reference and the zero-point folding.
pub fn matvec_int(m: &MatrixPlan, q: &MatrixQuant, x: &[i32], dest: &mut [i32]) {
    let mut temp = vec![0i32; m.product.temp_len().unwrap_or(0)];
    for (s, sq) in m.product.stages().iter().zip(&q.stages) {
        let input: Vec<i32> = if s.input == Operand::Temp {
            temp.clone()
        } else {
            x.to_vec()
        };
        let out_base = if s.output == Operand::Dest {
            m.dest_offset
        } else {
            0
        };
        for r2 in 0..s.outer2 {
            for r in 0..s.outer {
                for i in 0..s.p {
                    let mut acc: i64 = sq.row_offsets.get(i).copied().unwrap_or(0);
                    for j in 0..s.q {
                        acc += sq.values[i * s.q + j] as i64 * input[s.in_index(j, r, r2)] as i64;
                    }
                    let v = requant_acc(acc, sq);
                    let o = s.out_index(out_base, i, r, r2);
                    if sq.narrow {
                        temp[o] = fixed::saturate(v as i64, 16);
                    } else {
                        dest[o] = dest[o].wrapping_add(v);
                    }
                }
            }
        }
    }
    if let (Some(ov), Some(oq)) = (&m.overlay, &q.overlay) {
        let mut row_acc: Vec<(usize, i64)> = Vec::new();
        for (k, &(r, c, _)) in ov.entries.iter().enumerate() {
            let p = oq.values[k] as i64 * x[c] as i64;
            match row_acc.last_mut() {
                Some((row, acc)) if *row == r => *acc += p,
                _ => {
                    let offset = oq.row_offsets.get(row_acc.len()).copied().unwrap_or(0);
                    row_acc.push((r, offset + p));
                }
            }
        }
        for (r, acc) in row_acc {
            let o = m.dest_offset + r;
            dest[o] = dest[o].wrapping_add(requant_acc(acc, oq));
        }
    }
}

pub fn requant_acc(acc: i64, sq: &StageQuant) -> i32 {
    if let Some(k) = sq.shift_only {
        let v = if k == 0 {
            acc
        } else {
            (acc + (1i64 << (k - 1))) >> k
        };
        return v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    }
    if sq.wide {
        fixed::requantize_s64(acc, sq.requant)
    } else {
        fixed::requantize(acc as i32, sq.requant)
    }
}

/// An int16 intermediate's quantum: the accumulator quantum `base` of the stage writing it
/// times the smallest power of two that fits the calibrated range `max_abs` into int16. Never
/// finer than the accumulator, at most one bit coarser than the range needs, and requantized
/// by a shift alone.
fn temp_scale_for(max_abs: f64, base: f64) -> f64 {
    let ratio = (max_abs / qmax(16) as f64) / base;
    let k = if ratio.is_finite() && ratio > 1.0 {
        (ratio.log2().ceil() as u32).min(30)
    } else {
        0
    };
    base * f64::from(k).exp2()
}

fn quantize_matrix(
    m: &MatrixPlan,
    weight_bits: u32,
    input: InputCodes,
    dest_scale: f64,
    ranges: &Ranges,
) -> Result<MatrixQuant, QuantError> {
    let mut stages = Vec::new();
    let mut temp_scale = None;
    match &m.product {
        Product::Dense { stage } => {
            stages.push(quantize_stage(
                &m.id,
                stage,
                weight_bits,
                input,
                dest_scale,
            )?);
        }
        Product::Kron { stages: st, .. }
        | Product::MultiKron { stages: st, .. }
        | Product::LowRank { stages: st, .. } => {
            // The scale of the intermediate the next temp-reading stage reads.
            let mut last_temp = None;
            for (k, s) in st.iter().enumerate() {
                let codes = match (s.input, last_temp) {
                    (Operand::Temp, Some(t)) => InputCodes::temp(t),
                    _ => input,
                };
                let out_scale = if s.output == Operand::Temp {
                    let t = temp_scale_for(
                        ranges.get(&temp_range_name(&m.id, k)).max_abs(),
                        weight_scale(&s.values, weight_bits) * codes.scale,
                    );
                    temp_scale.get_or_insert(t);
                    last_temp = Some(t);
                    t
                } else {
                    dest_scale
                };
                stages.push(quantize_stage(&m.id, s, weight_bits, codes, out_scale)?);
            }
        }
        Product::Sparse => {}
    }
    let overlay = match &m.overlay {
        Some(ov) => {
            let vals: Vec<f32> = ov.entries.iter().map(|e| e.2).collect();
            let (values, scale) = quantize_values(&vals, weight_bits);
            let mut rows: Vec<Vec<usize>> = Vec::new();
            let mut last = usize::MAX;
            for (k, &(r, _, _)) in ov.entries.iter().enumerate() {
                if r != last {
                    rows.push(Vec::new());
                    last = r;
                }
                rows.last_mut().expect("pushed").push(k);
            }
            Some(finish_stage(
                &m.id,
                values,
                rows.into_iter(),
                (weight_bits, scale),
                input,
                dest_scale,
                false,
            )?)
        }
        None => None,
    };
    Ok(MatrixQuant {
        id: m.id.clone(),
        stages,
        overlay,
        temp_scale,
    })
}

/// Fraction of the calibration input values left outside the input range on each side.
pub const INPUT_CLIP_FRACTION: f64 = 0.0005;

/// The model input's format, by percentile calibration: the range runs from the
/// [`INPUT_CLIP_FRACTION`] quantile of the calibration inputs to the 1 − fraction quantile (always
/// including 0), and values beyond saturate. Standardized sensor data has long tails: covering a
/// rare 16σ spike with 256 levels would leave typical values only a few; on the examples this
/// choice keeps int8 accuracy within a point of float where the full min/max range does not.
fn input_format(bits: u32, inputs: &TestInputs) -> QFormat {
    let mut values: Vec<f64> = inputs
        .sequences
        .iter()
        .zip(&inputs.lengths)
        .flat_map(|(s, &len)| s[..len * inputs.features].iter().map(|&v| v as f64))
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return QFormat::symmetric(bits, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    let (lo, hi) = (at(INPUT_CLIP_FRACTION), at(1.0 - INPUT_CLIP_FRACTION));
    if bits == 8 {
        QFormat::asymmetric(bits, lo, hi)
    } else {
        QFormat::symmetric(bits, lo.abs().max(hi.abs()))
    }
}

/// Fraction bits of a power-of-two format of `bits` covering ±max_abs, at most `cap`.
fn frac_for(bits: u32, max_abs: f64, cap: u32) -> u32 {
    if max_abs <= 0.0 {
        return cap;
    }
    let f = (bits - 1) as f64 - max_abs.log2().ceil();
    f.clamp(0.0, cap as f64) as u32
}

fn quantize_bias(b: &[f32], scale: f64) -> Vec<i32> {
    b.iter()
        .map(|&v| fixed::saturate((v as f64 / scale).round() as i64, 32))
        .collect()
}

/// Calibrates and quantizes a plan. `calibration` describes where the inputs came from.
pub fn quantize(
    plan: &Plan,
    inputs: &TestInputs,
    calibration: String,
) -> Result<QuantPlan, QuantError> {
    let bits = match plan.precision {
        Precision::Int8 => 8,
        Precision::Int16 => 16,
        Precision::F32 => return Err(QuantError("a float plan is not quantized".to_owned())),
    };
    let ranges = calibrate(plan, inputs);
    let input = input_format(bits, inputs);
    let gate_scale = 2f64.powi(-(GATE_FRAC as i32));
    let mut formats: HashMap<String, QFormat> = HashMap::new();
    let mut matrices = Vec::new();
    let mut layers = Vec::new();
    let last = plan.layers.len().saturating_sub(1);
    for l in &plan.layers {
        let in_fmt = match &l.input {
            Source::ModelInput => input,
            Source::Buffer(b) => formats[b],
        };
        let hidden = l.output.clone().unwrap_or_default();
        let (dest_scale, lq, out_fmt) = match &l.constants {
            LayerConstants::Lstm {
                bias, cell_state, ..
            } => {
                let cell_frac = frac_for(16, ranges.get(cell_state).max_abs(), 15).max(3);
                let h = QFormat::power_of_two(bits, bits - 1);
                let lq = LayerQuant::Lstm {
                    bias: quantize_bias(bias, gate_scale),
                    cell_frac,
                    hidden_frac: bits - 1,
                };
                (gate_scale, lq, h)
            }
            LayerConstants::Gru {
                bias_ih, bias_hh, ..
            } => {
                let mut b = bias_ih.clone();
                b.extend_from_slice(bias_hh);
                let h = QFormat::power_of_two(bits, bits - 1);
                let lq = LayerQuant::Gru {
                    bias: quantize_bias(&b, gate_scale),
                    hidden_frac: bits - 1,
                };
                (gate_scale, lq, h)
            }
            LayerConstants::FastGrnn {
                b_z, b_h, zeta, nu, ..
            } => {
                let frac = frac_for(bits, ranges.get(&hidden).max_abs(), bits - 1);
                let q15 = |v: f32| fixed::saturate((v as f64 * 32768.0).round() as i64, 16);
                let lq = LayerQuant::FastGrnn {
                    b_z: quantize_bias(b_z, gate_scale),
                    b_h: quantize_bias(b_h, gate_scale),
                    zeta: q15(*zeta),
                    nu: q15(*nu),
                    hidden_frac: frac,
                };
                (gate_scale, lq, QFormat::power_of_two(bits, frac))
            }
            LayerConstants::Dense {
                bias, activation, ..
            } => {
                let out_name = l.output.clone().unwrap_or_else(|| "y".to_owned());
                let r = ranges.get(if l.index == last { "output" } else { &out_name });
                let (out, acc_scale, acc_shift) = match activation {
                    Activation::None | Activation::Relu => {
                        let out = if l.index == last && bits == 8 && r.min <= r.max {
                            QFormat::asymmetric(bits, r.min, r.max)
                        } else {
                            QFormat::symmetric(bits, r.max_abs())
                        };
                        let acc = out.scale / (1u64 << DENSE_ACC_SHIFT) as f64;
                        (out, acc, DENSE_ACC_SHIFT)
                    }
                    Activation::Sigmoid | Activation::Softmax => {
                        let out = if bits == 8 {
                            QFormat {
                                bits,
                                scale: 1.0 / 256.0,
                                zero_point: -128,
                            }
                        } else {
                            QFormat::power_of_two(bits, 15)
                        };
                        (out, gate_scale, GATE_FRAC)
                    }
                    Activation::Tanh => {
                        (QFormat::power_of_two(bits, bits - 1), gate_scale, GATE_FRAC)
                    }
                };
                let lq = LayerQuant::Dense {
                    bias: quantize_bias(bias, acc_scale),
                    activation: *activation,
                    acc_shift,
                    output: out,
                };
                (acc_scale, lq, out)
            }
        };
        // The matrices: the first reads the layer input, the second (if any) the hidden state.
        for (k, m) in l.matrices.iter().enumerate() {
            let src = if k == 0 { in_fmt } else { out_fmt };
            let mq = quantize_matrix(m, bits, InputCodes::of(src), dest_scale, &ranges)?;
            matrices.push(mq);
        }
        if let Some(o) = &l.output {
            formats.insert(o.clone(), out_fmt);
        }
        layers.push(lq);
    }
    let output = match (plan.layers.last(), layers.last()) {
        (Some(l), Some(LayerQuant::Dense { output, .. })) if l.output.is_none() => *output,
        (Some(l), _) => formats[l.output.as_deref().unwrap_or_default()],
        _ => input,
    };
    Ok(QuantPlan {
        precision: plan.precision,
        act_bits: bits,
        input,
        output,
        calibration,
        matrices,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::shapes::{KronOrder, KronShape};

    /// Row-major p x q values, deterministic and away from zero.
    fn values(p: usize, q: usize, salt: usize) -> Vec<f32> {
        (0..p * q)
            .map(|k| ((k * 7 + salt * 13) % 11) as f32 / 8.0 - 0.6)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn stage(
        name: &str,
        (p, q, salt): (usize, usize, usize),
        outer: usize,
        (input, in_offset, in_j, in_r): (Operand, usize, usize, usize),
        (output, out_offset, out_i, out_r): (Operand, usize, usize, usize),
    ) -> Stage {
        Stage {
            factor: name.to_owned(),
            p,
            q,
            values: values(p, q, salt),
            unrolled: false,
            outer,
            input,
            in_offset,
            in_j,
            in_r,
            output,
            out_offset,
            out_i,
            out_r,
            outer2: 1,
            in_r2: 0,
            out_r2: 0,
            accumulate: output == Operand::Dest,
            tile: [1, 1],
            simd: false,
            mve: false,
        }
    }

    /// y = (A ⊗ B ⊗ C) x as three stages, each on the trailing mode, the two intermediates in
    /// separate regions of the temp: the stage offsets place them, calibration records each
    /// region, and every intermediate gets its own scale.
    fn three_factor() -> (MatrixPlan, nalgebra::DMatrix<f64>) {
        let (a, b, c) = ((2, 2, 1), (2, 3, 2), (3, 2, 3));
        // x: (n1, n2, n3) = (2, 3, 2). C on n3: T1 = (m3, n1, n2) = (3, 2, 3) at t[0..18].
        let s_c = stage(
            "c",
            c,
            6,
            (Operand::Input, 0, 1, 2),
            (Operand::Temp, 0, 6, 1),
        );
        // B on n2: T2 = (m2, m3, n1) = (2, 3, 2) at t[18..30].
        let s_b = stage(
            "b",
            b,
            6,
            (Operand::Temp, 0, 1, 3),
            (Operand::Temp, 18, 6, 1),
        );
        // A on n1: y = (m1, m2, m3) = (2, 2, 3).
        let s_a = stage(
            "a",
            a,
            6,
            (Operand::Temp, 18, 1, 2),
            (Operand::Dest, 0, 6, 1),
        );
        let m = |s: &Stage| {
            nalgebra::DMatrix::from_row_slice(
                s.p,
                s.q,
                &s.values.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            )
        };
        let w = m(&s_a).kronecker(&m(&s_b).kronecker(&m(&s_c)));
        let stages = vec![s_c, s_b, s_a];
        let macs = stages.iter().map(Stage::macs).sum();
        let plan = MatrixPlan {
            id: "m".to_owned(),
            field: "w",
            form: "kp",
            rows: 12,
            cols: 12,
            dest: "y".to_owned(),
            dest_offset: 0,
            product: Product::Kron {
                // The two-factor view A ⊗ (B ⊗ C); the stages apply B ⊗ C in two steps.
                shape: KronShape {
                    m1: 2,
                    n1: 2,
                    m2: 6,
                    n2: 6,
                },
                order: KronOrder::RightFirst,
                temp_len: 30,
                other_order_macs: 0,
                dense_rows: 0,
                stages,
            },
            overlay: None,
            macs,
            dense_macs: 144,
            stored_params: 4 + 6 + 6,
            dense_params: 144,
        };
        (plan, w)
    }

    fn x(k: usize) -> Vec<f64> {
        (0..12)
            .map(|j| ((j * 5 + k * 3) % 9) as f64 / 9.0 - 0.45)
            .collect()
    }

    #[test]
    fn three_stages_in_f64_compute_the_kronecker_product() {
        let (m, w) = three_factor();
        for k in 0..4 {
            let x = x(k);
            let mut y = vec![0.0; 12];
            let mut ranges = Ranges::default();
            matvec_f64(&m, &x, &mut y, &mut ranges);
            let want = &w * nalgebra::DVector::from_column_slice(&x);
            for (a, b) in y.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-9, "{y:?} vs {want:?}");
            }
            assert!(ranges.get("m:t").max_abs() > 0.0);
            assert!(ranges.get("m:t1").max_abs() > 0.0);
        }
    }

    #[test]
    fn three_stages_quantize_with_a_scale_per_intermediate() {
        let (m, w) = three_factor();
        let mut ranges = Ranges::default();
        for k in 0..8 {
            matvec_f64(&m, &x(k), &mut [0.0; 12], &mut ranges);
        }
        let input = InputCodes::of(QFormat::symmetric(16, 0.5));
        let dest_scale = 2f64.powi(-12);
        let q = quantize_matrix(&m, 16, input, dest_scale, &ranges).unwrap();
        assert_eq!(q.stages.len(), 3);
        let (t1, t2) = (q.stages[0].output_scale, q.stages[1].output_scale);
        assert_eq!(q.temp_scale, Some(t1));
        assert!(q.stages[0].narrow && q.stages[1].narrow && !q.stages[2].narrow);
        assert_eq!(q.stages[1].input_scale, t1);
        assert_eq!(q.stages[2].input_scale, t2);
        assert_eq!(q.stages[2].output_scale, dest_scale);
        // The integer product, dequantized, is the float one within the quantization error.
        for k in 0..4 {
            let x = x(k);
            let codes: Vec<i32> = x.iter().map(|v| (v / input.scale).round() as i32).collect();
            let mut acc = vec![0i32; 12];
            matvec_int(&m, &q, &codes, &mut acc);
            let want = &w * nalgebra::DVector::from_column_slice(&x);
            for (a, b) in acc.iter().zip(want.iter()) {
                let got = *a as f64 * dest_scale;
                assert!((got - b).abs() < 2e-3, "{got} vs {b}");
            }
        }
    }

    /// A product planned in a middle-first order (B, then A, then C), each stage in place with
    /// two loops: the f64 stages compute the Kronecker product and int16 follows them.
    #[test]
    fn a_permuted_three_factor_product_quantizes_like_the_fixed_orders() {
        let m = |r: usize, c: usize, salt: usize| {
            let v = values(r, c, salt);
            nalgebra::DMatrix::from_row_slice(
                r,
                c,
                &v.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            )
        };
        let f = [m(2, 3, 1), m(2, 4, 2), m(3, 2, 3)];
        let w = f[0].kronecker(&f[1]).kronecker(&f[2]);
        let product = crate::plan::multi_kron("m", &f, &|_| false);
        let Product::MultiKron { order, .. } = &product else {
            panic!("not a multi-factor product");
        };
        assert_eq!(order, &[1, 0, 2]);
        assert!(product.stages().iter().any(|s| s.outer2 > 1));
        let plan = MatrixPlan {
            id: "m".to_owned(),
            field: "w",
            form: "kp",
            rows: 12,
            cols: 24,
            dest: "y".to_owned(),
            dest_offset: 0,
            macs: product.kron_macs(),
            product,
            overlay: None,
            dense_macs: 288,
            stored_params: 6 + 8 + 6,
            dense_params: 288,
        };
        let x = |k: usize| -> Vec<f64> {
            (0..24)
                .map(|j| ((j * 5 + k * 3) % 9) as f64 / 9.0 - 0.45)
                .collect()
        };
        let mut ranges = Ranges::default();
        for k in 0..8 {
            let x = x(k);
            let mut y = vec![0.0; 12];
            matvec_f64(&plan, &x, &mut y, &mut ranges);
            let want = &w * nalgebra::DVector::from_column_slice(&x);
            for (a, b) in y.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-9, "{y:?} vs {want:?}");
            }
        }
        assert!(ranges.get("m:t").max_abs() > 0.0);
        assert!(ranges.get("m:t1").max_abs() > 0.0);
        let input = InputCodes::of(QFormat::symmetric(16, 0.5));
        let dest_scale = 2f64.powi(-12);
        let q = quantize_matrix(&plan, 16, input, dest_scale, &ranges).unwrap();
        assert_eq!(q.stages.len(), 3);
        for k in 0..4 {
            let x = x(k);
            let codes: Vec<i32> = x.iter().map(|v| (v / input.scale).round() as i32).collect();
            let mut acc = vec![0i32; 12];
            matvec_int(&plan, &q, &codes, &mut acc);
            let want = &w * nalgebra::DVector::from_column_slice(&x);
            for (a, b) in acc.iter().zip(want.iter()) {
                let got = *a as f64 * dest_scale;
                assert!((got - b).abs() < 2e-3, "{got} vs {b}");
            }
        }
    }
}
