//! Choosing Kronecker factor shapes for an `M x N` weight matrix.
//!
//! Convention: `A` is `m1 x n1`, `B` is `m2 x n2` and `W = kron(A, B)` is
//! `(m1 m2) x (n1 n2)`. With `x` viewed as `X[n1][n2]` and `y` as `Y[m1][m2]`
//! (both row-major), `y = W x` is `Y = A · X · Bᵀ`. With K factors
//! (`W = F1 ⊗ … ⊗ FK`, [`Factors`]) x is an `n1 x … x nK` tensor and `y = W x` is one
//! mode product per factor, in any order.
//!
//! Selection rule (used by [`best`], [`ranked`] and, for K factors, [`ranked_factors`]):
//! 1. Only non-trivial splits: `Π m_k = M`, `Π n_k = N`, and no factor is `1 x 1` (for two
//!    factors: neither is the whole matrix).
//! 2. Shapes whose rank bound `Π min(m_k, n_k)` reaches `min(M, N)` come first, fewest
//!    parameters (`Σ m_k n_k`) first.
//! 3. The rest follow by rank bound (highest first), then fewest parameters.
//! 4. Ties: fewest MACs (cheapest evaluation order), then the factor shapes in order
//!    (smaller `m1`, then `n1`, then `m2`, ...). Permuting the factors never changes
//!    params, rank bound or MACs, so the last keys only decide which factor is written first.

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

