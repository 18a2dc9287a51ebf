#![no_main]
//! See `kpgen_fuzz::spec`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::spec(data));
