#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
/* Eight int16 lanes: one Helium Q register. */
typedef int16x8_t kp_i16x8_t;
#else
/* Eight int16 lanes: the portable twin of a Helium Q register. */
typedef struct {
    int16_t v[8];
} kp_i16x8_t;
#endif
