//! Sparse matrices as their non-zeros: the [`SparseMatrix`] every stage uses, and its assembly
//! from index arrays, read from a scipy.sparse `save_npz` file (CSR, CSC or COO) or named one
//! by one (COO `rows`/`cols` or CSR `indptr`/`indices`, from any tensor file).
//!
//! Every promise the arrays make is checked before an entry is kept: float values in a 1-D
//! array, integer index arrays of the right length, row (or column) pointers that start at 0,
//! never decrease and end at the number of values, indices inside the shape, no position given
//! twice, values finite and within float32's range. Entries may come in any order (a CSR row's
//! columns unsorted, COO in any order): they are sorted by row, then column. Stored zeros are
//! dropped, so a matrix given as its non-zeros plans exactly like the full matrix holding the
//! same values. Nothing is allocated from a declared shape, only from arrays already read,
//! whose sizes the reader's limits bound.

use std::path::Path;

use nalgebra::DMatrix;

use crate::base::input::Reader;
use crate::base::tensor::{DType, Npz, Tensor};

/// A sparse matrix as (row, col, value) triples sorted by row then column, without zeros and
/// without a position given twice.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseMatrix {
    pub rows: usize,
    pub cols: usize,
    pub entries: Vec<(usize, usize, f64)>,
}

impl SparseMatrix {
    pub fn from_dense(m: &DMatrix<f64>) -> Self {
        let mut entries = Vec::new();
        for r in 0..m.nrows() {
            for c in 0..m.ncols() {
                let v = m[(r, c)];
                if v != 0.0 {
                    entries.push((r, c, v));
                }
            }
        }
        SparseMatrix {
            rows: m.nrows(),
            cols: m.ncols(),
            entries,
        }
    }

    pub fn nnz(&self) -> usize {
        self.entries.len()
    }

    /// The full matrix, or `None` when it has more than `max_elements` elements (a declared
    /// shape may be huge; nothing is allocated then).
    pub fn to_dense(&self, max_elements: usize) -> Option<DMatrix<f64>> {
        if self.rows.checked_mul(self.cols)? > max_elements {
            return None;
        }
        let mut m = DMatrix::zeros(self.rows, self.cols);
        for &(r, c, v) in &self.entries {
            m[(r, c)] = v;
        }
        Some(m)
    }

    /// Whether the entries keep this type's promise: sorted by row then column, each position
    /// once and inside the shape, every value finite and non-zero ([`assemble`] guarantees it;
    /// the tests and the fuzz target check it).
    pub fn is_canonical(&self) -> bool {
        self.entries
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
            && self
                .entries
                .iter()
                .all(|&(r, c, v)| r < self.rows && c < self.cols && v.is_finite() && v != 0.0)
    }

    /// Non-zeros per element of the full matrix.
    pub fn density(&self) -> f64 {
        self.nnz() as f64 / self.rows.saturating_mul(self.cols).max(1) as f64
    }
}

/// One array of a sparse matrix, with the name messages give it (`S.npz:indices`).
#[derive(Debug, Clone)]
pub struct Array {
    pub name: String,
    pub tensor: Tensor,
}

/// Where each value of a sparse matrix sits.
#[derive(Debug, Clone)]
pub enum Positions {
    /// Value k at (`row[k]`, `col[k]`).
    Coo { row: Array, col: Array },
    /// Value k at (`coords[0][k]`, `coords[1][k]`): one 2 x nnz array, as PyTorch's
    /// `indices()` and scipy's COO arrays of other than two dimensions.
    Coords(Array),
    /// Compressed rows: row r holds values `indptr[r]..indptr[r + 1]`, value k in column
    /// `indices[k]`.
    Csr { indptr: Array, indices: Array },
    /// Compressed columns: the same with rows and columns swapped.
    Csc { indptr: Array, indices: Array },
}

/// The arrays of a sparse matrix as stored, before they are checked.
#[derive(Debug, Clone)]
pub struct Stored {
    pub rows: usize,
    pub cols: usize,
    pub values: Array,
    pub positions: Positions,
}

/// Layouts of scipy's `save_npz` that kpgen reads.
const SCIPY_FORMATS: &str = "csr, csc and coo";

