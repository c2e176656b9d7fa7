//! A lab of network namespaces for the capture tests: a private hub namespace holding a
//! bridge, one namespace per workload ("pod") plugged into it by a veth pair, Istio's
//! iptables capture rules inside pods that get a sidecar, and processes (apps, sidecars
//! running as UID 1337, curl) run inside pods with `ip netns exec`. The addresses
//! (10.250.0.0/24, VIPs in 240.240.0.0/16) exist only inside the lab's namespaces.
//! Dropping the lab kills its processes and deletes its namespaces (which takes their
//! veths and iptables rules with them), /etc/netns entries and temp dir, also when the
//! test failed.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{DEADLINE, Reply, eventually, parse_reply, run};

#[path = "netns_cp.rs"]
pub mod cp;
#[path = "netns_dns.rs"]
pub mod dns;

/// The lab's subnet; the hub's bridge is `.1`.
pub const SUBNET: [u8; 3] = [10, 250, 0];
/// The UID Istio's capture rules exempt; sidecars run as it.
pub const PROXY_UID: u32 = 1337;

/// Ports Istio leaves out of inbound capture (admin, metrics, readiness).
const INBOUND_EXCLUDED: [u16; 4] = [15000, 15020, 15021, 15090];

/// The environment variable that turns the test binary into a helper process (see
/// [`helper_main`]).
const HELPER: &str = "WEFT_NETNS_HELPER";

/// One workload's namespace.
#[derive(Clone, Debug)]
pub struct Pod {
    pub name: String,
    pub ns: String,
    pub ip: Ipv4Addr,
}

struct Proc {
    what: String,
    child: Child,
    log: PathBuf,
}

pub struct Lab {
    prefix: String,
    dir: PathBuf,
    hub: String,
    /// Every namespace made, the hub last (teardown order).
    namespaces: Vec<String>,
    procs: Vec<Proc>,
}

