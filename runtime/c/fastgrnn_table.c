/* pre holds W x + U h; zeta and nu arrive already passed through the sigmoid. With table
 * activations on cores with Helium's floating-point extension four units at a time
 * (kp_vfastgrnn4), the rest one at a time. */
static inline void kp_fastgrnn_update(const float *pre, const float *b_z, const float *b_h,
                                      float zeta, float nu, float *h, int n)
{
    int rest = 0;
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    rest = n - n % 4;
    for (int k = 0; k < rest; k += 4) {
        kp_vfastgrnn4(pre, b_z, b_h, zeta, nu, h, k);
    }
#endif
    kp_fastgrnn_units(pre, b_z, b_h, zeta, nu, h, n, rest);
}
