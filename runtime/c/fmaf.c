/* a * b + c. Fused (one rounding, one VFMA) on cores with FMA: C99 does not contract
 * a * b + c by itself, which would cost a multiply and an add per weight. clang turns
 * __builtin_fmaf into a call to the C library's fmaf unless -fno-math-errno, so under clang
 * the instruction is written out. */
static inline float kp_fmaf(float a, float b, float c)
{
#if defined(__ARM_FEATURE_FMA) && defined(__clang__) && !defined(__NO_MATH_ERRNO__)
    __asm__("vfma.f32 %0, %1, %2" : "+t"(c) : "t"(a), "t"(b));
    return c;
#elif defined(__ARM_FEATURE_FMA)
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}
