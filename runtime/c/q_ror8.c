/* v rotated right by 8 bits (folds into SXTB16's rotation on Arm). */
static inline uint32_t kp_ror8(uint32_t v)
{
    return (v >> 8) | (v << 24);
}
