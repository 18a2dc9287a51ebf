//! kpgen runtime: activations and cell updates, the same arithmetic as the C output.
//! `expf`: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor polynomial, then a 2^n
//! scale built in the exponent bits. Inputs are clamped to [-87, 88] (a NaN counts as -87).
//! `sigmoidf` and `tanhf` follow this file: exact (from `expf`) or table-driven, by the
//! build's `activations`.
// Not every model uses every cell.
#![allow(dead_code)]
