/* acc + a * b lane by lane with one scalar b: one VFMA.F32 with a core register operand on
 * Helium cores (fused; the portable twin rounds the product, within the float bound). */
static inline kp_f32x4_t kp_vfma_n_f32x4(kp_f32x4_t acc, kp_f32x4_t a, float b)
{
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    return vfmaq_n_f32(acc, a, b);
#else
    for (int k = 0; k < 4; ++k) {
        acc.v[k] = a.v[k] * b + acc.v[k];
    }
    return acc;
#endif
}