/// The order of least weighted cost when a MAC of the left-first order's first stage (the one
/// stage that reads its input strided along the reduction) costs `strided` contiguous ones,
/// with its MAC count; ties go to [`cheaper_order`]'s choice.
pub fn cheaper_weighted_order(shape: &KronShape, strided: f64) -> (KronOrder, usize) {
    let KronShape { m1, n1, m2, n2 } = *shape;
    let [r, l] = order_costs(shape);
    let right = r.1 as f64;
    let left = (m1 * n1 * n2) as f64 * strided + (m1 * n2 * m2) as f64;
    if left < right {
        (l.0, l.1)
    } else if right < left {
        (r.0, r.1)
    } else {
        cheaper_order(shape)
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
    #[error("--factors {k}: expected 2 to {MAX_FACTORS} factors")]
    FactorCount { k: usize },
    #[error("{m} x {n} has {count} shapes with {k} factors, more than the {MAX_CANDIDATES} kpgen ranks: use fewer factors")]
    TooMany {
        m: usize,
        n: usize,
        k: usize,
        count: usize,
    },
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

/// The ranking key of a candidate (see the module docs): smaller is better.
fn rank_key(f: &Factors, full_rank: usize) -> (bool, std::cmp::Reverse<usize>, usize, usize) {
    let reach = f.rank_bound() >= full_rank;
    // Among shapes that reach full rank the rank bound does not matter.
    let rank = if reach { 0 } else { f.rank_bound() };
    (!reach, std::cmp::Reverse(rank), f.params(), f.macs())
}

/// All non-trivial factor shapes of an `m x n` matrix, best first (see the module
/// docs). Empty when there are none or the size fails [`validate`].
pub fn ranked(m: usize, n: usize) -> Vec<KronShape> {
    ranked_factors(m, n, 2)
        .unwrap_or_default()
        .iter()
        .map(kron_shape)
        .collect()
}

/// Most factors `kpgen shapes --factors` ranks.
pub const MAX_FACTORS: usize = 6;

/// Most candidates one ranking enumerates, so no size makes it slow.
pub const MAX_CANDIDATES: usize = 2_000_000;

/// Factor shapes of `W = F1 ⊗ F2 ⊗ … ⊗ FK` (np.kron applied left to right): factor k is
/// `dims[k] = (rows, cols)`. With x viewed as a row-major `n1 x … x nK` tensor, `y = W x`
/// is K mode products, one per factor, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Factors {
    pub dims: Vec<(usize, usize)>,
}

impl Factors {
    pub fn rows(&self) -> usize {
        self.dims.iter().fold(1, |p, d| p.saturating_mul(d.0))
    }

    pub fn cols(&self) -> usize {
        self.dims.iter().fold(1, |p, d| p.saturating_mul(d.1))
    }

    /// Stored values: the sum of the factors' sizes.
    pub fn params(&self) -> usize {
        self.dims
            .iter()
            .fold(0, |s, d| s.saturating_add(d.0.saturating_mul(d.1)))
    }

    /// Upper bound on rank(W): the product of the factors' ranks.
    pub fn rank_bound(&self) -> usize {
        self.dims
            .iter()
            .fold(1, |p, d| p.saturating_mul(d.0.min(d.1)))
    }

    /// Multiply-accumulates of `y = W x` applying the factors in `order` (factor indices):
    /// the mode product of factor k costs `rows_k cols_k` times the sizes of the other modes,
    /// transformed (rows) or not yet (cols).
    pub fn order_macs(&self, order: &[usize]) -> usize {
        let mut done = vec![false; self.dims.len()];
        let mut total = 0usize;
        for &k in order {
            let others = self
                .dims
                .iter()
                .enumerate()
                .filter(|&(l, _)| l != k)
                .fold(1usize, |p, (l, d)| {
                    p.saturating_mul(if done[l] { d.0 } else { d.1 })
                });
            let (r, c) = self.dims[k];
            total = total.saturating_add(r.saturating_mul(c).saturating_mul(others));
            done[k] = true;
        }
        total
    }

    /// The order with the fewest MACs and its MACs; ties go to the order whose first
    /// differing factor is the later one (for two factors: B first, as [`cheaper_order`]).
    ///
    /// No search: applying factor k to a tensor of N elements costs `r_k N` and leaves
    /// `N r_k / c_k`, so swapping neighbours k, l changes the sum exactly when
    /// `1/c_k - 1/r_k` and `1/c_l - 1/r_l` differ, the smaller one going first. The cheapest
    /// orders are therefore those sorted by that key, equal keys in any order (here the later
    /// factor first, which is the tie rule above), and K factors cost one sort, not K!
    /// orders. A factor without rows goes first and one without columns last, so a product
    /// of an empty matrix costs 0.
    pub fn best_order(&self) -> (Vec<usize>, usize) {
        use std::cmp::Ordering;
        // Exact below 2^40 (cross products under 2^120); beyond, which no matrix kpgen
        // accepts reaches, f64 keys keep the sort total.
        let exact = self.dims.iter().all(|&(r, c)| r.max(c) < 1 << 40);
        let class = |k: usize| match self.dims[k] {
            (0, _) => 0,
            (_, 0) => 2,
            _ => 1,
        };
        let cmp = |&a: &usize, &b: &usize| -> Ordering {
            let ((ra, ca), (rb, cb)) = (self.dims[a], self.dims[b]);
            class(a).cmp(&class(b)).then_with(|| match class(a) {
                1 if exact => {
                    let (ra, ca, rb, cb) = (ra as i128, ca as i128, rb as i128, cb as i128);
                    ((ra - ca) * rb * cb).cmp(&((rb - cb) * ra * ca))
                }
                1 => {
                    let key = |r: usize, c: usize| 1.0 / c as f64 - 1.0 / r as f64;
                    key(ra, ca).total_cmp(&key(rb, cb))
                }
                _ => Ordering::Equal,
            })
        };
        // A stable sort of the factors listed last to first keeps ties later factor first.
        let mut order: Vec<usize> = (0..self.dims.len()).rev().collect();
        order.sort_by(cmp);
        let macs = self.order_macs(&order);
        (order, macs)
    }

    pub fn macs(&self) -> usize {
        self.best_order().1
    }

    /// `A ⊗ B ⊗ C` written as `2x2 ⊗ 4x4 ⊗ 2x2`.
    pub fn text(&self) -> String {
        self.dims
            .iter()
            .map(|(r, c)| format!("{r}x{c}"))
            .collect::<Vec<_>>()
            .join(" ⊗ ")
    }
}

/// Ordered factorizations of `n` into `k` factors (each ≥ 1).
fn ordered_factorizations(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 1 {
        return vec![vec![n]];
    }
    let mut out = Vec::new();
    for d in divisors(n) {
        for mut rest in ordered_factorizations(n / d, k - 1) {
            rest.insert(0, d);
            out.push(rest);
        }
    }
    out
}

/// How many ordered factorizations of `n` into `k` factors there are, without listing them.
fn count_factorizations(n: usize, k: usize) -> usize {
    if k == 1 {
        return 1;
    }
    divisors(n).iter().fold(0usize, |s, &d| {
        s.saturating_add(count_factorizations(n / d, k - 1))
    })
}

/// All non-trivial `k`-factor shapes of an `m x n` matrix, best first (see the module docs;
/// non-trivial: no factor is 1 x 1). Empty when there are none.
pub fn ranked_factors(m: usize, n: usize, k: usize) -> Result<Vec<Factors>, ShapesError> {
    validate(m, n)?;
    if !(2..=MAX_FACTORS).contains(&k) {
        return Err(ShapesError::FactorCount { k });
    }
    let count = count_factorizations(m, k).saturating_mul(count_factorizations(n, k));
    if count > MAX_CANDIDATES {
        return Err(ShapesError::TooMany { m, n, k, count });
    }
    let full_rank = m.min(n);
    let cols = ordered_factorizations(n, k);
    let mut out: Vec<(_, Factors)> = Vec::new();
    for rows in ordered_factorizations(m, k) {
        for c in &cols {
            let dims: Vec<(usize, usize)> = rows.iter().copied().zip(c.iter().copied()).collect();
            if dims.contains(&(1, 1)) {
                continue;
            }
            let f = Factors { dims };
            out.push((rank_key(&f, full_rank), f));
        }
    }
    // Last key: the factor shapes themselves, first factor first (smaller m1, then n1, ...).
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.dims.cmp(&b.1.dims)));
    Ok(out.into_iter().map(|(_, f)| f).collect())
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
    note_for(m, n, best(m, n).map(|s| s.rank_bound()))
}

