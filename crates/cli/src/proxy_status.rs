//! `weft proxy-status`: istioctl's `proxy-status` for Weft, one row per proxy connected to
//! the control plane with its state per resource type (SYNCED, STALE, NOT SENT, NACKED),
//! read from the control plane's `/debug/syncz`; the reasons of NACKs follow the table.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hyper::Method;
use serde_json::Value;

use crate::kubectl::Connection;
use crate::kubectl::client::server_error;

#[derive(Args)]
pub struct ProxyStatusArgs {
    /// Only this proxy: `name`, `name.namespace` or `deploy/name[.namespace]`, as
    /// istioctl takes a pod (a name without namespace: the one in `default`, else the only
    /// one of that name).
    name: Option<String>,
    /// The namespace of the proxy NAME names; without NAME, list only this namespace's.
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: &ProxyStatusArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let path = match &args.name {
        Some(name) => format!(
            "/debug/syncz?proxyID={}",
            weft_control_plane::api::percent_encode(&proxy_id(name, args.namespace.as_deref()))
        ),
        None => "/debug/syncz".to_string(),
    };
    let (code, answer) = client.call(Method::GET, &path, None)?;
    if code != 200 {
        eprintln!("{}", server_error(&answer));
        return Ok(ExitCode::from(1));
    }
    let proxies: Vec<&Value> = answer["proxies"]
        .as_array()
        .into_iter()
        .flatten()
        // `-n` alone lists that namespace's proxies.
        .filter(|p| {
            args.name.is_some()
                || args
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| p["namespace"] == ns)
        })
        .collect();
    let text = match args.output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&proxies).unwrap_or_default()
        ),
        Output::Table => render(&proxies),
    };
    print_out(&text)
}

/// The proxy ID a command's NAME and `-n NAMESPACE` make: `name.namespace` when the
/// namespace is given apart, else NAME as it is (the control plane resolves it).
pub fn proxy_id(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.ends_with(&format!(".{ns}")) => format!("{name}.{ns}"),
        _ => name.to_string(),
    }
}

/// Writes a command's output; a reader that went away (`weft proxy-status | head -1`)
/// ends the command quietly, as kubectl's do, instead of the panic `print!` gives.
pub(crate) fn print_out(text: &str) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// istioctl's state words: `NOT_SENT` is written `NOT SENT`.
fn state(t: &Value) -> String {
    t["state"].as_str().unwrap_or("").replace('_', " ")
}

fn render(proxies: &[&Value]) -> String {
    let type_names: Vec<String> = proxies
        .first()
        .and_then(|p| p["types"].as_array())
        .map(|ts| {
            ts.iter()
                .map(|t| t["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_else(|| vec!["SERVICES".into(), "CONFIG".into()]);
    let mut rows = vec![
        ["NAME", "NAMESPACE", "MODE"]
            .iter()
            .map(ToString::to_string)
            .chain(type_names.iter().cloned())
            .chain(["VERSION".to_string()])
            .collect::<Vec<String>>(),
    ];
    let mut reasons = Vec::new();
    for p in proxies {
        let mut row = vec![
            p["proxy"].as_str().unwrap_or("").to_string(),
            p["namespace"].as_str().unwrap_or("").to_string(),
            p["mode"].as_str().unwrap_or("").to_string(),
        ];
        for t in p["types"].as_array().into_iter().flatten() {
            row.push(state(t));
            if t["state"] == "NACKED"
                && let Some(reason) = t["last_nack"].as_str()
            {
                reasons.push(format!(
                    "{} {}: {reason}",
                    row[0],
                    t["name"].as_str().unwrap_or("")
                ));
            }
        }
        row.push(p["version"].as_str().unwrap_or("").to_string());
        rows.push(row);
    }
    let mut out = crate::kubectl::layout(&rows);
    if !reasons.is_empty() {
        out.push('\n');
        for r in reasons {
            out.push_str(&format!("NACK {r}\n"));
        }
    }
    out
}
