//! Intruder: a node that is not a member tries to get the federation's data.
//!
//! The node software starts with any key: nothing in `run` checks that its own key is in
//! the charter (a node can be started before its organisation is admitted). So the
//! realistic attacker is the real node with a fresh key of its own, the federation's
//! genesis charter (it is not secret: it travels with every invitation) and every
//! member's address, dialling all of them. It starts before the members publish, and once
//! more afterwards, as a late joiner trying to catch up would. The members must refuse it
//! at connection time (their `connections_refused_total{reason="not-in-charter"}`
//! counter shows each refusal) and it must end up holding nothing. It also tries to
//! publish, which its own node refuses: its key is not certified. Only that refusal
//! counts as one (403, naming the uncertified node); no answer at all (the API down, a
//! timeout) fails the run.

use serde::Serialize;
use serde_json::json;

use anyhow::{Context as _, Result, bail};

use super::{BenchArgs, Random, publish, report, wait_for_entries};
use crate::{Answer, Node, get, post_answer, up, wait};

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    members: usize,
    entries_published: usize,
    /// Entries the intruder's store holds at the end (must be 0).
    intruder_entries: u64,
    /// Peers the intruder was connected to at the end.
    intruder_peers: u64,
    /// Whether the intruder's own node refused to publish for it.
    intruder_publish_refused: bool,
    /// Per member: connections refused because the peer is not in the charter.
    refused: Vec<Refused>,
}

#[derive(Debug, Serialize)]
struct Refused {
    member: String,
    not_in_charter: u64,
}

fn refusals(node: &Node) -> Result<u64> {
    Ok(
        get(node, "/api/v1/status")?["network"]["refused_not_in_charter"]
            .as_u64()
            .unwrap_or(0),
    )
}

/// Whether the node refused to publish because its own key is not certified: a 403 whose
/// error says so, not just any failure.
fn is_refused_as_uncertified(answer: &Answer) -> bool {
    answer.status == 403 && answer.error().contains("is not certified by any member")
}

/// Waits until every member refused at least one more connection than `before`.
fn wait_for_refusals(members: &[Node], before: &[u64]) -> Result<Vec<u64>> {
    wait("every member to refuse the intruder", || {
        for (member, before) in members.iter().zip(before) {
            if refusals(member)? <= *before {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    members.iter().map(refusals).collect()
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let testnet = up(&args.up)?;
    let members = &testnet.nodes;
    let Some(first) = members.first() else {
        bail!("no members");
    };
    let (dir, federation) = (first.dir.clone(), first.federation.clone());
    // Its own organisation and key, on the ports after the members'; never in the charter.
    crate::init(
        &dir,
        "intruder",
        args.up.base_port,
        members.len(),
        "INTRUDER",
        "XX",
    )?;
    let addresses: Vec<String> = members.iter().map(|node| node.p2p.clone()).collect();
    let before: Vec<u64> = members.iter().map(refusals).collect::<Result<_>>()?;
    let intruder = crate::start(&dir, "intruder", "INTRUDER".into(), &federation, &addresses)?;
    let before = wait_for_refusals(members, &before)?;
    println!("every member refused the intruder; members publish now");

    let mut random = Random::new(args.seed);
    let mut published = Vec::new();
    let bar = report::progress(args.entries as u64, "entries published");
    for number in 0..args.entries {
        let member = &members[random.below(members.len())];
        published.extend(publish(member, number, args.indicators)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let answer = post_answer(
        &intruder,
        "/api/v1/publish",
        &json!({ "tlp": "green", "items": super::ipv4_items(0, 1), "ignore_warninglists": true }),
    )
    .context("the intruder's node did not answer its publish")?;
    let intruder_publish_refused = is_refused_as_uncertified(&answer);
    if !intruder_publish_refused {
        println!(
            "the intruder's node answered its publish {} {}",
            answer.status, answer.body
        );
    }
    let total = published.len() as u64;
    wait_for_entries(members, total)?;

    // Again, now that there is history to catch up on.
    crate::stop(intruder);
    let intruder = crate::start(&dir, "intruder", "INTRUDER".into(), &federation, &addresses)?;
    let after = wait_for_refusals(members, &before)?;
    let status = get(&intruder, "/api/v1/status")?;
    let report = Report {
        scenario: "intruder",
        members: members.len(),
        entries_published: published.len(),
        intruder_entries: status["store"]["entries"].as_u64().unwrap_or(u64::MAX),
        intruder_peers: status["peers"].as_u64().unwrap_or(0),
        intruder_publish_refused,
        refused: members
            .iter()
            .zip(after)
            .map(|(member, not_in_charter)| Refused {
                member: member.name.clone(),
                not_in_charter,
            })
            .collect(),
    };
    crate::stop(intruder);
    let rows: Vec<Vec<String>> = report
        .refused
        .iter()
        .map(|refused| vec![refused.member.clone(), refused.not_in_charter.to_string()])
        .collect();
    let markdown = format!(
        "A node with its own key, not in the charter, given the genesis charter and every \
         member's address, ran while the members published {} entries of {} indicators, and \
         started again afterwards to catch up.\n\n\
         Entries the intruder holds at the end: **{}** (connected to {} peers). Its own node \
         refused to publish for it: {}.\n\n\
         Connections each member refused (peer not in the charter):\n\n{}",
        report.entries_published,
        args.indicators,
        report.intruder_entries,
        report.intruder_peers,
        report.intruder_publish_refused,
        report::table(&["member", "refused"], &rows),
    );
    let folder = super::folder(args);
    report::write(&folder, "intruder", &report, &markdown)?;
    println!(
        "intruder, {} members, {} entries published: the intruder holds {} entries; members refused it {} times",
        report.members,
        report.entries_published,
        report.intruder_entries,
        report.refused.iter().map(|r| r.not_in_charter).sum::<u64>(),
    );
    println!("report in {}", folder.display());
    if report.intruder_entries != 0 || !report.intruder_publish_refused {
        bail!(
            "the intruder got data or could publish: see {}",
            folder.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, error: &str) -> Answer {
        Answer {
            status,
            body: json!({ "error": error }),
        }
    }

    #[test]
    fn only_the_uncertified_refusal_counts_as_refused() {
        let refused = "this node may not publish: node 5a3c is not certified by any member";
        assert!(is_refused_as_uncertified(&answer(403, refused)));
        assert!(!is_refused_as_uncertified(&answer(503, "node stopped")));
        assert!(!is_refused_as_uncertified(&answer(
            403,
            "read token: writes are refused"
        )));
        assert!(!is_refused_as_uncertified(&answer(200, "")));
    }
}
