//! The integer reference: the quantized model executed on the host with exactly the integer
//! operations of the generated code ([`crate::quant::fixed`]). Generated C and Rust must reproduce its
//! outputs bit for bit; its dequantized outputs against the float reference are the
//! quantization error.

use std::collections::HashMap;

use crate::plan::{LayerConstants, Plan, Source};
use crate::quant::fixed::{self, divide_by_power_of_two, lut_eval, rshift_round, saturate};
use crate::quant::{matvec_int, LayerQuant, QuantPlan};
use crate::spec::Activation;

/// A running integer model with its state, mirroring the generated `_q` API.
pub struct IntReference<'p> {
    plan: &'p Plan,
    quant: &'p QuantPlan,
    bufs: HashMap<String, Vec<i32>>,
    tanh: Vec<i16>,
    exp: Vec<i16>,
}

impl<'p> IntReference<'p> {
    pub fn new(plan: &'p Plan, quant: &'p QuantPlan) -> Self {
        let mut r = IntReference {
            plan,
            quant,
            bufs: HashMap::new(),
            tanh: fixed::tanh_lut(),
            exp: fixed::exp_lut(),
        };
        r.reset();
        r
    }

    pub fn reset(&mut self) {
        self.bufs = self
            .plan
            .buffers
            .iter()
            .map(|b| (b.name.clone(), vec![0; b.len]))
            .collect();
        self.bufs
            .insert("y".to_owned(), vec![0; self.plan.output_size]);
    }

    fn matvec(&mut self, layer: usize, k: usize, src: &[i32]) {
        let m = &self.plan.layers[layer].matrices[k];
        let q = self.quant.matrix(&m.id).expect("every matrix is quantized");
        let dest = self.bufs.get_mut(&m.dest).expect("planned buffer");
        matvec_int(m, q, src, dest);
    }

    /// One time step on quantized input codes; returns the quantized output codes.
    pub fn step(&mut self, x: &[i32]) -> Vec<i32> {
        let bits = self.quant.act_bits;
        for (li, l) in self.plan.layers.iter().enumerate() {
            let input = match &l.input {
                Source::ModelInput => x.to_vec(),
                Source::Buffer(b) => self.bufs[b].clone(),
            };
            let hidden_name = l.output.clone().unwrap_or_default();
            let hidden = self.bufs.get(&hidden_name).cloned().unwrap_or_default();
            let n = l.units;
            match (&l.constants, &self.quant.layers[li]) {
                (
                    LayerConstants::Lstm {
                        cell_state, gates, ..
                    },
                    LayerQuant::Lstm {
                        bias,
                        cell_frac,
                        hidden_frac,
                    },
                ) => {
                    self.bufs.insert(gates.clone(), bias.clone());
                    self.matvec(li, 0, &input);
                    self.matvec(li, 1, &hidden);
                    let z = self.bufs[gates].clone();
                    let mut c = self.bufs[cell_state].clone();
                    let mut h = vec![0; n];
                    let (cf, hf) = (*cell_frac, *hidden_frac);
                    for k in 0..n {
                        let i = fixed::sigmoid_eval(&self.tanh, z[k]) as i64;
                        let f = fixed::sigmoid_eval(&self.tanh, z[n + k]) as i64;
                        let g = lut_eval(&self.tanh, z[2 * n + k]) as i64;
                        let o = fixed::sigmoid_eval(&self.tanh, z[3 * n + k]) as i64;
                        let cn = rshift_round(f * c[k] as i64, 15) + rshift_round(i * g, 30 - cf);
                        c[k] = saturate(cn, 16);
                        let tc = if cf > 12 {
                            rshift_round(c[k] as i64, cf - 12)
                        } else {
                            (c[k] as i64) << (12 - cf)
                        };
                        let t = lut_eval(&self.tanh, saturate(tc, 32)) as i64;
                        h[k] = saturate(rshift_round(o * t, 30 - hf), bits);
                    }
                    self.bufs.insert(cell_state.clone(), c);
                    self.bufs.insert(hidden_name.clone(), h);
                }
                (LayerConstants::Gru { gates, .. }, LayerQuant::Gru { bias, hidden_frac }) => {
                    self.bufs.insert(gates.clone(), bias.clone());
                    self.matvec(li, 0, &input);
                    self.matvec(li, 1, &hidden);
                    let z = self.bufs[gates].clone();
                    let h = self.bufs.get_mut(&hidden_name).expect("hidden");
                    for k in 0..n {
                        let r =
                            fixed::sigmoid_eval(&self.tanh, z[k].wrapping_add(z[3 * n + k])) as i64;
                        let u = fixed::sigmoid_eval(&self.tanh, z[n + k].wrapping_add(z[4 * n + k]))
                            as i64;
                        let rh = rshift_round(r * z[5 * n + k] as i64, 15);
                        let c = lut_eval(&self.tanh, saturate(z[2 * n + k] as i64 + rh, 32)) as i64;
                        let v = rshift_round((32768 - u) * c, 30 - hidden_frac)
                            + rshift_round(u * h[k] as i64, 15);
                        h[k] = saturate(v, bits);
                    }
                }
                (
                    LayerConstants::FastGrnn { gates, .. },
                    LayerQuant::FastGrnn {
                        b_z,
                        b_h,
                        zeta,
                        nu,
                        hidden_frac,
                    },
                ) => {
                    self.bufs.insert(gates.clone(), vec![0; n]);
                    self.matvec(li, 0, &input);
                    self.matvec(li, 1, &hidden);
                    let pre = self.bufs[gates].clone();
                    let h = self.bufs.get_mut(&hidden_name).expect("hidden");
                    for k in 0..n {
                        let z = fixed::sigmoid_eval(&self.tanh, pre[k].wrapping_add(b_z[k])) as i64;
                        let c = lut_eval(&self.tanh, pre[k].wrapping_add(b_h[k])) as i64;
                        let coef = rshift_round(*zeta as i64 * (32768 - z), 15) + *nu as i64;
                        let v = rshift_round(coef * c, 30 - hidden_frac)
                            + rshift_round(z * h[k] as i64, 15);
                        h[k] = saturate(v, bits);
                    }
                }
                (
                    LayerConstants::Dense { acc, .. },
                    LayerQuant::Dense {
                        bias,
                        activation,
                        acc_shift,
                        output,
                    },
                ) => {
                    let acc_name = acc.clone().expect("fixed-point dense layers accumulate");
                    self.bufs.insert(acc_name.clone(), bias.clone());
                    self.matvec(li, 0, &input);
                    let a = self.bufs[&acc_name].clone();
                    let y = narrow(
                        &a,
                        *activation,
                        *acc_shift,
                        output.zero_point,
                        bits,
                        (&self.tanh, &self.exp),
                    );
                    let out = l.output.clone().unwrap_or_else(|| "y".to_owned());
                    self.bufs.insert(out, y);
                }
                _ => unreachable!("the quant plan follows the plan layer by layer"),
            }
        }
        match self.plan.layers.last().and_then(|l| l.output.clone()) {
            Some(h) => self.bufs[&h].clone(),
            None => self.bufs["y"].clone(),
        }
    }

