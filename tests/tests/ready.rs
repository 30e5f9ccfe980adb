//! `/readyz` on real nodes: a node linked to another member is ready, and stops being
//! ready while its store refuses writes, though it stays alive (`/healthz`).

use anyhow::Result;
use threatmesh_tests::{TestNet, http_get};

/// Status and JSON body of `path`.
async fn get(api: std::net::SocketAddr, path: &str) -> Result<(u16, serde_json::Value)> {
    let (status, body) = http_get(api, path).await?;
    Ok((status, serde_json::from_str(&body)?))
}

#[tokio::test]
async fn a_connected_node_is_ready_until_its_store_refuses_writes() -> Result<()> {
    let net = TestNet::line(2).await?;
    let node = &net.nodes[0];
    let api = node.api();
    let (status, body) = get(api, "/readyz").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["peers"], 1, "{body}");
    assert_eq!(body["failing"], serde_json::json!([]), "{body}");

    // The disk falls under the reserve: writes are refused, and readiness says so.
    node.store.set_reserve(u64::MAX);
    let (status, body) = get(api, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(
        body["failing"][0]["condition"], "store-refuses-writes",
        "{body}"
    );
    assert_eq!(body["failing"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, _) = http_get(api, "/healthz").await?;
    assert_eq!(status, 200, "the node is still alive");

    // Space is back: ready again.
    node.store.set_reserve(0);
    let (status, body) = get(api, "/readyz").await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