/// [`note`] for the best rank bound of some number of factors (None: no factorization).
fn note_for(m: usize, n: usize, best_rank: Option<usize>) -> Option<String> {
    if m == 1 && n == 1 {
        return Some("a 1 x 1 matrix has nothing to factor".into());
    }
    let full = m.min(n);
    let rank = best_rank.unwrap_or(0);
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
        if lines.is_empty() && best_rank.is_some() {
            lines.push(format!(
                "no factorization reaches full rank {full}; the best rank bound is {rank}"
            ));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn candidates(m: usize, n: usize, top: usize, k: usize) -> Result<Vec<Factors>, ShapesError> {
    validate(m, n)?;
    if top == 0 {
        return Err(ShapesError::ZeroTop);
    }
    let mut all = ranked_factors(m, n, k)?;
    if all.is_empty() {
        let reason =
            note_for(m, n, None).unwrap_or_else(|| "only trivial factorizations exist".into());
        return Err(ShapesError::NoFactorization { m, n, reason });
    }
    all.truncate(top);
    Ok(all)
}

/// The two-factor view of two-factor `f`.
fn kron_shape(f: &Factors) -> KronShape {
    KronShape {
        m1: f.dims[0].0,
        n1: f.dims[0].1,
        m2: f.dims[1].0,
        n2: f.dims[1].1,
    }
}

/// An order (0-based factor indices) as 1-based factor numbers, `3 2 1` for C first.
pub fn order_text(order: &[usize]) -> String {
    order
        .iter()
        .map(|k| (k + 1).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for `kpgen shapes M N [--top T] [--factors K]`: an aligned table of the best `top`
/// candidates, followed by the [`note`] if any. Two factors are shown as A and B with the
/// order named; more as one `factors` column with the order as factor numbers.
pub fn render_text(m: usize, n: usize, top: usize, k: usize) -> Result<String, ShapesError> {
    let shapes = candidates(m, n, top, k)?;
    let dense = m.saturating_mul(n);
    let full = m.min(n);
    let mut header: Vec<&str> = vec!["#"];
    let mut left = vec![false];
    if k == 2 {
        header.extend(["A", "B"]);
        left.extend([true, true]);
    } else {
        header.push("factors");
        left.push(true);
    }
    header.extend(["params", "compression", "rank bound", "MACs", "order"]);
    // Text columns (factors, order) align left; numbers align right.
    left.extend([false, false, false, false, true]);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, f) in shapes.iter().enumerate() {
        let mut row = vec![(i + 1).to_string()];
        let (order, macs) = if k == 2 {
            let s = kron_shape(f);
            row.extend([format!("{}x{}", s.m1, s.n1), format!("{}x{}", s.m2, s.n2)]);
            let (order, macs) = cheaper_order(&s);
            (order.as_str().to_string(), macs)
        } else {
            row.push(f.text());
            let (order, macs) = f.best_order();
            (order_text(&order), macs)
        };
        row.extend([
            f.params().to_string(),
            format!("{:.1}x", dense as f64 / f.params() as f64),
            format!("{}/{}", f.rank_bound(), full),
            macs.to_string(),
            order,
        ]);
        rows.push(row);
    }
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (k, c) in cells.iter().enumerate() {
            if k > 0 {
                s.push_str("  ");
            }
            // Padded by characters: `⊗` is one column but three bytes.
            let pad = " ".repeat(width[k].saturating_sub(c.chars().count()));
            if left[k] {
                let _ = write!(s, "{c}{pad}");
            } else {
                let _ = write!(s, "{pad}{c}");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = format!("{m} x {n}: dense {dense} params, {dense} MACs\n");
    out.push_str(&line(
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    if let Some(note) = note_for(m, n, shapes.first().map(Factors::rank_bound)) {
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

/// A candidate with more than two factors, for JSON.
#[derive(Serialize)]
struct JsonFactors {
    /// `[rows, cols]` of each factor, in np.kron order.
    factors: Vec<[usize; 2]>,
    params: usize,
    rank_bound: usize,
    macs: usize,
    /// The cheapest order, as 1-based factor numbers applied first to last.
    order: Vec<usize>,
}

/// JSON for `kpgen shapes M N [--top T] [--factors K] --json`: one object when `top == 1`,
/// otherwise an array of up to `top` objects, best first. Two factors keep their
/// `m1, n1, m2, n2` fields; more are `factors: [[rows, cols], ...]` with their order.
pub fn render_json(m: usize, n: usize, top: usize, k: usize) -> Result<String, ShapesError> {
    let shapes = candidates(m, n, top, k)?;
    let items: Vec<serde_json::Value> = shapes
        .iter()
        .map(|f| {
            if k == 2 {
                serde_json::to_value(JsonShape::from(&kron_shape(f)))
            } else {
                let (order, macs) = f.best_order();
                serde_json::to_value(JsonFactors {
                    factors: f.dims.iter().map(|&(r, c)| [r, c]).collect(),
                    params: f.params(),
                    rank_bound: f.rank_bound(),
                    macs,
                    order: order.iter().map(|k| k + 1).collect(),
                })
            }
            .unwrap_or_default()
        })
        .collect();
    // Serializing plain structs of integers cannot fail.
    let text = if top == 1 {
        serde_json::to_string_pretty(&items[0])
    } else {
        serde_json::to_string_pretty(&items)
    };
    Ok(text.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weighing the strided stage moves the choice only where its extra cost outweighs the
    /// saved MACs; weight 1 is the plain MAC count.
    #[test]
    fn a_weighted_order_trades_macs_for_contiguous_stages() {
        // 512 x 512 = (16 x 32) ⊗ (32 x 16): left-first 16,384 MACs (8,192 strided), right-first
        // 32,768: weighted 8,192·w + 8,192 against 32,768.
        let shape = KronShape {
            m1: 16,
            n1: 32,
            m2: 32,
            n2: 16,
        };
        assert_eq!(cheaper_order(&shape), (KronOrder::LeftFirst, 16_384));
        assert_eq!(
            cheaper_weighted_order(&shape, 1.0),
            (KronOrder::LeftFirst, 16_384)
        );
        assert_eq!(
            cheaper_weighted_order(&shape, 2.8),
            (KronOrder::LeftFirst, 16_384)
        );
        assert_eq!(
            cheaper_weighted_order(&shape, 4.0),
            (KronOrder::RightFirst, 32_768)
        );
        // An exact tie falls back to the MAC count's choice.
        assert_eq!(
            cheaper_weighted_order(&shape, 3.0),
            (KronOrder::LeftFirst, 16_384)
        );
        // Right-first already cheapest stays so at any weight.
        let square = KronShape {
            m1: 16,
            n1: 16,
            m2: 16,
            n2: 16,
        };
        for w in [1.0, 2.8, 4.0, 10.0] {
            assert_eq!(cheaper_weighted_order(&square, w).0, KronOrder::RightFirst);
        }
    }

    /// Steps `v` to the previous permutation in lexicographic order; false at the first one.
    fn prev_permutation(v: &mut [usize]) -> bool {
        let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] > v[i]) else {
            return false;
        };
        let j = (i..v.len()).rev().find(|&j| v[j] < v[i - 1]).unwrap_or(i);
        v.swap(i - 1, j);
        v[i..].reverse();
        true
    }

    /// Every permutation, last factor first, keeping the first strictly cheaper one: the
    /// documented tie rule by brute force.
    fn brute_best_order(f: &Factors) -> (Vec<usize>, usize) {
        let mut order: Vec<usize> = (0..f.dims.len()).rev().collect();
        let mut best = (order.clone(), f.order_macs(&order));
        while prev_permutation(&mut order) {
            let macs = f.order_macs(&order);
            if macs < best.1 {
                best = (order.clone(), macs);
            }
        }
        best
    }

    #[test]
    fn the_sorted_order_is_the_cheapest_permutation_with_the_same_ties() {
        let sizes = [
            (1, 2),
            (2, 1),
            (2, 2),
            (2, 3),
            (3, 2),
            (4, 2),
            (2, 4),
            (3, 3),
            (4, 4),
        ];
        let sizes = &sizes[..];
        let mut checked = 0;
        for k in 2..=4 {
            let mut idx = vec![0usize; k];
            loop {
                let f = Factors {
                    dims: idx.iter().map(|&i| sizes[i]).collect(),
                };
                assert_eq!(f.best_order(), brute_best_order(&f), "{}", f.text());
                checked += 1;
                // Next index tuple.
                let Some(p) = idx.iter().rposition(|&i| i + 1 < sizes.len()) else {
                    break;
                };
                idx[p] += 1;
                idx[p + 1..].fill(0);
            }
        }
        // Five and six factors: a seeded sample.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..400 {
            let k = 5 + next(2);
            let f = Factors {
                dims: (0..k).map(|_| (1 + next(8), 1 + next(8))).collect(),
            };
            assert_eq!(f.best_order(), brute_best_order(&f), "{}", f.text());
            checked += 1;
        }
        assert!(checked > 7000);
    }

    #[test]
    fn many_factors_are_ordered_without_a_search() {
        // 16 factors: 16! orders would never finish.
        let f = Factors {
            dims: (0..16)
                .map(|k| [(2, 1), (1, 2), (2, 2), (3, 2)][k % 4])
                .collect(),
        };
        let (order, macs) = f.best_order();
        assert_eq!(order.len(), 16);
        // Shrinking factors (1x2) come first, growing ones (2x1) last.
        assert!(order[..4].iter().all(|&k| k % 4 == 1), "{order:?}");
        assert!(order[12..].iter().all(|&k| k % 4 == 0), "{order:?}");
        assert_eq!(macs, f.order_macs(&order));
    }
}
