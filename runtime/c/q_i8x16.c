#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
/* Sixteen int8 lanes: one Helium Q register. */
typedef int8x16_t kp_i8x16_t;
#else
/* Sixteen int8 lanes: the portable twin of a Helium Q register. */
typedef struct {
    int8_t v[16];
} kp_i8x16_t;
#endif
