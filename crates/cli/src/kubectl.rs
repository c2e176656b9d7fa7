//! `weft apply`, `weft get` and `weft delete`: kubectl's commands against the control
//! plane's local API, with kubectl's output (`virtualservice.networking.istio.io/reviews
//! created`, its tables, its `Error from server (NotFound)` lines) and exit codes.

pub(crate) mod client;
mod table;

pub(crate) use table::{human_duration, layout};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hyper::Method;
use serde_json::{Value, json};
use weft_api::kind::{Kind, Scope};
use weft_control_plane::api::percent_encode;
use weft_control_plane::store::{kind_ref, yaml_out::to_yaml};

use client::{Client, server_error, status_message};

/// How to reach the control plane.
#[derive(Args)]
pub struct Connection {
    /// The control plane's address.
    #[arg(
        long,
        env = "WEFT_CONTROL_PLANE",
        default_value = "127.0.0.1:15014",
        value_name = "ADDR"
    )]
    control_plane: String,
    /// The control plane's state directory, where its API token is [default:
    /// $WEFT_STATE_DIR, else $XDG_STATE_HOME/weft, else ~/.local/state/weft].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl Connection {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let dir = crate::control_plane::state_dir(self.state_dir.as_deref())?;
        Client::new(self.control_plane.clone(), dir)
    }
}

#[derive(Args)]
pub struct ApplyArgs {
    /// Files or directories of YAML or JSON to apply; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Args)]
pub struct GetArgs {
    /// The kind: plural, singular, short name or Kind (`virtualservices`, `vs`,
    /// `VirtualService`), optionally with its group (`gateways.gateway.networking.k8s.io`).
    kind: String,
    /// Names of the objects; all of the kind when none.
    names: Vec<String>,
    /// The namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The output format (a table when not given).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// The kind, as for `weft get` (not with -f).
    kind: Option<String>,
    /// Names of the objects to delete.
    names: Vec<String>,
    /// Delete the objects these files describe.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        conflicts_with = "kind"
    )]
    files: Vec<PathBuf>,
    /// The namespace (of objects that name none, with -f).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// An object that does not exist is not an error.
    #[arg(long)]
    ignore_not_found: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Runs a command; what kubectl reports as `error: ...` exits 1.
fn exit(result: anyhow::Result<bool>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        // The reader went away (`weft get vs | head`): stop quietly, as kubectl does.
        Err(e) if broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    exit(apply_all(args))
}

pub fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    exit(get_objects(args))
}

pub fn delete(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    exit(delete_objects(args))
}

/// One input: its name in messages (as `weft validate` names it) and its text.
fn inputs(paths: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            out.push(("<stdin>".to_string(), text));
            continue;
        }
        if !path.exists() {
            anyhow::bail!("the path \"{}\" does not exist", path.display());
        }
        for file in config_files(path, recursive)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            out.push((file.display().to_string(), text));
        }
    }
    Ok(out)
}

