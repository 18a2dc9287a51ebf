/* v limited to [lo, hi], in 32 bits. */
static inline int32_t kp_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}
