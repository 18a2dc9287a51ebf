//! Choosing Kronecker factor shapes for an `M x N` weight matrix.
//!
//! Convention: `A` is `m1 x n1`, `B` is `m2 x n2` and `W = kron(A, B)` is
//! `(m1 m2) x (n1 n2)`. With `x` viewed as `X[n1][n2]` and `y` as `Y[m1][m2]`
//! (both row-major), `y = W x` is `Y = A · X · Bᵀ`.
//!
//! Selection rule (used by both [`best`] and [`ranked`]):
//! 1. Only non-trivial splits: `m1 m2 = M`, `n1 n2 = N`, and neither factor is the
//!    whole matrix, i.e. `(m1, n1) != (1, 1)` and `(m2, n2) != (1, 1)`.
//! 2. Shapes whose rank bound `min(m1,n1) · min(m2,n2)` reaches `min(M, N)` come
//!    first, fewest parameters first.
//! 3. The rest follow by rank bound (highest first), then fewest parameters.
//! 4. Ties: fewest MACs (cheaper evaluation order), then smaller `m1`, then
//!    smaller `n1`. Swapping A and B never changes params, rank bound or MACs, so
//!    the last two keys only decide which factor is written first.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::Serialize;

/// Factor shapes of `W = kron(A, B)`: A is `m1 x n1`, B is `m2 x n2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KronShape {
    pub m1: usize,
    pub n1: usize,
    pub m2: usize,
    pub n2: usize,
}

impl KronShape {
    /// Rows of W (`m1 m2`).
    pub fn rows(&self) -> usize {
        self.m1.saturating_mul(self.m2)
    }

    /// Columns of W (`n1 n2`).
    pub fn cols(&self) -> usize {
        self.n1.saturating_mul(self.n2)
    }

    /// Stored values: `m1 n1 + m2 n2`.
    pub fn params(&self) -> usize {
        self.m1
            .saturating_mul(self.n1)
            .saturating_add(self.m2.saturating_mul(self.n2))
    }

    /// Upper bound on rank(W) = rank(A) · rank(B).
    pub fn rank_bound(&self) -> usize {
        self.m1.min(self.n1).saturating_mul(self.m2.min(self.n2))
    }

    /// Multiply-accumulates of `y = W x` in the cheaper order.
    pub fn macs(&self) -> usize {
        cheaper_order(self).1
    }

    /// Multiply-accumulates of the dense `y = W x`.
    pub fn dense_macs(&self) -> usize {
        self.rows().saturating_mul(self.cols())
    }
}

/// Evaluation order of `Y = A · X · Bᵀ` (X is `n1 x n2`, Y is `m1 x m2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KronOrder {
    /// Multiply by B on the right first: `T = X · Bᵀ` (`n1 x m2`), then `Y = A · T`.
    /// Costs `m2 n1 (n2 + m1)` MACs and a temporary of `n1 m2` values.
    RightFirst,
    /// Multiply by A on the left first: `T = A · X` (`m1 x n2`), then `Y = T · Bᵀ`.
    /// Costs `m1 n2 (n1 + m2)` MACs and a temporary of `m1 n2` values.
    LeftFirst,
}

impl KronOrder {
    /// The snake_case name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            KronOrder::RightFirst => "right_first",
            KronOrder::LeftFirst => "left_first",
        }
    }
}

/// Both orders as `(order, MACs, temporary length)`, `RightFirst` first.
pub fn order_costs(shape: &KronShape) -> [(KronOrder, usize, usize); 2] {
    let KronShape { m1, n1, m2, n2 } = *shape;
    let mul = usize::saturating_mul;
    [
        (
            KronOrder::RightFirst,
            mul(mul(m2, n1), n2.saturating_add(m1)),
            mul(n1, m2),
        ),
        (
            KronOrder::LeftFirst,
            mul(mul(m1, n2), n1.saturating_add(m2)),
            mul(m1, n2),
        ),
    ]
}

/// The order with fewer MACs and its MAC count; ties go to the smaller temporary,
/// then to `RightFirst`.
pub fn cheaper_order(shape: &KronShape) -> (KronOrder, usize) {
    let [r, l] = order_costs(shape);
    if (l.1, l.2) < (r.1, r.2) {
        (l.0, l.1)
    } else {
        (r.0, r.1)
    }
}

