#![no_main]
//! See `kpgen_fuzz::npy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::npy(data));
