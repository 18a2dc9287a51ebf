#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
/* kp_lut over KP_TANH_Q15 for four lanes: the clamp, two gathers of neighbouring entries and
 * lo + ((hi - lo) * f + 64) >> 7, which equals the scalar forms (DSP and portable). */
static inline int32x4_t kp_vtanh_q15_4(int32x4_t x)
{
    const int32x4_t x16 = vmaxq_s32(vminq_s32(x, vdupq_n_s32(32767)), vdupq_n_s32(-32768));
    const int32x4_t u = vaddq_n_s32(x16, 32768);
    const int32x4_t f = vandq_s32(u, vdupq_n_s32(127));
    const uint32x4_t at = vreinterpretq_u32_s32(vshrq_n_s32(u, 7));
    const int32x4_t lo = vldrhq_gather_shifted_offset_s32(KP_TANH_Q15, at);
    const int32x4_t hi = vldrhq_gather_shifted_offset_s32(KP_TANH_Q15 + 1, at);
    return vaddq_s32(lo, vshrq_n_s32(vaddq_n_s32(vmulq_s32(vsubq_s32(hi, lo), f), 64), 7));
}

/* kp_sigmoid_q15 of four lanes: (1 + tanh(x / 2)) / 2 from the same table, read at x / 2 in
 * 1/256ths, rounded half up and held below 1. */
static inline int32x4_t kp_vsigmoid_q15_4(int32x4_t x)
{
    const int32x4_t x17 = vmaxq_s32(vminq_s32(x, vdupq_n_s32(65535)), vdupq_n_s32(-65536));
    const int32x4_t u = vaddq_n_s32(x17, 65536);
    const int32x4_t f = vandq_s32(u, vdupq_n_s32(255));
    const uint32x4_t at = vreinterpretq_u32_s32(vshrq_n_s32(u, 8));
    const int32x4_t lo = vldrhq_gather_shifted_offset_s32(KP_TANH_Q15, at);
    const int32x4_t hi = vldrhq_gather_shifted_offset_s32(KP_TANH_Q15 + 1, at);
    const int32x4_t t =
        vaddq_s32(lo, vshrq_n_s32(vaddq_n_s32(vmulq_s32(vsubq_s32(hi, lo), f), 128), 8));
    return vminq_s32(vshrq_n_s32(vaddq_n_s32(t, 32769), 1), vdupq_n_s32(32767));
}

/* Units k .. k + 3 of the fixed-point LSTM update (see kp_lstm_q_units) in Helium lanes:
 * every product fits int32, every shift is arithmetic, as in the scalar code. */
static inline void kp_vlstm_q4(const int32_t *z, int16_t *c, kp_code_t *h, int n, int32_t cf,
                               int32_t hf, int k)
{
    const int32_t ig_shift = 30 - cf;
    const int32_t h_shift = 30 - hf;
    const int32x4_t i = kp_vsigmoid_q15_4(vldrwq_s32(&z[k]));
    const int32x4_t f = kp_vsigmoid_q15_4(vldrwq_s32(&z[n + k]));
    const int32x4_t g = kp_vtanh_q15_4(vldrwq_s32(&z[2 * n + k]));
    const int32x4_t o = kp_vsigmoid_q15_4(vldrwq_s32(&z[3 * n + k]));
    const int32x4_t fc = vshrq_n_s32(vaddq_n_s32(vmulq_s32(f, vldrhq_s32(&c[k])), 16384), 15);
    const int32x4_t ig = vshlq_r_s32(
        vaddq_n_s32(vmulq_s32(i, g), (int32_t)1 << (ig_shift - 1)), -ig_shift);
    const int32x4_t cn =
        vmaxq_s32(vminq_s32(vaddq_s32(fc, ig), vdupq_n_s32(32767)), vdupq_n_s32(-32768));
    const int32x4_t tc = cf > 12 ? vshlq_r_s32(vaddq_n_s32(cn, (int32_t)1 << (cf - 13)),
                                               -(cf - 12))
                                 : vshlq_r_s32(cn, 12 - cf);
    const int32x4_t hv = vshlq_r_s32(
        vaddq_n_s32(vmulq_s32(o, kp_vtanh_q15_4(tc)), (int32_t)1 << (h_shift - 1)), -h_shift);
    const int32x4_t code =
        vmaxq_s32(vminq_s32(hv, vdupq_n_s32(KP_CODE_MAX)), vdupq_n_s32(KP_CODE_MIN));
    vstrhq_s32(&c[k], cn);
#if KP_CODE_MAX == 127
    vstrbq_s32(&h[k], code);
#else
    vstrhq_s32(&h[k], code);
#endif
}
#endif
