#![no_main]
//! See `kpgen_fuzz::npz`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::npz(data));
