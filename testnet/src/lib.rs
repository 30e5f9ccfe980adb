//! A local federation of real `threatmesh` processes on loopback, its scenarios and its
//! benchmark report.
//!
//! Empty until the node binary exists.
