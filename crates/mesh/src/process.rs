//! Starting and stopping the mesh's processes: inside a workload's network namespace
//! (`ip netns exec`, which also mounts /etc/netns/NS/resolv.conf and hosts), as the
//! proxy's UID 1337 or the invoking user (`setpriv`), output to a log file; stopped with
//! SIGTERM, then SIGKILL after a grace period.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{MeshError, Result};
use crate::state::Proc;

/// The UID Istio's capture rules exempt; sidecars run as it.
pub const PROXY_UID: u32 = 1337;

/// Who a process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Root,
    /// UID and GID 1337, no supplementary groups.
    Proxy,
    /// A user and their groups (the one who ran `sudo`).
    Id {
        uid: u32,
        gid: u32,
    },
}

impl User {
    /// The user who ran `sudo weft ...` (`SUDO_UID`/`SUDO_GID`), else root.
    pub fn invoking() -> User {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        match (var("SUDO_UID"), var("SUDO_GID")) {
            (Some(uid), Some(gid)) if uid != 0 => User::Id { uid, gid },
            _ => User::Root,
        }
    }
}

/// Where a process's output goes.
pub enum Output<'a> {
    /// Appended to this file.
    Log(&'a Path),
    /// To the caller's standard output and error as well as to this file (see
    /// [`tee_output`]).
    Tee(&'a Path),
}

/// What to start.
pub struct Launch<'a> {
    pub netns: Option<&'a str>,
    pub user: User,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub output: Output<'a>,
    /// Keep the caller's standard input (an interactive `weft run`).
    pub stdin: bool,
    /// In a process group of its own, so a Ctrl-C at the terminal reaches only `weft`,
    /// which stops things in order.
    pub own_group: bool,
}

/// The argv that runs `argv` in `netns` as `user`.
pub fn wrapped(netns: Option<&str>, user: User, argv: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        out.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    match user {
        User::Root => {}
        User::Proxy => out.extend([
            "setpriv".to_string(),
            format!("--reuid={PROXY_UID}"),
            format!("--regid={PROXY_UID}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ]),
        User::Id { uid, gid } => out.extend([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--init-groups".to_string(),
            "--".to_string(),
        ]),
    }
    out.extend(argv.iter().cloned());
    out
}

/// Starts a process. `ip netns exec` and `setpriv` exec the program, so the child's pid
/// is the program's.
pub fn spawn(launch: &Launch<'_>) -> Result<(Child, Proc)> {
    let argv = wrapped(launch.netns, launch.user, launch.argv);
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| MeshError::Invalid("no command to run".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(if launch.stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(false);
    if let Output::Tee(_) = launch.output {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if let Output::Log(path) = launch.output {
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(MeshError::io(format!(
                "cannot open the log {}",
                path.display()
            )))?;
        let err = file
            .try_clone()
            .map_err(MeshError::io("cannot share the log file"))?;
        cmd.stdout(file).stderr(err);
    }
    if launch.own_group {
        cmd.process_group(0);
    }
    let child = cmd.spawn().map_err(|e| MeshError::Command {
        command: argv.join(" "),
        detail: e.to_string(),
    })?;
    let pid = child.id().unwrap_or(0);
    let proc = Proc::of(pid).unwrap_or(Proc { pid, start: 0 });
    Ok((child, proc))
}

/// Copies a child's piped output (see [`Output::Tee`]) to our standard output and error
/// and to `log`, until it closes them.
pub fn tee_output(child: &mut Child, log: &Path) {
    use tokio::io::AsyncWrite;
    fn copy<R, W>(mut from: R, mut to: W, log: &Path)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let file = std::fs::File::options().append(true).create(true).open(log);
        tokio::spawn(async move {
            let mut file = file.ok().map(tokio::fs::File::from_std);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let _ = to.write_all(&buf[..n]).await;
                let _ = to.flush().await;
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(&buf[..n]).await;
                }
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        copy(out, tokio::io::stdout(), log);
    }
    if let Some(err) = child.stderr.take() {
        copy(err, tokio::io::stderr(), log);
    }
}

/// Sends `signal` to `proc` if it is still that process.
pub fn signal(proc: Proc, signal: rustix::process::Signal) {
    if !proc.alive() {
        return;
    }
    if let Some(pid) = i32::try_from(proc.pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

pub fn terminate(proc: Proc) {
    signal(proc, rustix::process::Signal::TERM);
}

pub fn kill(proc: Proc) {
    signal(proc, rustix::process::Signal::KILL);
}

/// Waits for a child of ours for up to `grace`; `None` if it still runs.
pub async fn wait_for(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    tokio::time::timeout(grace, child.wait())
        .await
        .ok()
        .and_then(|r| r.ok())
}

/// SIGTERM, up to `grace` to exit, then SIGKILL: a child of ours (reaped).
pub async fn stop_child(child: &mut Child, proc: Proc, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    terminate(proc);
    if let Some(status) = wait_for(child, grace).await {
        return Some(status);
    }
    let _ = child.start_kill();
    child.wait().await.ok()
}

/// SIGTERM, up to `grace` to exit, then SIGKILL: any process (one another `weft`
/// started, whose exit we cannot wait on, only watch).
pub async fn stop_proc(proc: Proc, grace: Duration) {
    if !proc.alive() {
        return;
    }
    terminate(proc);
    if !gone_within(proc, grace).await {
        kill(proc);
        gone_within(proc, Duration::from_secs(2)).await;
    }
}

/// Whether `proc` is gone within `limit` (checked every 50 ms).
pub async fn gone_within(proc: Proc, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while proc.alive() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The last `lines` lines of a log, indented, for an error message.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "; the end of its log ({}):\n    {}",
        path.display(),
        tail.join("\n    ")
    )
}