impl Lab {
    /// A hub namespace with a bridge at 10.250.0.1/24. Fails (does not skip) when the
    /// tools are missing or the test is not root.
    pub fn new() -> Lab {
        require_tools();
        remove_stale_labs();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("weft-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).expect("create the lab's temp dir");
        let hub = format!("{prefix}-hub");
        let mut lab = Lab {
            prefix,
            dir,
            hub: hub.clone(),
            namespaces: Vec::new(),
            procs: Vec::new(),
        };
        run(&["ip", "netns", "add", &hub]);
        lab.namespaces.push(hub.clone());
        let gateway = format!("{}/24", ip(1));
        for cmd in [
            vec!["ip", "-n", &hub, "link", "set", "lo", "up"],
            vec!["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"],
            vec!["ip", "-n", &hub, "addr", "add", &gateway, "dev", "br0"],
            vec!["ip", "-n", &hub, "link", "set", "br0", "up"],
        ] {
            run(&cmd);
        }
        lab
    }

    /// The config directory every sidecar of the lab serves.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Writes (or replaces) a config file, atomically (a rename), so a proxy never
    /// reads half of it.
    pub fn write_config(&self, file: &str, text: &str) {
        let tmp = self.dir.join(format!("{file}.tmp"));
        std::fs::write(&tmp, text).expect("write a config file");
        std::fs::rename(&tmp, self.config_dir().join(file)).expect("move a config file");
    }

    /// A namespace at 10.250.0.`host`, plugged into the hub, routing everything else
    /// through it (so that traffic to a VIP has a route until iptables redirects it).
    pub fn pod(&mut self, name: &str, host: u8) -> Pod {
        let ns = format!("{}-{name}", self.prefix);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.insert(0, ns.clone());
        let veth = format!("veth{host}");
        let addr = format!("{}/24", ip(host));
        let gateway = ip(1).to_string();
        let hub = self.hub.clone();
        for cmd in [
            vec!["ip", "-n", &ns, "link", "set", "lo", "up"],
            vec![
                "ip", "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ],
            vec![
                "ip", "-n", &hub, "link", "set", &veth, "master", "br0", "up",
            ],
            vec!["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"],
            vec!["ip", "-n", &ns, "link", "set", "eth0", "up"],
            vec!["ip", "-n", &ns, "route", "add", "default", "via", &gateway],
        ] {
            run(&cmd);
        }
        Pod {
            name: name.to_string(),
            ns,
            ip: ip(host),
        }
    }

    /// Names for the pod's processes: `ip netns exec` mounts /etc/netns/NS/hosts over
    /// /etc/hosts, which is how a namespace gets names without a DNS server.
    pub fn hosts(&self, pod: &Pod, entries: &[(&str, String)]) {
        let dir = Path::new("/etc/netns").join(&pod.ns);
        // Another lab may remove an empty /etc/netns at the same moment: retry.
        eventually("/etc/netns/<ns> to be created", DEADLINE, || {
            std::fs::create_dir_all(&dir).ok()
        });
        let mut text = String::from("127.0.0.1 localhost\n");
        for (name, addr) in entries {
            text.push_str(&format!("{addr} {name}\n"));
        }
        std::fs::write(dir.join("hosts"), text).expect("write the pod's hosts file");
    }

    /// Istio's capture rules (as `istio-iptables` writes them, minus IPv6; DNS capture is
    /// `capture_dns`): outbound TCP is redirected to 15001 except the proxy's own (UID
    /// 1337) and loopback's, inbound TCP to 15006 except the proxy's own ports.
    pub fn capture(&self, pod: &Pod) {
        self.apply_rules(pod, "nat", &capture_rules(false));
    }

    /// Runs `iptables -t TABLE RULE` in the pod for each rule.
    pub(crate) fn apply_rules(&self, pod: &Pod, table: &str, rules: &[String]) {
        for rule in rules {
            let mut cmd = vec!["ip", "netns", "exec", &pod.ns, "iptables", "-t", table];
            cmd.extend(rule.split(' '));
            run(&cmd);
        }
    }

    /// How many connections (first packets: the nat table sees no others) matched the
    /// nat rule whose `iptables-save` text ends with `rule_tail`.
    pub fn nat_count(&self, pod: &Pod, rule_tail: &str) -> u64 {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &pod.ns,
            "iptables-save",
            "-c",
            "-t",
            "nat",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.ends_with(rule_tail))
            .unwrap_or_else(|| panic!("no nat rule ending {rule_tail:?} in:\n{text}"));
        // `[packets:bytes] -A CHAIN ...`
        line.trim_start_matches('[')
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {line:?}"))
    }

    /// A copy of the `weft` binary in the lab's directory, which UID 1337 can reach: the
    /// build's own may sit under a directory only root may enter (a target dir in /root).
    fn proxy_binary(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let copy = self.dir.join("weft");
        if !copy.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_weft"), &copy)
                .expect("copy the weft binary into the lab");
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                .expect("make the copy executable");
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
                .expect("open the lab dir");
        }
        copy
    }

    /// Starts `weft proxy --mode sidecar` in the pod as UID 1337 and waits until its
    /// admin API answers (its capture listeners are bound before the admin API).
    pub fn sidecar(&mut self, pod: &Pod, args: &[&str]) {
        let dir = self.config_dir().display().to_string();
        self.sidecar_from(pod, &["--config-dir", &dir], args);
    }

    /// [`Lab::sidecar`] with its config from `source` (`--control-plane ADDR`).
    pub fn sidecar_from(&mut self, pod: &Pod, source: &[&str], args: &[&str]) {
        let i = self.start_sidecar(pod, source, args);
        let what = format!("sidecar of {}", pod.name);
        eventually(&format!("the {what} to answer /ready"), DEADLINE, || {
            self.assert_running(i);
            (self.admin_status(pod, "/ready") == "200").then_some(())
        });
    }

