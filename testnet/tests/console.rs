//! The analyst's web console (`/ui/`) in a real browser, on a two-node testnet: headless
//! Chromium driven through its chromedriver by Selenium (`tests/python/console.py`).
//! Signing in (a wrong token refused), searching values both organisations assert,
//! publishing through the form and finding it on the other node's console, a STIX upload
//! that is a dry run until confirmed, sealed entries, markup a member publishes shown as
//! text, an expired session that keeps the publish form, cross-site form posts refused,
//! and every page reached with the keyboard alone. Every page is photographed at a laptop
//! and a phone width into `console-screenshots/` in the target directory (git ignores it)
//! for a person to look at, and checked at both with axe-core: serious and critical
//! violations fail the test, as does a page wider than the phone.
//!
//! Needs Chromium and its chromedriver (Debian: `apt-get install chromium
//! chromium-driver`, which `.ci/run` does) and the Python venv `scripts/test` sets up
//! (selenium, and selenium-axe-python for axe-core). Without them the test fails, saying
//! how to get them: it never passes by skipping.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

/// The scenarios of `console.py`, each a function there; every one must have run.
const SCENARIOS: [&str; 11] = [
    "sign_in_refuses_a_wrong_token",
    "overview_and_activity_show_the_federation",
    "search_shows_both_organisations",
    "publish_form_reaches_the_other_node",
    "stix_upload_is_dry_run_first",
    "recent_filters_and_sealed_entries",
    "published_markup_is_shown_as_text",
    "expired_session_keeps_the_publish_form",
    "cross_site_form_posts_are_refused",
    "keyboard_alone_reaches_every_page",
    "read_token_sees_everything_and_publishes_nothing",
];

/// The console's pages the scenarios photograph and check, by the names they give them.
const PAGES: [&str; 20] = [
    "signin",
    "signin-refused",
    "overview",
    "activity",
    "search",
    "search-results",
    "publish",
    "publish-error",
    "published",
    "search-published",
    "import-dry-run",
    "imported",
    "recent",
    "recent-filtered",
    "hostile-search",
    "hostile-recent",
    "signed-out",
    "session-expired-signin",
    "session-restored-publish",
    "read-only-overview",
];

/// `variable`, or the first of `names` on `PATH`, checked to run `--version`. Fails the
/// test, saying how to install Chromium and chromedriver, when it cannot.
fn program(variable: &str, names: &[&str]) -> PathBuf {
    let found = std::env::var_os(variable).map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    let runs = found.as_ref().is_some_and(|program| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    });
    let what = found.as_ref().map_or_else(
        || format!("no {} on PATH", names.join(" or ")),
        |program| format!("{} does not run `--version`", program.display()),
    );
    assert!(
        runs,
        "{what}: the console's browser tests need Chromium and its chromedriver. On Debian \
         install them with `apt-get install chromium chromium-driver` (.ci/run does); \
         elsewhere set THREATMESH_CHROMIUM and THREATMESH_CHROMEDRIVER to a Chromium and the \
         chromedriver of its version"
    );
    found.expect("checked just above")
}

