//! Talking to the testnet's nodes over their HTTP APIs, with their tokens: JSON in and
//! out, one timeout, and answers read whatever their status where a refusal is checked.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::Node;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Largest answer read from a node: a page of entries can be tens of megabytes.
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

pub(crate) fn get(node: &Node, path: &str) -> Result<Value> {
    let mut response = agent()
        .get(&format!("{}{path}", node.api))
        .header("Authorization", &format!("Bearer {}", node.token))
        .call()?;
    Ok(response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_json()?)
}

pub(crate) fn post(node: &Node, path: &str, body: &Value) -> Result<Value> {
    let mut response = agent()
        .post(&format!("{}{path}", node.api))
        .header("Authorization", &format!("Bearer {}", node.token))
        .send_json(body)?;
    Ok(response.body_mut().read_json()?)
}

/// A node's answer to a request, whatever its status: for checking a refusal itself.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The JSON body (`null` when there is none or it is not JSON).
    pub(crate) body: Value,
}

impl Answer {
    /// The `error` the node gave, if any.
    pub(crate) fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// `POST path` with `body`, returning the node's answer whatever its status; failing only
/// when there is no answer (the node is down, the request timed out).
pub(crate) fn post_answer(node: &Node, path: &str, body: &Value) -> Result<Answer> {
    let mut response = agent()
        .post(&format!("{}{path}", node.api))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", &format!("Bearer {}", node.token))
        .send_json(body)
        .with_context(|| format!("posting to {}{path}", node.api))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_json().unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

pub(crate) fn delete(node: &Node, path: &str) -> Result<()> {
    agent()
        .delete(&format!("{}{path}", node.api))
        .header("Authorization", &format!("Bearer {}", node.token))
        .call()?;
    Ok(())
}
