/* The high halves of a and b as one pair (hi(a), hi(b)): one PKHTB on DSP cores. */
static inline uint32_t kp_pkhtb(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
#else
    return (a >> 16) | (b & 0xFFFF0000u);
#endif
}
