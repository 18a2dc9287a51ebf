//! The integer arithmetic of fixed-point builds, defined once on the host. The integer
//! reference ([`crate::quant::intref`]) calls these functions; the C runtime (runtime/c/q_*.c)
//! and the Rust runtime (runtime/rust/cells_q.rs) implement the same operations line for line,
//! and the conformance tests hold all three to identical bits.
//!
//! Conventions (CMSIS-NN's, except that requantization rounds once):
//! - a real multiplier M > 0 is a Q31 `multiplier` in [2^30, 2^31) and a `shift` with
//!   M = multiplier · 2^(shift − 31);
//! - [`requantize`] rounds once: a left shift by max(shift, 0), then `(a·b + 2^(s−1)) >> s`
//!   with s = 31 + max(−shift, 0), half up (CMSIS-NN's `arm_nn_requantize` rounds twice);
//! - [`requantize_s64`] is `arm_nn_requantize_s64` for 64-bit accumulators: the multiplier
//!   reduced to 16 bits, `(v·m) >> (14 − shift)`, then `(r + 1) >> 1`;
//! - right shifts of negative values are arithmetic (as GCC, Clang and Rust define them).

use serde::Serialize;

/// A real multiplier in Q31 form (`multiplier · 2^(shift − 31)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: i32,
}

impl Requant {
    /// The Q31 form of `real` (> 0), as TensorFlow Lite's QuantizeMultiplier computes it.
    pub fn from_real(real: f64) -> Requant {
        if real <= 0.0 || !real.is_finite() {
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        }
        let mut shift = real.log2().floor() as i32 + 1;
        let mut q = (real / 2f64.powi(shift) * (1u64 << 31) as f64).round() as i64;
        // Guard the frexp edge: a mantissa that rounds up to 1.0.
        if q >= 1 << 31 {
            q /= 2;
            shift += 1;
        }
        while q < 1 << 30 {
            q *= 2;
            shift -= 1;
        }
        // A right shift past 31 is undefined in the generated C (`1u << e`); a multiplier that
        // small is denormalized instead (rounded, so the value stays the nearest one), down to
        // zero when every possible 32-bit product rounds to 0 anyway.
        if shift < -31 {
            let d = (-31 - shift) as u32;
            q = if d >= 32 {
                0
            } else {
                (q + (1 << (d - 1))) >> d
            };
            shift = -31;
            if q == 0 {
                return Requant {
                    multiplier: 0,
                    shift: 0,
                };
            }
        }
        Requant {
            multiplier: q as i32,
            shift,
        }
    }

    /// The real multiplier this form represents.
    pub fn real(self) -> f64 {
        self.multiplier as f64 * 2f64.powi(self.shift - 31)
    }

    /// The 16-bit multiplier of [`requantize_s64`] (CMSIS-NN's REDUCE_MULTIPLIER).
    pub fn reduced(self) -> i32 {
        if self.multiplier < 0x7FFF_0000 {
            (self.multiplier + (1 << 15)) >> 16
        } else {
            0x7FFF
        }
    }
}

/// Rounding divide by 2^exponent, ties away from zero (`arm_nn_divide_by_power_of_two`).
pub fn divide_by_power_of_two(dividend: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return dividend;
    }
    // As the generated code computes it (`(1u << e) - 1`), so exponent 31 works too.
    let mask = ((1u32 << exponent) - 1) as i32;
    let remainder = dividend & mask;
    let mut result = dividend >> exponent;
    let mut threshold = mask >> 1;
    if result < 0 {
        threshold += 1;
    }
    if remainder > threshold {
        result += 1;
    }
    result
}

/// `val · M` rounded once, half up, for 32-bit accumulators: `((val << left) · multiplier +
/// 2^(s−1)) >> s` with s = 31 + max(−shift, 0). The plan proves |val| · 2^max(shift, 0) <
/// 2^31, so the left shift never overflows, and |product| < 2^62 keeps the sum in 64 bits.
/// CMSIS-NN's `arm_nn_requantize` rounds twice (the doubling high multiply, then the right
/// shift, half away from zero); one rounding is the exact nearest value and on ARMv7E-M one
/// SMLAL into a preset rounding constant and one shift (≈ 4 instructions instead of ≈ 12).
pub fn requantize(val: i32, r: Requant) -> i32 {
    let left = r.shift.max(0);
    let v = val.wrapping_mul(1 << left);
    rshift_round(
        v as i64 * r.multiplier as i64,
        31 + (-r.shift).max(0) as u32,
    ) as i32
}