/// Largest accepted M or N. Far beyond any RNN layer, and it keeps divisor
/// enumeration and the candidate list small.
pub const MAX_DIM: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapesError {
    #[error("matrix size {m} x {n} has a zero dimension: M and N must be at least 1")]
    Zero { m: usize, n: usize },
    #[error("matrix size {m} x {n} is too large: M and N must be at most {MAX_DIM}")]
    TooLarge { m: usize, n: usize },
    #[error("--top must be at least 1")]
    ZeroTop,
    #[error("{m} x {n} has no non-trivial Kronecker factorization: {reason}")]
    NoFactorization { m: usize, n: usize, reason: String },
}

/// Checks that `m x n` is a size [`ranked`] can work on.
pub fn validate(m: usize, n: usize) -> Result<(), ShapesError> {
    if m == 0 || n == 0 {
        Err(ShapesError::Zero { m, n })
    } else if m > MAX_DIM || n > MAX_DIM {
        Err(ShapesError::TooLarge { m, n })
    } else {
        Ok(())
    }
}

fn divisors(n: usize) -> Vec<usize> {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d * d <= n {
        if n.is_multiple_of(d) {
            small.push(d);
            if d * d != n {
                large.push(n / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    small
}

/// Compares two candidates for the same `min(M, N)`; `Less` means `a` is better.
fn compare(a: &KronShape, b: &KronShape, full_rank: usize) -> Ordering {
    let reach_a = a.rank_bound() >= full_rank;
    let reach_b = b.rank_bound() >= full_rank;
    reach_b
        .cmp(&reach_a)
        .then_with(|| {
            if reach_a {
                Ordering::Equal
            } else {
                b.rank_bound().cmp(&a.rank_bound())
            }
        })
        .then_with(|| a.params().cmp(&b.params()))
        .then_with(|| a.macs().cmp(&b.macs()))
        .then_with(|| a.m1.cmp(&b.m1))
        .then_with(|| a.n1.cmp(&b.n1))
}

/// All non-trivial factor shapes of an `m x n` matrix, best first (see the module
/// docs). Empty when there are none or the size fails [`validate`].
pub fn ranked(m: usize, n: usize) -> Vec<KronShape> {
    if validate(m, n).is_err() {
        return Vec::new();
    }
    let full_rank = m.min(n);
    let ns = divisors(n);
    let mut out = Vec::new();
    for m1 in divisors(m) {
        for &n1 in &ns {
            let s = KronShape {
                m1,
                n1,
                m2: m / m1,
                n2: n / n1,
            };
            if (s.m1, s.n1) != (1, 1) && (s.m2, s.n2) != (1, 1) {
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| compare(a, b, full_rank));
    out
}

/// The best factor shape of an `m x n` matrix, if any.
pub fn best(m: usize, n: usize) -> Option<KronShape> {
    ranked(m, n).into_iter().next()
}

fn is_prime(n: usize) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// `128 = 2^7`, `132 = 2^2 * 3 * 11`.
fn prime_factors(mut n: usize) -> String {
    let mut parts = Vec::new();
    let mut p = 2;
    while p * p <= n {
        let mut k = 0;
        while n.is_multiple_of(p) {
            n /= p;
            k += 1;
        }
        match k {
            0 => {}
            1 => parts.push(p.to_string()),
            _ => parts.push(format!("{p}^{k}")),
        }
        p += 1;
    }
    if n > 1 {
        parts.push(n.to_string());
    }
    parts.join(" * ")
}

/// Whether `s` splits into two factors within 4:1 of each other, so both Kronecker
/// factors stay non-trivial.
fn balanced(s: usize) -> bool {
    divisors(s)
        .iter()
        .any(|&a| a >= 2 && a * a <= s && s / a <= 4 * a)
}

/// Size to pad the prime `p` to, with `other` the matrix's other dimension:
/// the smallest balanced size above `p` that reaches full rank against `other`,
/// else the smallest balanced size. The window is short so huge inputs stay fast.
fn pad_target(p: usize, other: usize) -> usize {
    const WINDOW: usize = 256;
    let first_balanced = (p + 1..=p + WINDOW).find(|&s| balanced(s)).unwrap_or(p + 1);
    if other == 1 || is_prime(other) {
        return first_balanced;
    }
    (p + 1..=p + WINDOW.min(p))
        .find(|&s| balanced(s) && best(s, other).is_some_and(|b| b.rank_bound() >= s.min(other)))
        .unwrap_or(first_balanced)
}

/// Explains sizes whose best factorization is weak: a dimension of 1, a prime
/// dimension that keeps the rank bound below `min(M, N)`, or no full-rank split at
/// all; suggests a padded size for primes. `None` when there is nothing to say.
pub fn note(m: usize, n: usize) -> Option<String> {
    if validate(m, n).is_err() {
        return None;
    }
    if m == 1 && n == 1 {
        return Some("a 1 x 1 matrix has nothing to factor".into());
    }
    let best = best(m, n);
    let full = m.min(n);
    let rank = best.map_or(0, |s| s.rank_bound());
    let mut lines = Vec::new();
    for (name, d) in [("M", m), ("N", n)] {
        if d == 1 {
            let kind = if name == "M" { "row" } else { "column" };
            lines.push(format!(
                "{name} = 1: W is a single {kind}; a KP of it is the Kronecker product of two vectors, \
                 which forces its reshaping to rank 1; keeping it dense is usually better"
            ));
        }
    }
    if rank < full {
        let mut primes: Vec<(usize, usize)> = [(m, n), (n, m)]
            .into_iter()
            .filter(|&(d, _)| is_prime(d))
            .collect();
        primes.dedup_by_key(|p| p.0);
        for &(p, other) in &primes {
            let t = pad_target(p, other);
            let what = if rank <= 1 {
                "only trivial factorizations exist (rank bound 1)".to_string()
            } else {
                format!("it only splits as 1 x {p}, so the best rank bound is {rank} of {full}")
            };
            lines.push(format!(
                "{p} is prime: {what}; pad to {t} = {} for a useful KP",
                prime_factors(t)
            ));
        }
        if lines.is_empty() && best.is_some() {
            lines.push(format!(
                "no factorization reaches full rank {full}; the best rank bound is {rank}"
            ));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn candidates(m: usize, n: usize, top: usize) -> Result<Vec<KronShape>, ShapesError> {
    validate(m, n)?;
    if top == 0 {
        return Err(ShapesError::ZeroTop);
    }
    let mut all = ranked(m, n);
    if all.is_empty() {
        let reason = note(m, n).unwrap_or_else(|| "only trivial factorizations exist".into());
        return Err(ShapesError::NoFactorization { m, n, reason });
    }
    all.truncate(top);
    Ok(all)
}

/// Text for `kpgen shapes M N [--top K]`: an aligned table of the best `top`
/// candidates, followed by the [`note`] if any.
pub fn render_text(m: usize, n: usize, top: usize) -> Result<String, ShapesError> {
    let shapes = candidates(m, n, top)?;
    let dense = m.saturating_mul(n);
    let full = m.min(n);
    let header = [
        "#",
        "A",
        "B",
        "params",
        "compression",
        "rank bound",
        "MACs",
        "order",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        let (order, macs) = cheaper_order(s);
        rows.push([
            (i + 1).to_string(),
            format!("{}x{}", s.m1, s.n1),
            format!("{}x{}", s.m2, s.n2),
            s.params().to_string(),
            format!("{:.1}x", dense as f64 / s.params() as f64),
            format!("{}/{}", s.rank_bound(), full),
            macs.to_string(),
            order.as_str().to_string(),
        ]);
    }
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    // Text columns (A, B, order) align left; numbers align right.
    let left = [false, true, true, false, false, false, false, true];
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (k, c) in cells.iter().enumerate() {
            if k > 0 {
                s.push_str("  ");
            }
            if left[k] {
                let _ = write!(s, "{c:<w$}", w = width[k]);
            } else {
                let _ = write!(s, "{c:>w$}", w = width[k]);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = format!("{m} x {n}: dense {dense} params, {dense} MACs\n");
    out.push_str(&line(&header.map(str::to_string)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    if let Some(note) = note(m, n) {
        for l in note.lines() {
            let _ = writeln!(out, "note: {l}");
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct JsonShape {
    m1: usize,
    n1: usize,
    m2: usize,
    n2: usize,
    params: usize,
    rank_bound: usize,
    macs: usize,
}

impl From<&KronShape> for JsonShape {
    fn from(s: &KronShape) -> Self {
        JsonShape {
            m1: s.m1,
            n1: s.n1,
            m2: s.m2,
            n2: s.n2,
            params: s.params(),
            rank_bound: s.rank_bound(),
            macs: s.macs(),
        }
    }
}

/// JSON for `kpgen shapes M N [--top K] --json`: one object when `top == 1`,
/// otherwise an array of up to `top` objects, best first.
pub fn render_json(m: usize, n: usize, top: usize) -> Result<String, ShapesError> {
    let shapes = candidates(m, n, top)?;
    let items: Vec<JsonShape> = shapes.iter().map(JsonShape::from).collect();
    // Serializing plain structs of integers cannot fail.
    let text = if top == 1 {
        serde_json::to_string_pretty(&items[0])
    } else {
        serde_json::to_string_pretty(&items)
    };
    Ok(text.unwrap_or_default())
}
