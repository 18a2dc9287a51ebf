/* kp_expf: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor polynomial, then a
 * 2^n scale built in the exponent bits. Inputs are clamped to [-87, 88] (the sigmoid and tanh
 * built on it saturate long before; a NaN counts as -87). Accuracy against double precision:
 * see docs/design.md. */
typedef union {
    float f;
    uint32_t u;
} kp_bits_t;

static inline float kp_expf(float x)
{
    kp_bits_t scale;
    float r, p, nf;
    int32_t n;
    if (x > 88.0f) {
        x = 88.0f;
    }
    /* Written so that a NaN takes this branch too: no NaN reaches the conversion to int. */
    if (!(x >= -87.0f)) {
        x = -87.0f;
    }
    nf = x * 1.442695f;
    n = (int32_t)(nf + (nf >= 0.0f ? 0.5f : -0.5f));
    r = x - (float)n * 0.69314575f;  /* ln2, high bits */
    r = r - (float)n * 1.4286068e-6f; /* ln2, low bits */
    p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f
        + r * (0.008333334f + r * 0.0013888889f)))));
    scale.u = (uint32_t)(n + 127) << 23;
    return p * scale.f;
}
