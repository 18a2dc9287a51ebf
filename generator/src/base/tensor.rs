//! Loading trained tensors from `.npy`, `.npz` and `.safetensors` files.
//!
//! A tensor is named by a *spec*: a path relative to the spec file's directory,
//! optionally followed by `:member` for archives, e.g. `f/w.npy`,
//! `weights.npz:A_ih` or `model.safetensors:layer0.A`. Whatever the file's dtype,
//! byte order or memory order, the loaded data is `f64` in row-major (C) order.
//!
//! NaN/Inf are *not* rejected here: the caller knows which spec field the tensor
//! belongs to and reports it there (see [`Tensor::first_non_finite`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::base::input::{ReadError, Reader};

/// Element type of a tensor as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl DType {
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// numpy-style name (`float32`, `int8`, ...), as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A loaded tensor. `data` is always row-major (C order); a 0-d scalar has an
/// empty `shape` and one element.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// The dtype the file stored; `data` has been converted to `f64`.
    pub dtype: DType,
}

impl Tensor {
    /// Number of elements (1 for a 0-d scalar).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The first NaN or infinite element as (row-major index, value).
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        self.data
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, v)| (i, *v))
    }
}

/// Where a tensor came from: a file, plus the archive member if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub member: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(m) = &self.member {
            write!(f, ":{m}")?;
        }
        Ok(())
    }
}

const SUPPORTED_EXTS: &str = ".npy, .npz or .safetensors";
const SUPPORTED_NPY: &str = "float16/32/64, int8/16/32/64, uint8/16/32/64, bool";
const SUPPORTED_ST: &str = "F16, BF16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL";

#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("{path}: file not found", path = .path.display())]
    NotFound { path: PathBuf },

    #[error("{path}: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        source: crate::base::input::ReadError,
    },

    #[error("{path}: unknown tensor file type {ext}: expected {SUPPORTED_EXTS}", path = .path.display(), ext = ext_label(.ext))]
    UnknownFormat { path: PathBuf, ext: Option<String> },

    #[error("{origin}: not a .npy file: {found}")]
    BadMagic { origin: Origin, found: String },

    #[error("{origin}: malformed .npy header: {reason}")]
    BadNpyHeader { origin: Origin, reason: String },

    #[error("{origin}: malformed .safetensors header: {reason}")]
    BadSafetensorsHeader { origin: Origin, reason: String },

    #[error("{path}: not a valid .npz (zip) archive: {reason}", path = .path.display())]
    BadArchive { path: PathBuf, reason: String },

    #[error("{origin}: truncated: header says {count} elements of {dtype} = {expected} bytes, file holds {found}")]
    Truncated {
        origin: Origin,
        count: usize,
        dtype: DType,
        expected: usize,
        found: usize,
    },

    #[error("{origin}: expected float32 or float64, found {dtype}")]
    NotFloat { origin: Origin, dtype: DType },

    #[error("{origin}: unsupported dtype {descr}: supported are {supported}")]
    UnsupportedDType {
        origin: Origin,
        descr: String,
        supported: &'static str,
    },

    #[error("{path}: no member {member:?}; available: {available}", path = .path.display(), available = .available.join(", "))]
    MemberNotFound {
        path: PathBuf,
        member: String,
        available: Vec<String>,
    },

    #[error("{path}: holds {n} tensors, name one as {path}:NAME; available: {available}", path = .path.display(), n = .available.len(), available = .available.join(", "))]
    MemberRequired {
        path: PathBuf,
        available: Vec<String>,
    },

    #[error("{path}: a .npy file holds a single array, but member {member:?} was given; drop the `:{member}` suffix", path = .path.display())]
    MemberOnNpy { path: PathBuf, member: String },
}

fn ext_label(ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("\".{e}\""),
        None => "(no extension)".to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Npy,
    Npz,
    Safetensors,
}

fn format_of(path: &str) -> Option<Format> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Some(Format::Npy),
        "npz" => Some(Format::Npz),
        "safetensors" => Some(Format::Safetensors),
        _ => None,
    }
}

/// Splits `file:member`. The split point is the first `:` whose prefix has a known
/// extension, so paths and member names may themselves contain `:`.
fn split_spec(spec: &str) -> (&str, Option<&str>) {
    for (i, _) in spec.match_indices(':') {
        if format_of(&spec[..i]).is_some() {
            return (&spec[..i], Some(&spec[i + 1..]));
        }
    }
    if format_of(spec).is_some() {
        return (spec, None);
    }
    // Unknown format either way; split at the last ':' so the message names a sane extension.
    match spec.rfind(':') {
        Some(i) if i > 0 => (&spec[..i], Some(&spec[i + 1..])),
        _ => (spec, None),
    }
}

