/* z holds the gate pre-activations i, f, g, o (PyTorch order), n each. With table activations
 * on cores with Helium's floating-point extension four units at a time (kp_vlstm4, the same
 * arithmetic lane by lane), the rest one at a time. */
static inline void kp_lstm_update(const float *z, float *c, float *h, int n)
{
    int rest = 0;
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
    rest = n - n % 4;
    for (int k = 0; k < rest; k += 4) {
        kp_vlstm4(z, c, h, n, k);
    }
#endif
    kp_lstm_units(z, c, h, n, rest);
}
