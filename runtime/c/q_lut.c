/* A 513-entry Q15 table over Q3.12 inputs [-8, 8], linearly interpolated:
 * lo + ((hi - lo) * f + 64) >> 7 = (lo * (128 - f) + hi * f + 64) >> 7, which DSP cores compute
 * with one 32-bit load of the neighbouring entries and one SMLAD. */
static inline int32_t kp_lut(const int16_t *table, int32_t x)
{
    const int32_t u = kp_clamp16(x) + 32768;
    const int32_t f = u & 127;
#if defined(__ARM_FEATURE_DSP)
    const uint32_t w = (uint32_t)(128 - f) | ((uint32_t)f << 16);
    return kp_smlad(kp_read32(table + (u >> 7)), w, 64) >> 7;
#else
    const int32_t lo = table[u >> 7];
    const int32_t hi = table[(u >> 7) + 1];
    /* The DSP form's helpers, referenced so no compiler calls them unused here. */
    (void)kp_smlad;
    (void)kp_read32;
    return lo + (((hi - lo) * f + 64) >> 7);
#endif
}
