//! The last stage: generated files onto disk, without ever losing a file kpgen did not write.
//!
//! An output folder is kpgen's only when it holds kpgen's manifest ([`MANIFEST`]) and nothing but
//! the files that manifest lists, each unchanged since kpgen wrote it. Only such a folder (or an
//! empty one) is replaced. The new output is written into a temporary folder beside the target and
//! renamed into place, so the target is either the complete new output or what it was before.
//! Folders the build reads from (the spec's, every tensor's) and the working directory are never
//! an output: `--out` may not equal or contain them.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::emit::GeneratedFile;

/// The file kpgen writes into every output folder, listing what it wrote.
pub const MANIFEST: &str = ".kpgen-manifest.json";

/// The manifest's `written_by`: kpgen's claim on the folder.
const WRITTEN_BY: &str = "kpgen";

/// The marker kpgen puts into every work folder it creates (`kpgen test --work-dir`).
pub const WORK_MARKER: &str = ".kpgen-work";

/// Why an output could not be written. Every case leaves the target as it was.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl OutputError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            OutputError::Refused(_) => {
                Some("choose another --out (a new folder, or one kpgen wrote before)")
            }
            OutputError::Io { .. } => None,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OutputError {
    let what = what.into();
    move |source| OutputError::Io { what, source }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    written_by: String,
    about: String,
    /// Relative path → fingerprint of the contents kpgen wrote.
    files: BTreeMap<String, Fingerprint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fingerprint {
    bytes: u64,
    fnv1a64: String,
}

impl Fingerprint {
    /// FNV-1a: detects a file changed since kpgen wrote it. Not a security boundary (whoever
    /// can forge the manifest can delete the folder anyway), so no cryptographic hash needed.
    fn of(data: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint {
            bytes: data.len() as u64,
            fnv1a64: format!("{h:016x}"),
        }
    }
}

/// One file of an output folder as bytes: binary outputs (the `.npy` arrays of `kpgen test
/// --save-outputs`) go through the same manifest, checks and swap as generated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative, `/`-separated, plain names only.
    pub path: String,
    pub contents: Vec<u8>,
}

impl From<&GeneratedFile> for OutputFile {
    fn from(f: &GeneratedFile) -> Self {
        OutputFile {
            path: f.path.clone(),
            contents: f.contents.as_bytes().to_vec(),
        }
    }
}

/// The manifest text for `files` (deterministic: sorted, no dates).
fn manifest_text(files: &[OutputFile]) -> String {
    let manifest = Manifest {
        written_by: WRITTEN_BY.to_owned(),
        about: "kpgen replaces this folder on the next build only while it holds exactly these \
                files, unchanged; edit or add a file and kpgen will refuse to replace it"
            .to_owned(),
        files: files
            .iter()
            .map(|f| (f.path.clone(), Fingerprint::of(&f.contents)))
            .collect(),
    };
    serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n"
}

/// Writes `files` under `dir` (created as needed). Paths must be relative and plain.
pub fn write_tree(dir: &Path, files: &[GeneratedFile]) -> Result<(), OutputError> {
    let files: Vec<OutputFile> = files.iter().map(OutputFile::from).collect();
    write_files(dir, &files)
}

/// [`write_tree`] for bytes.
fn write_files(dir: &Path, files: &[OutputFile]) -> Result<(), OutputError> {
    for f in files {
        let rel = Path::new(&f.path);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(OutputError::Refused(format!(
                "internal error: generated file path `{}` is not a plain relative path",
                f.path
            )));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&path, &f.contents).map_err(io(format!("write {}", path.display())))?;
    }
    Ok(())
}

/// `path` made absolute with symbolic links resolved, for a path that need not exist yet: the
/// longest existing prefix is canonicalized and the rest (plain names only) appended.
fn resolve(path: &Path) -> Result<PathBuf, OutputError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io("read the current directory"))?
            .join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if existing.symlink_metadata().is_ok() {
            break;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    // A `..` or `.` after a missing folder cannot be resolved without creating it.
    let tail = abs.strip_prefix(existing).unwrap_or(Path::new(""));
    if !tail.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(OutputError::Refused(format!(
            "{}: `.` or `..` after a folder that does not exist",
            path.display()
        )));
    }
    let mut resolved = existing
        .canonicalize()
        .map_err(io(format!("resolve {}", existing.display())))?;
    for name in rest.iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