/// The file a tensor reference (`file` or `file:member`) reads, relative to `base_dir`.
pub fn file_of(spec: &str, base_dir: &Path) -> PathBuf {
    base_dir.join(split_spec(spec).0)
}

/// The archive a reference names when it is a whole `.npz` file (no `:member`), relative to
/// `base_dir`: such a file may hold a scipy.sparse matrix (see [`crate::base::sparse`]).
pub fn whole_npz(spec: &str, base_dir: &Path) -> Option<PathBuf> {
    let (file, member) = split_spec(spec);
    (member.is_none() && format_of(file) == Some(Format::Npz)).then(|| base_dir.join(file))
}

/// Loads the tensor named by `spec` (see the module docs), relative to `base_dir`, from the
/// file system with the default limits.
pub fn load(spec: &str, base_dir: &Path) -> Result<Tensor, TensorError> {
    load_with(&Reader::disk(), spec, base_dir)
}

/// [`load`] through `reader` (its source, limits and running total).
pub fn load_with(reader: &Reader, spec: &str, base_dir: &Path) -> Result<Tensor, TensorError> {
    let (file, member) = split_spec(spec);
    let path = base_dir.join(file);
    let Some(format) = format_of(file) else {
        let ext = Path::new(file)
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        return Err(TensorError::UnknownFormat { path, ext });
    };
    if let (Format::Npy, Some(m)) = (format, member) {
        return Err(TensorError::MemberOnNpy {
            path,
            member: m.to_string(),
        });
    }
    let bytes = reader.tensor(&path).map_err(|e| read_error(&path, e))?;
    match format {
        Format::Npy => parse_npy(
            &bytes,
            &Origin {
                path: path.clone(),
                member: None,
            },
        ),
        Format::Npz => load_npz(reader, bytes, &path, member),
        Format::Safetensors => load_safetensors(&bytes, &path, member),
    }
}

/// [`load`], then rejects non-float dtypes (float16/bfloat16/float32/float64 pass).
pub fn load_float(spec: &str, base_dir: &Path) -> Result<Tensor, TensorError> {
    load_float_with(&Reader::disk(), spec, base_dir)
}

/// [`load_float`] through `reader`.
pub fn load_float_with(
    reader: &Reader,
    spec: &str,
    base_dir: &Path,
) -> Result<Tensor, TensorError> {
    let t = load_with(reader, spec, base_dir)?;
    if t.dtype.is_float() {
        return Ok(t);
    }
    let (file, member) = split_spec(spec);
    Err(TensorError::NotFloat {
        origin: Origin {
            path: base_dir.join(file),
            member: member.map(str::to_string),
        },
        dtype: t.dtype,
    })
}

fn read_error(path: &Path, e: ReadError) -> TensorError {
    match e {
        ReadError::NotFound => TensorError::NotFound {
            path: path.to_path_buf(),
        },
        source => TensorError::Read {
            path: path.to_path_buf(),
            source,
        },
    }
}

// ---------------------------------------------------------------------------
// .npy

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

fn parse_npy(bytes: &[u8], origin: &Origin) -> Result<Tensor, TensorError> {
    let h = npy_header(bytes, origin)?;
    let payload = &bytes[h.end..];
    let mut data = decode(payload, h.count, h.dtype, h.endian, origin)?;
    if h.fortran && h.shape.len() > 1 {
        data = fortran_to_c(&data, &h.shape);
    }
    Ok(Tensor {
        shape: h.shape,
        data,
        dtype: h.dtype,
    })
}

/// What a `.npy` header says.
struct NpyHeader {
    shape: Vec<usize>,
    count: usize,
    dtype: DType,
    endian: Endian,
    fortran: bool,
    /// Offset of the first data byte.
    end: usize,
}

/// The header dict of a `.npy` file and the offset of its first data byte.
fn npy_header_dict(
    bytes: &[u8],
    origin: &Origin,
) -> Result<(BTreeMap<String, Py>, usize), TensorError> {
    let bad = |reason: String| TensorError::BadNpyHeader {
        origin: origin.clone(),
        reason,
    };
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // The file's bytes are not echoed: a mistyped path may point at a private file.
        let found = if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            "it does not start with the .npy magic \\x93NUMPY".to_string()
        };
        return Err(TensorError::BadMagic {
            origin: origin.clone(),
            found,
        });
    }
    let major = *bytes
        .get(6)
        .ok_or_else(|| bad("file ends inside the version field".into()))?;
    let (len_size, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        v => {
            return Err(bad(format!(
                "unsupported format version {v} (expected 1, 2 or 3)"
            )))
        }
    };
    let start = 8 + len_size;
    let len_bytes = bytes
        .get(8..start)
        .ok_or_else(|| bad("file ends inside the header length field".into()))?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    let header_end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "header length field says {header_len} bytes, but the file ends after {}",
                bytes.len().saturating_sub(start)
            ))
        })?;
    let raw = &bytes[start..header_end];
    // v1/v2 headers are latin-1; every byte maps to the same code point.
    let text: Cow<str> = if utf8 {
        Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| bad("header is not UTF-8".into()))?)
    } else {
        Cow::Owned(raw.iter().map(|&b| b as char).collect())
    };
    let header = parse_py_dict(&text).map_err(bad)?;
    Ok((header, header_end))
}

