//! The HTML report in a real browser: headless Chromium (Debian's `chromium`) loads the page
//! of a recorded run, the DOM it builds has the summary, the host sections and the SVG
//! timelines, and a screenshot is kept in target/test-artifacts/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::mp_remote;

fn chromium() -> PathBuf {
    let found = std::env::var_os("MP_TEST_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        });
    found.unwrap_or_else(|| {
        panic!(
            "headless Chromium is needed to check the HTML report and is not installed: \
             apt-get install chromium (.ci/run installs it), or set MP_TEST_CHROMIUM"
        )
    })
}

fn headless(profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--window-size=1280,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("cannot run chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    // A run with an ok host and an unreachable one (nothing listens on the port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inventory = dir.path().join("inv.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nknown_hosts = \"{}/known_hosts\"\nconnect_timeout = \"5s\"\n\n[[hosts]]\nname = \"local\"\nconnection = \"local\"\nroles = [\"nats\"]\n\n[[hosts]]\nname = \"gone\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = mp_remote(Some(&inventory), &["facts"]);
    assert_eq!(run.code, 3, "{run:?}");
    let page = dir.path().join("report.html");
    let report = mp_remote(
        Some(&inventory),
        &["report", "--format", "html", "-o", page.to_str().unwrap()],
    );
    assert_eq!(report.code, 0, "{report:?}");

    let profile = dir.path().join("chromium-profile");
    let dom = headless(&profile, &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "<h1>mp-remote facts <span class=\"badge unreachable\" id=\"result\">unreachable</span></h1>",
        "<table class=\"summary\">",
        "<a href=\"#host-local\">local</a>",
        "<section class=\"host\" id=\"host-local\">",
        "<section class=\"host\" id=\"host-gone\">",
        "<svg class=\"timeline\"",
        "<rect class=\"bar ok\"",
        "<rect class=\"bar unreachable\"",
        "<li class=\"failure\"><span class=\"badge unreachable\">unreachable</span> gone: ",
    ] {
        assert!(dom.contains(expected), "the DOM lacks {expected}:\n{dom}");
    }
    assert_eq!(dom.matches("<svg class=\"timeline\"").count(), 2, "{dom}");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report-html.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &profile,
        &[&format!("--screenshot={}", shot.display())],
        &page,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