    /// Reset, run every step of `x` (steps x features codes), return the last output.
    pub fn infer(&mut self, x: &[i32]) -> Vec<i32> {
        self.reset();
        let f = self.plan.input_features;
        let mut y = vec![0; self.plan.output_size];
        for row in x.chunks(f) {
            y = self.step(row);
        }
        y
    }
}

/// A dense layer's int32 accumulator through its activation into output codes.
fn narrow(
    acc: &[i32],
    act: Activation,
    acc_shift: u32,
    zero_point: i32,
    bits: u32,
    luts: (&[i16], &[i16]),
) -> Vec<i32> {
    let (tanh, exp) = luts;
    // Q15 in [0, 1] to codes: int16 as is; int8 at scale 1/256, zero point -128.
    let unit = |v: i32| {
        if bits == 16 {
            saturate(v as i64, 16)
        } else {
            saturate(rshift_round(v as i64, 7) - 128, 8)
        }
    };
    match act {
        Activation::None | Activation::Relu => acc
            .iter()
            .map(|&a| {
                let mut v = divide_by_power_of_two(a, acc_shift as i32);
                if act == Activation::Relu {
                    v = v.max(0);
                }
                saturate(v as i64 + zero_point as i64, bits)
            })
            .collect(),
        Activation::Sigmoid => acc
            .iter()
            .map(|&a| unit(fixed::sigmoid_eval(tanh, a)))
            .collect(),
        Activation::Tanh => acc
            .iter()
            .map(|&a| {
                let t = lut_eval(tanh, a) as i64;
                saturate(if bits == 16 { t } else { rshift_round(t, 8) }, bits)
            })
            .collect(),
        Activation::Softmax => {
            let m = acc.iter().copied().max().unwrap_or(0);
            let e: Vec<i64> = acc
                .iter()
                .map(|&a| lut_eval(exp, saturate(a as i64 - m as i64, 32).max(-32768)) as i64)
                .collect();
            let sum: i64 = e.iter().sum::<i64>().max(1);
            e.iter()
                .map(|&v| {
                    if bits == 16 {
                        saturate(((v << 15) + sum / 2) / sum, 16)
                    } else {
                        saturate(((v << 8) + sum / 2) / sum - 128, 8)
                    }
                })
                .collect()
        }
    }
}

/// The input codes of one float input vector, as the generated float API computes them.
pub fn quantize_input(quant: &QuantPlan, x: &[f32]) -> Vec<i32> {
    let inv = (1.0 / quant.input.scale) as f32;
    x.iter()
        .map(|&v| fixed::quantize_f32(v, inv, quant.input.zero_point, quant.act_bits))
        .collect()
}

/// Real values of output codes.
pub fn dequantize_output(quant: &QuantPlan, y: &[i32]) -> Vec<f64> {
    y.iter()
        .map(|&q| (q - quant.output.zero_point) as f64 * quant.output.scale)
        .collect()
}