/// Why `out` may not be replaced, if it exists: `None` when it is absent, empty, or kpgen's.
fn ownership_problem(out: &Path) -> Result<Option<String>, OutputError> {
    let meta = match out.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("inspect {}", out.display()))(e)),
    };
    if !meta.is_dir() {
        return Ok(Some("exists and is not a folder".to_owned()));
    }
    let mut found = Vec::new();
    list_tree(out, Path::new(""), &mut found)?;
    if found.is_empty() {
        return Ok(None);
    }
    let manifest_path = out.join(MANIFEST);
    let manifest: Option<Manifest> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Manifest| m.written_by == WRITTEN_BY);
    let Some(manifest) = manifest else {
        return Ok(Some(format!(
            "exists, is not empty and holds no kpgen manifest ({MANIFEST}): it is not a previous \
             kpgen output, so kpgen will not replace it"
        )));
    };
    let mut foreign = Vec::new();
    let mut changed = Vec::new();
    for entry in &found {
        match entry {
            Entry::File(rel) if rel == MANIFEST => {}
            Entry::File(rel) => match manifest.files.get(rel) {
                Some(expected) => {
                    let data = std::fs::read(out.join(rel))
                        .map_err(io(format!("read {}/{rel}", out.display())))?;
                    if Fingerprint::of(&data) != *expected {
                        changed.push(rel.clone());
                    }
                }
                None => foreign.push(rel.clone()),
            },
            Entry::Other(rel) => foreign.push(rel.clone()),
            // A folder kpgen did not make (even an empty one) is the user's.
            Entry::Dir(rel) => {
                let prefix = format!("{rel}/");
                if !manifest.files.keys().any(|f| f.starts_with(&prefix)) {
                    foreign.push(format!("{rel}/"));
                }
            }
        }
    }
    let show = |v: &[String]| {
        let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            s += &format!(" and {} more", v.len() - 5);
        }
        s
    };
    let mut why = Vec::new();
    if !foreign.is_empty() {
        why.push(format!(
            "holds files kpgen did not write: {}",
            show(&foreign)
        ));
    }
    if !changed.is_empty() {
        why.push(format!(
            "holds files changed since kpgen wrote them: {}",
            show(&changed)
        ));
    }
    Ok((!why.is_empty()).then(|| {
        format!(
            "is a previous kpgen output but {}; kpgen replaces only what it wrote",
            why.join("; and ")
        )
    }))
}

enum Entry {
    File(String),
    Dir(String),
    /// A symbolic link, socket, device…: never kpgen's.
    Other(String),
}

/// Every entry under `dir`, without following symbolic links; paths relative, `/`-separated.
fn list_tree(dir: &Path, rel: &Path, found: &mut Vec<Entry>) -> Result<(), OutputError> {
    let here = dir.join(rel);
    let entries = std::fs::read_dir(&here).map_err(io(format!("list {}", here.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("list {}", here.display())))?;
        let kind = entry
            .file_type()
            .map_err(io(format!("inspect {}", entry.path().display())))?;
        let rel_path = rel.join(entry.file_name());
        let name = rel_path.to_string_lossy().replace('\\', "/");
        if kind.is_dir() {
            found.push(Entry::Dir(name));
            list_tree(dir, &rel_path, found)?;
        } else if kind.is_file() {
            found.push(Entry::File(name));
        } else {
            found.push(Entry::Other(name));
        }
    }
    Ok(())
}

/// Temporary folders to remove if the process is interrupted (see [`cleanup_on_interrupt`]).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers `path` for removal on interrupt until the returned guard is dropped.
pub fn remove_on_interrupt(path: &Path) -> PendingGuard {
    if let Ok(mut p) = PENDING.lock() {
        p.push(path.to_path_buf());
    }
    PendingGuard(path.to_path_buf())
}