/// Reads the scipy.sparse `save_npz` file at `path` (named `shown` in messages). `Ok(None)`
/// when the archive holds no `format` member, so it is not such a file. Only the archive is
/// read here; [`assemble`] checks the arrays.
pub fn read_scipy(reader: &Reader, path: &Path, shown: &str) -> Result<Option<Stored>, String> {
    let mut npz = Npz::open(reader, path).map_err(|e| e.to_string())?;
    if !npz.has("format") {
        return Ok(None);
    }
    let format = npz.text("format").map_err(|e| e.to_string())?;
    let has_coords = npz.has("coords");
    let mut array = |key: &str| -> Result<Array, String> {
        let tensor = npz.tensor(Some(key)).map_err(|e| e.to_string())?;
        Ok(Array {
            name: format!("{shown}:{key}"),
            tensor,
        })
    };
    let shape = array("shape")?;
    let (rows, cols) = match (shape.tensor.dtype.is_float(), shape.tensor.data.as_slice()) {
        (false, &[r, c]) if shape.tensor.shape.len() == 1 && r >= 0.0 && c >= 0.0 => {
            (r as usize, c as usize)
        }
        _ => {
            return Err(format!(
                "`{}` is {} of shape {:?}: expected the two non-negative integers of a \
                 matrix's shape",
                shape.name, shape.tensor.dtype, shape.tensor.shape
            ))
        }
    };
    let positions = match format.as_str() {
        "csr" | "csc" => {
            let indptr = array("indptr")?;
            let indices = array("indices")?;
            if format == "csr" {
                Positions::Csr { indptr, indices }
            } else {
                Positions::Csc { indptr, indices }
            }
        }
        "coo" if has_coords => Positions::Coords(array("coords")?),
        "coo" => Positions::Coo {
            row: array("row")?,
            col: array("col")?,
        },
        other => {
            return Err(format!(
                "`{shown}` holds a scipy.sparse matrix in format {other:?}: kpgen reads \
                 {SCIPY_FORMATS}; save `S.tocsr()` instead"
            ))
        }
    };
    Ok(Some(Stored {
        rows,
        cols,
        values: array("data")?,
        positions,
    }))
}

/// The number of values a scipy.sparse `save_npz` file at `path` stores, from the header of
/// its `data` member alone (`None` when it is not such a file or cannot be read: the full load
/// reports it).
pub fn peek_scipy_nnz(reader: &Reader, path: &Path) -> Option<u64> {
    let mut npz = Npz::open(reader, path).ok()?;
    if !npz.has("format") {
        return None;
    }
    let shape = npz.shape(Some("data")).ok()?;
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

/// The shape a scipy.sparse `save_npz` file at `path` declares (`None` when it is not such a
/// file or its shape cannot be read: the full load reports it).
pub fn peek_scipy_shape(reader: &Reader, path: &Path) -> Option<(usize, usize)> {
    let mut npz = Npz::open(reader, path).ok()?;
    if !npz.has("format") {
        return None;
    }
    let shape = npz.tensor(Some("shape")).ok()?;
    match (shape.dtype.is_float(), shape.data.as_slice()) {
        (false, &[r, c]) if r >= 0.0 && c >= 0.0 => Some((r as usize, c as usize)),
        _ => None,
    }
}

/// A checked 1-D integer index array of `len` elements; `what` names its role.
fn index_array<'a>(a: &'a Array, what: &str, len: usize, why: &str) -> Result<&'a [f64], String> {
    let t = &a.tensor;
    if t.dtype.is_float() || t.dtype == DType::Bool {
        return Err(format!(
            "`{}` is {}: {what} must be an integer array (int32 or int64, as scipy and PyTorch \
             write them)",
            a.name, t.dtype
        ));
    }
    if t.shape.len() != 1 {
        return Err(format!(
            "`{}` has shape {:?}: {what} must be a 1-D array",
            a.name, t.shape
        ));
    }
    if t.len() != len {
        return Err(format!(
            "`{}` holds {} {what}: expected {len} ({why})",
            a.name,
            t.len()
        ));
    }
    Ok(&t.data)
}

/// Index `v` found at position `k` of `a`, checked to be below `bound`.
fn index(a: &Array, k: usize, v: f64, bound: usize, what: &str) -> Result<usize, String> {
    // Integer dtypes only reach here, so `v` is a whole number.
    if v >= 0.0 && v < bound as f64 {
        Ok(v as usize)
    } else {
        Err(format!(
            "`{}` holds {v} at position {k}: {what} must be from 0 to {}",
            a.name,
            bound as f64 - 1.0
        ))
    }
}