/// `arm_nn_requantize_s64`: `val · M` rounded, for 64-bit accumulators (shift ≤ 14). The plan
/// proves |val| · reduced < 2^63 and the result fits 32 bits.
pub fn requantize_s64(val: i64, r: Requant) -> i32 {
    let reduced = r.reduced() as i64;
    let result = (val.wrapping_mul(reduced) >> (14 - r.shift)) as i32;
    (result + 1) >> 1
}

/// `v / 2^s` rounded half up, for s ≥ 1 (the cells' fixed-point products).
pub fn rshift_round(v: i64, s: u32) -> i64 {
    if s == 0 {
        v
    } else {
        (v + (1i64 << (s - 1))) >> s
    }
}

pub fn saturate(v: i64, bits: u32) -> i32 {
    let hi = (1i64 << (bits - 1)) - 1;
    v.clamp(-hi - 1, hi) as i32
}

/// Entries of an activation lookup table: 513 points over [-8, 8] in steps of 1/32 (Q3.12
/// inputs spaced 128 apart), Q15 outputs.
pub const LUT_LEN: usize = 513;

/// Fraction bits of gate pre-activations (Q3.12 in int16, as CMSIS-NN's LSTM).
pub const GATE_FRAC: u32 = 12;

/// A table of `f` at the 513 points, rounded to Q15 and saturated to int16.
pub fn lut(f: impl Fn(f64) -> f64) -> Vec<i16> {
    (0..LUT_LEN)
        .map(|k| {
            let x = (k as f64 * 128.0 - 32768.0) / 4096.0;
            saturate((f(x) * 32768.0).round() as i64, 16) as i16
        })
        .collect()
}

/// Evaluates a table at a Q3.12 input (saturated to int16) by linear interpolation between
/// neighbouring entries: the result is Q15.
pub fn lut_eval(table: &[i16], x: i32) -> i32 {
    let u = (x.clamp(-32768, 32767) + 32768) as usize;
    let (idx, frac) = (u >> 7, (u & 127) as i32);
    let lo = table[idx] as i32;
    let hi = table[idx + 1] as i32;
    lo + (((hi - lo) * frac + 64) >> 7)
}

/// sigmoid at a Q3.12 input (any int32), Q15, from the tanh table: σ(x) = (1 + tanh(x/2)) / 2,
/// rounded half up and saturated to 32767. One table serves both activations (1 KB less in
/// every fixed-point build). tanh is read at x/2 without dropping x's last bit: the table's
/// spacing is 256 units of x (inputs clamped to ±16), interpolated in 1/256ths, so σ's error
/// is half of tanh's interpolation error.
pub fn sigmoid_eval(tanh_table: &[i16], x: i32) -> i32 {
    let u = x.clamp(-65536, 65535) + 65536;
    let (idx, frac) = ((u >> 8) as usize, u & 255);
    let lo = tanh_table[idx] as i32;
    let hi = tanh_table[idx + 1] as i32;
    let t = lo + (((hi - lo) * frac + 128) >> 8);
    ((t + 32769) >> 1).min(32767)
}

/// The two tables fixed-point builds may use: tanh (sigmoid is derived from it) and exp.
pub fn tanh_lut() -> Vec<i16> {
    lut(f64::tanh)
}

/// exp(x) for x ≤ 0 (softmax); inputs above 0 never occur and read as 1.
pub fn exp_lut() -> Vec<i16> {
    lut(|x| x.min(0.0).exp())
}

