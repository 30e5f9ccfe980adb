//! `threatmesh`: the node of a threat-intelligence federation. See `threatmesh --help`.

fn main() -> std::process::ExitCode {
    threatmesh_node::cli::main()
}
