/* Bytes 1 and 3 of v, sign-extended into the two 16-bit halves: SXTB16 of v rotated right by
 * 8 bits. On DSP cores one SXTB16 with its rotation (GCC does not fold a separate rotate into
 * it); elsewhere the rotation, then kp_sxtb16's portable form. */
static inline uint32_t kp_sxtb16_ror8(uint32_t v)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return kp_sxtb16((v >> 8) | (v << 24));
#endif
}