/// Quantizes one float input value: `round(x / scale) + zero_point`, saturated, with the
/// arithmetic the generated float API uses (f32 multiply by the reciprocal, round half away
/// from zero, clamp before converting).
pub fn quantize_f32(x: f32, inv_scale: f32, zero_point: i32, bits: u32) -> i32 {
    let lo = -(1i32 << (bits - 1));
    let hi = (1i32 << (bits - 1)) - 1;
    let v = x * inv_scale;
    let v = if v >= 0.0 { v + 0.5 } else { v - 0.5 };
    let (lo_f, hi_f) = ((lo - zero_point) as f32, (hi - zero_point) as f32);
    // NaN compares false: it becomes the lowest value.
    let v = if v >= lo_f { v } else { lo_f };
    let v = if v <= hi_f { v } else { hi_f };
    v as i32 + zero_point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_round_trip() {
        for real in [1e-6, 0.001, 0.3, 0.5, 0.75, 1.0, 1.5, 3.0, 1234.5] {
            let r = Requant::from_real(real);
            assert!(r.multiplier >= 1 << 30, "{real}: {r:?}");
            assert!((r.real() - real).abs() <= real * 1e-9, "{real}: {r:?}");
        }
    }

    #[test]
    fn requantize_rounds_once_half_up() {
        // M = 0.5 is multiplier 2^30, shift 0.
        let half = Requant::from_real(0.5);
        assert_eq!((half.multiplier, half.shift), (1 << 30, 0));
        assert_eq!(requantize(3, half), 2);
        assert_eq!(requantize(-3, half), -1);
        // M = 0.25 adds one bit to the shift: still one rounding, half up.
        let quarter = Requant::from_real(0.25);
        assert_eq!(quarter.shift, -1);
        assert_eq!(requantize(6, quarter), 2);
        assert_eq!(requantize(-6, quarter), -1);
        assert_eq!(requantize(-7, quarter), -2);
        assert_eq!(divide_by_power_of_two(-3, 1), -2);
        assert_eq!(divide_by_power_of_two(3, 1), 2);
        assert_eq!(divide_by_power_of_two(-5, 2), -1);
        // One rounding: the nearest integer to val · M, ties up, for any multiplier and value
        // (checked by exact division in 128 bits).
        let mut rng = crate::base::sequences::SplitMix64(7);
        for _ in 0..20_000 {
            let real = 2f64.powi(-((rng.next_u64() % 40) as i32) + 8)
                * (1.0 + (rng.next_u64() % 1000) as f64 / 1000.0);
            let r = Requant::from_real(real);
            let bound = i32::MAX >> r.shift.max(0);
            let v = (rng.next_u64() % (2 * bound as u64 + 1)) as i64 - bound as i64;
            let num = v as i128 * r.multiplier as i128 * (1i128 << r.shift.max(0));
            let den = 1i128 << (31 + (-r.shift).max(0));
            let nearest = num.div_euclid(den) + i128::from(2 * num.rem_euclid(den) >= den);
            assert_eq!(requantize(v as i32, r) as i128, nearest, "{v} {r:?}");
        }
        let twice = Requant::from_real(2.0);
        assert_eq!(requantize(-7, twice), -14);
        // The 64-bit form agrees with the exact value to within its 16-bit multiplier.
        let r = Requant::from_real(0.001234);
        for v in [-1_000_000_000i64, -12345, 0, 777, 9_876_543_210] {
            let exact = v as f64 * r.real();
            assert!((requantize_s64(v, r) as f64 - exact).abs() <= 1.0 + exact.abs() * 4e-5);
        }
    }

    #[test]
    fn sigmoid_from_tanh_is_monotone_in_range_and_saturates() {
        let t = tanh_lut();
        let mut last = -1;
        for x in (-70000..70000).step_by(13) {
            let s = sigmoid_eval(&t, x);
            assert!((0..=32767).contains(&s), "{x}: {s}");
            assert!(s >= last, "{x}: {s} < {last}");
            last = s;
            let exact = 1.0 / (1.0 + (-(x as f64) / 4096.0).exp());
            assert!(
                (s as f64 / 32768.0 - exact).abs() < 3.0 / 32768.0,
                "{x}: {s}"
            );
        }
        assert_eq!(sigmoid_eval(&t, i32::MAX), 32767);
        assert_eq!(sigmoid_eval(&t, i32::MIN), 0);
    }

    #[test]
    fn tables_interpolate_within_a_q15_step() {
        let t = tanh_lut();
        for x in (-32768..32768).step_by(37) {
            let xf = x as f64 / 4096.0;
            let sig = sigmoid_eval(&t, x) as f64 / 32768.0;
            let th = lut_eval(&t, x) as f64 / 32768.0;
            assert!(
                (sig - 1.0 / (1.0 + (-xf).exp())).abs() < 4.0 / 32768.0,
                "{x}"
            );
            assert!((th - xf.tanh()).abs() < 6.0 / 32768.0, "{x}");
        }
    }

    #[test]
    fn quantize_saturates_and_rounds() {
        assert_eq!(quantize_f32(0.26, 10.0, 0, 8), 3);
        assert_eq!(quantize_f32(-0.25, 10.0, 0, 8), -3);
        assert_eq!(quantize_f32(1e9, 1.0, -5, 8), 127);
        assert_eq!(quantize_f32(f32::NAN, 1.0, 3, 8), -128);
        assert_eq!(quantize_f32(-1e9, 1.0, 0, 16), -32768);
    }
}
