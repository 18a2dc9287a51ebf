//! Round-trips and error messages for `kpgen::base::tensor`. Fixtures come from
//! tests/fixtures/tensors/make.py (numpy).

use std::path::{Path, PathBuf};

use kpgen::base::tensor::{self, DType, Tensor, TensorError};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tensors")
}

fn load(spec: &str) -> Tensor {
    match tensor::load(spec, &dir()) {
        Ok(t) => t,
        Err(e) => panic!("{spec}: {e}"),
    }
}

/// The error message with the machine-specific fixture directory replaced.
fn err(spec: &str) -> String {
    err_in(spec, &dir())
}

fn err_in(spec: &str, base: &Path) -> String {
    let e = tensor::load(spec, base).expect_err(spec);
    e.to_string().replace(&format!("{}/", base.display()), "")
}

fn float_err(spec: &str) -> String {
    let e = tensor::load_float(spec, &dir()).expect_err(spec);
    e.to_string().replace(&format!("{}/", dir().display()), "")
}

fn check(t: &Tensor, shape: &[usize], dtype: DType, data: &[f64]) {
    assert_eq!(t.shape, shape);
    assert_eq!(t.dtype, dtype);
    assert_eq!(t.data, data);
}

#[test]
fn npy_float32_c_order() {
    check(
        &load("f32_c.npy"),
        &[2, 3],
        DType::F32,
        &[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
    );
}

#[test]
fn npy_float64_fortran_order_is_returned_row_major() {
    let want: Vec<f64> = (0..24).map(|i| i as f64 * 0.25).collect();
    check(&load("f64_fortran.npy"), &[2, 3, 4], DType::F64, &want);
}

#[test]
fn npy_big_endian() {
    check(&load("f32_be.npy"), &[3], DType::F32, &[1.5, -2.25, 3.0]);
    check(
        &load("f64_be_fortran.npy"),
        &[2, 3],
        DType::F64,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    );
    check(&load("i16_be.npy"), &[2], DType::I16, &[-300.0, 300.0]);
}

#[test]
fn npy_scalar_and_empty() {
    let s = load("scalar.npy");
    check(&s, &[], DType::F64, &[3.25]);
    assert_eq!(s.len(), 1);
    let e = load("empty.npy");
    check(&e, &[0, 3], DType::F32, &[]);
    assert!(e.is_empty());
}

#[test]
fn npy_header_versions() {
    check(&load("v2.npy"), &[2], DType::F32, &[1.0, 2.0]);
    check(&load("v3.npy"), &[2], DType::F32, &[1.0, 2.0]);
}

#[test]
fn npy_integer_and_half_dtypes() {
    check(
        &load("i32.npy"),
        &[2, 2],
        DType::I32,
        &[1.0, -2.0, 3.0, 4.0],
    );
    check(&load("i8.npy"), &[3], DType::I8, &[-128.0, 0.0, 127.0]);
    check(&load("u8.npy"), &[2], DType::U8, &[0.0, 255.0]);
    check(&load("i64.npy"), &[2], DType::I64, &[-(2f64.powi(40)), 7.0]);
    check(&load("u32.npy"), &[1], DType::U32, &[4e9]);
    check(&load("bool.npy"), &[3], DType::Bool, &[1.0, 0.0, 1.0]);
    check(&load("f16.npy"), &[3], DType::F16, &[0.5, -2.0, 65504.0]);
    assert!(!DType::I32.is_float());
    assert!(DType::F16.is_float() && DType::BF16.is_float());
}

#[test]
fn npz_stored_and_compressed() {
    for file in ["weights.npz", "weights_z.npz"] {
        for member in ["A_ih", "A_ih.npy"] {
            check(
                &load(&format!("{file}:{member}")),
                &[3, 2],
                DType::F32,
                &[0.5, -1.0, 2.0, 0.25, -3.5, 4.0],
            );
        }
        check(
            &load(&format!("{file}:A_hh")),
            &[2, 2],
            DType::F64,
            &[1.0, 2.0, 3.0, 4.0],
        );
    }
    // A single-member archive needs no member name.
    check(&load("single.npz"), &[2], DType::F32, &[9.0, 8.0]);
}

#[test]
fn safetensors_dtypes() {
    check(
        &load("model.safetensors:layer0.A"),
        &[2, 3],
        DType::F32,
        &[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5],
    );
    check(
        &load("model.safetensors:layer0.B"),
        &[2],
        DType::F64,
        &[0.125, -8.0],
    );
    check(
        &load("model.safetensors:layer0.h"),
        &[3],
        DType::F16,
        &[0.5, -2.0, 65504.0],
    );
    check(
        &load("model.safetensors:layer0.bf"),
        &[2],
        DType::BF16,
        &[1.5, -3.0],
    );
    check(
        &load("model.safetensors:layer0.idx"),
        &[3],
        DType::I32,
        &[1.0, -2.0, 3.0],
    );
    check(&load("model.safetensors:scalar"), &[], DType::F32, &[7.5]);
}

#[test]
fn load_float_accepts_floats_and_rejects_ints() {
    let t = tensor::load_float("weights.npz:A_hh", &dir()).unwrap();
    assert_eq!(t.dtype, DType::F64);
    assert_eq!(
        float_err("i32.npy"),
        "i32.npy: expected float32 or float64, found int32"
    );
    assert_eq!(
        float_err("model.safetensors:layer0.idx"),
        "model.safetensors:layer0.idx: expected float32 or float64, found int32"
    );
}

#[test]
fn first_non_finite() {
    let t = load("nonfinite.npy");
    let (i, v) = t.first_non_finite().unwrap();
    assert_eq!(i, 2);
    assert!(v.is_nan());
    assert_eq!(load("f32_c.npy").first_non_finite(), None);
}

#[test]
fn write_npy_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[usize], Vec<f32>); 4] = [
        (&[2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-3, -7.25]),
        (&[4], vec![1.0, 2.0, 3.0, 4.0]),
        (&[], vec![42.5]),
        (&[0, 5], vec![]),
    ];
    for (k, (shape, data)) in cases.iter().enumerate() {
        let name = format!("out{k}.npy");
        tensor::write_npy_f32(&tmp.path().join(&name), shape, data).unwrap();
        let bytes = std::fs::read(tmp.path().join(&name)).unwrap();
        assert_eq!(bytes, tensor::npy_f32_bytes(shape, data));
        // numpy aligns the data start to 64 bytes.
        assert_eq!((bytes.len() - data.len() * 4) % 64, 0);
        let t = tensor::load(&name, tmp.path()).unwrap();
        assert_eq!(t.shape, *shape);
        assert_eq!(t.dtype, DType::F32);
        let want: Vec<f64> = data.iter().map(|&v| v as f64).collect();
        assert_eq!(t.data, want);
    }
    let bad = tensor::write_npy_f32(&tmp.path().join("bad.npy"), &[2, 2], &[1.0]);
    assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn npy_f32_bytes_header_matches_numpy() {
    let b = tensor::npy_f32_bytes(&[2, 3], &[0.0; 6]);
    let header = std::str::from_utf8(&b[10..128]).unwrap();
    assert_eq!(&b[..10], b"\x93NUMPY\x01\x00\x76\x00");
    assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    assert!(header.ends_with(" \n"));
}