/// The (row, col, position) of every value given in compressed form: `ptr` over `major`
/// lines, `indices` within lines of `minor` elements; `transpose` for CSC.
fn compressed(
    indptr: &Array,
    indices: &Array,
    nnz: usize,
    (major, minor): (usize, usize),
    transpose: bool,
) -> Result<Vec<(usize, usize, usize)>, String> {
    let (line, other) = if transpose {
        ("column", "row")
    } else {
        ("row", "column")
    };
    let lines = major.saturating_add(1);
    let ptr = index_array(
        indptr,
        &format!("{line} pointers"),
        lines,
        &format!("one more than the {major} {line}s"),
    )?;
    let idx = index_array(indices, &format!("{other} indices"), nnz, "one per value")?;
    if ptr.first() != Some(&0.0) {
        return Err(format!(
            "`{}` starts at {}: {line} pointers must start at 0",
            indptr.name,
            ptr.first().copied().unwrap_or_default()
        ));
    }
    if let Some(i) = ptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!(
            "`{}` decreases at {line} {i} ({} then {}): {line} pointers must never decrease",
            indptr.name,
            ptr[i],
            ptr[i + 1]
        ));
    }
    let last = ptr.last().copied().unwrap_or_default();
    if last != nnz as f64 {
        return Err(format!(
            "`{}` ends at {last}, but there are {nnz} values: the last {line} pointer must be \
             the number of values",
            indptr.name
        ));
    }
    let what = format!("{other} indices");
    let mut out = Vec::with_capacity(nnz);
    for (l, w) in ptr.windows(2).enumerate() {
        // Monotone from 0 to nnz: every range lies inside the values.
        let (from, to) = (w[0] as usize, w[1] as usize);
        for (k, &v) in idx.iter().enumerate().take(to).skip(from) {
            let m = index(indices, k, v, minor, &what)?;
            out.push(if transpose { (m, l, k) } else { (l, m, k) });
        }
    }
    Ok(out)
}

