
// ---- fixed point: CMSIS-NN arithmetic, the same operations as the C runtime ----

/// `arm_nn_divide_by_power_of_two`: rounding half away from zero.
#[inline]
pub fn div_pow2(v: i32, e: i32) -> i32 {
    let mask = ((1u32 << e) - 1) as i32;
    let rem = v & mask;
    let mut r = v >> e;
    let mut threshold = mask >> 1;
    if r < 0 {
        threshold += 1;
    }
    if rem > threshold {
        r += 1;
    }
    r
}

/// `val * multiplier * 2^(shift - 31)`, rounded once, half up (quant::fixed::requantize).
#[inline]
pub fn requant(val: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let s = 31 + if shift > 0 { 0 } else { -shift };
    rshift_round(i64::from(val.wrapping_mul(1 << left)) * i64::from(multiplier), s) as i32
}

/// `arm_nn_requantize_s64`: 64-bit accumulator, 16-bit reduced multiplier.
#[inline]
pub fn requant_s64(val: i64, reduced: i32, shift: i32) -> i32 {
    let r = (val.wrapping_mul(i64::from(reduced)) >> (14 - shift)) as i32;
    (r + 1) >> 1
}

#[inline]
pub fn sat(v: i64, lo: i32, hi: i32) -> i32 {
    v.clamp(i64::from(lo), i64::from(hi)) as i32
}

#[inline]
pub fn sat16(v: i32) -> i16 {
    v.clamp(-32768, 32767) as i16
}

/// `sat16((v + 2^(k-1)) >> k)`: a temp stored at 2^k accumulator quanta.
#[inline]
pub fn shift_sat16(v: i32, k: i32) -> i16 {
    let r = if k > 0 { (v + (1 << (k - 1))) >> k } else { v };
    r.clamp(-32768, 32767) as i16
}

/// [`shift_sat16`] for a 64-bit accumulator.
#[inline]
pub fn shift_sat16_s64(v: i64, k: i32) -> i16 {
    let r = if k > 0 { (v + (1i64 << (k - 1))) >> k } else { v };
    r.clamp(-32768, 32767) as i16
}

/// [`shift_sat16_s64`] where the plan proves the shifted value fits 32 bits: saturated in 32.
#[inline]
pub fn shift_sat16_s64_32(v: i64, k: i32) -> i16 {
    let r = if k > 0 { (v + (1i64 << (k - 1))) >> k } else { v };
    (r as i32).clamp(-32768, 32767) as i16
}

/// `v / 2^s` rounded half up (s >= 1).
#[inline]
pub fn rshift_round(v: i64, s: i32) -> i64 {
    (v + (1i64 << (s - 1))) >> s
}

/// A 513-entry Q15 table over Q3.12 inputs [-8, 8], linearly interpolated.
#[inline]
pub fn lut(table: &[i16; 513], x: i32) -> i32 {
    // (x + 32768) >> 7 = (x >> 7) + 256 and (x + 32768) & 127 = x & 127, as in C.
    let v = x.clamp(-32768, 32767);
    let i = (((v >> 7) + 256) as usize) & 511;
    let lo = i32::from(table[i]);
    let hi = i32::from(table[i + 1]);
    lo + (((hi - lo) * (v & 127) + 64) >> 7)
}

/// sigmoid(x) = (1 + tanh(x / 2)) / 2 from the tanh table (Q3.12 in, Q15 out), as in C: tanh
/// at x / 2 interpolated in 1/256ths of the table's spacing.
#[inline]
pub fn sigmoid_q15(x: i32) -> i32 {
    let u = x.clamp(-65536, 65535) + 65536;
    let i = ((u >> 8) as usize) & 511;
    let lo = i32::from(TANH_Q15[i]);
    let hi = i32::from(TANH_Q15[i + 1]);
    let t = lo + (((hi - lo) * (u & 255) + 128) >> 8);
    ((t + 32769) >> 1).min(32767)
}

#[inline]
fn code(v: i64) -> Code {
    sat(v, CODE_MIN, CODE_MAX) as Code
}

#[inline]
fn code32(v: i32) -> Code {
    v.clamp(CODE_MIN, CODE_MAX) as Code
}

/// `z`: Q.12 gate pre-activations i, f, g, o; `c`: cell state with `cf` fraction bits
/// (3..=15); `h`: codes with `hf` fraction bits (7 or 15). Every product is a Q15 gate times a
/// Q15 gate or an int16 state (at most 2^30) and every rounding adds at most 2^29: i32 holds
/// it, bit for bit the integer reference's i64 arithmetic.
#[inline]
pub fn lstm_q<const H: usize, const G: usize>(
    z: &[i32; G],
    c: &mut [i16; H],
    h: &mut [Code; H],
    cf: i32,
    hf: i32,
) {
    let (ig_shift, h_shift) = (30 - cf, 30 - hf);
    let (ig_round, h_round) = (1i32 << (ig_shift - 1), 1i32 << (h_shift - 1));
    for k in 0..H {
        let i = sigmoid_q15(z[k]);
        let f = sigmoid_q15(z[H + k]);
        let g = lut(&TANH_Q15, z[2 * H + k]);
        let o = sigmoid_q15(z[3 * H + k]);
        let cn = (((f * i32::from(c[k]) + 16384) >> 15) + ((i * g + ig_round) >> ig_shift))
            .clamp(-32768, 32767);
        let tc = if cf > 12 {
            (cn + (1 << (cf - 13))) >> (cf - 12)
        } else {
            cn * (1 << (12 - cf))
        };
        c[k] = cn as i16;
        h[k] = code32((o * lut(&TANH_Q15, tc) + h_round) >> h_shift);
    }
}

