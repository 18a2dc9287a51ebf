#![no_main]
//! See `kpgen_fuzz::safetensors`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpgen_fuzz::safetensors(data));