#[test]
fn file_errors() {
    assert_eq!(err("missing.npy"), "missing.npy: file not found");
    assert_eq!(
        err("weights.pt"),
        "weights.pt: unknown tensor file type \".pt\": expected .npy, .npz or .safetensors"
    );
    assert_eq!(
        err("weights.pt:A"),
        "weights.pt: unknown tensor file type \".pt\": expected .npy, .npz or .safetensors"
    );
    assert_eq!(
        err("weights"),
        "weights: unknown tensor file type (no extension): expected .npy, .npz or .safetensors"
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("dir.npy")).unwrap();
    let msg = err_in("dir.npy", tmp.path());
    assert!(
        msg.starts_with("dir.npy: is a directory, not a regular file"),
        "{msg}"
    );
}

#[test]
fn npy_errors() {
    assert_eq!(
        err("bad_magic.npy"),
        "bad_magic.npy: not a .npy file: it does not start with the .npy magic \\x93NUMPY"
    );
    assert_eq!(
        err("bad_version.npy"),
        "bad_version.npy: malformed .npy header: unsupported format version 7 (expected 1, 2 or 3)"
    );
    assert_eq!(
        err("short_header.npy"),
        "short_header.npy: malformed .npy header: header length field says 64 bytes, but the file ends after 15"
    );
    assert_eq!(
        err("no_fortran.npy"),
        "no_fortran.npy: malformed .npy header: missing key 'fortran_order'"
    );
    assert_eq!(
        err("bad_shape.npy"),
        "bad_shape.npy: malformed .npy header: 'shape' must be a tuple of non-negative integers, found (2, -3)"
    );
    assert_eq!(
        err("not_dict.npy"),
        "not_dict.npy: malformed .npy header: expected a dict, found [1, 2, 3]"
    );
    assert_eq!(
        err("truncated.npy"),
        "truncated.npy: truncated: header says 16 elements of float32 = 64 bytes, file holds 56"
    );
    assert_eq!(
        err("complex.npy"),
        "complex.npy: unsupported dtype \"<c8\": supported are float16/32/64, int8/16/32/64, uint8/16/32/64, bool"
    );
    assert_eq!(
        err("unicode.npy"),
        "unicode.npy: unsupported dtype \"<U2\": supported are float16/32/64, int8/16/32/64, uint8/16/32/64, bool"
    );
    assert_eq!(
        err("structured.npy"),
        "structured.npy: unsupported dtype [('a', '<f4'), ('b', '<i4')] (structured dtype): supported are float16/32/64, int8/16/32/64, uint8/16/32/64, bool"
    );
    assert_eq!(
        err("f32_c.npy:A"),
        "f32_c.npy: a .npy file holds a single array, but member \"A\" was given; drop the `:A` suffix"
    );
}

