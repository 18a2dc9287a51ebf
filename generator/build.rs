//! Embeds every target file of `targets/` in the binary, so adding a target is adding a file.
//! Writes `$OUT_DIR/builtin_targets.rs`: `(name, contents)` pairs in natural order, each
//! contents an `include_str!` of the file (Cargo reruns this when the folder changes).

use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../targets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".toml")?
                .to_owned();
            Some((name, path))
        })
        .collect();
    // Natural order (cortex-m4 before cortex-m33), as people list cores.
    entries.sort_by_key(|(name, _)| {
        let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
        let number: u32 = digits
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        (
            name[..name.len() - digits.len()].to_owned(),
            number,
            name.clone(),
        )
    });
    let mut out = String::from("&[\n");
    for (name, path) in &entries {
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out += &format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        );
    }
    out += "]\n";
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("builtin_targets.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}
