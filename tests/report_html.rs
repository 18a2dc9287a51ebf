//! report.html, as a person sees it: written for every build, it names every matrix with its
//! form and chosen order, carries inline SVG charts and no external resource or script, shows
//! what `kpgen test` measured, and renders in headless Chromium to a page that is not blank
//! with no console errors. Fails, never skips, without Chromium (`ci/setup` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kpgen(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kpgen"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kpgen {args:?}:\n{text}");
    text
}

fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("no headless Chromium: ci/setup installs Debian's `chromium`")
}

/// Renders `page` in headless Chromium; returns the screenshot's share of non-white pixels
/// and Chromium's log.
fn render(page: &Path, dir: &Path) -> (f64, String) {
    let shot = dir.join("shot.png");
    let profile = dir.join("profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed:\n{log}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    (inked as f64 / (pixels.len() / channels) as f64, log)
}

#[test]
fn every_build_writes_a_self_contained_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = repo().join("examples/basic_motions/dkp/spec.yaml");
    kpgen(&[
        "build",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for layer in report["layers"].as_array().unwrap() {
        for m in layer["matrices"].as_array().unwrap() {
            let field = m["field"].as_str().unwrap();
            let form = m["form"].as_str().unwrap();
            assert!(
                html.contains(&format!("<td>{field}</td>")),
                "{field} missing"
            );
            assert!(html.contains(&format!("<td>{form}</td>")), "{form} missing");
        }
    }
    assert!(
        html.contains("RightFirst") || html.contains("LeftFirst"),
        "no order shown"
    );
    assert!(html.matches("<svg").count() >= 2, "charts missing");
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "external resource or script: {external}"
        );
    }
    // The only URL is the SVG namespace.
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );
}

#[test]
fn the_measured_report_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = repo().join("examples/basic_motions/kp/spec.yaml");
    kpgen(&[
        "test",
        spec.to_str().unwrap(),
        "--precision",
        "int8",
        "--count",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Measured by kpgen test"),
        "no measured section"
    );
    assert!(html.contains("Instructions per step"), "no measured chart");
    assert!(html.contains("Quantization"), "no quantization section");
    let (inked, log) = render(&page, dir.path());
    assert!(
        inked > 0.02,
        "the page looks blank ({:.1}% inked)",
        100.0 * inked
    );
    for line in log.lines() {
        assert!(
            !(line.contains("CONSOLE") && line.contains("rror")),
            "console error: {line}"
        );
    }
}
