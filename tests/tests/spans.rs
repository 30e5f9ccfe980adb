//! Each node logs inside its own `node` span (`node = <end of its peer id>`), so the
//! interleaved log of several nodes in one process splits by node.

use std::io::Write;
use std::sync::{Arc, Mutex};

use threatmesh_node::network::RELAY_TARGET;
use threatmesh_node::short_peer_id;
use threatmesh_tests::TestNet;

/// The log lines written so far, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("no writer panicked")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("a writer panicked"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn four_nodes_log_each_in_its_own_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Before the test net starts, so its own `try_init` leaves this subscriber in place.
    // The relay line is a debug line from the ingest pipeline's blocking threads.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "threatmesh_node=info,{RELAY_TARGET}=debug"
        )))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();

    let net = TestNet::line(4).await.unwrap();
    let ids = net.nodes[0].publish(0, 3).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    let log = captured.text();

    for (index, node) in net.nodes.iter().enumerate() {
        let span = format!("node{{node={}}}", short_peer_id(&node.client.peer_id()));
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(&span)).collect();
        // The composition root, the event loop and the mesh each said something in it.
        for said in ["node running", "listening", "peer connected"] {
            assert!(
                lines.iter().any(|line| line.contains(said)),
                "no {said:?} in span {span}:\n{log}"
            );
        }
        // So did the ingest pipeline of each node the entries reached by gossip.
        if index > 0 {
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains(RELAY_TARGET) && line.contains("forwarding")),
                "no relay line in span {span}:\n{log}"
            );
        }
    }
    // And the event loop, the ingest pipeline, the API and the tasks beside them log
    // nowhere else.
    let outside: Vec<&str> = log
        .lines()
        .filter(|line| {
            (line.contains("threatmesh_node") || line.contains(RELAY_TARGET))
                && !line.contains("node{node=")
        })
        .collect();
    assert!(
        outside.is_empty(),
        "lines outside a node span:\n{}",
        outside.join("\n")
    );
}
