//! The ground floor: what every stage may use and that knows nothing of models. Diagnostics
//! with source places, bounded input reading, the tensor file readers (npy, npz, safetensors),
//! sparse matrices given as their non-zeros (scipy.sparse files, index arrays),
//! input sequences with the seeded generator, and progress events.

pub mod diagnostic;
pub mod input;
pub mod progress;
pub mod sequences;
pub mod sparse;
pub mod tensor;
