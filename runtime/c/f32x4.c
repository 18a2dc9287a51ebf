#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
#include <arm_mve.h>
/* Four float lanes: one Helium Q register. */
typedef float32x4_t kp_f32x4_t;
#else
/* Four float lanes: the portable twin of a Helium Q register. */
typedef struct {
    float v[4];
} kp_f32x4_t;
#endif
