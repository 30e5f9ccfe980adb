//! The report folder: one JSON file and one Markdown section per scenario, SVG plots, and
//! a `README.md` that links and gathers every section present.
//!
//! Each scenario writes its own files and then the index is rebuilt from what the folder
//! holds, so a folder filled by several runs (or by `--scenario all`) always has one
//! README covering all of them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

/// Every scenario's file stem and title, in the order the README shows them.
const SECTIONS: [(&str, &str); 7] = [
    ("idle", "Idle"),
    ("propagation", "Propagation"),
    ("throughput", "Throughput"),
    ("catch-up", "Catch-up"),
    ("churn", "Churn"),
    ("partition", "Partition and heal"),
    ("intruder", "Intruder"),
];

/// Writes `stem.json` and `stem.md` into `folder`, then rebuilds its `README.md`.
/// `markdown` is the section's body; a heading and the machine's load are added here.
pub(super) fn write(
    folder: &Path,
    stem: &str,
    json: &impl Serialize,
    markdown: &str,
) -> Result<()> {
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::write(
        folder.join(format!("{stem}.json")),
        serde_json::to_string_pretty(json)?,
    )?;
    let title = SECTIONS
        .iter()
        .find(|(name, _)| *name == stem)
        .map_or(stem, |(_, title)| title);
    let section = format!(
        "## {title}\n\n{}\n\nMachine: {} cores, load average {} when the section was written. \
         Data: `{stem}.json`.\n",
        markdown.trim_end(),
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average(),
    );
    std::fs::write(folder.join(format!("{stem}.md")), section)?;
    write_index(folder)
}

/// `README.md`: links to every section the folder holds, then the sections themselves.
fn write_index(folder: &Path) -> Result<()> {
    let mut links = String::new();
    let mut body = String::new();
    for (stem, title) in SECTIONS {
        let Ok(section) = std::fs::read_to_string(folder.join(format!("{stem}.md"))) else {
            continue;
        };
        let _ = writeln!(links, "- [{title}]({stem}.md)");
        let _ = writeln!(body, "{section}");
    }
    let readme = format!(
        "# threatmesh testnet: benchmark report\n\n\
         Real `threatmesh` processes on loopback, on one machine; figures include whatever \
         else the machine was doing (see each section's load average).\n\n{links}\n{body}"
    );
    std::fs::write(folder.join("README.md"), readme)?;
    Ok(())
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// A Markdown table: a header row and rows of cells.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// A progress bar on standard error when it is a terminal, hidden otherwise.
pub(crate) fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}"))
    {
        bar.set_style(style);
    }
    bar
}
