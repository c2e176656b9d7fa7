//! `weft proxy-config listeners|routes|clusters|endpoints|secrets|all WORKLOAD`: istioctl's
//! `proxy-config` for Weft. The control plane reads the proxy's admin API for us
//! (`/debug/config_dump?proxyID=`: the proxy's compiled tables, its endpoints' health,
//! and the VirtualServices and DestinationRules of its view); this prints them in
//! istioctl's tables, or the JSON with `-o json`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hyper::Method;
use serde_json::Value;

use crate::kubectl::client::server_error;
use crate::kubectl::{Connection, layout};

#[derive(Args)]
pub struct ProxyConfigArgs {
    /// What to show.
    #[arg(value_enum)]
    what: What,
    /// The proxy: `name`, `name.namespace` or `deploy/name[.namespace]`, as istioctl
    /// takes a pod (a name without namespace: the one in `default`, else the only one of
    /// that name).
    workload: String,
    /// The namespace of the proxy WORKLOAD names.
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    filter: Filter,
    #[command(flatten)]
    connection: Connection,
}

/// istioctl's filters; each applies to the kinds that have the field.
#[derive(Args, Default)]
struct Filter {
    /// Listeners and endpoints at this address.
    #[arg(long)]
    address: Option<String>,
    /// Listeners, clusters and endpoints of this port.
    #[arg(long)]
    port: Option<u16>,
    /// The route config of this name (`80`, or a gateway's `http.8080`).
    #[arg(long)]
    name: Option<String>,
    /// Clusters of this service host.
    #[arg(long)]
    fqdn: Option<String>,
    /// Clusters of this subset.
    #[arg(long)]
    subset: Option<String>,
    /// Clusters of this direction (`inbound`, `outbound`).
    #[arg(long)]
    direction: Option<String>,
    /// Endpoints of this cluster (`outbound|80|v1|customers.default.svc.cluster.local`).
    #[arg(long)]
    cluster: Option<String>,
    /// Endpoints of this status (`HEALTHY`, `UNHEALTHY`).
    #[arg(long)]
    status: Option<String>,
}

impl Filter {
    fn is(want: Option<&str>, have: &str) -> bool {
        want.is_none_or(|w| w == have)
    }

    fn port(&self, have: &str) -> bool {
        self.port.is_none_or(|p| have == p.to_string())
    }

    /// Whether a table row of `what` (the header excluded) passes.
    fn keeps(&self, what: What, row: &[String]) -> bool {
        let cell = |i: usize| row.get(i).map_or("", String::as_str);
        match what {
            What::Listeners => Self::is(self.address.as_deref(), cell(0)) && self.port(cell(1)),
            What::Routes => Self::is(self.name.as_deref(), cell(0)),
            What::Clusters => {
                let subset = if cell(2) == "-" { "" } else { cell(2) };
                Self::is(self.fqdn.as_deref(), cell(0))
                    && self.port(cell(1))
                    && Self::is(self.subset.as_deref(), subset)
                    && Self::is(self.direction.as_deref(), cell(3))
            }
            What::Endpoints => {
                let (address, port) = cell(0).rsplit_once(':').unwrap_or((cell(0), ""));
                Self::is(self.address.as_deref(), address)
                    && self.port(port)
                    && Self::is(self.status.as_deref(), cell(1))
                    && Self::is(self.cluster.as_deref(), cell(3))
            }
            What::Secrets | What::All => true,
        }
    }

