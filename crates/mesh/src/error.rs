//! The runtime's errors: each says what went wrong and what the user can do about it, in
//! one line (the CLI prints it as it is).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Not root, a tool or a kernel feature missing.
    #[error("{0}")]
    Preflight(String),
    /// A user's argument is unusable (a name, a label, a port, a subnet).
    #[error("{0}")]
    Invalid(String),
    #[error(
        "no mesh is running for the state directory {}: start one with `sudo weft up` \
         (run both with sudo, and with the same --state-dir or WEFT_STATE_DIR)",
        state.display()
    )]
    NotRunning { state: PathBuf },
    #[error(
        "a mesh is already running for {} (weft up, pid {pid}): stop it with Ctrl-C or \
         `weft down`, or use another --state-dir",
        state.display()
    )]
    AlreadyRunning { state: PathBuf, pid: u32 },
    #[error(
        "the mesh of {} runs in another network namespace ({mesh}, this is {here}): run \
         this command where `weft up` runs",
        state.display()
    )]
    OtherNetns {
        state: PathBuf,
        mesh: String,
        here: String,
    },
    #[error(
        "workload {namespace}/{name} is already running (see `weft ps`): pick another \
         --name or stop it first"
    )]
    Exists { namespace: String, name: String },
    #[error("no workload {namespace}/{name} in this mesh (see `weft ps`)")]
    NoSuchWorkload { namespace: String, name: String },
    #[error(
        "no free address left in the mesh subnet {0}: stop a workload or pick a larger --subnet"
    )]
    SubnetFull(String),
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the control plane at {addr}: {message}")]
    Api { addr: String, message: String },
    #[error("{what} did not become ready within {secs} s{detail}")]
    NotReady {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("{what} exited before it was ready{detail}")]
    Exited { what: String, detail: String },
}

impl MeshError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MeshError {
        let what = what.into();
        move |source| MeshError::Io { what, source }
    }
}

pub type Result<T, E = MeshError> = std::result::Result<T, E>;