#[test]
fn npz_errors() {
    assert_eq!(
        err("weights.npz:A_xx"),
        "weights.npz: no member \"A_xx\"; available: A_ih, A_hh"
    );
    assert_eq!(
        err("weights_z.npz"),
        "weights_z.npz: holds 2 tensors, name one as weights_z.npz:NAME; available: A_ih, A_hh"
    );
    let msg = err("not_zip.npz:A");
    assert!(
        msg.starts_with("not_zip.npz: not a valid .npz (zip) archive: "),
        "{msg}"
    );
}

#[test]
fn safetensors_errors() {
    assert_eq!(
        err("model.safetensors:layer1.A"),
        "model.safetensors: no member \"layer1.A\"; available: layer0.A, layer0.B, layer0.bf, layer0.h, layer0.idx, scalar"
    );
    assert_eq!(
        err("model.safetensors:__metadata__"),
        "model.safetensors: no member \"__metadata__\"; available: layer0.A, layer0.B, layer0.bf, layer0.h, layer0.idx, scalar"
    );
    assert_eq!(
        err("model.safetensors"),
        "model.safetensors: holds 6 tensors, name one as model.safetensors:NAME; available: layer0.A, layer0.B, layer0.bf, layer0.h, layer0.idx, scalar"
    );
    assert_eq!(
        err("st_truncated.safetensors"),
        "st_truncated.safetensors:w: truncated: header says 2 elements of float32 = 8 bytes, file holds 4"
    );
    assert_eq!(
        err("st_header_len.safetensors"),
        "st_header_len.safetensors: malformed .safetensors header: header length field says 4096 bytes, but the file holds only 72 after it"
    );
    let msg = err("st_bad_json.safetensors");
    assert!(
        msg.starts_with(
            "st_bad_json.safetensors: malformed .safetensors header: header is not a JSON object: "
        ),
        "{msg}"
    );
    assert_eq!(
        err("st_f8.safetensors:q"),
        "st_f8.safetensors:q: unsupported dtype \"F8_E4M3\": supported are F16, BF16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL"
    );
}

