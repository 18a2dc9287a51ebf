//! Progress of a long run (`kpgen test`, `kpgen bench`) as events, so the library says what
//! happened and the front end decides how to show it (a bar on a terminal, lines in a log).

/// One event of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The run will take this many steps (firmware runs, benchmark jobs).
    Total(usize),
    /// One step finished; the line says how it went.
    Done(&'a str),
    /// Something worth a line that is not a step (a skipped baseline, say).
    Note(&'a str),
}
