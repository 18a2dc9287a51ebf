/* Empty: CMSIS-DSP reads its build options from here; the benchmark passes them as -D flags. */
