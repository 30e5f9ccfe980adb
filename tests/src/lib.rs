//! Multi-node integration tests and their helpers (`TestNet::line(n)`, `star(n)`, ...).
//!
//! Empty until the node has a network: the protocol's own tests live in `protocol/`.
