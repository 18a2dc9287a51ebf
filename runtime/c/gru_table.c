/* z holds W_ih x + b_ih (r, z, n) followed by W_hh h + b_hh (r, z, n), n each. With table
 * activations on cores with Helium's floating-point extension four units at a time
 * (kp_vgru4), the rest one at a time. */
static inline void kp_gru_update(const float *z, float *h, int n)
{
    int rest = 0;
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    rest = n - n % 4;
    for (int k = 0; k < rest; k += 4) {
        kp_vgru4(z, h, n, k);
    }
#endif
    kp_gru_units(z, h, n, rest);
}