#[test]
fn errors_are_typed() {
    assert!(matches!(
        tensor::load("missing.npz:A", &dir()),
        Err(TensorError::NotFound { .. })
    ));
    assert!(matches!(
        tensor::load("truncated.npy", &dir()),
        Err(TensorError::Truncated {
            count: 16,
            expected: 64,
            found: 56,
            dtype: DType::F32,
            ..
        })
    ));
}

#[test]
fn hostile_bytes_never_panic() {
    // Every prefix, and every single-byte corruption, of a good fixture must load or
    // fail cleanly, never panic.
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "f64_fortran.npy",
        "weights.npz",
        "weights_z.npz",
        "model.safetensors",
    ] {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        let ext = name.rsplit('.').next().unwrap();
        for cut in 0..bytes.len() {
            let file = format!("cut.{ext}");
            std::fs::write(tmp.path().join(&file), &bytes[..cut]).unwrap();
            let spec = match ext {
                "npz" => format!("{file}:A_hh"),
                "safetensors" => format!("{file}:layer0.B"),
                _ => file,
            };
            let result = tensor::load(&spec, tmp.path());
            let mut flipped = bytes.clone();
            flipped[cut] ^= 0xff;
            std::fs::write(tmp.path().join(format!("flip.{ext}")), &flipped).unwrap();
            let _ = tensor::load(&spec.replacen("cut.", "flip.", 1), tmp.path());
            // Archives may still hold the member intact when only later bytes are cut.
            if ext == "npy" {
                assert!(result.is_err(), "{name} cut at {cut}");
            }
        }
    }
}

/// A safetensors file whose two tensors share bytes is malformed, whichever is asked for.
#[test]
fn overlapping_safetensors_offsets_are_refused() {
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 12]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("o.safetensors"), bytes).unwrap();
    let msg = err_in("o.safetensors:a", tmp.path());
    assert!(msg.contains("\"a\" and \"b\" overlap"), "{msg}");
}

/// Limits bound what is read and what is inflated, before the bytes are read.
#[test]
fn reads_and_inflation_are_bounded() {
    use kpgen::base::input::{Disk, Limits, Reader};
    let npz_size = std::fs::metadata(dir().join("weights_z.npz"))
        .unwrap()
        .len();
    // The archive itself fits, its deflated member (160 bytes) does not once inflated.
    let tight = Limits {
        total_bytes: npz_size + 100,
        ..Limits::default()
    };
    let reader = Reader::new(&Disk, tight);
    let e = tensor::load_with(&reader, "weights_z.npz:A_hh", &dir()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("more than the limit"), "{msg}");
    // A file larger than the limit is refused before it is read.
    let tiny = Limits {
        file_bytes: 16,
        ..Limits::default()
    };
    let e = tensor::load_with(&Reader::new(&Disk, tiny), "f32_c.npy", &dir()).unwrap_err();
    assert!(
        e.to_string().contains("more than the limit of 16 bytes"),
        "{e}"
    );
    // The total across files of one build.
    let total = Limits {
        total_bytes: 200,
        ..Limits::default()
    };
    let reader = Reader::new(&Disk, total);
    tensor::load_with(&reader, "f32_c.npy", &dir()).unwrap();
    let e = tensor::load_with(&reader, "f32_c.npy", &dir()).unwrap_err();
    assert!(e.to_string().contains("read by one build"), "{e}");
}

/// The header peek the budget check uses gives the shape a full load gives, in every format.
#[test]
fn peeked_shapes_equal_loaded_ones() {
    let reader = kpgen::base::input::Reader::disk();
    for spec in [
        "f32_c.npy",
        "f64_fortran.npy",
        "weights.npz:A_hh",
        "weights_z.npz:A_ih",
        "single.npz",
        "model.safetensors:layer0.A",
        "model.safetensors:scalar",
    ] {
        let peeked = tensor::peek_shape_with(&reader, spec, &dir()).expect(spec);
        assert_eq!(peeked, load(spec).shape, "{spec}");
    }
    assert!(tensor::peek_shape_with(&reader, "model.safetensors", &dir()).is_err());
    assert!(tensor::peek_shape_with(&reader, "weights.npz:nope", &dir()).is_err());
}
