//! `threatmesh-testnet`: a federation of real `threatmesh` nodes on this machine.
//!
//! `up` creates a federation (a steward, one organisation per node, keys, a signed genesis
//! charter) in a work directory, starts one `threatmesh run` process per member on
//! loopback, waits for the mesh, prints who is where, and runs until Ctrl-C. `demo` does
//! the same, then publishes a sample from the first member and shows it arriving at every
//! node. The nodes are this same program run as `threatmesh` (`node ...`), so the testnet
//! runs exactly the code the `threatmesh` binary runs.

use std::process::ExitCode;

threatmesh_node::node_allocator!();

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let rest: Vec<_> = args.collect();
    // `threatmesh-testnet node ARGS...` is `threatmesh ARGS...`.
    if rest.first().is_some_and(|first| first == "node") {
        return threatmesh_node::cli::main_from(
            std::iter::once("threatmesh".into()).chain(rest.into_iter().skip(1)),
        );
    }
    match threatmesh_testnet::main_from(std::iter::once(program).chain(rest)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