/// Parses the magic, version and header of a `.npy` file (`bytes` may be just a prefix of it,
/// as long as it holds the whole header).
fn npy_header(bytes: &[u8], origin: &Origin) -> Result<NpyHeader, TensorError> {
    let bad = |reason: String| TensorError::BadNpyHeader {
        origin: origin.clone(),
        reason,
    };
    let (header, header_end) = npy_header_dict(bytes, origin)?;
    let descr = match header.get("descr") {
        Some(Py::Str(s)) => s.clone(),
        Some(other) => {
            return Err(TensorError::UnsupportedDType {
                origin: origin.clone(),
                descr: format!("{} (structured dtype)", other.render()),
                supported: SUPPORTED_NPY,
            })
        }
        None => return Err(bad("missing key 'descr'".into())),
    };
    let fortran = match header.get("fortran_order") {
        Some(Py::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "'fortran_order' must be True or False, found {}",
                other.render()
            )))
        }
        None => return Err(bad("missing key 'fortran_order'".into())),
    };
    let shape = match header.get("shape") {
        Some(Py::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                Py::Int(i) if *i >= 0 => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                bad(format!(
                    "'shape' must be a tuple of non-negative integers, found {}",
                    header["shape"].render()
                ))
            })?,
        Some(other) => {
            return Err(bad(format!(
                "'shape' must be a tuple, found {}",
                other.render()
            )))
        }
        None => return Err(bad("missing key 'shape'".into())),
    };
    let (dtype, endian) = npy_dtype(&descr).ok_or_else(|| TensorError::UnsupportedDType {
        origin: origin.clone(),
        descr: format!("{descr:?}"),
        supported: SUPPORTED_NPY,
    })?;
    let count =
        element_count(&shape).ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    Ok(NpyHeader {
        shape,
        count,
        dtype,
        endian,
        fortran,
        end: header_end,
    })
}

/// Bytes of a file's start that hold any sane `.npy` header.
const NPY_HEADER_PREFIX: u64 = 64 << 10;

