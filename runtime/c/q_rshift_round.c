/* v / 2^s rounded half up (s >= 1). */
static inline int64_t kp_rshift_round(int64_t v, int32_t s)
{
    return (v + ((int64_t)1 << (s - 1))) >> s;
}
