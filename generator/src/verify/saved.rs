//! What `kpgen test --save-outputs DIR` writes: what the generated code computed, and the
//! float reference, as `.npy` arrays (float32, and the int32 codes of a fixed-point model).
//!
//! Shapes: sequences × outputs (each sequence's output after its last valid step), or with
//! `--every-step` sequences × steps × outputs, where steps is the spec's and the positions past
//! a sequence's length hold NaN (int32 codes: `i32::MIN`, which no int8/int16 code reaches).

use super::firmware::RunOutput;
use super::{Outputs, Suite};
use crate::base::tensor::{npy_f32_bytes, npy_i32_bytes};
use crate::output::OutputFile;
use crate::Generation;

/// The file name of the float reference's outputs.
pub const REFERENCE_FILE: &str = "reference.npy";

/// The fill of int32 code arrays past a sequence's length.
pub const CODE_PADDING: i32 = i32::MIN;

/// One run's outputs in the saved layout: dequantized (and as codes) for a fixed-point model.
pub fn outputs_of(gen: &Generation, run: &RunOutput) -> Outputs {
    let raw: Vec<Vec<Vec<f32>>> = match &run.step_outputs {
        Some(steps) => steps.clone(),
        None => run.outputs.iter().map(|y| vec![y.clone()]).collect(),
    };
    match &gen.quant {
        None => Outputs {
            values: raw,
            codes: None,
        },
        Some(q) => {
            // The firmware prints a code as the bits of the float it converts to (exact for
            // int8/int16 codes).
            let codes: Vec<Vec<Vec<i32>>> = raw
                .iter()
                .map(|seq| {
                    seq.iter()
                        .map(|y| y.iter().map(|&v| v as i32).collect())
                        .collect()
                })
                .collect();
            let values = codes
                .iter()
                .map(|seq| {
                    seq.iter()
                        .map(|c| {
                            crate::quant::intref::dequantize_output(q, c)
                                .into_iter()
                                .map(|v| v as f32)
                                .collect()
                        })
                        .collect()
                })
                .collect();
            Outputs {
                values,
                codes: Some(codes),
            }
        }
    }
}

/// `[sequence][step][output]` as one C-order array: sequences × steps × outputs with `fill`
/// past each sequence's steps when `steps` is given, else sequences × outputs from each
/// sequence's last (only) entry.
fn pack<T: Copy>(
    data: &[Vec<Vec<T>>],
    steps: Option<usize>,
    outputs: usize,
    fill: T,
) -> (Vec<usize>, Vec<T>) {
    match steps {
        Some(steps) => {
            let mut flat = vec![fill; data.len() * steps * outputs];
            for (i, seq) in data.iter().enumerate() {
                for (t, y) in seq.iter().take(steps).enumerate() {
                    let at = (i * steps + t) * outputs;
                    let n = y.len().min(outputs);
                    flat[at..at + n].copy_from_slice(&y[..n]);
                }
            }
            (vec![data.len(), steps, outputs], flat)
        }
        None => {
            let mut flat = vec![fill; data.len() * outputs];
            for (i, seq) in data.iter().enumerate() {
                if let Some(y) = seq.last() {
                    let n = y.len().min(outputs);
                    flat[i * outputs..i * outputs + n].copy_from_slice(&y[..n]);
                }
            }
            (vec![data.len(), outputs], flat)
        }
    }
}

/// The files of `--save-outputs`: `<variant>-<lang>.npy` per run (plus `-codes.npy` for fixed
/// point) and [`REFERENCE_FILE`]. `steps` is the spec's steps with `--every-step`, else `None`.
pub fn files(suite: &Suite, steps: Option<usize>, outputs: usize) -> Vec<OutputFile> {
    let mut files = Vec::new();
    for r in &suite.results {
        let stem = format!("{}-{}", r.variant, r.lang.as_str());
        let (shape, values) = pack(&r.outputs.values, steps, outputs, f32::NAN);
        files.push(OutputFile {
            path: format!("{stem}.npy"),
            contents: npy_f32_bytes(&shape, &values),
        });
        if let Some(codes) = &r.outputs.codes {
            let (shape, codes) = pack(codes, steps, outputs, CODE_PADDING);
            files.push(OutputFile {
                path: format!("{stem}-codes.npy"),
                contents: npy_i32_bytes(&shape, &codes),
            });
        }
    }
    let reference: Vec<Vec<Vec<f32>>> = suite
        .reference
        .iter()
        .map(|seq| {
            seq.iter()
                .map(|y| y.iter().map(|&v| v as f32).collect())
                .collect()
        })
        .collect();
    let (shape, values) = pack(&reference, steps, outputs, f32::NAN);
    files.push(OutputFile {
        path: REFERENCE_FILE.to_owned(),
        contents: npy_f32_bytes(&shape, &values),
    });
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_sequences_are_padded_and_the_final_layout_takes_the_last_step() {
        let data = vec![
            vec![vec![1.0f32, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]],
            vec![vec![7.0, 8.0]],
        ];
        let (shape, flat) = pack(&data, Some(3), 2, f32::NAN);
        assert_eq!(shape, vec![2, 3, 2]);
        assert_eq!(&flat[..8], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert!(flat[8..].iter().all(|v| v.is_nan()));
        let (shape, flat) = pack(&data, None, 2, f32::NAN);
        assert_eq!((shape, flat), (vec![2, 2], vec![5.0, 6.0, 7.0, 8.0]));
    }
}
