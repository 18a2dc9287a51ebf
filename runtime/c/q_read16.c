/* Two int8 values as the low half of a word (one LDRH; unaligned is fine on v7-M/v8-M). */
static inline uint32_t kp_read16(const void *p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
