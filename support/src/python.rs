//! The Python the interoperability checks run (stix2-validator, PyMISP, taxii2-client,
//! Selenium), found one way everywhere: `$THREATMESH_PYTHON` if set, else the `.venv` that
//! `scripts/test` creates at the workspace root. A test that needs it and cannot find it
//! fails saying how to get it; it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that names the Python to use.
pub const VARIABLE: &str = "THREATMESH_PYTHON";

/// How to get a Python with the test packages, said by every error here.
const HOW: &str = "run ./scripts/test (it creates .venv with tests/python-requirements.txt), \
                   or set THREATMESH_PYTHON to a Python with those packages";

/// No usable Python for the checks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `THREATMESH_PYTHON` is unset and the workspace has no `.venv`.
    #[error("no Python for the interoperability checks: {THREATMESH_PYTHON} is unset and {venv} does not exist; {HOW}", THREATMESH_PYTHON = VARIABLE, venv = .venv.display())]
    Missing {
        /// Where the venv's interpreter was looked for.
        venv: PathBuf,
    },
    /// The Python found cannot import what a test needs.
    #[error("{} cannot import {modules}; {HOW}", .python.display())]
    Modules {
        /// The interpreter tried.
        python: PathBuf,
        /// The modules it was asked to import, comma-separated.
        modules: String,
    },
}

/// The workspace's `.venv` interpreter, where `scripts/test` puts it.
fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

/// The Python to run: `$THREATMESH_PYTHON` if set, else the workspace's `.venv`, else an
/// error saying how to set one up.
pub fn python() -> Result<PathBuf, Error> {
    if let Some(python) = std::env::var_os(VARIABLE) {
        return Ok(PathBuf::from(python));
    }
    let venv = venv();
    if venv.exists() {
        Ok(venv)
    } else {
        Err(Error::Missing { venv })
    }
}

/// [`python()`], checked to import `modules` (comma-separated, as after `import`).
pub fn python_importing(modules: &str) -> Result<PathBuf, Error> {
    let python = python()?;
    let found = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|status| status.success());
    if found {
        Ok(python)
    } else {
        Err(Error::Modules {
            python,
            modules: modules.to_owned(),
        })
    }
}
