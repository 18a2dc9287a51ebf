//! `kpgen::plan::shapes` against a plain brute force, plus the documented examples.

use kpgen::plan::shapes::{
    self, best, cheaper_order, note, order_costs, ranked, ranked_factors, render_json, render_text,
    KronOrder, KronShape, ShapesError,
};

// ---- independent reference, written as plainly as possible ----

fn all_candidates(m: usize, n: usize) -> Vec<KronShape> {
    let mut out = Vec::new();
    for m1 in 1..=m {
        for n1 in 1..=n {
            if !m.is_multiple_of(m1) || !n.is_multiple_of(n1) {
                continue;
            }
            let (m2, n2) = (m / m1, n / n1);
            let a_is_trivial = m1 == 1 && n1 == 1;
            let b_is_trivial = m2 == 1 && n2 == 1;
            if !a_is_trivial && !b_is_trivial {
                out.push(KronShape { m1, n1, m2, n2 });
            }
        }
    }
    out
}

fn params(s: &KronShape) -> usize {
    s.m1 * s.n1 + s.m2 * s.n2
}

fn rank(s: &KronShape) -> usize {
    std::cmp::min(s.m1, s.n1) * std::cmp::min(s.m2, s.n2)
}

fn macs(s: &KronShape) -> usize {
    let right_first = s.n1 * s.n2 * s.m2 + s.m1 * s.n1 * s.m2;
    let left_first = s.m1 * s.n1 * s.n2 + s.m1 * s.n2 * s.m2;
    std::cmp::min(right_first, left_first)
}

/// True if `a` must come strictly before `b` for an `m x n` matrix.
fn better(a: &KronShape, b: &KronShape, m: usize, n: usize) -> bool {
    let full = std::cmp::min(m, n);
    let a_full = rank(a) == full;
    let b_full = rank(b) == full;
    if a_full != b_full {
        return a_full;
    }
    if !a_full && rank(a) != rank(b) {
        return rank(a) > rank(b);
    }
    if params(a) != params(b) {
        return params(a) < params(b);
    }
    if macs(a) != macs(b) {
        return macs(a) < macs(b);
    }
    if a.m1 != b.m1 {
        return a.m1 < b.m1;
    }
    a.n1 < b.n1
}

fn brute_best(m: usize, n: usize) -> Option<KronShape> {
    let mut winner: Option<KronShape> = None;
    for c in all_candidates(m, n) {
        match winner {
            Some(w) if !better(&c, &w, m, n) => {}
            _ => winner = Some(c),
        }
    }
    winner
}