/// Unregisters its path when dropped.
pub struct PendingGuard(PathBuf);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = PENDING.lock() {
            p.retain(|q| q != &self.0);
        }
    }
}

/// Removes every registered temporary folder: for a signal handler, before exiting.
pub fn cleanup_on_interrupt() {
    if let Ok(p) = PENDING.lock() {
        for path in p.iter() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Checks that `out` may become (or be replaced by) an output, without writing anything, and
/// returns it resolved. `protected` are the files and folders the build reads: `out` may not
/// equal or contain any of their folders, nor the current directory.
pub fn check_output(out: &Path, protected: &[PathBuf]) -> Result<PathBuf, OutputError> {
    // Checked before resolving, which would follow the link.
    if out
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(OutputError::Refused(format!(
            "{} is a symbolic link: give the folder it points to, or a new folder",
            out.display()
        )));
    }
    let target = resolve(out)?;
    if target.parent().is_none() || target.file_name().is_none() {
        return Err(OutputError::Refused(format!(
            "{} is the root of the file system",
            out.display()
        )));
    }
    let cwd = std::env::current_dir()
        .map_err(io("read the current directory"))?
        .canonicalize()
        .map_err(io("resolve the current directory"))?;
    if cwd.starts_with(&target) {
        return Err(OutputError::Refused(format!(
            "{} is or contains the current directory: kpgen will not replace it",
            out.display()
        )));
    }
    for p in protected {
        let folder = match resolve(p) {
            Ok(r) if r.is_dir() => r,
            Ok(r) => r.parent().map(Path::to_path_buf).unwrap_or(r),
            Err(_) => continue,
        };
        if folder.starts_with(&target) {
            return Err(OutputError::Refused(format!(
                "{} is or contains {}, which this build reads ({}): kpgen will not replace it",
                out.display(),
                folder.display(),
                p.display()
            )));
        }
    }
    if let Some(why) = ownership_problem(&target)? {
        return Err(OutputError::Refused(format!("{} {why}", out.display())));
    }
    Ok(target)
}

/// Writes `files` (plus the manifest) as the folder `out`, replacing a previous kpgen output,
/// after [`check_output`]. On any error `out` is as it was and nothing kpgen made is left
/// behind.
pub fn write_output(
    out: &Path,
    files: &[GeneratedFile],
    protected: &[PathBuf],
) -> Result<(), OutputError> {
    let files: Vec<OutputFile> = files.iter().map(OutputFile::from).collect();
    write_output_files(out, &files, protected)
}

/// [`write_output`] for files given as bytes, under the same rules: `out` is checked as
/// [`check_output`] does, staged in a temporary folder beside it and renamed into place.
pub fn write_output_files(
    out: &Path,
    files: &[OutputFile],
    protected: &[PathBuf],
) -> Result<(), OutputError> {
    let target = check_output(out, protected)?;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(OutputError::Refused(format!(
            "{} is the root of the file system",
            out.display()
        )));
    };

    // Folders created for the output are removed again if it cannot be written.
    let mut created = Vec::new();
    let mut missing = parent;
    while !missing.exists() {
        created.push(missing.to_path_buf());
        match missing.parent() {
            Some(p) => missing = p,
            None => break,
        }
    }
    let result = std::fs::create_dir_all(parent)
        .map_err(io(format!("create {}", parent.display())))
        .and_then(|()| stage_and_swap(&target, parent, name, files));
    if result.is_err() {
        for dir in &created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn stage_and_swap(
    target: &Path,
    parent: &Path,
    name: &std::ffi::OsStr,
    files: &[OutputFile],
) -> Result<(), OutputError> {
    let staged = tempfile::Builder::new()
        .prefix(".kpgen-out-")
        .tempdir_in(parent)
        .map_err(io(format!(
            "create a temporary folder in {}",
            parent.display()
        )))?;
    let _pending = remove_on_interrupt(staged.path());
    write_files(staged.path(), files)?;
    let manifest = OutputFile {
        path: MANIFEST.to_owned(),
        contents: manifest_text(files).into_bytes(),
    };
    write_files(staged.path(), std::slice::from_ref(&manifest))?;

    if target.exists() {
        // The old output goes to a fresh name first, so a failed swap can put it back.
        let aside = tempfile::Builder::new()
            .prefix(&format!(".kpgen-old-{}-", name.to_string_lossy()))
            .tempdir_in(parent)
            .map_err(io(format!(
                "create a temporary folder in {}",
                parent.display()
            )))?;
        let _pending_aside = remove_on_interrupt(aside.path());
        std::fs::rename(target, aside.path())
            .map_err(io(format!("move the old {} aside", target.display())))?;
        if let Err(e) = std::fs::rename(staged.path(), target) {
            let _ = std::fs::rename(aside.path(), target);
            return Err(io(format!("move the new output to {}", target.display()))(
                e,
            ));
        }
        // `aside` (now the old output) is removed when dropped.
        drop(aside);
    } else {
        std::fs::rename(staged.path(), target)
            .map_err(io(format!("move the new output to {}", target.display())))?;
    }
    // Renamed away: nothing left for the guard to delete.
    let _ = staged.keep();
    Ok(())
}

/// Writes one file the user named (`kpgen bench --json FILE`) through a uniquely named
/// temporary beside it and a rename: a reader never sees half a file, and no other file of the
/// user's (say `FILE.partial`) is touched.
pub fn write_file(path: &Path, text: &str) -> Result<(), OutputError> {
    use std::io::Write as _;
    if path.is_dir() {
        return Err(OutputError::Refused(format!(
            "{} is a folder: give a file name",
            path.display()
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut staged = tempfile::Builder::new()
        .prefix(".kpgen-")
        .tempfile_in(parent)
        .map_err(io(format!(
            "create a temporary file in {}",
            parent.display()
        )))?;
    staged
        .write_all(text.as_bytes())
        .map_err(io(format!("write {}", path.display())))?;
    staged
        .persist(path)
        .map_err(|e| io(format!("write {}", path.display()))(e.error))?;
    Ok(())
}

/// A Make-syntax dependency file (as `gcc -MD` writes, read by Make, Ninja and CMake's
/// `DEPFILE`): `targets` depend on `inputs`. Paths are made absolute; spaces, `#` and `$`
/// escaped as Make needs.
pub fn depfile_text(targets: &[PathBuf], inputs: &[PathBuf]) -> String {
    let escape = |p: &PathBuf| {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        abs.to_string_lossy()
            .replace('\\', "\\\\")
            .replace(' ', "\\ ")
            .replace('#', "\\#")
            .replace('$', "$$")
    };
    let mut text = targets.iter().map(escape).collect::<Vec<_>>().join(" ");
    text.push(':');
    let mut seen = Vec::new();
    for input in inputs {
        let e = escape(input);
        if !seen.contains(&e) {
            text.push_str(" \\\n  ");
            text.push_str(&e);
            seen.push(e);
        }
    }
    text.push('\n');
    text
}

/// Prepares `dir` as a kpgen work folder: created with kpgen's marker if missing, emptied if it
/// holds the marker, refused otherwise (a folder of the user's is never emptied).
pub fn claim_work_dir(dir: &Path) -> Result<(), OutputError> {
    match dir.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("inspect {}", dir.display()))(e)),
        Ok(m) if m.is_dir() && dir.join(WORK_MARKER).is_file() => {
            std::fs::remove_dir_all(dir).map_err(io(format!("clean {}", dir.display())))?;
        }
        Ok(_) => {
            return Err(OutputError::Refused(format!(
                "{} exists and is not a kpgen work folder (no {WORK_MARKER} in it): kpgen will \
                 not empty it",
                dir.display()
            )))
        }
    }
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    std::fs::write(
        dir.join(WORK_MARKER),
        "kpgen test builds firmware here and empties this folder before each build\n",
    )
    .map_err(io(format!("write {}", dir.join(WORK_MARKER).display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<GeneratedFile> {
        vec![
            GeneratedFile {
                path: "c/m.h".into(),
                contents: "header\n".into(),
            },
            GeneratedFile {
                path: "report.json".into(),
                contents: "{}\n".into(),
            },
        ]
    }

    #[test]
    fn a_fresh_folder_is_written_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/out");
        write_output(&out, &files(), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("c/m.h")).unwrap(),
            "header\n"
        );
        assert!(out.join(MANIFEST).is_file());
        // Replacing its own output works, and leaves no temporaries beside it.
        write_output(&out, &files(), &[]).unwrap();
        let siblings: Vec<_> = std::fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(siblings.len(), 1);
    }

    #[test]
    fn binary_files_are_fingerprinted_and_replaced_like_text() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("saved");
        let files = vec![OutputFile {
            path: "a.npy".into(),
            contents: vec![0x93, 0xff, 0x00, 0x80],
        }];
        write_output_files(&out, &files, &[]).unwrap();
        assert_eq!(std::fs::read(out.join("a.npy")).unwrap(), files[0].contents);
        write_output_files(&out, &files, &[]).unwrap();
        std::fs::write(out.join("a.npy"), [1u8]).unwrap();
        let err = write_output_files(&out, &files, &[]).unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
        assert_eq!(std::fs::read(out.join("a.npy")).unwrap(), [1u8]);
    }

    #[test]
    fn a_folder_with_a_report_json_of_the_users_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "mine").unwrap();
        std::fs::write(dir.path().join("spec.yaml"), "mine").unwrap();
        let err = write_output(dir.path(), &files(), &[]).unwrap_err();
        assert!(err.to_string().contains("no kpgen manifest"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("spec.yaml")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn added_or_edited_files_block_the_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_output(&out, &files(), &[]).unwrap();
        std::fs::write(out.join("c/notes.txt"), "mine").unwrap();
        let err = write_output(&out, &files(), &[]).unwrap_err();
        assert!(
            err.to_string().contains("did not write: c/notes.txt"),
            "{err}"
        );
        std::fs::remove_file(out.join("c/notes.txt")).unwrap();
        std::fs::write(out.join("c/m.h"), "edited").unwrap();
        let err = write_output(&out, &files(), &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("changed since kpgen wrote them: c/m.h"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("c/m.h")).unwrap(),
            "edited"
        );
    }

    #[test]
    fn folders_the_build_reads_are_protected() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("models/spec.yaml");
        std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
        std::fs::write(&spec, "x").unwrap();
        for out in [dir.path().join("models"), dir.path().to_path_buf()] {
            let err = write_output(&out, &files(), std::slice::from_ref(&spec)).unwrap_err();
            assert!(err.to_string().contains("which this build reads"), "{err}");
        }
        // Beside or below the spec's folder is fine.
        write_output(&dir.path().join("models/out"), &files(), &[spec]).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_folder_behind() {
        let dir = tempfile::tempdir().unwrap();
        let bad = vec![GeneratedFile {
            path: "../escape".into(),
            contents: String::new(),
        }];
        let out = dir.path().join("new/out");
        assert!(write_output(&out, &bad, &[]).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn depfiles_escape_what_make_reads_specially() {
        let text = depfile_text(
            &[PathBuf::from("/o/c/m.c")],
            &[
                PathBuf::from("/a b/s.yaml"),
                PathBuf::from("/x$#.npy"),
                PathBuf::from("/a b/s.yaml"),
            ],
        );
        assert_eq!(text, "/o/c/m.c: \\\n  /a\\ b/s.yaml \\\n  /x$$\\#.npy\n");
    }

    #[test]
    fn work_folders_are_emptied_only_when_kpgen_made_them() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("kp-c");
        claim_work_dir(&work).unwrap();
        std::fs::write(work.join("fw.elf"), "x").unwrap();
        claim_work_dir(&work).unwrap();
        assert!(!work.join("fw.elf").exists());
        let users = dir.path().join("mine");
        std::fs::create_dir(&users).unwrap();
        std::fs::write(users.join("keep"), "x").unwrap();
        assert!(claim_work_dir(&users).is_err());
        assert!(users.join("keep").exists());
    }
}
