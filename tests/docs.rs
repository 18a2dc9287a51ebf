//! The documentation cannot go stale: every relative link and `#anchor` of README.md,
//! ARCHITECTURE.md and docs/*.md resolves, and every shell block of them carries a doc-test
//! marker, the ones marked `run` being run on a copy of the bundled example.
//!
//! The convention (ARCHITECTURE.md, "Documentation that is tested"): a fenced block tagged `sh`
//! is a command and the line right above it is one of
//!
//! ```text
//! <!-- doc-test: run; expect "TEXT"; expect "MORE TEXT" -->
//! <!-- doc-test: run; exit 2; expect "TEXT" -->
//! <!-- doc-test: skip: WHY (network, a long run, installs packages, ...) -->
//! ```
//!
//! A `run` block is given to `bash -e -o pipefail` in a fresh temporary folder holding a copy of
//! `examples/basic_motions/`, with `kpgen` (and `cargo run --release -p kpgen --`) meaning the
//! binary under test; it must exit with the stated code (default 0) and print every `expect`
//! text on stdout or stderr. Blocks tagged `text`, `console` or anything else are never run.
//! Commands needing QEMU or the Arm cross compiler fail, never skip, when a tool is missing.
//! Every failure names the file and line of the broken link, marker or command.
//!
//! README.md's headline tables must also be copies of the generated ones (docs/results.md,
//! docs/benchmark-tables.md, docs/benchmark-models.md), so that no figure of the front door is
//! typed by hand.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// README.md, ARCHITECTURE.md and every docs/*.md, as (path relative to the repo, text).
fn documents() -> Vec<(String, String)> {
    let root = repo();
    let mut names = vec!["README.md".to_owned(), "ARCHITECTURE.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text =
                std::fs::read_to_string(root.join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

/// One line of a Markdown file, with whether it lies inside a fenced code block (fence lines
/// themselves count as inside).
struct Line<'a> {
    number: usize,
    text: &'a str,
    in_code: bool,
    /// An opening fence.
    opens: bool,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, text) in text.lines().enumerate() {
        let trimmed = text.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        let opens = fence.is_none() && marker.is_some();
        let in_code = match (fence, marker) {
            (None, Some(m)) => {
                fence = Some(m);
                true
            }
            (Some(f), Some(m)) if f == m && trimmed.trim_end() == m => {
                fence = None;
                true
            }
            (Some(_), _) => true,
            (None, None) => false,
        };
        out.push(Line {
            number: i + 1,
            text,
            in_code,
            opens,
        });
    }
    out
}

/// The text with inline code spans removed, so that `[x](y)` inside backticks is no link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let fence = &rest[start..start + ticks];
        match rest[start + ticks..].find(fence) {
            Some(end) => rest = &rest[start + ticks + end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links and images `[text](target)` of one line, and of a
/// reference definition `[name]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    if let Some(definition) = line.trim_start().strip_prefix('[') {
        if let Some((_, target)) = definition.split_once("]: ") {
            out.extend(target.split_whitespace().next().map(str::to_owned));
        }
    }
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                let target = after[..end].split_whitespace().next().unwrap_or("");
                out.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// GitHub's anchor for a heading: the rendered text in lower case, without the characters that
/// are neither letters, digits, spaces, `-` nor `_`, spaces turned into `-`.
fn slug(heading: &str) -> String {
    // Render links as their text, drop emphasis and code markers.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").and_then(|m| {
            let close = rest[open + m..].find(')')?;
            Some((open + m, open + m + close))
        }) {
            Some((mid, close)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..mid]);
                rest = &rest[close + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings, numbered as GitHub numbers repeated ones.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for line in lines(text) {
        if line.in_code {
            continue;
        }
        let hashes = line.text.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line.text[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line.text[hashes..].trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn slugs_and_links_are_read_as_github_does() {
    assert_eq!(slug("Fixed point (int8, int16)"), "fixed-point-int8-int16");
    assert_eq!(
        slug("Build systems: CMake and Make"),
        "build-systems-cmake-and-make"
    );
    assert_eq!(slug("The `kpgen` [report](x.md)"), "the-kpgen-report");
    assert_eq!(
        slug("Hybrid KP and three factors"),
        "hybrid-kp-and-three-factors"
    );
    assert_eq!(anchors("# A\n```\n# not\n```\n## A\n"), ["a", "a-1"]);
    assert_eq!(
        link_targets("see [a](x.md#b) and ![c](d.png), not `[e](f)`"),
        ["x.md#b", "d.png"]
    );
    assert_eq!(link_targets("[ref]: docs/spec.md"), ["docs/spec.md"]);
}

#[test]
fn relative_links_and_anchors_resolve() {
    let root = repo();
    let mut broken = String::new();
    for (name, text) in documents() {
        let dir = root.join(&name).parent().unwrap().to_path_buf();
        for line in lines(&text).iter().filter(|l| !l.in_code) {
            for target in link_targets(line.text) {
                if target.is_empty()
                    || ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|p| target.starts_with(p))
                {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    root.join(&name)
                } else {
                    dir.join(path)
                };
                if !file.exists() {
                    let _ = writeln!(broken, "{name}:{}: `{target}`: no such file", line.number);
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if !file.to_string_lossy().ends_with(".md") {
                    let _ = writeln!(
                        broken,
                        "{name}:{}: `{target}`: an anchor into a file that is not Markdown",
                        line.number
                    );
                    continue;
                }
                let linked = std::fs::read_to_string(&file).unwrap();
                if !anchors(&linked).iter().any(|a| a == anchor) {
                    let _ = writeln!(
                        broken,
                        "{name}:{}: `{target}`: no heading with the anchor #{anchor}",
                        line.number
                    );
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{broken}");
}

/// The lines between the line starting with `begin` and the line `end`, or `None`.
fn generated_block<'a>(text: &'a str, begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(begin));
    lines.next()?;
    let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != end).collect();
    Some(block)
}

/// README.md's headline tables are never typed: the results table is written by
/// examples/results.py from the same rows as docs/results.md's, the benchmark rows are
/// rows of docs/benchmark-tables.md and docs/benchmark-models.md, which `kpgen bench
/// --markdown` writes, and the smallest-part rows are rows of docs/footprint.md's, which
/// bench/footprint.py writes with them.
#[test]
fn readme_headline_tables_match_the_generated_ones() {
    let root = repo();
    let read = |n: &str| std::fs::read_to_string(root.join(n)).unwrap();
    let (readme, results, bench) = (
        read("README.md"),
        read("docs/results.md"),
        read("docs/benchmark-tables.md"),
    );
    let block = |text: &str, name: &str, file: &str| -> Vec<String> {
        generated_block(
            text,
            &format!("<!-- {name}:begin"),
            &format!("<!-- {name}:end -->"),
        )
        .unwrap_or_else(|| panic!("{file}: no {name}:begin / {name}:end markers"))
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let headline = block(&readme, "headline", "README.md");
    let all = block(&results, "results", "docs/results.md");
    let expected: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, l)| *i < 2 || l.starts_with("| basic_motions |"))
        .map(|(_, l)| l.clone())
        .collect();
    let differ: Vec<String> = (0..headline.len().max(expected.len()))
        .filter(|&i| headline.get(i) != expected.get(i))
        .map(|i| {
            let show = |r: Option<&String>| r.map_or("(none)".to_owned(), String::clone);
            format!(
                "  row {}:\n    README.md:       {}\n    docs/results.md: {}",
                i + 1,
                show(headline.get(i)),
                show(expected.get(i))
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "README.md's headline table is not the basic_motions rows of docs/results.md's results \
         table (run examples/results.py, which writes both):\n{}",
        differ.join("\n")
    );

    let rows = block(&readme, "bench-headline", "README.md");
    let measured = block(&bench, "bench", "docs/benchmark-tables.md");
    assert!(
        rows.len() > 2,
        "README.md: the bench-headline block is empty"
    );
    for row in &rows {
        assert!(
            measured.contains(row),
            "README.md: this benchmark row is not a row of docs/benchmark-tables.md (copy the \
             current one):\n{row}"
        );
    }

    let rows = block(&readme, "model-headline", "README.md");
    let measured = block(
        &read("docs/benchmark-models.md"),
        "bench",
        "docs/benchmark-models.md",
    );
    assert!(
        rows.len() > 2,
        "README.md: the model-headline block is empty"
    );
    for row in &rows {
        assert!(
            measured.contains(row),
            "README.md: this model row is not a row of docs/benchmark-models.md (copy the \
             current one):\n{row}"
        );
    }

    // The smallest-part table: bench/footprint.py writes the Cortex-M4 rows of
    // docs/footprint.md's table into README.md in the same run.
    let rows = block(&readme, "parts", "README.md");
    let measured = block(&read("docs/footprint.md"), "parts", "docs/footprint.md");
    assert!(rows.len() > 2, "README.md: the parts block is empty");
    for row in &rows {
        assert!(
            measured.contains(row),
            "README.md: this smallest-part row is not a row of docs/footprint.md (run \
             bench/footprint.py --markdown docs/footprint.md --readme README.md):\n{row}"
        );
    }
}

/// What the marker above a shell block asks.
#[derive(Debug)]
enum Marker {
    Skip,
    Run { exit: i32, expect: Vec<String> },
}

/// A shell block: where it is, its marker and its command text.
struct Block {
    place: String,
    marker: Marker,
    command: String,
}

fn parse_marker(line: &str) -> Result<Marker, String> {
    let body = line
        .trim()
        .strip_prefix("<!-- doc-test:")
        .and_then(|s| s.strip_suffix("-->"))
        .ok_or("no `<!-- doc-test: ... -->` marker on the line above")?
        .trim();
    if let Some(why) = body.strip_prefix("skip") {
        return match why.trim_start().strip_prefix(':') {
            Some(w) if !w.trim().is_empty() => Ok(Marker::Skip),
            _ => Err("`skip` needs a reason: `<!-- doc-test: skip: WHY -->`".into()),
        };
    }
    let mut parts = body.split(';').map(str::trim);
    if parts.next() != Some("run") {
        return Err(format!("marker `{body}`: expected `run` or `skip: WHY`"));
    }
    let (mut exit, mut expect) = (0, Vec::new());
    for part in parts {
        if let Some(code) = part.strip_prefix("exit ") {
            exit = code
                .trim()
                .parse()
                .map_err(|_| format!("marker `{body}`: bad exit code `{code}`"))?;
        } else if let Some(text) = part
            .strip_prefix("expect \"")
            .and_then(|t| t.strip_suffix('"'))
        {
            expect.push(text.to_owned());
        } else {
            return Err(format!(
                "marker `{body}`: `{part}` is neither `exit N` nor `expect \"TEXT\"`"
            ));
        }
    }
    Ok(Marker::Run { exit, expect })
}

/// Every `sh`/`bash`/`shell` block of the documents, or the list of problems with the markers.
fn shell_blocks() -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut problems = String::new();
    for (name, text) in documents() {
        let all = lines(&text);
        let mut i = 0;
        while i < all.len() {
            let info = all[i].text.trim_start().strip_prefix("```").map(str::trim);
            if !(all[i].opens && matches!(info, Some("sh" | "bash" | "shell"))) {
                i += 1;
                continue;
            }
            let place = format!("{name}:{}", all[i].number);
            let above = if i > 0 { all[i - 1].text } else { "" };
            let mut command = String::new();
            let mut j = i + 1;
            while j < all.len() && all[j].text.trim() != "```" {
                command.push_str(all[j].text);
                command.push('\n');
                j += 1;
            }
            match parse_marker(above) {
                Ok(marker) => blocks.push(Block {
                    place,
                    marker,
                    command,
                }),
                Err(e) => {
                    let _ = writeln!(problems, "{place}: shell block: {e}");
                }
            }
            i = j + 1;
        }
    }
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

#[test]
fn every_shell_block_is_marked() {
    let blocks = shell_blocks().unwrap_or_else(|p| panic!("unmarked shell blocks:\n{p}"));
    assert!(
        blocks
            .iter()
            .any(|b| matches!(b.marker, Marker::Run { .. })),
        "no shell block is marked `run`"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The last `n` lines of a command's output, for a failure message.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn marked_commands_run() {
    let blocks = shell_blocks().unwrap_or_else(|p| panic!("unmarked shell blocks:\n{p}"));
    let scratch = tempfile::tempdir().unwrap();
    // `kpgen` on PATH is the binary under test.
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kpgen"), bin.join("kpgen")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = String::new();
    let mut ran = 0;
    for (k, block) in blocks.iter().enumerate() {
        let Marker::Run { exit, expect } = &block.marker else {
            continue;
        };
        let work = scratch.path().join(format!("block{k}"));
        copy_dir(
            &repo().join("examples/basic_motions"),
            &work.join("examples/basic_motions"),
        );
        let command = block
            .command
            .replace("cargo run --release -p kpgen --", "kpgen");
        let out = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &command])
            .current_dir(&work)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot start bash: {e}", block.place));
        ran += 1;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        let mut wrong = Vec::new();
        if code != *exit {
            wrong.push(format!("exit code {code}, expected {exit}"));
        }
        for e in expect {
            if !text.contains(e.as_str()) {
                wrong.push(format!("output lacks \"{e}\""));
            }
        }
        if !wrong.is_empty() {
            let _ = writeln!(
                failures,
                "{}: {}\n  command:\n{}  output (last 30 lines):\n{}\n",
                block.place,
                wrong.join("; "),
                block.command,
                tail(&text, 30)
            );
        }
    }
    assert!(ran > 0, "no command marked `run`");
    assert!(
        failures.is_empty(),
        "documented commands failed:\n{failures}"
    );
}
