//! A mesh for the tests: `weft up` runs inside a network namespace the test made (the
//! "host"), entered with `nsenter --net` (not `ip netns exec`, whose private mount
//! namespace would hide the namespaces `weft up` makes from every other process). The
//! bridge, 127.0.0.1:15014 and the pods exist only inside it, so tests never touch the
//! machine's network and run in parallel. Dropping the host stops `weft up`, runs
//! `weft down`, deletes the host namespace and whatever carries the mesh's tag, and
//! prints the mesh's logs when the test failed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::eventually;
pub use crate::support::{run, signal_pid};

/// How long `weft up` may take to print that the mesh is up.
pub const UP_DEADLINE: Duration = Duration::from_secs(90);
/// How long stopping may take (apps, sidecars draining, gateways, control plane).
pub const STOP_DEADLINE: Duration = Duration::from_secs(60);

pub struct MeshHost {
    /// The host namespace's name.
    pub ns: String,
    pub dir: PathBuf,
    pub state: PathBuf,
    up: Option<Child>,
    up_out: PathBuf,
    runs: Vec<(String, Child, PathBuf)>,
    /// The mesh's tag (every netns and interface name carries it).
    pub tag: String,
}

impl MeshHost {
    /// A fresh host namespace and `weft up ARGS` in it, once it says the mesh is up.
    pub fn start(args: &[&str]) -> MeshHost {
        let mut host = MeshHost::new();
        host.up(args);
        host
    }