/// The shape a tensor reference names, from its header alone: a `.npy` file's first bytes, a
/// `.safetensors` file's JSON header, or the start of a `.npz` member (the archive is read,
/// the member is inflated only as far as its header). For checking sizes against budgets
/// before any tensor body is read or inflated.
pub fn peek_shape_with(
    reader: &Reader,
    spec: &str,
    base_dir: &Path,
) -> Result<Vec<usize>, TensorError> {
    let (file, member) = split_spec(spec);
    let path = base_dir.join(file);
    let origin = Origin {
        path: path.clone(),
        member: member.map(str::to_owned),
    };
    match format_of(file) {
        Some(Format::Npy) => {
            let prefix = reader
                .prefix(&path, NPY_HEADER_PREFIX)
                .map_err(|e| read_error(&path, e))?;
            Ok(npy_header(&prefix, &origin)?.shape)
        }
        Some(Format::Safetensors) => {
            let len = reader.prefix(&path, 8).map_err(|e| read_error(&path, e))?;
            let header_len = <[u8; 8]>::try_from(len.as_slice())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            let bytes = reader
                .prefix(&path, 8u64.saturating_add(header_len))
                .map_err(|e| read_error(&path, e))?;
            let (header, _) = safetensors_header(&bytes, &origin)?;
            let name = safetensors_name(&header, &path, member)?;
            let origin = Origin {
                path: path.clone(),
                member: Some(name.clone()),
            };
            safetensors_shape(&header[&name], &origin)
        }
        Some(Format::Npz) => Npz::open(reader, &path)?.shape(member),
        None => Err(TensorError::UnknownFormat {
            path: path.clone(),
            ext: None,
        }),
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Maps a numpy `descr` such as `<f4` or `|u1` to a dtype and byte order.
fn npy_dtype(descr: &str) -> Option<(DType, Endian)> {
    let mut chars = descr.chars();
    let order = chars.next()?;
    let endian = match order {
        '<' | '|' => Endian::Little,
        '>' => Endian::Big,
        '=' if cfg!(target_endian = "big") => Endian::Big,
        '=' => Endian::Little,
        _ => return None,
    };
    let dtype = match chars.as_str() {
        "f2" | "e" => DType::F16,
        "f4" | "f" => DType::F32,
        "f8" | "d" => DType::F64,
        "i1" | "b" => DType::I8,
        "i2" | "h" => DType::I16,
        "i4" => DType::I32,
        "i8" | "q" => DType::I64,
        "u1" | "B" => DType::U8,
        "u2" | "H" => DType::U16,
        "u4" => DType::U32,
        "u8" | "Q" => DType::U64,
        "b1" | "?" => DType::Bool,
        _ => return None,
    };
    Some((dtype, endian))
}

/// Converts `count` elements from raw bytes to `f64`.
fn decode(
    payload: &[u8],
    count: usize,
    dtype: DType,
    endian: Endian,
    origin: &Origin,
) -> Result<Vec<f64>, TensorError> {
    let size = dtype.size();
    let needed = count.checked_mul(size);
    match needed {
        Some(n) if n <= payload.len() => {}
        _ => {
            return Err(TensorError::Truncated {
                origin: origin.clone(),
                count,
                dtype,
                expected: needed.unwrap_or(usize::MAX),
                found: payload.len(),
            })
        }
    }
    let mut out = Vec::with_capacity(count);
    for chunk in payload.chunks_exact(size).take(count) {
        let mut buf = [0u8; 8];
        buf[..size].copy_from_slice(chunk);
        if let Endian::Big = endian {
            buf[..size].reverse();
        }
        // Bytes are now little-endian in buf[..size].
        let u = u64::from_le_bytes(buf);
        let v = match dtype {
            DType::F16 => f16_to_f64(u as u16),
            DType::BF16 => f32::from_bits((u as u32) << 16) as f64,
            DType::F32 => f32::from_bits(u as u32) as f64,
            DType::F64 => f64::from_bits(u),
            DType::I8 => u as u8 as i8 as f64,
            DType::I16 => u as u16 as i16 as f64,
            DType::I32 => u as u32 as i32 as f64,
            DType::I64 => u as i64 as f64,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => u as f64,
            DType::Bool => (u != 0) as u8 as f64,
        };
        out.push(v);
    }
    Ok(out)
}

/// IEEE 754 binary16 to f64, including subnormals, infinities and NaN.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    let mag = match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    };
    sign * mag
}

/// Reorders column-major data into row-major for the same shape.
fn fortran_to_c(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let nd = shape.len();
    // Column-major strides: the first axis varies fastest.
    let mut fstride = vec![1usize; nd];
    for k in 1..nd {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; nd];
    let mut offset = 0usize;
    for _ in 0..data.len() {
        out.push(data[offset]);
        // Advance the row-major odometer, last axis fastest.
        for k in (0..nd).rev() {
            idx[k] += 1;
            offset += fstride[k];
            if idx[k] < shape[k] {
                break;
            }
            offset -= fstride[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

// A tiny parser for the Python literal dict in an .npy header.

#[derive(Debug, Clone)]
enum Py {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl Py {
    fn render(&self) -> String {
        match self {
            Py::Str(s) => format!("'{s}'"),
            Py::Int(i) => i.to_string(),
            Py::Bool(true) => "True".into(),
            Py::Bool(false) => "False".into(),
            Py::None => "None".into(),
            Py::Tuple(v) => {
                let items: Vec<_> = v.iter().map(Py::render).collect();
                if v.len() == 1 {
                    format!("({},)", items[0])
                } else {
                    format!("({})", items.join(", "))
                }
            }
            Py::List(v) => {
                let items: Vec<_> = v.iter().map(Py::render).collect();
                format!("[{}]", items.join(", "))
            }
            Py::Dict(kv) => {
                let items: Vec<_> = kv
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.render(), v.render()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
}

struct PyParser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

fn parse_py_dict(text: &str) -> Result<BTreeMap<String, Py>, String> {
    let mut p = PyParser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = p.value()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected text after the header dict at byte {}",
            p.pos
        ));
    }
    let Py::Dict(items) = value else {
        return Err(format!("expected a dict, found {}", value.render()));
    };
    let mut map = BTreeMap::new();
    for (k, v) in items {
        match k {
            Py::Str(k) => {
                map.insert(k, v);
            }
            other => return Err(format!("dict key {} is not a string", other.render())),
        }
    }
    Ok(map)
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn value(&mut self) -> Result<Py, String> {
        // Headers are flat; a depth cap keeps hostile input from overflowing the stack.
        if self.depth > 32 {
            return Err("header nests too deeply".into());
        }
        self.depth += 1;
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self) -> Result<Py, String> {
        let at = self.pos;
        match self.peek() {
            None => Err("header ends unexpectedly".into()),
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(Py::Dict(items));
                    }
                    let k = self.value()?;
                    if self.peek() != Some(b':') {
                        return Err(format!("expected ':' at byte {}", self.pos));
                    }
                    self.pos += 1;
                    let v = self.value()?;
                    items.push((k, v));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
                    }
                }
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        return Ok(if open == b'(' {
                            Py::Tuple(items)
                        } else {
                            Py::List(items)
                        });
                    }
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => {
                            return Err(format!(
                                "expected ',' or '{}' at byte {}",
                                close as char, self.pos
                            ))
                        }
                    }
                }
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    // numpy never writes escapes in descr/keys; keep the raw text.
                    if self.s[self.pos] == b'\\' {
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                if self.pos >= self.s.len() {
                    return Err(format!("unterminated string starting at byte {at}"));
                }
                let s = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(Py::Str(s))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                // numpy 1.x on some platforms wrote Python 2 longs such as `3L`.
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                text.parse::<i128>()
                    .map(Py::Int)
                    .map_err(|_| format!("bad integer {text:?} at byte {start}"))
            }
            Some(_) => {
                for (word, v) in [
                    ("True", Py::Bool(true)),
                    ("False", Py::Bool(false)),
                    ("None", Py::None),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(v);
                    }
                }
                let end = (self.pos + 12).min(self.s.len());
                Err(format!(
                    "unexpected {:?} at byte {}",
                    String::from_utf8_lossy(&self.s[self.pos..end]),
                    self.pos
                ))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// .npz

/// The archive member `member` names, as (index, file name, key): numpy stores key `k` as
/// `k.npy`, so a member is matched by its file name or its key (the only one when `None`).
fn npz_member(
    zip: &zip::ZipArchive<io::Cursor<Vec<u8>>>,
    path: &Path,
    member: Option<&str>,
) -> Result<(usize, String, String), TensorError> {
    // Raw names keep indices aligned with `by_index`; numpy writes ASCII keys anyway.
    let names: Vec<String> = zip
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let keys: Vec<String> = names
        .iter()
        .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
        .collect();
    let index = match member {
        Some(m) => names
            .iter()
            .position(|n| n == m)
            .or_else(|| keys.iter().position(|k| k == m)),
        None if names.len() == 1 => Some(0),
        None => {
            return Err(TensorError::MemberRequired {
                path: path.to_path_buf(),
                available: keys,
            })
        }
    };
    match index {
        Some(i) => Ok((i, names[i].clone(), keys[i].clone())),
        None => Err(TensorError::MemberNotFound {
            path: path.to_path_buf(),
            member: member.unwrap_or_default().to_string(),
            available: keys,
        }),
    }
}

fn load_npz(
    reader: &Reader,
    bytes: Vec<u8>,
    path: &Path,
    member: Option<&str>,
) -> Result<Tensor, TensorError> {
    Npz::from_bytes(reader, bytes, path)?.tensor(member)
}

/// A `.npz` archive read once; its members are inflated one at a time when asked for, each
/// checked against its declared size and bounded by the reader's limits.
pub struct Npz<'r, 'a> {
    reader: &'r Reader<'a>,
    path: PathBuf,
    zip: zip::ZipArchive<io::Cursor<Vec<u8>>>,
}

impl<'r, 'a> Npz<'r, 'a> {
    /// Reads the archive at `path` (already resolved against the spec's folder).
    pub fn open(reader: &'r Reader<'a>, path: &Path) -> Result<Self, TensorError> {
        let bytes = reader.tensor(path).map_err(|e| read_error(path, e))?;
        Self::from_bytes(reader, bytes, path)
    }

    fn from_bytes(
        reader: &'r Reader<'a>,
        bytes: Vec<u8>,
        path: &Path,
    ) -> Result<Self, TensorError> {
        let zip =
            zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(|e| TensorError::BadArchive {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Npz {
            reader,
            path: path.to_path_buf(),
            zip,
        })
    }

    fn bad(&self, reason: String) -> TensorError {
        TensorError::BadArchive {
            path: self.path.clone(),
            reason,
        }
    }

    /// The members' keys (file names without `.npy`), in archive order.
    pub fn keys(&self) -> Vec<String> {
        self.zip
            .file_names_raw()
            .map(|n| {
                let n = String::from_utf8_lossy(n);
                n.strip_suffix(".npy").unwrap_or(&n).to_string()
            })
            .collect()
    }

    /// Whether the archive holds member `key` (`key.npy`).
    pub fn has(&self, key: &str) -> bool {
        self.keys().iter().any(|k| k == key)
    }

    /// The member `member` names (the only one when `None`), inflated, with its origin; at
    /// most `limit` bytes of it when given (enough for a header).
    fn member_bytes(
        &mut self,
        member: Option<&str>,
        limit: Option<u64>,
    ) -> Result<(Vec<u8>, Origin), TensorError> {
        let (index, name, key) = npz_member(&self.zip, &self.path, member)?;
        let origin = Origin {
            path: self.path.clone(),
            member: Some(key),
        };
        let entry = self
            .zip
            .by_index(index)
            .map_err(|e| TensorError::BadArchive {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let bytes = match limit {
            Some(n) => {
                let mut prefix = Vec::new();
                io::Read::read_to_end(&mut io::Read::take(entry, n), &mut prefix)
                    .map(|_| prefix)
                    .map_err(|e| e.to_string())
            }
            // Checked against the declared size before inflating, and bounded while inflating.
            None => {
                let declared = entry.size();
                self.reader.inflate(entry, declared).map_err(|e| match e {
                    ReadError::Io(e) => format!("cannot extract {name}: {e}"),
                    e => format!("member {name}: {e}"),
                })
            }
        }
        .map_err(|reason| self.bad(reason))?;
        Ok((bytes, origin))
    }

    /// The tensor `member` names (the only one when `None`).
    pub fn tensor(&mut self, member: Option<&str>) -> Result<Tensor, TensorError> {
        let (bytes, origin) = self.member_bytes(member, None)?;
        parse_npy(&bytes, &origin)
    }

    /// The shape of member `member`, from its header alone (inflated only that far).
    pub fn shape(&mut self, member: Option<&str>) -> Result<Vec<usize>, TensorError> {
        let (prefix, origin) = self.member_bytes(member, Some(NPY_HEADER_PREFIX))?;
        Ok(npy_header(&prefix, &origin)?.shape)
    }

    /// A member holding one short string (numpy `|S` bytes or `<U` unicode), as scipy writes
    /// a sparse matrix's `format`.
    pub fn text(&mut self, member: &str) -> Result<String, TensorError> {
        let (bytes, origin) = self.member_bytes(Some(member), Some(NPY_HEADER_PREFIX))?;
        npy_text(&bytes, &origin)
    }
}

/// The string of a 0-d or one-element `.npy` array of dtype `|S<n>` or `<U<n>`/`>U<n>`
/// (at most 64 characters: this reads names such as `csr`, not text).
fn npy_text(bytes: &[u8], origin: &Origin) -> Result<String, TensorError> {
    let (header, end) = npy_header_dict(bytes, origin)?;
    let descr = match header.get("descr") {
        Some(Py::Str(s)) => s.clone(),
        _ => String::new(),
    };
    let unsupported = || TensorError::UnsupportedDType {
        origin: origin.clone(),
        descr: format!("{descr:?}"),
        supported: "a short string (|S or <U)",
    };
    let (kind, big) = match descr.get(..2) {
        Some("|S" | "<S" | ">S") => ('S', false),
        Some("<U" | "|U") => ('U', false),
        Some(">U") => ('U', true),
        _ => return Err(unsupported()),
    };
    let n: usize = descr[2..]
        .parse()
        .ok()
        .filter(|&n| n <= 64)
        .ok_or_else(unsupported)?;
    let single = match header.get("shape") {
        Some(Py::Tuple(items)) => items.is_empty() || matches!(items.as_slice(), [Py::Int(1)]),
        _ => false,
    };
    if !single {
        return Err(TensorError::BadNpyHeader {
            origin: origin.clone(),
            reason: "expected a single string".into(),
        });
    }
    let size = if kind == 'S' { n } else { 4 * n };
    let payload = bytes
        .get(end..end + size)
        .ok_or_else(|| TensorError::Truncated {
            origin: origin.clone(),
            count: 1,
            dtype: DType::U8,
            expected: size,
            found: bytes.len().saturating_sub(end),
        })?;
    let text: String = if kind == 'S' {
        payload.iter().map(|&b| b as char).collect()
    } else {
        payload
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                let u = if big {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    };
    Ok(text.trim_end_matches('\0').to_owned())
}

// ---------------------------------------------------------------------------
// .safetensors

type SafetensorsHeader = serde_json::Map<String, serde_json::Value>;

fn bad_safetensors(origin: &Origin, reason: String) -> TensorError {
    TensorError::BadSafetensorsHeader {
        origin: origin.clone(),
        reason,
    }
}

/// A safetensors file's JSON header and the offset of its data. `bytes` may be only the
/// first 8 + header-length bytes (a header peek): the data is not needed here.
fn safetensors_header(
    bytes: &[u8],
    file_origin: &Origin,
) -> Result<(SafetensorsHeader, usize), TensorError> {
    let bad = |reason: String| bad_safetensors(file_origin, reason);
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(bad(format!(
            "file is {} bytes, too short for the 8-byte header length",
            bytes.len()
        )));
    };
    let mut lb = [0u8; 8];
    lb.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(lb);
    let available = bytes.len() - 8;
    let header_end = usize::try_from(header_len)
        .ok()
        .filter(|&n| n <= available)
        .map(|n| n + 8)
        .ok_or_else(|| {
            bad(format!(
                "header length field says {header_len} bytes, but the file holds only {available} after it"
            ))
        })?;
    let header: SafetensorsHeader = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    Ok((header, header_end))
}

/// The entry `member` names (the only one when `None`).
fn safetensors_name(
    header: &SafetensorsHeader,
    path: &Path,
    member: Option<&str>,
) -> Result<String, TensorError> {
    let keys: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    match member {
        Some(m) if header.contains_key(m) && m != "__metadata__" => Ok(m.to_string()),
        Some(m) => Err(TensorError::MemberNotFound {
            path: path.to_path_buf(),
            member: m.to_string(),
            available: keys,
        }),
        None if keys.len() == 1 => Ok(keys[0].clone()),
        None => Err(TensorError::MemberRequired {
            path: path.to_path_buf(),
            available: keys,
        }),
    }
}

/// An entry's `"shape"`.
fn safetensors_shape(
    entry: &serde_json::Value,
    origin: &Origin,
) -> Result<Vec<usize>, TensorError> {
    entry
        .get("shape")
        .ok_or_else(|| bad_safetensors(origin, "entry has no \"shape\"".into()))?
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_u64().and_then(|u| usize::try_from(u).ok()))
                .collect::<Option<Vec<usize>>>()
        })
        .ok_or_else(|| {
            bad_safetensors(
                origin,
                "\"shape\" is not a list of non-negative integers".into(),
            )
        })
}

fn load_safetensors(
    bytes: &[u8],
    path: &Path,
    member: Option<&str>,
) -> Result<Tensor, TensorError> {
    let file_origin = Origin {
        path: path.to_path_buf(),
        member: None,
    };
    let bad = bad_safetensors;
    let (header, header_end) = safetensors_header(bytes, &file_origin)?;
    let data = &bytes[header_end..];
    check_offsets(&header, data.len()).map_err(|r| bad(&file_origin, r))?;
    let name = safetensors_name(&header, path, member)?;
    let origin = Origin {
        path: path.to_path_buf(),
        member: Some(name.clone()),
    };
    let entry = &header[&name];
    let field = |f: &str| {
        entry
            .get(f)
            .ok_or_else(|| bad(&origin, format!("entry has no {f:?}")))
    };
    let dtype_name = field("dtype")?
        .as_str()
        .ok_or_else(|| bad(&origin, "\"dtype\" is not a string".into()))?;
    let dtype = match dtype_name {
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F32" => DType::F32,
        "F64" => DType::F64,
        "I8" => DType::I8,
        "I16" => DType::I16,
        "I32" => DType::I32,
        "I64" => DType::I64,
        "U8" => DType::U8,
        "U16" => DType::U16,
        "U32" => DType::U32,
        "U64" => DType::U64,
        "BOOL" => DType::Bool,
        other => {
            return Err(TensorError::UnsupportedDType {
                origin,
                descr: format!("{other:?}"),
                supported: SUPPORTED_ST,
            })
        }
    };
    let shape = safetensors_shape(entry, &origin)?;
    let offsets = field("data_offsets")?
        .as_array()
        .filter(|a| a.len() == 2)
        .and_then(|a| {
            Some((
                usize::try_from(a[0].as_u64()?).ok()?,
                usize::try_from(a[1].as_u64()?).ok()?,
            ))
        })
        .ok_or_else(|| bad(&origin, "\"data_offsets\" is not [begin, end]".into()))?;
    let (begin, end) = offsets;
    let count = element_count(&shape)
        .ok_or_else(|| bad(&origin, format!("shape {shape:?} is too large")))?;
    let expected = count.checked_mul(dtype.size());
    if end < begin || Some(end - begin) != expected {
        return Err(bad(
            &origin,
            format!(
                "data_offsets [{begin}, {end}] span {} bytes, but shape {shape:?} of {dtype} needs {}",
                end.wrapping_sub(begin) as isize,
                expected.map_or("more than usize::MAX".to_string(), |e| e.to_string())
            ),
        ));
    }
    let payload = data.get(begin..).unwrap_or(&[]);
    decode(payload, count, dtype, Endian::Little, &origin).map(|data| Tensor { shape, data, dtype })
}

/// Every entry's byte range lies inside the data and no two overlap (a file whose tensors
/// share bytes is malformed, whichever one is read).
fn check_offsets(
    header: &serde_json::Map<String, serde_json::Value>,
    data_len: usize,
) -> Result<(), String> {
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let Some([b, e]) = entry
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .and_then(|a| Some([a.first()?.as_u64()?, a.get(1)?.as_u64()?]))
        else {
            continue; // reported when that entry is read
        };
        // An entry past the end is reported as truncated when it is read.
        ranges.push((b, e.min(data_len as u64), name));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!(
                "tensors {:?} and {:?} overlap (data_offsets [{}, {}] and [{}, {}])",
                w[0].2, w[1].2, w[0].0, w[0].1, w[1].0, w[1].1
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing

/// Bytes of a v1.0 little-endian float32 C-order `.npy` file. The caller must pass
/// `data.len()` equal to the product of `shape` (1 for `shape == []`).
pub fn npy_f32_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = npy_header_bytes("<f4", shape, data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Bytes of a v1.0 little-endian int32 C-order `.npy` file (the `<i4` of numpy's `int32`),
/// with the same contract as [`npy_f32_bytes`].
pub fn npy_i32_bytes(shape: &[usize], data: &[i32]) -> Vec<u8> {
    let mut out = npy_header_bytes("<i4", shape, data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The magic, version, header length and header dict of a C-order `.npy` file whose elements
/// are `descr`, with room reserved for `payload` bytes after it.
fn npy_header_bytes(descr: &str, shape: &[usize], payload: usize) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // numpy pads so the data starts on a 64-byte boundary; the header ends in '\n'.
    let fixed = 10;
    let pad = (64 - (fixed + header.len() + 1) % 64) % 64;
    header.extend(std::iter::repeat_n(' ', pad));
    header.push('\n');
    let mut out = Vec::with_capacity(fixed + header.len() + payload);
    if header.len() <= u16::MAX as usize {
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        // Only for absurd ranks; v2.0 has a 4-byte length, so re-pad for 12 fixed bytes.
        header.truncate(header.trim_end().len());
        let pad = (64 - (12 + header.len() + 1) % 64) % 64;
        header.extend(std::iter::repeat_n(' ', pad));
        header.push('\n');
        out.extend_from_slice(b"\x93NUMPY\x02\x00");
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out
}

/// Writes [`npy_f32_bytes`] to `path`; fails with `InvalidInput` if `data` does not
/// match `shape`.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> io::Result<()> {
    if element_count(shape) != Some(data.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "shape {shape:?} does not match {} data elements",
                data.len()
            ),
        ));
    }
    std::fs::write(path, npy_f32_bytes(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            path: PathBuf::from("written.npy"),
            member: None,
        }
    }

    #[test]
    fn written_float32_reads_back_with_shape_nan_and_sign() {
        let data = [1.5f32, -0.0, f32::NAN, f32::MAX, f32::MIN_POSITIVE, -3.25];
        for shape in [vec![6], vec![2, 3], vec![1, 2, 3]] {
            let bytes = npy_f32_bytes(&shape, &data);
            // numpy's alignment: the data starts on a 64-byte boundary.
            assert_eq!((bytes.len() - data.len() * 4) % 64, 0);
            let t = parse_npy(&bytes, &origin()).unwrap();
            assert_eq!(t.shape, shape);
            assert_eq!(t.dtype, DType::F32);
            for (&got, &want) in t.data.iter().zip(&data) {
                assert_eq!((got as f32).to_bits(), want.to_bits());
            }
        }
        let empty = parse_npy(&npy_f32_bytes(&[0, 4], &[]), &origin()).unwrap();
        assert_eq!(empty.shape, vec![0, 4]);
        assert!(empty.data.is_empty());
    }

    #[test]
    fn written_int32_reads_back_exactly() {
        let data = [0i32, 1, -1, i32::MAX, i32::MIN, 127, -128, 32767];
        let bytes = npy_i32_bytes(&[2, 2, 2], &data);
        assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
        let t = parse_npy(&bytes, &origin()).unwrap();
        assert_eq!(t.shape, vec![2, 2, 2]);
        assert_eq!(t.dtype, DType::I32);
        let back: Vec<i32> = t.data.iter().map(|&v| v as i32).collect();
        assert_eq!(back, data);
        let scalar = parse_npy(&npy_i32_bytes(&[], &[7]), &origin()).unwrap();
        assert_eq!((scalar.shape.len(), scalar.data[0]), (0, 7.0));
    }
}