/// A file, or the `*.yaml`, `*.yml` and `*.json` files of a directory in name order.
fn config_files(path: &Path, recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let p = entry?.path();
            if p.is_dir() {
                if recursive {
                    dirs.push(p);
                }
            } else if p
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Applies each file as one all-or-nothing batch; true when every one was applied.
fn apply_all(args: &ApplyArgs) -> anyhow::Result<bool> {
    let client = args.connection.client()?;
    let mut ok = true;
    for (source, text) in inputs(&args.files, args.recursive)? {
        let path = format!(
            "/apply?namespace={}&source={}",
            percent_encode(&args.namespace),
            percent_encode(&source)
        );
        let (code, answer) = client.call(Method::POST, &path, Some(text))?;
        match code {
            200 => {
                for w in answer["warnings"].as_array().into_iter().flatten() {
                    eprintln!("Warning: {}", w.as_str().unwrap_or_default());
                }
                let mut out = std::io::stdout().lock();
                for r in answer["results"].as_array().into_iter().flatten() {
                    let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    writeln!(
                        out,
                        "{}/{} {}",
                        field("resource"),
                        field("name"),
                        field("outcome")
                    )?;
                }
            }
            422 => {
                ok = false;
                // `weft validate`'s lines, as they are.
                for cause in answer
                    .pointer("/details/causes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    eprintln!("{}", cause["message"].as_str().unwrap_or_default());
                }
                eprintln!("error: {source}: nothing was applied (the file has invalid objects)");
            }
            400 if status_message(&answer).starts_with("no objects") => {
                ok = false;
                eprintln!("error: no objects passed to apply ({source})");
            }
            _ => {
                ok = false;
                eprintln!("{}", server_error(&answer));
            }
        }
    }
    Ok(ok)
}

/// The collection path of a kind: in one namespace, or across all.
pub(crate) fn collection(kind: Kind, namespace: Option<&str>) -> String {
    let info = kind.info();
    let base = if info.group.is_empty() {
        format!("/api/{}", info.versions[0])
    } else {
        format!("/apis/{}/{}", info.group, info.versions[0])
    };
    match (info.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => {
            format!("{base}/namespaces/{}/{}", percent_encode(ns), info.plural)
        }
        _ => format!("{base}/{}", info.plural),
    }
}

fn resolve_kind(name: &str) -> anyhow::Result<Kind> {
    Kind::from_name(name)
        .with_context(|| format!("the server doesn't have a resource type \"{name}\""))
}

fn get_objects(args: &GetArgs) -> anyhow::Result<bool> {
    let kind = resolve_kind(&args.kind)?;
    let client = args.connection.client()?;
    let namespaced = kind.info().scope == Scope::Namespaced;
    let all = args.all_namespaces && namespaced;
    let mut items = Vec::new();
    let mut ok = true;
    if args.names.is_empty() {
        let ns = (!all).then_some(args.namespace.as_str());
        let (code, answer) = client.call(Method::GET, &collection(kind, ns), None)?;
        if code != 200 {
            eprintln!("{}", server_error(&answer));
            return Ok(false);
        }
        items = answer["items"].as_array().cloned().unwrap_or_default();
    } else {
        for name in &args.names {
            let path = format!(
                "{}/{}",
                collection(kind, Some(&args.namespace)),
                percent_encode(name)
            );
            let (code, answer) = client.call(Method::GET, &path, None)?;
            if code == 200 {
                items.push(answer);
            } else {
                ok = false;
                eprintln!("{}", server_error(&answer));
            }
        }
    }
    print_objects(args, kind, all, items)?;
    Ok(ok)
}

fn print_objects(args: &GetArgs, kind: Kind, all: bool, items: Vec<Value>) -> anyhow::Result<()> {
    let single = args.names.len() == 1;
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(format) => {
            if single && items.is_empty() {
                return Ok(());
            }
            let doc = if single {
                items.into_iter().next().unwrap_or(Value::Null)
            } else {
                json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
            };
            match format {
                Output::Yaml => write!(out, "{}", to_yaml(&doc))?,
                Output::Json => writeln!(out, "{}", to_json_4(&doc))?,
            }
        }
        None if items.is_empty() => {
            if args.names.is_empty() {
                if all || kind.info().scope == Scope::Cluster {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", args.namespace);
                }
            }
        }
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            write!(out, "{}", table::render(kind, &items, all, now))?;
        }
    }
    Ok(())
}

/// JSON indented by four spaces, as kubectl prints it.
fn to_json_4(value: &Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    match serde::Serialize::serialize(value, &mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => value.to_string(),
    }
}

fn delete_objects(args: &DeleteArgs) -> anyhow::Result<bool> {
    let targets: Vec<(Kind, String, String)> = if args.files.is_empty() {
        let Some(kind) = &args.kind else {
            anyhow::bail!("you must provide one or more resources by argument or filename (-f)");
        };
        let kind = resolve_kind(kind)?;
        if args.names.is_empty() {
            anyhow::bail!("resource(s) were provided, but no name was specified");
        }
        let ns = match kind.info().scope {
            Scope::Namespaced => args.namespace.clone(),
            Scope::Cluster => String::new(),
        };
        args.names
            .iter()
            .map(|n| (kind, ns.clone(), n.clone()))
            .collect()
    } else {
        let mut targets = Vec::new();
        for (source, text) in inputs(&args.files, false)? {
            targets.extend(identities(&source, &text, &args.namespace)?);
        }
        targets
    };
    let client = args.connection.client()?;
    let mut ok = true;
    for (kind, ns, name) in targets {
        let ns_opt = (!ns.is_empty()).then_some(ns.as_str());
        let path = format!("{}/{}", collection(kind, ns_opt), percent_encode(&name));
        let (code, answer) = client.call(Method::DELETE, &path, None)?;
        match code {
            200 => writeln!(std::io::stdout(), "{} \"{name}\" deleted", kind_ref(kind))?,
            404 if args.ignore_not_found => {}
            _ => {
                ok = false;
                eprintln!("{}", server_error(&answer));
            }
        }
    }
    Ok(ok)
}

/// The kind, namespace and name of each document of a file (for `delete -f`: the
/// objects need not be valid, only named).
fn identities(
    source: &str,
    text: &str,
    namespace: &str,
) -> anyhow::Result<Vec<(Kind, String, String)>> {
    let mut out = Vec::new();
    for doc in weft_api::yaml::split_documents(text) {
        let (value, _) = weft_api::yaml::parse_document(&doc)
            .map_err(|e| anyhow::anyhow!("{source}:{}: invalid YAML: {}", e.line, e.message))?;
        let items = match value.get("items").and_then(Value::as_array) {
            Some(items) if value["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                items.clone()
            }
            _ => vec![value],
        };
        for item in items {
            let s = |p: &str| {
                item.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let kind = Kind::resolve(&s("/apiVersion"), &s("/kind"))
                .map_err(|e| anyhow::anyhow!("{source}:{}: {e}", doc.first_line))?;
            let ns = match kind.info().scope {
                Scope::Cluster => String::new(),
                Scope::Namespaced => Some(s("/metadata/namespace"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| namespace.to_string()),
            };
            out.push((kind, ns, s("/metadata/name")));
        }
    }
    Ok(out)
}