    /// A fresh host namespace (only `lo`, up) and no mesh yet.
    pub fn new() -> MeshHost {
        require_tools();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("weft-test-{}-{n}-host", std::process::id());
        let dir = std::env::temp_dir().join(format!("weft-mesh-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's dir");
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let state = dir.join("state");
        let up_out = dir.join("up.out");
        MeshHost {
            ns,
            dir,
            state,
            up: None,
            up_out,
            runs: Vec::new(),
            tag: String::new(),
        }
    }

    /// Starts `weft up ARGS` and waits until it says the mesh is up.
    pub fn up(&mut self, args: &[&str]) {
        let host = self;
        let mut all = vec!["up"];
        all.extend_from_slice(args);
        let file = File::create(&host.up_out).expect("create weft up's output file");
        let child = host
            .command(&all)
            .stdout(file.try_clone().expect("clone a file"))
            .stderr(file)
            .spawn()
            .expect("start weft up with nsenter");
        host.up = Some(child);
        eventually("weft up to say the mesh is up", UP_DEADLINE, || {
            host.assert_up_running();
            host.up_output().contains("The mesh is up.").then_some(())
        });
        let info: Value = serde_json::from_slice(
            &std::fs::read(host.state.join("mesh/mesh.json")).expect("weft up's mesh.json"),
        )
        .expect("mesh.json is JSON");
        host.tag = info["tag"].as_str().unwrap_or_default().to_string();
    }

    /// `weft ARGS` inside the host namespace, for this mesh's state directory; the
    /// caller is root, not a sudo user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns))
            .arg(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .env("WEFT_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `weft ARGS` to its end.
    pub fn weft(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run weft")
    }

    /// Runs a command (curl) inside the host namespace.
    pub fn in_host(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("run a command in the host namespace")
    }

    /// Starts `weft run ARGS` in the background (its output to a file), with `env`
    /// for the program it runs; returns its index.
    pub fn spawn_run(&mut self, name: &str, args: &[&str], env: &[(&str, String)]) -> usize {
        let out = self.dir.join(format!("run-{name}.out"));
        let file = File::create(&out).expect("create weft run's output file");
        let mut all = vec!["run", "--name", name];
        all.extend_from_slice(args);
        let mut cmd = self.command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(file.try_clone().expect("clone a file"))
            .stderr(file)
            .spawn()
            .expect("start weft run");
        self.runs.push((name.to_string(), child, out));
        self.runs.len() - 1
    }

    pub fn run_output(&self, i: usize) -> String {
        std::fs::read_to_string(&self.runs[i].2).unwrap_or_default()
    }

    pub fn run_child(&mut self, i: usize) -> &mut Child {
        &mut self.runs[i].1
    }

    /// Waits until `weft run`'s workload `name` is up (it says so), failing if it exits.
    pub fn wait_run_ready(&mut self, i: usize) {
        let what = format!("weft run {} to start its workload", self.runs[i].0);
        eventually(&what, UP_DEADLINE, || {
            if let Ok(Some(status)) = self.runs[i].1.try_wait() {
                panic!(
                    "weft run {} exited ({status}):\n{}",
                    self.runs[i].0,
                    self.run_output(i)
                );
            }
            self.run_output(i).contains("runs at").then_some(())
        });
    }

    pub fn up_output(&self) -> String {
        std::fs::read_to_string(&self.up_out).unwrap_or_default()
    }

    pub fn assert_up_running(&mut self) {
        if let Some(up) = self.up.as_mut()
            && let Ok(Some(status)) = up.try_wait()
        {
            panic!("weft up exited early ({status}):\n{}", self.up_output());
        }
    }

    /// Sends `signal` to `weft up`.
    pub fn signal_up(&self, signal: &str) {
        if let Some(up) = &self.up {
            signal_pid(up.id(), signal);
        }
    }

    /// Waits for `weft up` to exit.
    pub fn wait_up(&mut self, limit: Duration) -> ExitStatus {
        let up = self.up.as_mut().expect("weft up was started");
        eventually("weft up to exit", limit, || up.try_wait().ok().flatten())
    }

    /// A workload's record, if it exists.
    pub fn record(&self, namespace: &str, name: &str) -> Option<Value> {
        let path = self
            .state
            .join(format!("mesh/workloads/{namespace}.{name}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// A GET on the control plane's API (from inside the host namespace, with the token).
    pub fn api_get(&self, path: &str) -> Value {
        let token = std::fs::read_to_string(self.state.join("api-token")).expect("the API token");
        let auth = format!("Authorization: Bearer {}", token.trim());
        let url = format!("http://127.0.0.1:15014{path}");
        let out = self.in_host(&["curl", "-sS", "--max-time", "5", "-H", &auth, &url]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The VIP the control plane gave a service (`default/NAME.default.svc.cluster.local`).
    pub fn vip(&self, namespace: &str, name: &str) -> String {
        let key = format!("{namespace}/{name}.{namespace}.svc.cluster.local");
        eventually(&format!("a VIP for {key}"), Duration::from_secs(10), || {
            let vips: Value =
                serde_json::from_slice(&std::fs::read(self.state.join("vips.json")).ok()?).ok()?;
            vips["assigned"][&key].as_str().map(String::from)
        })
    }

    /// What of this mesh still exists: namespaces and /etc/netns entries with its tag,
    /// interfaces in the host namespace other than lo, workload records, live processes
    /// the records named.
    pub fn leftovers(&self, pids: &[u32]) -> Vec<String> {
        let prefix = format!("weft-{}-", self.tag);
        let mut left = Vec::new();
        let list = run(&["ip", "netns", "list"]);
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            if line.starts_with(&prefix) {
                left.push(format!("netns {line}"));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/etc/netns") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    left.push(format!("/etc/netns entry {:?}", e.file_name()));
                }
            }
        }
        let links = run(&["ip", "-n", &self.ns, "-o", "link", "show"]);
        for line in String::from_utf8_lossy(&links.stdout).lines() {
            let name = line.split(": ").nth(1).unwrap_or("");
            if name != "lo" {
                left.push(format!("interface {name}"));
            }
        }
        let forward = self.in_host(&["iptables", "-S", "FORWARD"]);
        if String::from_utf8_lossy(&forward.stdout).contains("weft mesh bridge") {
            left.push("the FORWARD rule for the bridge".into());
        }
        if let Ok(entries) = std::fs::read_dir(self.state.join("mesh/workloads")) {
            for e in entries.flatten() {
                left.push(format!("record {:?}", e.file_name()));
            }
        }
        // The runtime directory (the tools on `weft exec`'s PATH, a copy of the binary).
        let runtime = std::env::temp_dir().join(format!("weft-{}", self.tag));
        if runtime.exists() {
            left.push(format!("directory {}", runtime.display()));
        }
        for pid in pids {
            if Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(*pid) {
                left.push(format!("process {pid}"));
            }
        }
        left
    }

    /// The pids the records name now (apps, sidecars, owners).
    pub fn recorded_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir(self.state.join("mesh/workloads"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(r) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            for k in ["app", "proxy", "owner"] {
                if let Some(pid) = r[k]["pid"].as_u64() {
                    pids.push(pid as u32);
                }
            }
        }
        pids
    }
}

impl Drop for MeshHost {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        for (_, child, _) in &mut self.runs {
            signal_pid(child.id(), "TERM");
        }
        if let Some(up) = self.up.as_mut()
            && matches!(up.try_wait(), Ok(None))
        {
            signal_pid(up.id(), "TERM");
            let start = Instant::now();
            while matches!(up.try_wait(), Ok(None)) && start.elapsed() < STOP_DEADLINE {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = up.kill();
            let _ = up.wait();
        }
        let _ = self.weft(&["down"]);
        for (_, child, _) in &mut self.runs {
            let _ = child.kill();
            let _ = child.wait();
        }
        if failed {
            eprintln!("--- weft up ---\n{}", self.up_output());
            for (name, _, out) in &self.runs {
                eprintln!(
                    "--- weft run {name} ---\n{}",
                    std::fs::read_to_string(out).unwrap_or_default()
                );
            }
            for e in std::fs::read_dir(self.state.join("mesh/logs"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {:?} (last lines) ---", e.file_name());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        // Whatever `weft down` could not remove: the tag's namespaces and entries.
        let prefix = format!("weft-{}-", self.tag);
        if !self.tag.is_empty() {
            let list = run(&["ip", "netns", "list"]);
            for line in String::from_utf8_lossy(&list.stdout).lines() {
                if let Some(name) = line
                    .split_whitespace()
                    .next()
                    .filter(|n| n.starts_with(&prefix))
                {
                    let _ = Command::new("ip").args(["netns", "del", name]).output();
                    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
                }
            }
            let _ =
                std::fs::remove_dir_all(std::env::temp_dir().join(format!("weft-{}", self.tag)));
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir("/etc/netns");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The mesh tests need root and the runtime's tools; without them they fail saying so.
fn require_tools() {
    crate::support::require_root_and_tools(
        "mesh",
        &[
            ("ip", "-V", "iproute2"),
            ("iptables-restore", "--version", "iptables"),
            ("setpriv", "--version", "util-linux"),
            ("nsenter", "--version", "util-linux"),
            ("curl", "--version", "curl"),
        ],
    );
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
