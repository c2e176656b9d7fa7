//! `weft create secret tls|generic`: kubectl's commands that store a Secret (a gateway's
//! `credentialName`) through the control plane's API, with kubectl's output
//! (`secret/NAME created`) and its refusal of a name already taken. `--dry-run=client -o
//! yaml` prints the object instead, for `weft apply -f -` (how a Secret is rotated).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use weft_api::kind::Kind;
use weft_control_plane::api::percent_encode;
use weft_control_plane::store::yaml_out::to_yaml;

use crate::kubectl::Connection;
use crate::kubectl::client::server_error;

#[derive(Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    what: Create,
}

#[derive(Subcommand)]
enum Create {
    /// Create a Secret (like `kubectl create secret`).
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
}

#[derive(Subcommand)]
enum SecretKind {
    /// A `kubernetes.io/tls` Secret from a certificate and key (a gateway's
    /// `credentialName`); `--cacert` adds the CA that verifies clients (MUTUAL).
    Tls(TlsArgs),
    /// An `Opaque` Secret from files (`--from-file=cert=server.pem`) and literals.
    Generic(GenericArgs),
}

/// What every `create secret` takes.
#[derive(Args)]
struct Common {
    /// The Secret's name.
    name: String,
    /// Its namespace (a gateway reads Secrets of its own, e.g. istio-system).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// `client`: print the object (with -o) instead of creating it.
    #[arg(long, value_name = "none|client")]
    dry_run: Option<DryRun>,
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DryRun {
    None,
    Client,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Args)]
struct TlsArgs {
    #[command(flatten)]
    common: Common,
    /// The PEM certificate chain (stored as tls.crt).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The PEM private key (stored as tls.key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// A PEM CA bundle that verifies client certificates (stored as ca.crt).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
}

#[derive(Args)]
struct GenericArgs {
    #[command(flatten)]
    common: Common,
    /// `key=path`, or a path (the key is the file's name); repeatable.
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    from_file: Vec<String>,
    /// `key=value`; repeatable.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    from_literal: Vec<String>,
    /// The Secret's type.
    #[arg(long = "type", default_value = "Opaque")]
    type_: String,
}

pub fn run(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let Create::Secret { kind } = &args.what;
    let (common, secret) = match kind {
        SecretKind::Tls(a) => (&a.common, tls_secret(a)),
        SecretKind::Generic(a) => (&a.common, generic_secret(a)),
    };
    match secret.and_then(|s| create(common, s)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn tls_secret(a: &TlsArgs) -> anyhow::Result<Secret> {
    let (cert, key) = (read(&a.cert)?, read(&a.key)?);
    // kubectl refuses a pair that does not fit before storing it.
    weft_proxy::tls::config::check_pair(&cert, &key)
        .map_err(|e| anyhow::anyhow!("failed to load key pair {e}"))?;
    let mut data = BTreeMap::from([
        ("tls.crt".to_string(), ByteString(cert)),
        ("tls.key".to_string(), ByteString(key)),
    ]);
    if let Some(ca) = &a.cacert {
        let pem = read(ca)?;
        weft_proxy::tls::credentials::certificates(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        data.insert("ca.crt".into(), ByteString(pem));
    }
    Ok(secret(&a.common, "kubernetes.io/tls", data))
}

fn generic_secret(a: &GenericArgs) -> anyhow::Result<Secret> {
    let mut data = BTreeMap::new();
    for spec in &a.from_file {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) => (k.to_string(), PathBuf::from(p)),
            None => {
                let path = PathBuf::from(spec);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .with_context(|| {
                        format!("--from-file={spec}: no file name to use as the key")
                    })?;
                (name, path)
            }
        };
        insert(&mut data, key, read(&path)?)?;
    }
    for spec in &a.from_literal {
        let Some((key, value)) = spec.split_once('=') else {
            bail!("--from-literal={spec}: expected key=value");
        };
        insert(&mut data, key.to_string(), value.as_bytes().to_vec())?;
    }
    Ok(secret(&a.common, &a.type_, data))
}

fn insert(
    data: &mut BTreeMap<String, ByteString>,
    key: String,
    value: Vec<u8>,
) -> anyhow::Result<()> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        bail!("{key:?} is not a valid key name for a Secret (letters, digits, '-', '_', '.')");
    }
    if data.insert(key.clone(), ByteString(value)).is_some() {
        bail!("cannot add key {key}, another key by that name already exists");
    }
    Ok(())
}

fn secret(common: &Common, type_: &str, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(common.name.clone()),
            namespace: Some(common.namespace.clone()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Prints the object (dry run) or stores it, refusing a name already taken.
fn create(common: &Common, secret: Secret) -> anyhow::Result<()> {
    let mut doc = serde_json::to_value(&secret).context("encoding the Secret")?;
    doc["apiVersion"] = Value::from("v1");
    doc["kind"] = Value::from("Secret");
    if common.dry_run == Some(DryRun::Client) {
        match common.output {
            Some(Output::Yaml) => print!("{}", to_yaml(&doc)),
            Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&doc)?),
            None => println!("secret/{} created (dry run)", common.name),
        }
        return Ok(());
    }
    let client = common.connection.client()?;
    let path = format!(
        "{}/{}",
        crate::kubectl::collection(Kind::Secret, Some(&common.namespace)),
        percent_encode(&common.name)
    );
    let (code, _) = client.call(Method::GET, &path, None)?;
    if code == 200 {
        bail!(
            "failed to create secret secrets \"{}\" already exists",
            common.name
        );
    }
    let apply = format!(
        "/apply?namespace={}&source={}",
        percent_encode(&common.namespace),
        percent_encode("weft create secret")
    );
    let (code, answer) = client.call(Method::POST, &apply, Some(doc.to_string()))?;
    if code != 200 {
        bail!("{}", server_error(&answer));
    }
    match common.output {
        Some(Output::Yaml) => print!("{}", to_yaml(&doc)),
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&doc)?),
        None => println!("secret/{} created", common.name),
    }
    Ok(())
}
