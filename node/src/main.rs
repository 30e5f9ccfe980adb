//! `threatmesh`: the node of a threat-intelligence federation. See `threatmesh --help`.

/// mimalloc: the node builds and drops many small values (JSON objects for TAXII and
/// exports, decoded items), which glibc's allocator serves slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    threatmesh_node::cli::main()
}