fn check_size(m: usize, n: usize) {
    let got = ranked(m, n);
    let mut want = all_candidates(m, n);
    assert_eq!(got.len(), want.len(), "{m}x{n}: candidate count");
    let mut sorted_got = got.clone();
    let key = |s: &KronShape| (s.m1, s.n1);
    sorted_got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(sorted_got, want, "{m}x{n}: candidate set");
    for pair in got.windows(2) {
        assert!(
            better(&pair[0], &pair[1], m, n),
            "{m}x{n}: {:?} listed before {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(best(m, n), brute_best(m, n), "{m}x{n}: best");
    for s in &got {
        assert_eq!(s.rows(), m);
        assert_eq!(s.cols(), n);
        assert_eq!(s.params(), params(s));
        assert_eq!(s.rank_bound(), rank(s));
        assert_eq!(s.macs(), macs(s));
        assert_eq!(s.dense_macs(), m * n);
    }
}

#[test]
fn matches_brute_force_up_to_64() {
    for m in 1..=64 {
        for n in 1..=64 {
            check_size(m, n);
        }
    }
}

#[test]
fn matches_brute_force_large() {
    for (m, n) in [
        (2600, 1300),
        (512, 512),
        (128, 38),
        (256, 256),
        (128, 6),
        (1000, 720),
        (127, 64),
    ] {
        check_size(m, n);
    }
}

fn shape(m1: usize, n1: usize, m2: usize, n2: usize) -> KronShape {
    KronShape { m1, n1, m2, n2 }
}

#[test]
fn documented_examples() {
    let s = best(256, 256).unwrap();
    assert_eq!(s, shape(16, 16, 16, 16));
    assert_eq!((s.params(), s.rank_bound()), (512, 256));

    let s = best(2600, 1300).unwrap();
    assert_eq!(s, shape(50, 50, 52, 26));
    assert_eq!((s.params(), s.rank_bound()), (3852, 1300));

    let s = best(128, 6).unwrap();
    assert_eq!(s, shape(8, 3, 16, 2));
    assert_eq!(s.params(), 56);
}

#[test]
fn degenerate_sizes() {
    assert!(ranked(0, 5).is_empty());
    assert_eq!(best(5, 0), None);
    assert_eq!(best(1, 1), None);
    assert_eq!(best(1, 7), None);
    assert_eq!(
        shapes::validate(0, 3),
        Err(ShapesError::Zero { m: 0, n: 3 })
    );
    assert_eq!(
        render_text(0, 3, 1, 2).unwrap_err().to_string(),
        "matrix size 0 x 3 has a zero dimension: M and N must be at least 1"
    );
    assert_eq!(
        render_json(4, 4, 0, 2).unwrap_err().to_string(),
        "--top must be at least 1"
    );
    let huge = shapes::MAX_DIM + 1;
    assert!(ranked(huge, 4).is_empty());
    assert!(matches!(
        render_text(huge, 4, 1, 2),
        Err(ShapesError::TooLarge { .. })
    ));
    assert_eq!(
        render_text(1, 7, 1, 2).unwrap_err().to_string(),
        "1 x 7 has no non-trivial Kronecker factorization: M = 1: W is a single row; a KP of it is \
         the Kronecker product of two vectors, which forces its reshaping to rank 1; keeping it \
         dense is usually better\n7 is prime: only trivial factorizations exist (rank bound 1); \
         pad to 8 = 2^3 for a useful KP"
    );
}

#[test]
fn notes() {
    assert_eq!(
        note(127, 127).as_deref(),
        Some(
            "127 is prime: only trivial factorizations exist (rank bound 1); pad to 128 = 2^7 for a useful KP"
        )
    );
    assert_eq!(
        note(127, 64).as_deref(),
        Some(
            "127 is prime: it only splits as 1 x 127, so the best rank bound is 32 of 64; pad to 128 = 2^7 for a useful KP"
        )
    );
    // 63 = 7 * 9 cannot reach rank 63 against 64, so the suggestion skips to 64.
    assert!(note(61, 64)
        .unwrap()
        .ends_with("pad to 64 = 2^6 for a useful KP"));
    assert!(note(131, 128)
        .unwrap()
        .ends_with("pad to 132 = 2^2 * 3 * 11 for a useful KP"));
    // A prime on the short side still reaches full rank: nothing to say.
    assert_eq!(note(7, 64), None);
    assert_eq!(note(256, 256), None);
    assert_eq!(note(2600, 1300), None);
    assert!(note(6, 1)
        .unwrap()
        .starts_with("N = 1: W is a single column"));
    assert_eq!(
        note(1, 1).as_deref(),
        Some("a 1 x 1 matrix has nothing to factor")
    );
    assert_eq!(note(0, 4), None);
}

#[test]
fn text_table() {
    let text = render_text(256, 256, 3, 2).unwrap();
    assert_eq!(
        text,
        "256 x 256: dense 65536 params, 65536 MACs
#  A      B      params  compression  rank bound   MACs  order
1  16x16  16x16     512       128.0x     256/256   8192  right_first
2  8x8    32x32    1088        60.2x     256/256  10240  right_first
3  32x32  8x8      1088        60.2x     256/256  10240  right_first
"
    );
    let text = render_text(127, 127, 5, 2).unwrap();
    assert_eq!(text.lines().count(), 2 + 2 + 1, "{text}");
    assert!(text.ends_with(
        "note: 127 is prime: only trivial factorizations exist (rank bound 1); pad to 128 = 2^7 for a useful KP\n"
    ));
}

#[test]
fn json() {
    let one: serde_json::Value =
        serde_json::from_str(&render_json(2600, 1300, 1, 2).unwrap()).unwrap();
    assert_eq!(
        one,
        serde_json::json!({"m1": 50, "n1": 50, "m2": 52, "n2": 26,
                           "params": 3852, "rank_bound": 1300, "macs": 132600})
    );
    let many: serde_json::Value =
        serde_json::from_str(&render_json(128, 6, 3, 2).unwrap()).unwrap();
    let arr = many.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(
        arr[0],
        serde_json::json!({"m1": 8, "n1": 3, "m2": 16, "n2": 2,
                           "params": 56, "rank_bound": 6, "macs": 304})
    );
    // --top larger than the candidate count lists them all.
    let all: serde_json::Value = serde_json::from_str(&render_json(4, 4, 100, 2).unwrap()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), ranked(4, 4).len());
    assert_eq!(
        serde_json::to_value(KronOrder::RightFirst).unwrap(),
        serde_json::json!("right_first")
    );
    assert_eq!(
        serde_json::to_value(KronOrder::LeftFirst).unwrap(),
        serde_json::json!("left_first")
    );
}

/// Evaluates `y = kron(A, B) x` in `order` with explicit loops, counting MACs and
/// the temporary's length, so the documented costs are checked against real work.
fn apply(
    order: KronOrder,
    s: &KronShape,
    a: &[i64],
    b: &[i64],
    x: &[i64],
) -> (Vec<i64>, usize, usize) {
    let KronShape { m1, n1, m2, n2 } = *s;
    let mut y = vec![0i64; m1 * m2];
    let mut count = 0;
    match order {
        KronOrder::RightFirst => {
            // T[j1][i2] = sum_j2 X[j1][j2] B[i2][j2]
            let mut t = vec![0i64; n1 * m2];
            for j1 in 0..n1 {
                for i2 in 0..m2 {
                    for j2 in 0..n2 {
                        t[j1 * m2 + i2] += x[j1 * n2 + j2] * b[i2 * n2 + j2];
                        count += 1;
                    }
                }
            }
            for i1 in 0..m1 {
                for i2 in 0..m2 {
                    for j1 in 0..n1 {
                        y[i1 * m2 + i2] += a[i1 * n1 + j1] * t[j1 * m2 + i2];
                        count += 1;
                    }
                }
            }
            (y, count, t.len())
        }
        KronOrder::LeftFirst => {
            // T[i1][j2] = sum_j1 A[i1][j1] X[j1][j2]
            let mut t = vec![0i64; m1 * n2];
            for i1 in 0..m1 {
                for j2 in 0..n2 {
                    for j1 in 0..n1 {
                        t[i1 * n2 + j2] += a[i1 * n1 + j1] * x[j1 * n2 + j2];
                        count += 1;
                    }
                }
            }
            for i1 in 0..m1 {
                for i2 in 0..m2 {
                    for j2 in 0..n2 {
                        y[i1 * m2 + i2] += t[i1 * n2 + j2] * b[i2 * n2 + j2];
                        count += 1;
                    }
                }
            }
            (y, count, t.len())
        }
    }
}

#[test]
fn order_costs_match_real_evaluation() {
    for (m, n) in [(6, 4), (12, 6), (8, 9), (128, 6), (10, 15)] {
        for s in ranked(m, n) {
            let KronShape { m1, n1, m2, n2 } = s;
            let a: Vec<i64> = (0..m1 * n1).map(|i| (i as i64 * 7) % 5 - 2).collect();
            let b: Vec<i64> = (0..m2 * n2).map(|i| (i as i64 * 3) % 7 - 3).collect();
            let x: Vec<i64> = (0..n).map(|i| (i as i64 * 5) % 11 - 5).collect();
            // Dense kron(A, B) · x.
            let mut want = vec![0i64; m];
            for (r, w) in want.iter_mut().enumerate() {
                for (c, xv) in x.iter().enumerate() {
                    let av = a[(r / m2) * n1 + c / n2];
                    let bv = b[(r % m2) * n2 + c % n2];
                    *w += av * bv * xv;
                }
            }
            let costs = order_costs(&s);
            assert_eq!(costs[0].0, KronOrder::RightFirst);
            assert_eq!(costs[1].0, KronOrder::LeftFirst);
            for (order, cost, temp) in costs {
                let (y, count, len) = apply(order, &s, &a, &b, &x);
                assert_eq!(y, want, "{s:?} {order:?}");
                assert_eq!((count, len), (cost, temp), "{s:?} {order:?}");
            }
            let (order, cost) = cheaper_order(&s);
            let [r, l] = costs;
            let expect = if l.1 < r.1 || (l.1 == r.1 && l.2 < r.2) {
                l
            } else {
                r
            };
            assert_eq!((order, cost), (expect.0, expect.1), "{s:?}");
        }
    }
}

// ---- K factors -------------------------------------------------------------------------------

/// Every K-tuple of (rows, cols) factor shapes of m x n, by brute force over all tuples.
fn all_k(m: usize, n: usize, k: usize) -> Vec<Vec<(usize, usize)>> {
    let mut out = vec![Vec::new()];
    for _ in 0..k {
        let mut next = Vec::new();
        for prefix in &out {
            for r in 1..=m {
                for c in 1..=n {
                    let mut t: Vec<(usize, usize)> = prefix.clone();
                    t.push((r, c));
                    let (pr, pc) = t.iter().fold((1, 1), |(a, b), &(r, c)| (a * r, b * c));
                    if m.is_multiple_of(pr) && n.is_multiple_of(pc) {
                        next.push(t);
                    }
                }
            }
        }
        out = next;
    }
    out.retain(|t| {
        t.iter().map(|d| d.0).product::<usize>() == m
            && t.iter().map(|d| d.1).product::<usize>() == n
            && !t.contains(&(1, 1))
    });
    out
}

/// MACs of evaluating the K mode products in every order, by explicit counting.
fn brute_macs(dims: &[(usize, usize)]) -> usize {
    fn perms(k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for p in perms(k - 1) {
            for at in 0..=p.len() {
                let mut q = p.clone();
                q.insert(at, k - 1);
                out.push(q);
            }
        }
        out
    }
    perms(dims.len())
        .iter()
        .map(|order| {
            // The tensor's current mode sizes; a mode product replaces one.
            let mut size: Vec<usize> = dims.iter().map(|d| d.1).collect();
            let mut macs = 0;
            for &k in order {
                let rest: usize = size
                    .iter()
                    .enumerate()
                    .filter(|&(l, _)| l != k)
                    .map(|(_, s)| s)
                    .product();
                macs += dims[k].0 * dims[k].1 * rest;
                size[k] = dims[k].0;
            }
            macs
        })
        .min()
        .unwrap()
}

/// The best K-factor shape by the documented rule, found by brute force.
fn brute_best_k(m: usize, n: usize, k: usize) -> Option<Vec<(usize, usize)>> {
    let full = m.min(n);
    all_k(m, n, k).into_iter().min_by_key(|t| {
        let rank: usize = t.iter().map(|d| d.0.min(d.1)).product();
        let params: usize = t.iter().map(|d| d.0 * d.1).sum();
        let reach = rank >= full;
        (
            !reach,
            std::cmp::Reverse(if reach { 0 } else { rank }),
            params,
            brute_macs(t),
            t.clone(),
        )
    })
}

#[test]
fn k_factors_match_brute_force() {
    for (k, limit) in [(2, 24), (3, 16), (4, 8)] {
        for m in 1..=limit {
            for n in 1..=limit {
                let got = ranked_factors(m, n, k).unwrap();
                assert_eq!(
                    got.len(),
                    all_k(m, n, k).len(),
                    "{m} x {n}, {k} factors: count"
                );
                let want = brute_best_k(m, n, k);
                assert_eq!(
                    got.first().map(|f| f.dims.clone()),
                    want,
                    "{m} x {n}, {k} factors"
                );
                for f in got.iter().take(5) {
                    assert_eq!(f.macs(), brute_macs(&f.dims), "{m} x {n}: {:?}", f.dims);
                    assert_eq!(f.order_macs(&f.best_order().0), f.macs());
                }
            }
        }
    }
}

#[test]
fn two_factors_are_the_two_factor_ranking() {
    for m in 1..=40 {
        for n in 1..=40 {
            let k2: Vec<KronShape> = ranked_factors(m, n, 2)
                .unwrap()
                .iter()
                .map(|f| shape(f.dims[0].0, f.dims[0].1, f.dims[1].0, f.dims[1].1))
                .collect();
            assert_eq!(k2, ranked(m, n), "{m} x {n}");
            for (f, s) in ranked_factors(m, n, 2).unwrap().iter().zip(ranked(m, n)) {
                assert_eq!(f.macs(), cheaper_order(&s).1, "{m} x {n}");
            }
        }
    }
}

#[test]
fn k_factor_text_and_json() {
    let text = render_text(64, 64, 2, 3).unwrap();
    assert_eq!(
        text,
        "64 x 64: dense 4096 params, 4096 MACs
#  factors          params  compression  rank bound  MACs  order
1  4x4 ⊗ 4x4 ⊗ 4x4      48        85.3x       64/64   768  3 2 1
2  2x2 ⊗ 4x4 ⊗ 8x8      84        48.8x       64/64   896  3 2 1
"
    );
    let one: serde_json::Value = serde_json::from_str(&render_json(64, 64, 1, 3).unwrap()).unwrap();
    assert_eq!(
        one,
        serde_json::json!({"factors": [[4, 4], [4, 4], [4, 4]], "params": 48,
                           "rank_bound": 64, "macs": 768, "order": [3, 2, 1]})
    );
    // A prime dimension: the note speaks of the K-factor rank bound.
    let text = render_text(127, 64, 1, 3).unwrap();
    assert!(
        text.contains("so the best rank bound is 16 of 64"),
        "{text}"
    );
}

#[test]
fn k_factor_refusals() {
    assert_eq!(
        render_text(64, 64, 1, 1).unwrap_err().to_string(),
        "--factors 1: expected 2 to 6 factors"
    );
    assert_eq!(
        render_text(64, 64, 1, 7).unwrap_err().to_string(),
        "--factors 7: expected 2 to 6 factors"
    );
    // Too many candidates is refused at once, not ranked for minutes.
    let started = std::time::Instant::now();
    let e = render_text(720720, 720720, 1, 4).unwrap_err().to_string();
    assert!(e.contains("use fewer factors"), "{e}");
    assert!(started.elapsed().as_secs() < 5);
    // Every 3-factor split of 2 x 2 has a 1 x 1 factor.
    assert!(render_text(2, 2, 1, 3).is_err());
    // Two factors never hit the limit, even at the largest size.
    assert!(ranked_factors(shapes::MAX_DIM, shapes::MAX_DIM, 2).is_ok());
}
