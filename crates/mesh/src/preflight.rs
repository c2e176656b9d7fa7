//! What the runtime needs from the machine, checked before anything is made, each
//! missing piece reported in one line that says what to do.

use std::process::{Command, Stdio};

use crate::error::{MeshError, Result};

/// The tools the runtime runs, with the Debian package that has each.
const TOOLS: [(&str, &str, &str); 4] = [
    ("ip", "-V", "iproute2"),
    ("iptables-restore", "--version", "iptables"),
    ("iptables", "--version", "iptables"),
    ("setpriv", "--version", "util-linux"),
];

/// Root, the tools, and network namespaces in the kernel.
pub fn check(command: &str) -> Result<()> {
    if !is_root() {
        return Err(MeshError::Preflight(format!(
            "weft {command} makes network namespaces, interfaces and iptables rules, which needs root: run `sudo weft {command} ...`"
        )));
    }
    let missing: Vec<(&str, &str)> = TOOLS
        .iter()
        .filter(|(tool, arg, _)| !runs(tool, arg))
        .map(|(tool, _, package)| (*tool, *package))
        .collect();
    if !missing.is_empty() {
        let tools: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
        let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        packages.dedup();
        return Err(MeshError::Preflight(format!(
            "weft {command} needs {} (not found): install them with `sudo apt-get install {}`",
            tools.join(", "),
            packages.join(" ")
        )));
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(MeshError::Preflight(
            "this kernel has no network namespaces (CONFIG_NET_NS): weft up needs a Linux kernel with them, as containers do".into(),
        ));
    }
    Ok(())
}

/// Whether this process runs as root (the owner of its /proc entry).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
