//! `demo`: the first member publishes a sample of C2 indicators; the demo shows it
//! arriving at every node of the testnet `up` started, and what each node then answers.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::{Testnet, get, post, wait};

/// The sample bundle: C2 infrastructure as a CERT would report it, defanged.
fn sample() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let indicator = |kind: &str, value: &str| {
        json!({ "type": "indicator", "kind": kind, "value": value, "valid_from": now,
                "confidence": 85, "labels": ["c2"],
                "context": { "threat": "QakBot", "kill_chain_phase": "command-and-control" } })
    };
    // Documentation addresses (RFC 5737) stand in for real C2 servers; they are on the
    // default warninglists (RFC 5735), so the demo says to publish them all the same.
    json!({ "tlp": "green", "ignore_warninglists": true, "items": [
        indicator("ipv4", "198.51.100[.]23"),
        indicator("ipv4", "203.0.113[.]77"),
        indicator("domain", "update-check[.]example"),
        indicator("url", "hxxp://update-check[.]example/gate.php"),
        indicator("sha256", "5f2b1c9a0e3d4b6a8c7e9f1d2b3a4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e"),
    ]})
}

/// Publishes the sample from the first member, shows it reach every node and what each
/// node answers about two of its values.
pub(crate) fn run(testnet: &Testnet) -> Result<()> {
    let Some(publisher) = testnet.nodes.first() else {
        return Ok(());
    };
    println!(
        "\n{} publishes 5 C2 indicators (TLP:GREEN) ...",
        publisher.name
    );
    let started = Instant::now();
    post(publisher, "/api/v1/publish", &sample())?;
    let mut arrived: Vec<Option<Duration>> = vec![None; testnet.nodes.len()];
    wait("the sample to reach every node", || {
        for (index, node) in testnet.nodes.iter().enumerate() {
            if arrived[index].is_none() {
                let answer = get(node, "/api/v1/indicators/ipv4/198.51.100.23")?;
                if answer["known"] == true {
                    arrived[index] = Some(started.elapsed());
                }
            }
        }
        Ok(arrived.iter().all(Option::is_some))
    })?;
    for (node, time) in testnet.nodes.iter().zip(&arrived) {
        let millis = time.map_or(0, |time| time.as_millis());
        println!(
            "  known at {:<15} after {millis:>5} ms (as polled over HTTP)",
            node.name
        );
    }
    println!("\nWhat each node answers about update-check.example and 192.0.2.1:");
    let name_of = |org: &str| {
        testnet
            .nodes
            .iter()
            .find(|node| node.org == org)
            .map_or_else(|| org.chars().take(8).collect(), |node| node.name.clone())
    };
    for node in &testnet.nodes {
        let answer = post(
            node,
            "/api/v1/lookup",
            &json!({ "values": ["update-check.example", "192.0.2.1"] }),
        )?;
        let found = answer["found"].as_array().cloned().unwrap_or_default();
        let describe = |value: &str| {
            found
                .iter()
                .find(|lookup| lookup["value"]["value"] == value)
                .and_then(|lookup| {
                    lookup["assertions"]
                        .as_array()
                        .and_then(|a| a.first())
                        .cloned()
                })
                .map_or_else(
                    || "unknown".to_owned(),
                    |assertion| {
                        format!(
                            "{} ({}, asserted by {})",
                            assertion["state"]["state"].as_str().unwrap_or("?"),
                            assertion["context"]["threat"]
                                .as_str()
                                .unwrap_or("no threat named"),
                            name_of(assertion["org"].as_str().unwrap_or_default()),
                        )
                    },
                )
        };
        println!(
            "  {:<15} update-check.example: {}; 192.0.2.1: {}",
            node.name,
            describe("update-check.example"),
            describe("192.0.2.1")
        );
    }
    Ok(())
}
