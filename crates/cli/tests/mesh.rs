//! The one-host mesh end to end: `weft up` in a network namespace the test made, workloads
//! started with `weft run` (each in its own namespace, behind its sidecar and Istio's
//! capture), reached through both sidecars; `weft exec`, `ps`, `logs`; a workload whose
//! program exits; Ctrl-C/SIGTERM of `weft up`; `weft down` after a SIGKILL; the message
//! for a user who is not root. Needs root, iproute2, iptables, util-linux and curl (it
//! fails, naming the package, when one is missing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up step should stop the test

#[path = "support/mesh_host.rs"]
mod mesh_host;
#[path = "support/netns.rs"]
#[allow(dead_code)] // only its helper apps are used here
mod netns;
#[allow(dead_code)] // shared with the other end-to-end tests
mod support;

use std::time::Duration;

use mesh_host::{MeshHost, STOP_DEADLINE, text};
use serde_json::Value;
use support::eventually;

/// The test binary doubles as the apps `weft run` starts (the echo server of the capture
/// tests); run normally, this returns at once.
#[test]
#[ignore = "not a test: the helper processes the mesh tests run as workloads"]
fn netns_helper() {
    netns::helper_main();
}

/// `weft run` arguments and environment for the echo app named `name` on `port`: it
/// prints a line with its instance name, then answers HTTP with a JSON account of each
/// request (and of the address it came from).
fn echo_app(host: &MeshHost, name: &str, port: u16) -> (Vec<String>, Vec<(&'static str, String)>) {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let ready = host.dir.join(format!("{name}.ready")).display().to_string();
    let cmd = format!(
        "echo started $HOSTNAME; exec {exe} netns_helper --exact --ignored --nocapture --test-threads=1"
    );
    let args = vec![
        "--port".to_string(),
        format!("{port}/http"),
        "--".into(),
        "sh".into(),
        "-c".into(),
        cmd,
    ];
    let env = vec![
        ("WEFT_NETNS_HELPER", "1".to_string()),
        ("WEFT_NETNS_HELPER_NAME", name.to_string()),
        ("WEFT_NETNS_HELPER_PORTS", port.to_string()),
        ("WEFT_NETNS_HELPER_READY", ready),
    ];
    (args, env)
}

/// Starts the echo app `name` as a workload and waits until it listens.
fn run_echo(host: &mut MeshHost, name: &str, port: u16) -> usize {
    let (args, env) = echo_app(host, name, port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let i = host.spawn_run(name, &args, &env);
    host.wait_run_ready(i);
    let ready = host.dir.join(format!("{name}.ready"));
    eventually(
        &format!("{name} to listen"),
        Duration::from_secs(20),
        || ready.exists().then_some(()),
    );
    i
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

#[test]
fn up_starts_the_control_plane_and_gateways_and_sigterm_removes_everything() {
    let mut host = MeshHost::start(&[]);
    let out = host.up_output();
    for line in [
        "control plane     ready",
        "ingress gateway   ready",
        "egress gateway    ready",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    let ps = text(&host.weft(&["ps"]));
    for name in ["istiod", "istio-ingressgateway", "istio-egressgateway"] {
        assert!(ps.contains(name), "{name} missing from weft ps:\n{ps}");
    }
    // Both gateways took their config from the control plane.
    eventually(
        "both gateways to be SYNCED",
        Duration::from_secs(20),
        || {
            let status = text(&host.weft(&["proxy-status"]));
            let synced = |n: &str| {
                status
                    .lines()
                    .any(|l| l.starts_with(n) && l.contains("SYNCED"))
            };
            (synced("istio-ingressgateway") && synced("istio-egressgateway")).then_some(())
        },
    );
    // The egress gateway is a workload of the Service istio-egressgateway (80, 443).
    let svc = json(&host.weft(&[
        "get",
        "service",
        "istio-egressgateway",
        "-n",
        "istio-system",
        "-o",
        "json",
    ]));
    let ports: Vec<u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(ports, [80, 443]);
    let targets: Vec<u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["targetPort"].as_u64())
        .collect();
    assert_eq!(
        targets,
        [8080, 8443],
        "as Istio's, with the low-port offset"
    );

    let pids = host.recorded_pids();
    assert!(pids.len() >= 3, "{pids:?}");
    host.signal_up("TERM");
    let status = host.wait_up(STOP_DEADLINE);
    assert!(
        status.success(),
        "weft up exits 0 on SIGTERM: {status}\n{}",
        host.up_output()
    );
    assert!(
        host.up_output().contains("Stopped:"),
        "{}",
        host.up_output()
    );
    let left = host.leftovers(&pids);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

#[test]
fn a_client_reaches_a_workload_through_both_sidecars_and_exec_ps_logs_show_them() {
    let mut host = MeshHost::start(&[]);
    // As on a host with Docker: bridged frames go through iptables (br_netfilter), whose
    // FORWARD policy drops them; the mesh's own rule lets its pods talk.
    let bridged = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables");
    if bridged.is_ok_and(|v| v.trim() == "1") {
        let ns = host.ns.clone();
        mesh_host::run(&[
            "ip", "netns", "exec", &ns, "iptables", "-P", "FORWARD", "DROP",
        ]);
    }
    let server = run_echo(&mut host, "hello", 9080);
    let client = host.spawn_run(
        "sleep",
        &["--labels", "app=sleep,version=v1", "--", "sleep", "3600"],
        &[],
    );
    host.wait_run_ready(client);

    // Through the client's sidecar (it answers with Envoy's header) and the server's
    // (which delivers from 127.0.0.1).
    let vip = host.vip("default", "hello");
    let url = format!("http://{vip}:9080/path");
    let out = host.weft(&[
        "exec",
        "sleep",
        "--",
        "curl",
        "-sS",
        "-i",
        "--max-time",
        "10",
        &url,
    ]);
    let reply = support::parse_reply(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(reply.status, 200, "{}", text(&out));
    assert!(
        reply.header("x-envoy-upstream-service-time").is_some(),
        "{reply:?}"
    );
    let echo: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(echo["backend"], "hello");
    assert!(
        echo["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "the server's sidecar delivered it: {echo}"
    );
    eventually("both sidecars SYNCED", Duration::from_secs(20), || {
        let status = text(&host.weft(&["proxy-status"]));
        let synced = |n: &str| {
            status
                .lines()
                .any(|l| l.starts_with(n) && !l.contains("STALE") && l.contains("SYNCED"))
        };
        (synced("hello.default") && synced("sleep.default")).then_some(())
    });

    // exec: standard input in, output and exit code out, in the workload's namespace.
    let mut cmd = host.command(&[
        "exec",
        "sleep",
        "--",
        "sh",
        "-c",
        "cat; hostname -I; exit 7",
    ]);
    let child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let sleep_ip = host.record("default", "sleep").unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("from stdin\n{sleep_ip} \n")
    );

    // ps: both, with labels, IPs and ready sidecars.
    let ps = text(&host.weft(&["ps", "-n", "default"]));
    let row = |name: &str| {
        ps.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in:\n{ps}"))
            .to_string()
    };
    assert!(ps.starts_with("NAMESPACE"), "{ps}");
    assert!(row("sleep").contains("app=sleep,version=v1"), "{ps}");
    assert!(row("sleep").contains(&sleep_ip), "{ps}");
    assert!(row("hello").contains(" ready "), "{ps}");
    assert!(
        !ps.contains("istiod"),
        "-n default shows only default: {ps}"
    );

    // logs: the app's output (its instance name), and with --proxy its sidecar's.
    let logs = text(&host.weft(&["logs", "hello"]));
    assert!(logs.starts_with("started hello-"), "{logs}");
    let proxy_logs = text(&host.weft(&["logs", "hello", "--proxy"]));
    assert!(proxy_logs.contains("config loaded"), "{proxy_logs}");

    // The sidecar's admin API: `proxy-config` reads it from the bridge, and so may a
    // neighbour, but only its own namespace may change anything (POST).
    let hello_ip = host.record("default", "hello").unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_call = |from: &str, method: &str, path: &str| {
        let url = format!("http://{hello_ip}:15000{path}");
        let out = host.weft(&[
            "exec",
            from,
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            &url,
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(admin_call("sleep", "POST", "/quitquitquit"), "403");
    assert_eq!(admin_call("sleep", "POST", "/logging?level=debug"), "403");
    assert_eq!(
        admin_call("sleep", "GET", "/ready"),
        "200",
        "it did not quit"
    );
    assert_eq!(admin_call("hello", "POST", "/logging?level=info"), "200");

    // A `weft run` killed outright: `weft up` notices and removes its workload.
    let netns = host.record("default", "sleep").unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    mesh_host::signal_pid(host.run_child(client).id(), "KILL");
    eventually(
        "weft up to remove the orphaned sleep",
        STOP_DEADLINE,
        || host.record("default", "sleep").is_none().then_some(()),
    );
    assert!(
        !std::path::Path::new("/run/netns").join(&netns).exists(),
        "{netns} is gone"
    );
    assert!(
        host.up_output()
            .contains("default/sleep: its `weft run` is gone")
    );

    // `weft logs -f` follows until the workload is gone.
    let follow = host
        .command(&["logs", "hello", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Ctrl-C (SIGTERM) of `weft run`: deregistered, the app stopped, namespace gone.
    let netns = host.record("default", "hello").unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    mesh_host::signal_pid(host.run_child(server).id(), "TERM");
    let status = eventually("weft run hello to exit", STOP_DEADLINE, || {
        host.run_child(server).try_wait().ok().flatten()
    });
    assert!(!status.success() || status.code() == Some(0), "{status}");
    assert!(host.record("default", "hello").is_none());
    assert!(
        !std::path::Path::new("/run/netns").join(&netns).exists(),
        "{netns} is gone"
    );
    let workloads = host.api_get("/v1/workloads");
    assert!(
        !workloads.to_string().contains("\"hello\""),
        "deregistered: {workloads}"
    );
    let followed = follow.wait_with_output().unwrap();
    assert!(followed.status.success());
    assert!(String::from_utf8_lossy(&followed.stdout).starts_with("started hello-"));
}

#[test]
fn a_workload_whose_program_exits_is_deregistered_and_its_namespace_removed() {
    let mut host = MeshHost::start(&[]);
    let out = host.weft(&[
        "run",
        "--name",
        "once",
        "--port",
        "7000/http",
        "--",
        "sh",
        "-c",
        "echo bye from $HOSTNAME; cat /etc/resolv.conf; exit 3",
    ]);
    let said = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the program's exit code: {said}"
    );
    assert!(said.contains("bye from once-"), "{said}");
    // The pod's DNS search path, as a Kubernetes pod's.
    assert!(
        said.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{said}"
    );
    assert!(said.contains("options ndots:5"), "{said}");
    assert!(host.record("default", "once").is_none());
    let prefix = format!("weft-{}-default-once", host.tag);
    let list = text(&mesh_host::run(&["ip", "netns", "list"]));
    assert!(!list.contains(&prefix), "{list}");
    assert!(!std::path::Path::new("/etc/netns").join(&prefix).exists());
    let workloads = host.api_get("/v1/workloads");
    assert_eq!(
        workloads["items"].as_array().map(Vec::len),
        Some(1),
        "only the egress gateway: {workloads}"
    );
    // The Service it declared stays, as a Kubernetes Service outlives its pods.
    let svc = json(&host.weft(&["get", "service", "once", "-o", "json"]));
    assert_eq!(svc["spec"]["ports"][0]["name"], "http");

    // Ctrl-C stops the mesh as SIGTERM does.
    let pids = host.recorded_pids();
    host.signal_up("INT");
    assert!(host.wait_up(STOP_DEADLINE).success());
    let left = host.leftovers(&pids);
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}");
}

#[test]
fn a_workload_outside_the_mesh_finds_services_by_name_and_nothing_leaves_the_subnet() {
    let mut host = MeshHost::start(&[]);
    run_echo(&mut host, "hello", 9080);
    let legacy = host.spawn_run("legacy", &["--no-sidecar", "--", "sleep", "3600"], &[]);
    host.wait_run_ready(legacy);
    assert!(host.run_output(legacy).contains("no sidecar"));

    // Its hosts file names the Service's workload; the server's sidecar takes the call.
    let out = host.weft(&[
        "exec",
        "legacy",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "10",
        "http://hello.default.svc.cluster.local:9080/",
    ]);
    let echo = json(&out);
    assert_eq!(echo["backend"], "hello");
    assert!(
        echo["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{echo}"
    );
    let out = host.weft(&[
        "exec",
        "legacy",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "10",
        "http://hello:9080/",
    ]);
    assert_eq!(
        json(&out)["backend"],
        "hello",
        "the short name in its own namespace"
    );
    let ps = text(&host.weft(&["ps"]));
    assert!(
        ps.lines()
            .any(|l| l.contains("legacy") && l.contains(" none ")),
        "{ps}"
    );

    // The host forwards packets and has somewhere to send VIPs; still, a pod's packet
    // for an address off the subnet is refused in the pod (a VIP from a process the
    // capture leaves alone, as a workload outside the mesh is).
    // (A veth pair whose far end answers nobody: this kernel may lack `dummy`.)
    let ns = host.ns.clone();
    for step in [
        "link add d0 type veth peer name d1",
        "addr add 192.0.2.1/24 dev d0",
        "link set d0 up",
        "link set d1 up",
    ] {
        let mut argv = vec!["ip", "-n", &ns];
        argv.extend(step.split(' '));
        mesh_host::run(&argv);
    }
    mesh_host::run(&[
        "ip",
        "-n",
        &host.ns,
        "route",
        "add",
        "240.240.0.0/16",
        "via",
        "192.0.2.2",
    ]);
    mesh_host::run(&[
        "ip",
        "netns",
        "exec",
        &host.ns,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ]);
    let out = host.weft(&[
        "exec",
        "legacy",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://240.240.7.7/",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "refused at once, not sent: {}",
        text(&out)
    );
    let netns = host.record("default", "legacy").unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let rules = text(&mesh_host::run(&[
        "ip",
        "netns",
        "exec",
        &netns,
        "iptables-save",
        "-c",
        "-t",
        "filter",
    ]));
    let rejected = rules
        .lines()
        .find(|l| l.ends_with("-A WEFT_FENCE -j REJECT --reject-with icmp-net-unreachable"))
        .unwrap_or_else(|| panic!("no fence in:\n{rules}"));
    assert!(
        !rejected.starts_with("[0:"),
        "the fence refused it: {rejected}"
    );
    mesh_host::run(&["ip", "-n", &host.ns, "link", "del", "d0"]);
}

#[test]
fn weft_down_after_a_sigkill_of_up_removes_everything() {
    let mut host = MeshHost::start(&[]);
    let client = host.spawn_run("sleep", &["--", "sleep", "3600"], &[]);
    host.wait_run_ready(client);
    let pids = host.recorded_pids();
    host.signal_up("KILL");
    host.wait_up(Duration::from_secs(10));
    assert!(
        !host.leftovers(&pids).is_empty(),
        "a SIGKILL leaves the mesh behind"
    );
    let out = host.weft(&["down"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Removed what was left"),
        "{}",
        text(&out)
    );
    let left = host.leftovers(&pids);
    assert!(left.is_empty(), "left behind after weft down: {left:?}");
    let again = host.weft(&["down"]);
    assert!(
        text(&again).contains("No mesh to remove"),
        "{}",
        text(&again)
    );
}

#[test]
fn up_with_the_bookinfo_demo_serves_the_product_page_through_the_gateway_at_once() {
    let host = MeshHost::start(&["--demo", "bookinfo"]);
    let out = host.up_output();
    for name in [
        "productpage-v1",
        "details-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
        "ratings-v1",
        "sleep",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains(" ready ")),
            "{name} missing from:\n{out}"
        );
    }
    assert!(
        out.contains("curl -s http://127.0.0.1:8080/productpage"),
        "{out}"
    );
    // bookinfo-gateway's port 80, published at 8080, routes to productpage at once.
    let page = host.in_host(&[
        "curl",
        "-sS",
        "--max-time",
        "20",
        "http://127.0.0.1:8080/productpage",
    ]);
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("<title>Simple Bookstore App</title>"),
        "{page}"
    );
    // From inside the mesh, through both sidecars.
    let vip = host.vip("default", "productpage");
    let url = format!("http://{vip}:9080/productpage");
    let out = host.weft(&[
        "exec",
        "sleep",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "20",
        &url,
    ]);
    assert!(
        text(&out).contains("Simple Bookstore App"),
        "{}",
        text(&out)
    );
    // Istio's labels and service accounts.
    let r = host.record("default", "reviews-v3").unwrap();
    assert_eq!(r["labels"]["app"], "reviews");
    assert_eq!(r["labels"]["version"], "v3");
    assert_eq!(r["service_account"], "bookinfo-reviews");
}

#[test]
fn up_refuses_a_subnet_that_overlaps_the_hosts_routes() {
    let host = MeshHost::new();
    let ns = host.ns.clone();
    for step in [
        "link add e0 type veth peer name e1",
        "addr add 10.251.9.1/24 dev e0",
        "link set e0 up",
    ] {
        let mut argv = vec!["ip", "-n", &ns];
        argv.extend(step.split(' '));
        mesh_host::run(&argv);
    }
    let out = host.weft(&["up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("10.251.0.0/16 overlaps this host's routes") && err.contains("--subnet"),
        "{err}"
    );
    let links = text(&mesh_host::run(&["ip", "-n", &ns, "-o", "link", "show"]));
    assert!(!links.contains("weft-"), "no bridge was made: {links}");
}

#[test]
fn without_root_or_tools_the_commands_say_what_to_do() {
    let weft = env!("CARGO_BIN_EXE_weft");
    // The build's binary may sit where only root may enter (a target dir under /root):
    // the unprivileged user runs a copy.
    let open = std::env::temp_dir().join(format!("weft-nonroot-{}", std::process::id()));
    std::fs::create_dir_all(&open).unwrap();
    let copy = open.join("weft");
    std::fs::copy(weft, &copy).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(open);
    for cmd in ["up", "down"] {
        let out = std::process::Command::new(&copy)
            .args([cmd, "--state-dir", "/nonexistent/weft"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("sudo weft {cmd}")), "{err}");
    }
    let out = std::process::Command::new(weft)
        .args(["up", "--state-dir", "/nonexistent/weft"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apt-get install iproute2 iptables util-linux"),
        "{err}"
    );
    // `weft run` with no mesh up says how to start one.
    let state = std::env::temp_dir().join(format!("weft-mesh-none-{}", std::process::id()));
    let out = std::process::Command::new(weft)
        .args(["run", "--name", "x", "--state-dir"])
        .arg(&state)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no mesh is running") && err.contains("weft up"),
        "{err}"
    );
}

use std::os::unix::process::CommandExt;
