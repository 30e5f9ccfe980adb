//! `threatmesh`: the node of a threat-intelligence federation. See `threatmesh --help`.

threatmesh_node::node_allocator!();

fn main() -> std::process::ExitCode {
    threatmesh_node::cli::main()
}
