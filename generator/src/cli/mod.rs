//! The command line's pieces: arguments, one module per verb, and what they share (printing
//! that never panics, exit codes, diagnostics, the progress view). The library does the work.

/// Writes a line to stderr, control characters other than newlines escaped; a closed or full
/// stderr is not a reason to panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = kpgen::base::diagnostic::shown_lines(&format!($($arg)*));
        let _ = writeln!(std::io::stderr(), "{text}");
    }};
}

/// Writes a line to stdout; a closed pipe (`kpgen … | head`) is not a reason to panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod args;
pub mod bench;
pub mod build;
pub mod info;
pub mod test;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kpgen::base::diagnostic::Diagnostics;

/// Progress on stderr: one line per event, and on a terminal, once the run has taken two
/// seconds, a bar below them (steps done of all, elapsed, estimate).
pub struct ProgressView {
    bar: indicatif::ProgressBar,
    started: Instant,
    terminal: bool,
    shown: std::sync::atomic::AtomicBool,
}

impl ProgressView {
    pub fn new(what: &str) -> Self {
        use std::io::IsTerminal as _;
        let bar = indicatif::ProgressBar::hidden();
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} in {elapsed}, about {eta} to go",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        ProgressView {
            bar,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn show(&self, event: kpgen::base::progress::Progress) {
        use kpgen::base::progress::Progress;
        use std::sync::atomic::Ordering;
        let line = match event {
            Progress::Total(n) => {
                self.bar.set_length(n as u64);
                None
            }
            Progress::Done(line) => {
                self.bar.inc(1);
                Some(line)
            }
            Progress::Note(line) => Some(line),
        };
        if self.terminal
            && self.started.elapsed() > Duration::from_secs(2)
            && !self.shown.swap(true, Ordering::SeqCst)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(250));
        }
        if let Some(line) = line {
            let line = kpgen::base::diagnostic::shown_lines(line);
            if self.shown.load(Ordering::SeqCst) {
                self.bar.println(line);
            } else {
                say!("{line}");
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A path as printed: a newline or escape sequence in it cannot fake a line of kpgen's.
pub fn shown_path(p: &Path) -> String {
    kpgen::base::diagnostic::shown(&p.display().to_string())
}

/// Exit codes, documented in docs/cli.md.
pub const EXIT_TEST_FAILED: u8 = 1;

pub const EXIT_BAD_INPUT: u8 = 2;

pub const EXIT_TOOL_FAILED: u8 = 3;

pub fn report_errors(errors: &Diagnostics) -> ExitCode {
    say!("{}", errors.render());
    let n = errors.0.len();
    say!(
        "kpgen: {n} problem{} found; nothing was written",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_BAD_INPUT)
}
