//! The control plane's state directory: where it is (`--state-dir`, `$WEFT_STATE_DIR`,
//! `$XDG_STATE_HOME/weft`, `~/.local/state/weft`) and the API token kept in it
//! (`api-token`, mode 0600, made at first start).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The token file's name inside the state directory.
pub const TOKEN_FILE: &str = "api-token";

/// The default state directory: `$WEFT_STATE_DIR`, else `$XDG_STATE_HOME/weft`, else
/// `~/.local/state/weft`; `None` when not even `$HOME` is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("WEFT_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("weft")))
        .or_else(|| var("HOME").map(|h| h.join(".local/state/weft")))
}

/// Creates the state directory (mode 0700) if it does not exist.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The API token, made (32 random bytes, hex) and written with mode 0600 if the state
/// directory has none yet.
pub fn ensure_token(dir: &Path) -> std::io::Result<String> {
    let path = dir.join(TOKEN_FILE);
    match read_token(dir) {
        Ok(token) => return Ok(token),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let token: String = crate::random::bytes(32)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(file, "{token}")?;
    Ok(token)
}

/// Reads the API token from the state directory.
pub fn read_token(dir: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(dir.join(TOKEN_FILE))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", dir.join(TOKEN_FILE).display()),
        ));
    }
    Ok(token.to_string())
}
