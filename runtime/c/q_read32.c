/* Two int16 or four int8 values as one 32-bit word (one LDR; unaligned is fine on v7-M/v8-M). */
static inline uint32_t kp_read32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
