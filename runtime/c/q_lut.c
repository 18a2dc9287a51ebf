/* A 513-entry Q15 table over Q3.12 inputs [-8, 8], linearly interpolated. */
static inline int32_t kp_lut(const int16_t *table, int32_t x)
{
    const int32_t u = kp_clamp16(x) + 32768;
    const int32_t lo = table[u >> 7];
    const int32_t hi = table[(u >> 7) + 1];
    return lo + (((hi - lo) * (u & 127) + 64) >> 7);
}