/// `z`: Q.12, W_ih x + b_ih (r, z, n) then W_hh h + b_hh (r, z, n); `h`: codes with `hf`
/// fraction bits (7 or 15). r times a recurrent pre-activation takes i64; the other products
/// (at most 2^30) stay in i32.
#[inline]
pub fn gru_q<const H: usize, const G: usize>(z: &[i32; G], h: &mut [Code; H], hf: i32) {
    let h_shift = 30 - hf;
    let h_round = 1i32 << (h_shift - 1);
    for k in 0..H {
        let r = sigmoid_q15(z[k].wrapping_add(z[3 * H + k]));
        let u = sigmoid_q15(z[H + k].wrapping_add(z[4 * H + k]));
        let rh = rshift_round(i64::from(r) * i64::from(z[5 * H + k]), 15);
        let c = lut(
            &TANH_Q15,
            sat(i64::from(z[2 * H + k]) + rh, i32::MIN, i32::MAX),
        );
        let v = (((32768 - u) * c + h_round) >> h_shift) + ((u * i32::from(h[k]) + 16384) >> 15);
        h[k] = code32(v);
    }
}

/// `pre`: Q.12 W x + U h; `b_z`, `b_h`: Q.12; `zeta`, `nu`: Q15 (after the sigmoid); `h`:
/// codes with `hf` fraction bits. coef = zeta (1 - z) + nu reaches 2^16, so coef times tanh
/// takes i64; the other products (at most 2^30) stay in i32.
#[inline]
pub fn fastgrnn_q<const H: usize>(
    pre: &[i32; H],
    b_z: &[i32; H],
    b_h: &[i32; H],
    zeta: i32,
    nu: i32,
    h: &mut [Code; H],
    hf: i32,
) {
    for k in 0..H {
        let z = sigmoid_q15(pre[k].wrapping_add(b_z[k]));
        let c = lut(&TANH_Q15, pre[k].wrapping_add(b_h[k]));
        let coef = ((zeta * (32768 - z) + 16384) >> 15) + nu;
        let v = rshift_round(i64::from(coef) * i64::from(c), 30 - hf) as i32
            + ((z * i32::from(h[k]) + 16384) >> 15);
        h[k] = code32(v);
    }
}

/// A dense accumulator (`acc_shift` fraction bits below the output quantum) to output codes.
#[inline]
pub fn narrow_linear<const N: usize>(
    acc: &[i32; N],
    y: &mut [Code; N],
    acc_shift: i32,
    zero_point: i32,
    relu: bool,
) {
    for k in 0..N {
        let mut v = div_pow2(acc[k], acc_shift);
        if relu && v < 0 {
            v = 0;
        }
        y[k] = code(i64::from(v) + i64::from(zero_point));
    }
}

/// A Q15 value in [0, 1] as a code: int16 as is, int8 at scale 1/256 with zero point -128.
#[inline]
fn unit_code(q15: i64) -> Code {
    if CODE_MAX == 32767 {
        code(q15)
    } else {
        code(rshift_round(q15, 7) - 128)
    }
}

#[inline]
pub fn narrow_sigmoid<const N: usize>(acc: &[i32; N], y: &mut [Code; N]) {
    for k in 0..N {
        y[k] = unit_code(i64::from(sigmoid_q15(acc[k])));
    }
}

/// tanh codes: Q15 (int16) or Q7 (int8).
#[inline]
pub fn narrow_tanh<const N: usize>(acc: &[i32; N], y: &mut [Code; N]) {
    for k in 0..N {
        let t = i64::from(lut(&TANH_Q15, acc[k]));
        y[k] = code(if CODE_MAX == 32767 { t } else { rshift_round(t, 8) });
    }
}

/// Softmax of Q.12 logits: exp by table on x - max (clamped at -8), then normalized.
#[inline]
pub fn narrow_softmax<const N: usize>(acc: &[i32; N], y: &mut [Code; N]) {
    let mut m = i32::MIN;
    for &a in acc.iter() {
        m = if a > m { a } else { m };
    }
    let e = |a: i32| i64::from(lut(&EXP_Q15, sat(i64::from(a) - i64::from(m), -32768, 0)));
    let mut sum: i64 = 0;
    for &a in acc.iter() {
        sum += e(a);
    }
    let sum = if sum > 0 { sum } else { 1 };
    for k in 0..N {
        let v = e(acc[k]);
        y[k] = if CODE_MAX == 32767 {
            code(((v << 15) + sum / 2) / sum)
        } else {
            code(((v << 8) + sum / 2) / sum - 128)
        };
    }
}

/// Float to codes: round(x / scale) + zero_point, half away from zero, saturated (NaN gives
/// the lowest code).
#[inline]
pub fn quantize<const N: usize>(x: &[f32; N], q: &mut [Code; N], inv_scale: f32, zero_point: i32) {
    let lo = (CODE_MIN - zero_point) as f32;
    let hi = (CODE_MAX - zero_point) as f32;
    for k in 0..N {
        let v = x[k] * inv_scale;
        let v = if v >= 0.0 { v + 0.5 } else { v - 0.5 };
        let v = if v >= lo { v } else { lo };
        let v = if v <= hi { v } else { hi };
        q[k] = (v as i32 + zero_point) as Code;
    }
}

#[inline]
pub fn dequantize<const N: usize>(q: &[Code; N], y: &mut [f32; N], scale: f32, zero_point: i32) {
    for k in 0..N {
        y[k] = (i32::from(q[k]) - zero_point) as f32 * scale;
    }
}
