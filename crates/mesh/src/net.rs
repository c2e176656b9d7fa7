//! The mesh's network, made with `ip` and `iptables-restore`: a bridge in the host
//! namespace holding the subnet's first address, and per workload a network namespace
//! plugged into it by a veth pair (`eth0` inside), with routes only for the subnet and
//! the VIP range, its /etc/netns files (resolv.conf, hosts) and its iptables rules.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use ipnet::Ipv4Net;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{MeshError, Result};
use crate::state::{MeshInfo, WorkloadRecord};

/// The range services' virtual IPs come from (Istio's auto-allocation range).
pub const VIP_RANGE: &str = "240.240.0.0/16";

/// Where `ip netns exec` finds a namespace's resolv.conf and hosts.
pub fn etc_dir(netns: &str) -> PathBuf {
    Path::new("/etc/netns").join(netns)
}

/// Runs a command to its end; its standard output, or an error with its standard error.
pub async fn run(argv: &[&str]) -> Result<String> {
    run_with_input(argv, None).await
}

/// [`run`] with `input` on standard input.
pub async fn run_with_input(argv: &[&str], input: Option<&str>) -> Result<String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| MeshError::Invalid("empty command".into()))?;
    let failed = |detail: String| MeshError::Command {
        command: argv.join(" "),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(failed(if err.is_empty() {
            out.status.to_string()
        } else {
            err
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bridge: `weft-TAG`, holding the subnet's first address.
pub async fn create_bridge(info: &MeshInfo) -> Result<()> {
    let addr = format!("{}/{}", info.gateway, info.subnet.prefix_len());
    let br = info.bridge.as_str();
    run(&["ip", "link", "add", br, "type", "bridge"]).await?;
    run(&["ip", "addr", "add", &addr, "dev", br]).await?;
    run(&["ip", "link", "set", br, "up"]).await?;
    Ok(())
}

/// Hosts that load `br_netfilter` (Docker does) pass bridged frames through the host's
/// iptables FORWARD chain, whose policy may be DROP (Docker sets it): then pods could not
/// reach each other. On such a host only, one rule accepts traffic from the mesh's bridge
/// to itself; [`disallow_bridged`] removes it.
pub async fn allow_bridged(bridge: &str) -> Result<()> {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        let mut argv = vec!["iptables", "-I", "FORWARD"];
        argv.extend(bridged_rule(bridge));
        run(&argv).await?;
    }
    Ok(())
}

/// Removes what [`allow_bridged`] added (every copy of the rule).
pub async fn disallow_bridged(bridge: &str) {
    for _ in 0..8 {
        let mut argv = vec!["iptables", "-D", "FORWARD"];
        argv.extend(bridged_rule(bridge));
        if run(&argv).await.is_err() {
            return;
        }
    }
}

fn bridged_rule(bridge: &str) -> [&str; 10] {
    [
        "-i",
        bridge,
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        "weft mesh bridge",
        "-j",
        "ACCEPT",
    ]
}

/// Deletes an interface if it exists.
pub async fn delete_link(name: &str) {
    if link_exists(name).await {
        let _ = run(&["ip", "link", "del", name]).await;
    }
}

pub async fn link_exists(name: &str) -> bool {
    run(&["ip", "link", "show", "dev", name]).await.is_ok()
}

/// The workload's namespace, its veth into the bridge, its address and routes, its
/// /etc/netns files, and its iptables rules (`capture` for a sidecar).
pub async fn create_pod(info: &MeshInfo, rec: &WorkloadRecord) -> Result<()> {
    let (Some(ns), Some(veth), Some(ip)) = (rec.netns.as_deref(), rec.veth.as_deref(), rec.ip)
    else {
        return Err(MeshError::Invalid(format!(
            "workload {}/{} has no address",
            rec.namespace, rec.name
        )));
    };
    let addr = format!("{ip}/{}", info.subnet.prefix_len());
    let gateway = info.gateway.to_string();
    run(&["ip", "netns", "add", ns]).await?;
    let steps: &[&[&str]] = &[
        &["ip", "-n", ns, "link", "set", "lo", "up"],
        &[
            "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
        &["ip", "link", "set", veth, "master", &info.bridge, "up"],
        // No IPv6 link-local address: the capture rules are IPv4's, so no IPv6 path
        // between pods may bypass them.
        &["ip", "-n", ns, "link", "set", "eth0", "addrgenmode", "none"],
        &["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"],
        &["ip", "-n", ns, "link", "set", "eth0", "up"],
        // VIPs need a route for connect() to reach the capture rules; nothing else
        // (no default route): an address off the subnet is unreachable.
        &[
            "ip", "-n", ns, "route", "add", VIP_RANGE, "via", &gateway, "dev", "eth0",
        ],
    ];
    for step in steps {
        run(step).await?;
    }
    write_etc(ns, rec, info.gateway)?;
    let rules = crate::capture::rules(info.subnet, rec.sidecar);
    run_with_input(
        &["ip", "netns", "exec", ns, "iptables-restore"],
        Some(&rules),
    )
    .await?;
    Ok(())
}

/// /etc/netns/NS/resolv.conf (the pod's DNS search path; any nameserver, since port 53
/// is redirected to the sidecar) and hosts (localhost and the pod's own name).
fn write_etc(ns: &str, rec: &WorkloadRecord, gateway: Ipv4Addr) -> Result<()> {
    let dir = etc_dir(ns);
    std::fs::create_dir_all(&dir)
        .map_err(MeshError::io(format!("cannot create {}", dir.display())))?;
    let resolv = format!(
        "# weft: queries to port 53 are answered by the sidecar's DNS proxy (127.0.0.1:15053)\n\
         nameserver {gateway}\n\
         search {0}.svc.cluster.local svc.cluster.local cluster.local\n\
         options ndots:5\n",
        rec.namespace
    );
    write(&dir.join("resolv.conf"), &resolv)?;
    write(&dir.join("hosts"), &hosts_text(rec, &[]))
}

/// A pod's hosts file: localhost, its own name, then `extra` (address, names) lines.
pub fn hosts_text(rec: &WorkloadRecord, extra: &[(Ipv4Addr, Vec<String>)]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = rec.ip {
        text.push_str(&format!("{ip}\t{} {}\n", rec.hostname, rec.name));
    }
    for (ip, names) in extra {
        text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    text
}

pub fn write(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("weft-tmp");
    std::fs::write(&tmp, text).map_err(MeshError::io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(MeshError::io(format!("cannot write {}", path.display())))
}

/// Removes a pod's network: every process still in its namespace is killed first (or
/// the namespace, and with it the veth, would outlive its name), then the namespace
/// (which takes eth0, its veth peer and its iptables rules with it), then the /etc/netns
/// entry. Each step tolerates what is already gone.
pub async fn delete_pod(netns: &str, veth: Option<&str>) {
    if netns_exists(netns) {
        if let Ok(pids) = run(&["ip", "netns", "pids", netns]).await {
            for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                if let Some(p) = crate::state::Proc::of(pid) {
                    crate::process::kill(p);
                }
            }
        }
        let _ = run(&["ip", "netns", "del", netns]).await;
    }
    if let Some(veth) = veth {
        delete_link(veth).await;
    }
    let _ = std::fs::remove_dir_all(etc_dir(netns));
    // Only succeeds when nothing else has entries there.
    let _ = std::fs::remove_dir("/etc/netns");
}

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Every namespace whose name starts with `prefix`.
pub async fn netns_with_prefix(prefix: &str) -> Vec<String> {
    run(&["ip", "netns", "list"])
        .await
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Every interface whose name starts with `prefix` (in this namespace).
pub async fn links_with_prefix(prefix: &str) -> Vec<String> {
    run(&["ip", "-o", "link", "show"])
        .await
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The words `ip route` may put before a route's destination.
const ROUTE_TYPES: [&str; 9] = [
    "local",
    "broadcast",
    "unicast",
    "unreachable",
    "blackhole",
    "prohibit",
    "throw",
    "multicast",
    "anycast",
];

/// Routes of this namespace that overlap `subnet` (other than a default route): the
/// mesh would hide or break them.
pub async fn conflicting_routes(subnet: Ipv4Net) -> Result<Vec<String>> {
    let table = run(&["ip", "-4", "route", "show", "table", "all"]).await?;
    Ok(table
        .lines()
        .filter(|line| {
            let dest = line.split_whitespace().find(|w| !ROUTE_TYPES.contains(w));
            let Some(dest) = dest.filter(|d| *d != "default") else {
                return false;
            };
            let net = match dest.parse::<Ipv4Net>() {
                Ok(n) => n,
                Err(_) => match dest.parse::<Ipv4Addr>() {
                    Ok(a) => Ipv4Net::from(a),
                    Err(_) => return false,
                },
            };
            net.contains(&subnet.network()) || subnet.contains(&net.network())
        })
        .map(|l| l.trim().to_string())
        .collect())
}

/// This process's network namespace (`net:[4026531840]`).
pub fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_hosts_file_names_it_and_localhost() {
        let rec = WorkloadRecord {
            name: "sleep".into(),
            hostname: "sleep-abcde".into(),
            ip: Some(Ipv4Addr::new(10, 251, 0, 7)),
            ..WorkloadRecord::default()
        };
        let text = hosts_text(
            &rec,
            &[(Ipv4Addr::new(10, 251, 0, 9), vec!["httpbin".into()])],
        );
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.contains("10.251.0.7\tsleep-abcde sleep\n"), "{text}");
        assert!(text.ends_with("10.251.0.9\thttpbin\n"), "{text}");
    }
}
