//! User-facing errors: every problem with user input becomes one `Diagnostic` that names the file,
//! the line (when known) and the field path, and says what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// Where in the user's input a problem sits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    /// 1-based line and column, when the problem points into a text file.
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted path of the spec field, e.g. `layers[0].w_hh.kron[1]`.
    pub field: Option<String>,
}

impl Place {
    pub fn file(file: &Path) -> Self {
        Place {
            file: file.to_path_buf(),
            ..Place::default()
        }
    }

    pub fn at(file: &Path, line: u64, column: u64, field: impl Into<String>) -> Self {
        Place {
            file: file.to_path_buf(),
            line: (line > 0).then_some(line),
            column: (column > 0).then_some(column),
            field: Some(field.into()),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        Ok(())
    }
}

/// One problem with the user's input (spec, tensors, options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub place: Place,
    pub message: String,
    pub help: Option<String>,
    /// The text of the file `place` points into, for a source snippet.
    pub source_text: Option<String>,
}

impl Diagnostic {
    pub fn new(place: Place, message: impl Into<String>) -> Self {
        Diagnostic {
            place,
            message: message.into(),
            help: None,
            source_text: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_source(mut self, text: &str) -> Self {
        self.source_text = Some(text.to_owned());
        self
    }

    /// Plain-text rendering (no colours), with a source snippet when the line is known.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let report = MietteView::from(self);
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_context_lines(1)
            .with_width(100);
        if handler.render_report(&mut out, &report).is_err() {
            out = self.to_string();
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&format!("{}: {}", self.place, self.message)))
    }
}

/// Longest message shown; the rest is elided (a 50 MB name must not become 50 MB of errors).
const MAX_SHOWN_CHARS: usize = 1000;

/// Longest source line shown as a snippet.
const MAX_SNIPPET_LINE: usize = 300;

/// Multi-line `text` safe to print: control characters other than newlines and tabs escaped,
/// nothing elided (for kpgen's own multi-line reports, which may quote firmware output).
pub fn shown_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` safe to print to a terminal: control characters escaped (so a name or path cannot
/// move the cursor, recolour the terminal or start a fake line) and long text elided.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == MAX_SHOWN_CHARS {
            let rest = text.chars().count() - n;
            out.push_str(&format!("… ({rest} more characters)"));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl std::error::Error for Diagnostic {}

/// Adapter giving miette the snippet and label of a `Diagnostic`.
#[derive(Debug)]
struct MietteView {
    title: String,
    help: Option<String>,
    source: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl From<&Diagnostic> for MietteView {
    fn from(d: &Diagnostic) -> Self {
        let span = match (&d.source_text, d.place.line) {
            (Some(text), Some(line)) => {
                byte_offset(text, line, d.place.column.unwrap_or(1)).map(|off| {
                    let len = text[off..]
                        .find(['\n', ',', '}', ']'])
                        .unwrap_or(text.len() - off)
                        .max(1);
                    SourceSpan::from((off, len))
                })
            }
            _ => None,
        };
        // A snippet of a very long line (or of text with control characters) would flood or
        // garble the terminal: the title's file:line:column says where instead.
        let span = span.filter(|s| {
            let text = d.source_text.as_deref().unwrap_or_default();
            let start = text[..s.offset()].rfind('\n').map_or(0, |p| p + 1);
            let end = text[s.offset()..]
                .find('\n')
                .map_or(text.len(), |p| s.offset() + p);
            let line = &text[start..end];
            line.chars().count() <= MAX_SNIPPET_LINE
                && !line.chars().any(|c| c.is_control() && c != '\t')
        });
        MietteView {
            title: d.to_string(),
            help: d.help.as_deref().map(shown),
            source: d
                .source_text
                .as_ref()
                .map(|t| NamedSource::new(d.place.file.display().to_string(), t.clone())),
            span,
        }
    }
}

fn byte_offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let col: usize = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map(|(b, _)| b)
                .unwrap_or(0);
            return Some(offset + col);
        }
        offset += l.len();
    }
    None
}

impl fmt::Display for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)
    }
}

impl std::error::Error for MietteView {}

impl miette::Diagnostic for MietteView {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span
            .and(self.source.as_ref())
            .map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        self.source.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".into()),
            span,
        ))))
    }
}

/// All problems found in one run: the stages keep going where they can so the user sees them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(Diagnostic::render)
            .collect::<Vec<_>>()
            .join("\n")
    }
    /// Ok(value) when nothing was reported, else all the problems.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
