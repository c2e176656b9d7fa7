//! The iptables rules of a pod, as one `iptables-restore` input: Istio's capture
//! (`istio-iptables`: outbound TCP to 15001, inbound TCP to 15006, the proxy's UID 1337,
//! loopback and the proxy's own ports exempt, DNS to the proxy's DNS server on 15053)
//! for pods with a sidecar, and for every pod a filter rule that keeps its traffic on
//! the mesh subnet, so nothing leaves the machine even if the host forwards packets.

use ipnet::Ipv4Net;

use crate::process::PROXY_UID;

/// The sidecar's outbound capture port.
pub const OUTBOUND_PORT: u16 = 15001;
/// The sidecar's inbound capture port.
pub const INBOUND_PORT: u16 = 15006;
/// The sidecar's DNS server.
pub const DNS_PORT: u16 = 15053;
/// Ports Istio leaves out of inbound capture: admin, merged metrics, readiness,
/// Prometheus.
pub const INBOUND_EXCLUDED: [u16; 4] = [15000, 15020, 15021, 15090];

/// The `iptables-restore` input for a pod on `subnet`.
pub fn rules(subnet: Ipv4Net, sidecar: bool) -> String {
    let mut out = String::new();
    if sidecar {
        out.push_str(&nat_rules());
    }
    // The filter table sees packets after the nat table redirected them (to 127.0.0.1),
    // so this refuses only what goes to an address neither on the subnet nor local:
    // the proxy's own (UID 1337) traffic, or an app's without a sidecar. It matches on
    // the destination, not on `-o eth0`: the output interface a hook sees is the one
    // chosen before the redirect re-routed the packet to lo.
    out.push_str(&format!(
        "*filter\n:WEFT_FENCE - [0:0]\n-A OUTPUT -j WEFT_FENCE\n\
         -A WEFT_FENCE -d 127.0.0.0/8 -j RETURN\n-A WEFT_FENCE -d {subnet} -j RETURN\n\
         -A WEFT_FENCE -j REJECT --reject-with icmp-net-unreachable\nCOMMIT\n"
    ));
    out
}

fn nat_rules() -> String {
    let mut r = vec!["*nat".to_string()];
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
        "ISTIO_REDIRECT",
    ] {
        r.push(format!(":{chain} - [0:0]"));
    }
    r.push(format!(
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}"
    ));
    r.push(format!(
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_PORT}"
    ));
    r.push("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
    for port in INBOUND_EXCLUDED {
        r.push(format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"));
    }
    r.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into());
    r.push("-A OUTPUT -p tcp -j ISTIO_OUTPUT".into());
    r.push("-A OUTPUT -p udp --dport 53 -j ISTIO_OUTPUT".into());
    r.push(format!(
        "-A ISTIO_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN"
    ));
    // DNS before the loopback exemption: a resolver on 127.0.0.x is captured too.
    for proto in ["udp", "tcp"] {
        r.push(format!(
            "-A ISTIO_OUTPUT -p {proto} --dport 53 -j REDIRECT --to-ports {DNS_PORT}"
        ));
    }
    r.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
    r.push("-A ISTIO_OUTPUT -p tcp -j ISTIO_REDIRECT".into());
    r.push("COMMIT".into());
    let mut text = r.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Ipv4Net {
        "10.251.0.0/16".parse().unwrap_or_default()
    }

    #[test]
    fn a_sidecar_pod_gets_istios_capture_and_the_subnet_fence() {
        let text = rules(subnet(), true);
        let pos = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from\n{text}"))
        };
        pos("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001");
        pos("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006");
        for port in INBOUND_EXCLUDED {
            pos(&format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"));
        }
        // The proxy's own traffic first, DNS before the loopback exemption, the rest last.
        let uid = pos("--uid-owner 1337 -j RETURN");
        let dns = pos("-p udp --dport 53 -j REDIRECT --to-ports 15053");
        let lo = pos("-d 127.0.0.1/32 -j RETURN");
        let rest = pos("-A ISTIO_OUTPUT -p tcp -j ISTIO_REDIRECT");
        assert!(uid < dns && dns < lo && lo < rest, "{text}");
        let fence = pos("-A WEFT_FENCE -d 10.251.0.0/16 -j RETURN");
        assert!(fence < pos("-A WEFT_FENCE -j REJECT"), "{text}");
    }

    #[test]
    fn a_pod_without_sidecar_gets_only_the_fence() {
        let text = rules(subnet(), false);
        assert!(!text.contains("*nat"), "{text}");
        assert!(
            text.contains("-A WEFT_FENCE -d 10.251.0.0/16 -j RETURN"),
            "{text}"
        );
    }
}