/// Checks the arrays of `s` (see the module docs) and returns the matrix they hold.
pub fn assemble(s: &Stored) -> Result<SparseMatrix, String> {
    let (rows, cols) = (s.rows, s.cols);
    let values = &s.values;
    if !values.tensor.dtype.is_float() {
        return Err(format!(
            "`{}` is {}: the values must be floats (float16, float32 or float64)",
            values.name, values.tensor.dtype
        ));
    }
    if values.tensor.shape.len() != 1 {
        return Err(format!(
            "`{}` has shape {:?}: the values must be a 1-D array",
            values.name, values.tensor.shape
        ));
    }
    let nnz = values.tensor.len();
    let mut at: Vec<(usize, usize, usize)> = match &s.positions {
        Positions::Coo { row, col } => {
            let r = index_array(row, "row indices", nnz, "one per value")?;
            let c = index_array(col, "column indices", nnz, "one per value")?;
            let mut out = Vec::with_capacity(nnz);
            for k in 0..nnz {
                out.push((
                    index(row, k, r[k], rows, "row indices")?,
                    index(col, k, c[k], cols, "column indices")?,
                    k,
                ));
            }
            out
        }
        Positions::Coords(a) => {
            let t = &a.tensor;
            if t.dtype.is_float() || t.dtype == DType::Bool {
                return Err(format!(
                    "`{}` is {}: coordinates must be an integer array (int32 or int64)",
                    a.name, t.dtype
                ));
            }
            if t.shape != [2, nnz] {
                return Err(format!(
                    "`{}` has shape {:?}: expected [2, {nnz}] (rows, then columns, of the \
                     {nnz} values)",
                    a.name, t.shape
                ));
            }
            let (r, c) = t.data.split_at(nnz);
            let mut out = Vec::with_capacity(nnz);
            for k in 0..nnz {
                out.push((
                    index(a, k, r[k], rows, "row indices (first row)")?,
                    index(a, nnz + k, c[k], cols, "column indices (second row)")?,
                    k,
                ));
            }
            out
        }
        Positions::Csr { indptr, indices } => {
            compressed(indptr, indices, nnz, (rows, cols), false)?
        }
        Positions::Csc { indptr, indices } => compressed(indptr, indices, nnz, (cols, rows), true)?,
    };
    at.sort_unstable();
    if let Some(w) = at.windows(2).find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1)) {
        return Err(format!(
            "row {}, column {} is given twice (values {} and {} of `{}`): sum duplicates first \
             (scipy: `S.sum_duplicates()`, PyTorch: `S.coalesce()`)",
            w[0].0, w[0].1, w[0].2, w[1].2, values.name
        ));
    }
    let mut entries = Vec::with_capacity(nnz);
    for (r, c, k) in at {
        let v = values.tensor.data[k];
        if !v.is_finite() {
            return Err(format!(
                "`{}` holds a non-finite value ({v}) at position {k} (row {r}, column {c}): \
                 expected finite weights",
                values.name
            ));
        }
        if v.abs() > f64::from(f32::MAX) {
            return Err(format!(
                "`{}` holds {v:e} at position {k} (row {r}, column {c}), beyond float32's \
                 range (±3.4e38): it would become infinity in the generated code",
                values.name
            ));
        }
        if v != 0.0 {
            entries.push((r, c, v));
        }
    }
    Ok(SparseMatrix {
        rows,
        cols,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(name: &str, dtype: DType, shape: &[usize], data: &[f64]) -> Array {
        Array {
            name: name.to_owned(),
            tensor: Tensor {
                shape: shape.to_vec(),
                data: data.to_vec(),
                dtype,
            },
        }
    }

    fn ints(name: &str, data: &[f64]) -> Array {
        array(name, DType::I32, &[data.len()], data)
    }

    fn values(data: &[f64]) -> Array {
        array("v", DType::F32, &[data.len()], data)
    }

    /// [[0, 1, 0], [2, 0, 3]] in each layout, entries in scrambled order where the layout
    /// allows it, with one stored zero.
    #[test]
    fn every_layout_gives_the_same_sorted_matrix() {
        let want = SparseMatrix {
            rows: 2,
            cols: 3,
            entries: vec![(0, 1, 1.0), (1, 0, 2.0), (1, 2, 3.0)],
        };
        let layouts = [
            (
                values(&[3.0, 1.0, 0.0, 2.0]),
                Positions::Coo {
                    row: ints("r", &[1.0, 0.0, 0.0, 1.0]),
                    col: ints("c", &[2.0, 1.0, 2.0, 0.0]),
                },
            ),
            (
                values(&[3.0, 1.0, 2.0]),
                Positions::Coords(array(
                    "rc",
                    DType::I64,
                    &[2, 3],
                    &[1.0, 0.0, 1.0, 2.0, 1.0, 0.0],
                )),
            ),
            (
                // Row 1's columns unsorted: sorted, not refused.
                values(&[1.0, 3.0, 2.0]),
                Positions::Csr {
                    indptr: ints("p", &[0.0, 1.0, 3.0]),
                    indices: ints("i", &[1.0, 2.0, 0.0]),
                },
            ),
            (
                values(&[2.0, 1.0, 3.0]),
                Positions::Csc {
                    indptr: ints("p", &[0.0, 1.0, 2.0, 3.0]),
                    indices: ints("i", &[1.0, 0.0, 1.0]),
                },
            ),
        ];
        for (values, positions) in layouts {
            let s = Stored {
                rows: 2,
                cols: 3,
                values,
                positions,
            };
            assert_eq!(assemble(&s).unwrap(), want, "{:?}", s.positions);
        }
    }

    fn refused(values: Array, positions: Positions) -> String {
        assemble(&Stored {
            rows: 2,
            cols: 3,
            values,
            positions,
        })
        .unwrap_err()
    }

    #[test]
    fn broken_promises_are_refused() {
        let csr = |p: &[f64], i: &[f64]| Positions::Csr {
            indptr: ints("p", p),
            indices: ints("i", i),
        };
        let cases = [
            (
                refused(values(&[1.0]), csr(&[0.0, 1.0, 1.0], &[3.0])),
                "`i` holds 3 at position 0: column indices must be from 0 to 2",
            ),
            (
                refused(values(&[1.0, 2.0]), csr(&[0.0, 2.0, 1.0], &[0.0, 1.0])),
                "`p` decreases at row 1 (2 then 1)",
            ),
            (
                refused(values(&[1.0]), csr(&[0.0, 1.0], &[0.0])),
                "`p` holds 2 row pointers: expected 3",
            ),
            (
                refused(values(&[1.0, 2.0]), csr(&[0.0, 1.0, 1.0], &[0.0, 1.0])),
                "`p` ends at 1, but there are 2 values",
            ),
            (
                refused(values(&[1.0]), csr(&[1.0, 1.0, 1.0], &[0.0])),
                "`p` starts at 1",
            ),
            (
                refused(values(&[1.0, 2.0]), csr(&[0.0, 2.0, 2.0], &[1.0, 1.0])),
                "row 0, column 1 is given twice (values 0 and 1 of `v`)",
            ),
            (
                refused(values(&[f64::NAN]), csr(&[0.0, 0.0, 1.0], &[2.0])),
                "non-finite value (NaN) at position 0 (row 1, column 2)",
            ),
            (
                refused(
                    values(&[1.0]),
                    Positions::Coo {
                        row: array("r", DType::F32, &[1], &[0.0]),
                        col: ints("c", &[0.0]),
                    },
                ),
                "`r` is float32: row indices must be an integer array",
            ),
            (
                refused(
                    values(&[1.0]),
                    Positions::Coo {
                        row: ints("r", &[-1.0]),
                        col: ints("c", &[0.0]),
                    },
                ),
                "`r` holds -1 at position 0: row indices must be from 0 to 1",
            ),
            (
                refused(
                    values(&[1.0, 2.0]),
                    Positions::Coo {
                        row: ints("r", &[0.0]),
                        col: ints("c", &[0.0, 1.0]),
                    },
                ),
                "`r` holds 1 row indices: expected 2 (one per value)",
            ),
            (
                refused(
                    array("v", DType::I32, &[1], &[1.0]),
                    csr(&[0.0, 1.0, 1.0], &[0.0]),
                ),
                "`v` is int32: the values must be floats",
            ),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "expected `{want}` in: {got}");
        }
    }

    /// Random arrays, valid and not: assembling never panics, and what it accepts is sorted,
    /// without a position twice, inside the shape, finite and without zeros.
    #[test]
    fn random_arrays_assemble_or_are_refused() {
        let mut rng = crate::base::sequences::SplitMix64(29);
        let mut accepted = 0;
        for round in 0..4000 {
            let (rows, cols) = (1 + rng.below(5), 1 + rng.below(5));
            let nnz = rng.below(8);
            // Indices mostly in range, sometimes one past or negative.
            let mut idx = |n: usize, bound: usize| -> Vec<f64> {
                (0..n)
                    .map(|_| match rng.below(20) {
                        0 => -1.0,
                        1 => bound as f64,
                        _ => rng.below(bound) as f64,
                    })
                    .collect()
            };
            let positions = match round % 3 {
                0 => Positions::Coo {
                    row: ints("r", &idx(nnz, rows)),
                    col: ints("c", &idx(nnz, cols)),
                },
                1 => {
                    let mut p = idx(rows + 1, nnz + 1);
                    p.sort_by(f64::total_cmp);
                    p[0] = 0.0;
                    p[rows] = nnz as f64;
                    Positions::Csr {
                        indptr: ints("p", &p),
                        indices: ints("i", &idx(nnz, cols)),
                    }
                }
                _ => Positions::Csc {
                    indptr: ints("p", &idx(cols + 1, nnz + 1)),
                    indices: ints("i", &idx(nnz, rows)),
                },
            };
            let v: Vec<f64> = (0..nnz)
                .map(|_| match rng.below(30) {
                    0 => f64::NAN,
                    1 => 0.0,
                    _ => f64::from(rng.uniform(1.0)),
                })
                .collect();
            let s = Stored {
                rows,
                cols,
                values: values(&v),
                positions,
            };
            if let Ok(m) = assemble(&s) {
                accepted += 1;
                assert_eq!((m.rows, m.cols), (rows, cols));
                assert!(m.is_canonical(), "{m:?}");
                assert!(m.nnz() <= nnz);
            }
        }
        assert!(accepted > 100, "only {accepted} accepted");
    }

    #[test]
    fn a_huge_declared_shape_allocates_nothing() {
        // 2^40 rows: the pointer array would need 2^40 + 1 elements; it has 3.
        let s = Stored {
            rows: 1 << 40,
            cols: 1 << 40,
            values: values(&[1.0]),
            positions: Positions::Csr {
                indptr: ints("p", &[0.0, 1.0, 1.0]),
                indices: ints("i", &[0.0]),
            },
        };
        assert!(assemble(&s).unwrap_err().contains("expected 1099511627777"));
    }
}