    /// Keeps the header and the rows that pass.
    fn rows(&self, what: What, mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
        let mut first = true;
        rows.retain(|r| std::mem::take(&mut first) || self.keeps(what, r));
        rows
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    #[value(alias = "listener")]
    Listeners,
    #[value(alias = "route")]
    Routes,
    #[value(alias = "cluster")]
    Clusters,
    #[value(alias = "endpoint")]
    Endpoints,
    #[value(alias = "secret")]
    Secrets,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: &ProxyConfigArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let path = format!(
        "/debug/config_dump?proxyID={}",
        weft_control_plane::api::percent_encode(&crate::proxy_status::proxy_id(
            &args.workload,
            args.namespace.as_deref()
        ))
    );
    let (code, answer) = client.call(Method::GET, &path, None)?;
    if code != 200 {
        eprintln!("{}", server_error(&answer));
        return Ok(ExitCode::from(1));
    }
    let text = match args.output {
        Output::Json => {
            let part = json_part(&answer, args.what, &args.filter);
            format!(
                "{}\n",
                serde_json::to_string_pretty(&part).unwrap_or_default()
            )
        }
        Output::Table => render(&answer, args.what, &args.filter),
    };
    crate::proxy_status::print_out(&text)
}

/// The part of the dump `-o json` prints, narrowed by the filters that apply.
fn json_part(answer: &Value, what: What, filter: &Filter) -> Value {
    let dump = &answer["config_dump"];
    let gateway = dump["sidecar"].is_null();
    // A listener or route config of the dump, by its port.
    let keep_port = |port: &str| {
        let route_name = if gateway {
            format!("http.{port}")
        } else {
            port.to_string()
        };
        filter.port(port) && Filter::is(filter.name.as_deref(), &route_name)
    };
    let by_port = |v: &Value| -> Value {
        let kept = v.as_object().into_iter().flatten();
        Value::Object(
            kept.filter(|(p, _)| keep_port(p))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    match what {
        What::Listeners => serde_json::json!({
            "listeners": by_port(&dump["listeners"]),
            "sidecar": dump["sidecar"],
        }),
        What::Routes => by_port(&dump["listeners"]),
        What::Clusters => {
            let mut all = dump["clusters"].as_object().cloned().unwrap_or_default();
            for (name, c) in dump["sidecar"]["inbound_clusters"]
                .as_object()
                .into_iter()
                .flatten()
            {
                all.insert(name.clone(), c.clone());
            }
            all.retain(|name, _| {
                cluster_parts(name).is_none_or(|[direction, port, subset, host]| {
                    let row = [host, port, subset, direction].map(dash);
                    filter.keeps(What::Clusters, &row)
                })
            });
            Value::Object(all)
        }
        What::Endpoints => Value::from(filter.rows(what, endpoint_rows(answer))),
        What::Secrets => Value::Array(Vec::new()),
        What::All => answer.clone(),
    }
}

fn render(answer: &Value, what: What, filter: &Filter) -> String {
    match what {
        What::Listeners => layout(&filter.rows(what, listener_rows(answer))),
        What::Routes => layout(&filter.rows(what, route_rows(answer))),
        What::Clusters => layout(&filter.rows(what, cluster_rows(answer))),
        What::Endpoints => layout(&filter.rows(what, endpoint_rows(answer))),
        What::Secrets => secrets(),
        What::All => [
            layout(&cluster_rows(answer)),
            layout(&listener_rows(answer)),
            layout(&route_rows(answer)),
            layout(&endpoint_rows(answer)),
            secrets(),
        ]
        .join("\n"),
    }
}

/// Weft's proxies hold no certificates yet (mutual TLS comes with the CA): the table is
/// empty, with a note rather than made-up rows.
fn secrets() -> String {
    let mut out = layout(&[row(&[
        "RESOURCE NAME",
        "TYPE",
        "STATUS",
        "VALID CERT",
        "SERIAL NUMBER",
        "NOT AFTER",
        "NOT BEFORE",
    ])]);
    out.push_str("(no secrets: this proxy holds no certificates yet)\n");
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(ToString::to_string).collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `outbound|9080|v1|reviews.default.svc.cluster.local` -> its four parts.
fn cluster_parts(name: &str) -> Option<[&str; 4]> {
    let mut it = name.splitn(4, '|');
    Some([it.next()?, it.next()?, it.next()?, it.next()?])
}

/// A host of an object in `namespace` as an FQDN: a short name is the namespace's
/// service, anything with a dot is taken as written (Istio's rule).
fn fqdn(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

/// `name.namespace` of the first object of `field` whose hosts cover `host`.
fn object_for(answer: &Value, field: &str, host: &str) -> String {
    answer["objects"][field]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| {
            let ns = s(&o["namespace"]);
            o["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| host_matches(&fqdn(s(h), ns), host))
        })
        .map(|o| format!("{}.{}", s(&o["name"]), s(&o["namespace"])))
        .unwrap_or_default()
}

fn dash(v: &str) -> String {
    if v.is_empty() { "-".into() } else { v.into() }
}

fn cluster_rows(answer: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![row(&[
        "SERVICE FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "TYPE",
        "DESTINATION RULE",
    ])];
    let dump = &answer["config_dump"];
    // A sidecar's inbound clusters (`inbound|9080||`) are its workload's own ports.
    let inbound = dump["sidecar"]["inbound_clusters"].as_object();
    let clusters = dump["clusters"].as_object();
    for name in clusters.into_iter().chain(inbound).flat_map(|c| c.keys()) {
        let Some([direction, port, subset, host]) = cluster_parts(name) else {
            rows.push(vec![
                name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "STATIC".into(),
                String::new(),
            ]);
            continue;
        };
        // The control plane sends every cluster's endpoints: Envoy's EDS.
        let kind = if direction == "inbound" {
            "ORIGINAL_DST"
        } else {
            "EDS"
        };
        rows.push(vec![
            host.to_string(),
            dash(port),
            dash(subset),
            direction.to_string(),
            kind.to_string(),
            object_for(answer, "destination_rules", host),
        ]);
    }
    // istioctl sorts by service, then port and subset.
    rows[1..].sort();
    rows
}

fn endpoint_rows(answer: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![row(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"])];
    // Envoy's `/clusters` text: `cluster::address::health_flags::flags`.
    for line in s(&answer["clusters"]).lines() {
        let parts: Vec<&str> = line.split("::").collect();
        let [cluster, address, "health_flags", flags] = parts.as_slice() else {
            continue;
        };
        let ejected = flags.contains("failed_outlier_check");
        rows.push(vec![
            address.to_string(),
            if ejected { "UNHEALTHY" } else { "HEALTHY" }.into(),
            if ejected { "FAILED" } else { "OK" }.into(),
            cluster.to_string(),
        ]);
    }
    rows
}

/// Routes as istioctl shows them: route config (the port), virtual host, its domains
/// (the shortest, `+ N more...`), each route's match, and the VirtualService behind it.
fn route_rows(answer: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![row(&[
        "NAME",
        "VHOST NAME",
        "DOMAINS",
        "MATCH",
        "VIRTUAL SERVICE",
    ])];
    let gateway = answer["config_dump"]["sidecar"].is_null();
    let listeners = answer["config_dump"]["listeners"].as_object();
    for (port, listener) in listeners.into_iter().flatten() {
        // Istio names a gateway's route config `http.PORT`, a sidecar's `PORT`.
        let name = if gateway {
            format!("http.{port}")
        } else {
            port.clone()
        };
        for vhost in listener["virtual_hosts"].as_array().into_iter().flatten() {
            let vhost_name = s(&vhost["name"]);
            let host = vhost_name.rsplit_once(':').map_or(vhost_name, |(h, _)| h);
            let domains = domains(&vhost["domains"]);
            for route in vhost["routes"].as_array().into_iter().flatten() {
                // The route a proxy makes when no VirtualService covers the host.
                let vs = if s(&route["name"]) == "default" && !gateway {
                    String::new()
                } else {
                    object_for(answer, "virtual_services", host)
                };
                rows.push(vec![
                    name.clone(),
                    vhost_name.to_string(),
                    domains.clone(),
                    route_match(&route["matches"]),
                    dash(&vs),
                ]);
            }
        }
    }
    rows
}

fn domains(v: &Value) -> String {
    let all: Vec<&str> = v.as_array().into_iter().flatten().map(s).collect();
    let Some(shortest) = all.iter().copied().min_by_key(|d| d.len()) else {
        return String::new();
    };
    if all.len() > 1 {
        format!("{shortest} + {} more...", all.len() - 1)
    } else {
        shortest.to_string()
    }
}

/// The path part of a route's match, istioctl's way: `/*` for everything,
/// `/p*` a prefix, `/p` an exact path, `~regex`; several matches joined.
fn route_match(matches: &Value) -> String {
    let list: Vec<String> = matches
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match &m["uri"] {
            Value::Object(o) if o.contains_key("Prefix") => format!("{}*", s(&o["Prefix"])),
            Value::Object(o) if o.contains_key("Exact") => s(&o["Exact"]).to_string(),
            Value::Object(o) if o.contains_key("Regex") => format!("~{}", s(&o["Regex"])),
            _ => "/*".into(),
        })
        .collect();
    if list.is_empty() {
        "/*".into()
    } else {
        list.join(", ")
    }
}

/// Listeners: for a sidecar, one per service address and port it captures (HTTP ports
/// go to the port's route config, TCP ones to a cluster), then the capture listeners'
/// filter chains as istioctl shows Envoy's: 15001, and 15006 with a chain per inbound
/// port; for a gateway, one per port. Sorted by port.
fn listener_rows(answer: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![row(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"])];
    let dump = &answer["config_dump"];
    if let Some(outbound) = dump["sidecar"]["outbound"].as_object() {
        for (at, target) in outbound {
            let (address, port) = at.rsplit_once(':').unwrap_or((at, ""));
            let destination = if s(&target["protocol"]) == "Http" {
                format!("Route: {port}")
            } else {
                format!("Cluster: {}", s(&target["cluster"]))
            };
            rows.push(vec![address.into(), port.into(), "ALL".into(), destination]);
        }
        rows.extend(capture_rows(&dump["sidecar"]));
        let port = |r: &Vec<String>| r[1].parse::<u16>().unwrap_or(0);
        rows[1..].sort_by_key(port);
        return rows;
    }
    for (port, listener) in dump["listeners"].as_object().into_iter().flatten() {
        let destination = match s(&listener["protocol"]) {
            "Http" => format!("Route: http.{port}"),
            _ => "TCP/TLS routes".into(),
        };
        rows.push(vec![
            "0.0.0.0".into(),
            port.clone(),
            "ALL".into(),
            destination,
        ]);
    }
    rows
}

/// The capture listeners' rows: outbound 15001 passes what no service address matched
/// through; inbound 15006 has a chain per port of the workload (HTTP sniffed on ports
/// that declare no protocol) to its `inbound|PORT||` cluster, and passes the rest
/// through to the application.
fn capture_rows(sidecar: &Value) -> Vec<Vec<String>> {
    let any = "0.0.0.0";
    let http = "App: http/1.1,h2c; ";
    let mut rows = vec![
        row(&[any, "15001", "ALL", "PassthroughCluster"]),
        row(&[any, "15001", "Addr: *:15001", "Non-HTTP/Non-TCP"]),
        row(&[any, "15006", "Addr: *:15006", "Non-HTTP/Non-TCP"]),
    ];
    for app in [http, ""] {
        rows.push(vec![
            any.into(),
            "15006".into(),
            format!("Trans: raw_buffer; {app}Addr: 0.0.0.0/0"),
            "InboundPassthroughClusterIpv4".into(),
        ]);
    }
    for (name, c) in sidecar["inbound_clusters"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let port = c["port"].as_u64().unwrap_or(0);
        let apps: &[&str] = if c["detect"].as_bool().unwrap_or(false) {
            &[http, ""]
        } else {
            &[""]
        };
        for app in apps {
            rows.push(vec![
                any.into(),
                "15006".into(),
                format!("Trans: raw_buffer; {app}Addr: *:{port}"),
                format!("Cluster: {name}"),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests;
