//! `weft exec`, `weft ps` and `weft logs`: kubectl's exec, get pods and logs for the
//! one-host mesh, read from the workload records in the state directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Args;
use weft_mesh::inspect::{self, SidecarState};
use weft_mesh::process::{self, User};
use weft_mesh::{MeshError, StateDir, WorkloadRecord, preflight};

use super::StateArg;

#[derive(Args)]
pub struct ExecArgs {
    /// The workload.
    name: String,
    /// Its namespace [default: default, or the only namespace with a workload of
    /// that name].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    state: StateArg,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Args)]
pub struct LogsArgs {
    /// The workload.
    name: String,
    /// Its namespace [default: default, or the only namespace with a workload of
    /// that name].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The sidecar's log instead of the app's.
    #[arg(long)]
    proxy: bool,
    /// Keep printing what is written, until the workload stops or Ctrl-C.
    #[arg(short = 'f', long)]
    follow: bool,
    #[command(flatten)]
    state: StateArg,
}

/// The workload named: in the namespace given, else in `default`, else the only one of
/// that name.
fn find(
    state: &StateDir,
    namespace: Option<&str>,
    name: &str,
) -> Result<WorkloadRecord, MeshError> {
    if let Some(ns) = namespace {
        return inspect::find(state, ns, name);
    }
    if let Ok(r) = inspect::find(state, "default", name) {
        return Ok(r);
    }
    let mut named: Vec<WorkloadRecord> = state
        .records()
        .into_iter()
        .filter(|r| r.name == name)
        .collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        _ => inspect::find(state, "default", name),
    }
}

pub fn exec(args: &ExecArgs) -> anyhow::Result<ExitCode> {
    preflight::check("exec")?;
    let state = StateDir::new(&args.state.dir()?);
    let r = find(&state, args.namespace.as_deref(), &args.name)?;
    anyhow::ensure!(
        r.owner_alive(),
        "workload {}/{} is gone (the weft that ran it stopped; `weft down` clears what is left)",
        r.namespace,
        r.name
    );
    let argv = process::wrapped(r.netns.as_deref(), User::invoking(), &args.command);
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command to run"))?;
    // The demos' tools (`fortio`) come first on the PATH, as in their images.
    let tools = weft_mesh::up::tools_dir(&state.tag());
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let path = std::env::join_paths(std::iter::once(tools).chain(std::env::split_paths(&path)))?;
    // Replaces this process: standard input, output and the exit code are the command's.
    let err = Command::new(program)
        .args(rest)
        .env("HOSTNAME", &r.hostname)
        .env("PATH", path)
        .exec();
    anyhow::bail!("cannot run {}: {err}", argv.join(" "))
}

pub fn ps(args: &PsArgs) -> anyhow::Result<ExitCode> {
    let state = StateDir::new(&args.state.dir()?);
    if state.read_info().is_none_or(|i| !i.owner.alive()) && state.records().is_empty() {
        return Err(MeshError::NotRunning {
            state: state.root().to_path_buf(),
        }
        .into());
    }
    let rows = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(inspect::list(&state));
    let now = weft_mesh::state::now() as i64;
    let mut table = vec![["NAMESPACE", "NAME", "LABELS", "IP", "SIDECAR", "AGE"].map(String::from)];
    for (r, sidecar) in rows
        .iter()
        .filter(|(r, _)| args.namespace.as_ref().is_none_or(|n| *n == r.namespace))
    {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let sidecar = match (sidecar, r.owner_alive()) {
            (SidecarState::None, _) => "none",
            (s, true) => s.as_str(),
            (_, false) => "exited",
        };
        table.push([
            r.namespace.clone(),
            r.name.clone(),
            if labels.is_empty() {
                "<none>".into()
            } else {
                labels.join(",")
            },
            r.ip.map_or_else(|| "host".into(), |ip| ip.to_string()),
            sidecar.to_string(),
            crate::kubectl::human_duration(now - r.created as i64),
        ]);
    }
    if table.len() == 1 {
        eprintln!("No resources found");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", crate::kubectl::layout(&table));
    Ok(ExitCode::SUCCESS)
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let state = StateDir::new(&args.state.dir()?);
    let r = find(&state, args.namespace.as_deref(), &args.name)?;
    let path = if args.proxy {
        r.proxy_log
            .clone()
            .ok_or_else(|| anyhow::anyhow!("workload {}/{} has no sidecar", r.namespace, r.name))?
    } else {
        r.app_log.clone()
    };
    let mut file = std::fs::File::open(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut pos = copy_from(&mut file, 0, &mut out)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        pos = copy_from(&mut file, pos, &mut out)?;
        if !still_there(&state, &r, &path) {
            copy_from(&mut file, pos, &mut out)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Whether the workload (the same one, not a new one of that name) still runs.
fn still_there(state: &StateDir, r: &WorkloadRecord, log: &Path) -> bool {
    state
        .record(&r.namespace, &r.name)
        .is_some_and(|now| now.created == r.created && now.owner_alive() && log.exists())
}

/// Copies what the file holds past `pos` (from the start again if it was truncated);
/// returns the new position.
fn copy_from(file: &mut std::fs::File, pos: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let len = file.metadata()?.len();
    let start = if len < pos { 0 } else { pos };
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(start + buf.len() as u64)
}
