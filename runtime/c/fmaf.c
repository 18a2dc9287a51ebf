/* a * b + c. Fused (one rounding, one VFMA) on cores with FMA: C99 does not contract
 * a * b + c by itself, which would cost a multiply and an add per weight. */
static inline float kp_fmaf(float a, float b, float c)
{
#if defined(__ARM_FEATURE_FMA)
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}