    /// Starts the pod's sidecar (as UID 1337, config from `source`) without waiting for
    /// anything; returns its index for [`Lab::assert_running`].
    pub fn start_sidecar(&mut self, pod: &Pod, source: &[&str], args: &[&str]) -> usize {
        let mut all: Vec<String> = ["proxy", "--mode", "sidecar"]
            .iter()
            .chain(source)
            .map(|s| s.to_string())
            .collect();
        all.extend(["--log".into(), "debug".into()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let what = format!("sidecar of {}", pod.name);
        let weft = self.proxy_binary();
        self.spawn_helper(
            pod,
            &what,
            &[
                ("exec-proxy", ""),
                ("weft", &weft.display().to_string()),
                ("args", &all.join("\u{1f}")),
            ],
        )
    }

    /// The HTTP status of the pod's sidecar's admin `path` (`000`: no answer).
    pub fn admin_status(&self, pod: &Pod, path: &str) -> String {
        let url = format!("http://127.0.0.1:15000{path}");
        let out = self.exec(
            pod,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                &url,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The JSON of the pod's sidecar's admin `path` (`/config_dump`).
    pub fn admin_json(&self, pod: &Pod, path: &str) -> serde_json::Value {
        let url = format!("http://127.0.0.1:15000{path}");
        let out = self.exec(pod, &["curl", "-sS", "--max-time", "5", &url]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("admin {path} of {} is not JSON ({e})", pod.name))
    }

    /// Starts an app in the pod, listening on `ports` on every address, and waits
    /// until it has bound them. `App::Echo` answers HTTP/1.1 and h2c with a JSON
    /// account of the request and of the addresses it arrived on; `App::Greeter` is a
    /// server-first TCP protocol: it greets, then echoes lines.
    pub fn app(&mut self, pod: &Pod, app: App, name: &str, ports: &[u16]) {
        let ready = self.dir.join(format!("{}-{name}.ready", pod.name));
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let kind = match app {
            App::Echo => "echo",
            App::Greeter => "greeter",
        };
        let what = format!("{kind} app {name} in {}", pod.name);
        let i = self.spawn_helper(
            pod,
            &what,
            &[
                (kind, ""),
                ("name", name),
                ("ports", &ports.join(",")),
                ("ready", &ready.display().to_string()),
            ],
        );
        eventually(&format!("the {what} to listen"), DEADLINE, || {
            self.assert_running(i);
            ready.exists().then_some(())
        });
    }

    /// curl inside the pod (`-i`, ignoring any .curlrc and proxy settings).
    pub fn curl(&self, pod: &Pod, args: &[&str]) -> Result<Reply, String> {
        let mut all = vec![
            "curl",
            "-q",
            "-sS",
            "-i",
            "--noproxy",
            "*",
            "--max-time",
            "10",
        ];
        all.extend_from_slice(args);
        let out = self.exec(pod, &all);
        if out.status.success() {
            Ok(parse_reply(&String::from_utf8_lossy(&out.stdout)))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs a bash script inside the pod; returns its exit code and standard output.
    pub fn bash(&self, pod: &Pod, script: &str) -> (i32, String) {
        let out = self.exec(pod, &["bash", "-c", script]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The hub namespace as a pod at 10.250.0.1 (the bridge's address), where processes
    /// every pod reaches run (a control plane).
    pub fn hub(&self) -> Pod {
        Pod {
            name: "hub".into(),
            ns: self.hub.clone(),
            ip: ip(1),
        }
    }

    /// The lab's own directory (removed with the lab).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `cmd` inside the pod as root, its output to a log file; killed with the
    /// lab. Returns its index for [`Lab::assert_running`].
    pub fn spawn(&mut self, pod: &Pod, what: &str, cmd: &[&str]) -> usize {
        let log = self.dir.join(format!("{}.log", what.replace(' ', "-")));
        let file = File::create(&log).expect("create a process log");
        let child = Command::new("ip")
            .args(["netns", "exec", &pod.ns])
            .args(cmd)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start a process with ip netns exec");
        self.procs.push(Proc {
            what: what.to_string(),
            child,
            log,
        });
        self.procs.len() - 1
    }

    /// Runs `cmd` inside the pod to its end.
    pub fn exec(&self, pod: &Pod, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &pod.ns])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"))
    }

    /// Runs this test binary as a helper process inside the pod (see [`helper_main`]),
    /// its output to a log file; returns its index in `procs`.
    pub(crate) fn spawn_helper(&mut self, pod: &Pod, what: &str, env: &[(&str, &str)]) -> usize {
        let log = self.dir.join(format!("{}.log", what.replace(' ', "-")));
        let file = File::create(&log).expect("create a process log");
        let child = self
            .helper_command(pod, env)
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start a helper with ip netns exec");
        self.procs.push(Proc {
            what: what.to_string(),
            child,
            log,
        });
        self.procs.len() - 1
    }

    /// The command that runs this test binary as a helper inside the pod.
    pub(crate) fn helper_command(&self, pod: &Pod, env: &[(&str, &str)]) -> Command {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &pod.ns])
            .arg(exe)
            .args([
                "netns_helper",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(
                format!("{HELPER}_{}", k.to_ascii_uppercase().replace('-', "_")),
                v,
            );
        }
        cmd.env(HELPER, "1");
        cmd
    }

    pub fn assert_running(&mut self, i: usize) {
        let p = &mut self.procs[i];
        if let Ok(Some(status)) = p.child.try_wait() {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            panic!("the {} exited early ({status}):\n{log}", p.what);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if std::thread::panicking() {
            for p in &self.procs {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                eprintln!("--- {} ---\n{log}", p.what);
            }
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
        // Only succeeds when no other lab still has entries there.
        let _ = std::fs::remove_dir("/etc/netns");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Istio's nat rules for a pod (as `istio-iptables` writes them, minus IPv6): outbound
/// TCP to 15001 except the proxy's own (UID 1337) and loopback's, inbound TCP to 15006
/// except the proxy's own ports; with `dns`, DNS (TCP and UDP port 53) to 15053 except
/// the proxy's own.
fn capture_rules(dns: bool) -> Vec<String> {
    let mut rules: Vec<String> = [
        "ISTIO_INBOUND",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
        "ISTIO_REDIRECT",
    ]
    .iter()
    .map(|chain| format!("-N {chain}"))
    .collect();
    rules.push("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001".into());
    rules.push("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006".into());
    rules.push("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
    for port in INBOUND_EXCLUDED {
        rules.push(format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"));
    }
    rules.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into());
    rules.push("-A OUTPUT -p tcp -j ISTIO_OUTPUT".into());
    rules.push(format!(
        "-A ISTIO_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN"
    ));
    if dns {
        // Before loopback's RETURN: a nameserver on 127.0.0.x is captured too.
        rules.push("-A ISTIO_OUTPUT -p tcp --dport 53 -j REDIRECT --to-ports 15053".into());
    }
    rules.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
    rules.push("-A ISTIO_OUTPUT -j ISTIO_REDIRECT".into());
    if dns {
        for owner in ["--uid-owner", "--gid-owner"] {
            rules.push(format!(
                "-A OUTPUT -p udp --dport 53 -m owner {owner} {PROXY_UID} -j RETURN"
            ));
        }
        rules.push("-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053".into());
    }
    rules
}

/// What [`Lab::app`] runs.
#[derive(Clone, Copy)]
pub enum App {
    Echo,
    Greeter,
}

/// 10.250.0.`host`.
pub fn ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host)
}

/// The capture tests need root, `ip` and `iptables`; without them they fail saying so.
fn require_tools() {
    crate::support::require_root_and_tools(
        "capture",
        &[
            ("ip", "-V", "iproute2"),
            ("iptables", "--version", "iptables"),
            ("iptables-save", "--version", "iptables"),
            ("curl", "--version", "curl"),
            ("bash", "--version", "bash"),
        ],
    );
}

/// Deletes namespaces left by test processes that died without cleaning up (killed by
/// a signal, say): `weft-test-<pid>-...` whose process is gone.
fn remove_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("weft-test-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
        }
    }
}

/// The helper processes the lab runs inside namespaces, entered when the test binary is
/// started by [`Lab`] with `WEFT_NETNS_HELPER` set (the `netns_helper` test calls it):
/// the echo and greeter apps, and the launcher that becomes the sidecar as UID 1337.
/// Returns at once in a normal test run.
pub fn helper_main() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(format!("{HELPER}_{k}")).ok();
    if let Some(args) = var("ARGS").filter(|_| var("EXEC_PROXY").is_some()) {
        // `ip netns exec` needs root; the proxy must not be root. Become UID 1337 in the
        // same process, so that killing it kills the proxy.
        let weft = var("WEFT").expect("the lab's copy of the weft binary");
        let err = Command::new(weft)
            .args(args.split('\u{1f}'))
            .uid(PROXY_UID)
            .gid(PROXY_UID)
            .exec();
        panic!("cannot start weft as UID {PROXY_UID}: {err}");
    }
    if let Some(server) = var("DNS_ASK") {
        return dns::ask_main(&server, var);
    }
    let name = var("NAME").unwrap_or_default();
    let ports: Vec<u16> = var("PORTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    let ready = PathBuf::from(var("READY").expect("the helper's ready file"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let greeter = var("GREETER").is_some();
    if var("DNS_UPSTREAM").is_some() {
        runtime.block_on(async move {
            let port = ports.first().copied().unwrap_or(53);
            let udp = tokio::net::UdpSocket::bind(("0.0.0.0", port))
                .await
                .unwrap_or_else(|e| panic!("bind UDP {port}: {e}"));
            let tcp = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .unwrap_or_else(|e| panic!("bind TCP {port}: {e}"));
            std::fs::File::create(&ready).expect("write the ready file");
            dns::upstream(udp, tcp).await;
        });
        return;
    }
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for port in &ports {
            let l = tokio::net::TcpListener::bind(("0.0.0.0", *port))
                .await
                .unwrap_or_else(|e| panic!("bind port {port}: {e}"));
            listeners.push(l);
        }
        let mut tasks = Vec::new();
        for l in listeners {
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                if greeter {
                    apps::greet(l, name).await
                } else {
                    apps::echo(l, name).await
                }
            }));
        }
        std::fs::File::create(&ready).expect("write the ready file");
        for t in tasks {
            let _ = t.await;
        }
    });
}

mod apps {
    //! The apps run inside pods.

    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// HTTP/1.1 and h2c: answers with who it is, the addresses the connection arrived
    /// on (`local` shows whether a sidecar delivered it, and on which port), and the
    /// request it got.
    pub async fn echo(listener: tokio::net::TcpListener, name: String) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let local = stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let name = name.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let body = describe(&req, &name, &local, &peer.to_string());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn describe(req: &Request<Incoming>, name: &str, local: &str, peer: &str) -> String {
        let mut headers = serde_json::Map::new();
        for (k, v) in req.headers() {
            let values = headers
                .entry(k.as_str())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = values {
                list.push(Value::String(String::from_utf8_lossy(v.as_bytes()).into()));
            }
        }
        let body = json!({
            "backend": name,
            "local": local,
            "peer": peer,
            "method": req.method().as_str(),
            "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
            "version": format!("{:?}", req.version()),
            "headers": headers,
        });
        format!("{body}\n")
    }

    /// A server-first protocol (like MySQL's handshake): greets with its name and the
    /// port it was reached on before the client says anything, then echoes lines.
    pub async fn greet(listener: tokio::net::TcpListener, name: String) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
            let name = name.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                if write
                    .write_all(format!("HELLO {name} {port}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("ECHO {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    }
}

// Helpers the capture test files share.

/// The address a sidecar gives `host`, from its config dump.
pub fn vip_of(lab: &Lab, pod: &Pod, host: &str) -> String {
    let dump = lab.admin_json(pod, "/config_dump");
    let address = dump["registry"]["services"][host]["addresses"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{host} has no address in the config dump: {dump}"));
    address.trim_end_matches("/32").to_string()
}

/// The reply of a curl that must have succeeded with 200.
pub fn ok(reply: Result<Reply, String>) -> Reply {
    let reply = reply.unwrap_or_else(|e| panic!("curl failed: {e}"));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
}

/// Connects to `host:port` from the pod with bash, reads the greeting, says `ping`,
/// reads the answer. Exit code 0 when both lines came, 1 when the connection was
/// closed first, more than 128 when a read timed out.
pub fn greet(lab: &Lab, pod: &Pod, host: &str, port: u16) -> (i32, String) {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} || exit 100
IFS= read -r -t 5 line <&3; status=$?; [ $status -eq 0 ] || exit $status
echo \"$line\"
echo ping >&3
IFS= read -r -t 5 line <&3; status=$?; [ $status -eq 0 ] || exit $status
echo \"$line\""
    );
    lab.bash(pod, &script)
}
