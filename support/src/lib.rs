//! What the workspace's tests and benchmarks share at run time, beside the data builders of
//! `threatmesh_protocol::testing`: a `threatmesh` node run as a process, waiting for
//! something with a deadline, and the Python the interoperability checks run.
//!
//! # Layout
//!
//! - [`process`]: [`process::Launch`] starts `threatmesh run` (optionally under a wrapper
//!   such as `heaptrack` or `unshare`) and gives a [`process::Node`] once the node has
//!   written its `endpoints.json`, with the API token read from its parsed configuration.
//! - [`wait`]: [`wait_for`], polling with a timeout that fails saying what it waited for.
//! - [`mod@python`]: [`python()`], the one policy for finding the venv's interpreter.
//!
//! The binary under test is a parameter: only a test or bench of `threatmesh-node` knows
//! where cargo built it (`env!("CARGO_BIN_EXE_threatmesh")`).

pub mod process;
pub mod python;
pub mod wait;

pub use python::python;
pub use wait::{TimedOut, try_wait_for, wait_for};
