//! `kpgen::plan::shapes` against a plain brute force, plus the documented examples.

use kpgen::plan::shapes::{
    self, best, cheaper_order, note, order_costs, ranked, render_json, render_text, KronOrder,
    KronShape, ShapesError,
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
        render_text(0, 3, 1).unwrap_err().to_string(),
        "matrix size 0 x 3 has a zero dimension: M and N must be at least 1"
    );
    assert_eq!(
        render_json(4, 4, 0).unwrap_err().to_string(),
        "--top must be at least 1"
    );
    let huge = shapes::MAX_DIM + 1;
    assert!(ranked(huge, 4).is_empty());
    assert!(matches!(
        render_text(huge, 4, 1),
        Err(ShapesError::TooLarge { .. })
    ));
    assert_eq!(
        render_text(1, 7, 1).unwrap_err().to_string(),
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
    let text = render_text(256, 256, 3).unwrap();
    assert_eq!(
        text,
        "256 x 256: dense 65536 params, 65536 MACs
#  A      B      params  compression  rank bound   MACs  order
1  16x16  16x16     512       128.0x     256/256   8192  right_first
2  8x8    32x32    1088        60.2x     256/256  10240  right_first
3  32x32  8x8      1088        60.2x     256/256  10240  right_first
"
    );
    let text = render_text(127, 127, 5).unwrap();
    assert_eq!(text.lines().count(), 2 + 2 + 1, "{text}");
    assert!(text.ends_with(
        "note: 127 is prime: only trivial factorizations exist (rank bound 1); pad to 128 = 2^7 for a useful KP\n"
    ));
}

#[test]
fn json() {
    let one: serde_json::Value =
        serde_json::from_str(&render_json(2600, 1300, 1).unwrap()).unwrap();
    assert_eq!(
        one,
        serde_json::json!({"m1": 50, "n1": 50, "m2": 52, "n2": 26,
                           "params": 3852, "rank_bound": 1300, "macs": 132600})
    );
    let many: serde_json::Value = serde_json::from_str(&render_json(128, 6, 3).unwrap()).unwrap();
    let arr = many.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(
        arr[0],
        serde_json::json!({"m1": 8, "n1": 3, "m2": 16, "n2": 2,
                           "params": 56, "rank_bound": 6, "macs": 304})
    );
    // --top larger than the candidate count lists them all.
    let all: serde_json::Value = serde_json::from_str(&render_json(4, 4, 100).unwrap()).unwrap();
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