/// `console-screenshots/` in the target directory, emptied: last run's pictures would
/// pass for this run's.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is the target directory's tmp/")
        .join("console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What went wrong, for a person: each failed scenario and page problem, then where the
/// pictures are and the end of the script's log.
fn explain(failures: &Map<String, Value>, problems: &[Value], shots: &Path, log: &str) -> String {
    let mut text = String::new();
    for (scenario, why) in failures {
        text += &format!(
            "scenario {scenario} failed: {}\n\n",
            why.as_str().unwrap_or("")
        );
    }
    for problem in problems {
        text += &format!("page problem: {}\n", problem.as_str().unwrap_or(""));
    }
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    text += &format!(
        "\nscreenshots of every page (and FAILED-* for the pages a scenario failed on) are \
         in {}\n\nconsole.py's log, last lines:\n{tail}",
        shots.display()
    );
    text
}

#[test]
fn analyst_console_works_across_the_mesh_in_a_real_browser() {
    let python = support::python("selenium, selenium_axe_python");
    let chromium = program("THREATMESH_CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = program("THREATMESH_CHROMEDRIVER", &["chromedriver"]);
    let shots = screenshots();
    let dir = tempfile::tempdir().unwrap();
    let testnet = support::up(2, &dir.path().join("work"));
    let nodes: Value =
        serde_json::from_str(&std::fs::read_to_string(&testnet.json).unwrap()).unwrap();
    let (a, b) = (&nodes[0]["organisation"], &nodes[1]["organisation"]);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(python)
        .arg(manifest.join("tests/python/console.py"))
        .arg(&testnet.json)
        .arg("--chromium")
        .arg(&chromium)
        .arg("--chromedriver")
        .arg(&chromedriver)
        .arg("--screenshots")
        .arg(&shots)
        .arg("--stix")
        .arg(manifest.join("../tests/fixtures/stix/indicator-for-c2-ip-address.json"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(printed.trim()).unwrap_or_else(|error| {
        panic!("console.py printed no report ({error}):\n{printed}\n{log}")
    });
    let failures = report["failures"].as_object().unwrap();
    let problems = report["page_problems"].as_array().unwrap();
    assert!(
        failures.is_empty() && problems.is_empty(),
        "{}",
        explain(failures, problems, &shots, &log)
    );
    assert!(output.status.success(), "{printed}\n{log}");

    let seen = &report["scenarios"];
    for scenario in SCENARIOS {
        assert!(
            seen[scenario].is_object(),
            "{scenario} did not run: {report:#}"
        );
    }
    // Every page was checked, and photographed at both widths.
    for page in PAGES {
        let checked = &report["pages"][page];
        assert!(
            checked.is_object(),
            "page {page} was not checked: {report:#}"
        );
        for width in ["laptop", "phone"] {
            let file = checked[width]["screenshot"].as_str().unwrap();
            assert!(shots.join(file).is_file(), "no screenshot {file}");
        }
    }

    let sign_in = &seen["sign_in_refuses_a_wrong_token"];
    assert_eq!(sign_in["unsigned_lands_on"], "/ui/signin");
    assert_eq!(
        sign_in["refusals"].as_array().unwrap().len(),
        2,
        "{sign_in}"
    );
    assert_eq!(sign_in["after_refusal_lands_on"], "/ui/signin");
    assert_eq!(sign_in["signed_in_lands_on"], "/ui/overview");
    assert_eq!(
        sign_in["cookie"],
        json!({"http_only": true, "same_site": "Strict"})
    );
    assert_eq!(sign_in["cookie_readable_by_script"], false);

    let overview = &seen["overview_and_activity_show_the_federation"];
    assert_eq!(overview["federation"], "Testnet federation");
    let members = overview["members"].as_object().unwrap();
    assert_eq!(members.len(), 2, "{overview}");
    assert_eq!(members[b.as_str().unwrap()], "yes", "{overview}");
    assert_eq!(overview["connection_to_b_listed"], true);

    // B's console shows A's and B's own assertion of one value, each as published.
    let search = &seen["search_shows_both_organisations"];
    let rows = &search["rows"];
    assert_eq!(rows.as_object().unwrap().len(), 2, "{search}");
    assert_eq!(rows[a.as_str().unwrap()]["confidence"], "70", "{search}");
    assert_eq!(rows[b.as_str().unwrap()]["confidence"], "40", "{search}");
    assert_eq!(search["csv_rows_with_value"], 2, "{search}");

    let publish = &seen["publish_form_reaches_the_other_node"];
    assert_eq!(publish["entry_shown"], true, "{publish}");
    assert_eq!(publish["on_b"]["green"]["org"], *a, "{publish}");
    assert_eq!(publish["on_b"]["red"]["org"], *a, "{publish}");

    let upload = &seen["stix_upload_is_dry_run_first"];
    assert!(
        upload["dry_run"].as_str().unwrap().contains('1'),
        "{upload}"
    );

    let recent = &seen["recent_filters_and_sealed_entries"];
    assert_eq!(recent["sealed_names_recipient"], true, "{recent}");
    assert_eq!(recent["secret_shown"], false, "{recent}");
    assert_eq!(recent["filtered"], json!([[a, "clear"]]), "{recent}");

    // Script, javascript: links and handlers a member published stay text on B's pages.
    let hostile = &seen["published_markup_is_shown_as_text"];
    for page in ["search", "recent"] {
        assert_eq!(hostile[page]["xss"], Value::Null, "{hostile}");
        assert_eq!(hostile[page]["made"], json!([]), "{hostile}");
    }
    assert_eq!(hostile["context_literal"], true, "{hostile}");

    let session = &seen["expired_session_keeps_the_publish_form"];
    // The sign-in form answers the post at its own address, so it can carry the form.
    assert_eq!(session["expired_post_lands_on"], "/ui/publish", "{session}");
    assert_eq!(
        session["signed_in_again_lands_on"], "/ui/publish",
        "{session}"
    );
    assert_eq!(session["kept"], true, "{session}");
    assert_eq!(session["published_after"], true, "{session}");

    let cross_site = &seen["cross_site_form_posts_are_refused"];
    for attempt in ["another-port", "another-site"] {
        assert_eq!(cross_site[attempt]["published"], false, "{cross_site}");
    }
    assert_eq!(cross_site["still_signed_in"], true, "{cross_site}");
    assert_eq!(
        cross_site["forged_values_offered"],
        json!([]),
        "{cross_site}"
    );

    let keyboard = &seen["keyboard_alone_reaches_every_page"];
    let followed: Vec<&str> = keyboard["followed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["link"].as_str().unwrap())
        .collect();
    assert_eq!(
        followed,
        [
            "nav-search",
            "nav-recent",
            "nav-publish",
            "nav-activity",
            "nav-overview"
        ]
    );
    assert_eq!(keyboard["signed_out"], true);

    let read_only = &seen["read_token_sees_everything_and_publishes_nothing"];
    assert_eq!(read_only["lands_on"], "/ui/overview", "{read_only}");
    assert_eq!(read_only["published"], false, "{read_only}");
}
