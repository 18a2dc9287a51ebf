/* The low halves of a and b as one pair (lo(a), lo(b)): one PKHBT on DSP cores (GCC does not
 * form it from the C). */
static inline uint32_t kp_pkhbt(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (a & 0xFFFFu) | (b << 16);
#endif
}
