//! The threatmesh node: everything that does I/O around the pure `threatmesh-protocol`.
//!
//! # Layout
//!
//! The node grows module by module (see `shared/ARCHITECTURE.md`, "Node inside"): `store`
//! (sled), `network` (libp2p), `api` (HTTP, TAXII 2.1), `formats` (STIX, MISP, CSV) and the
//! `threatmesh` binary. None of them is here yet; this crate exists so the workspace has
//! its final shape.
