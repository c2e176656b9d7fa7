//! The control plane's load client for `bench/control_plane.sh` (not a test: `cargo
//! test` does not build it). It opens N simulated proxies against a running
//! `weft control-plane`, each a real `DeltaConfig` stream on its own connection with
//! its own node (sidecars spread over namespaces), ACKing every response; then, change
//! after change, applies one object through the local API and measures the time until
//! every affected stream has ACKed a response carrying the change. Prints each change's
//! timing on stderr and one Markdown row on stdout.
//!
//! `xds_load --xds ADDR --api ADDR --token FILE --streams N --namespaces K
//!  --changes R --kind endpoint|virtualservice [--affect all|one] [--cp-pid PID]
//!  [--threads T]`
//!
//! `--affect one` exports the changed service and VirtualService to the namespace
//! `ns-0` only, so that a change concerns one stream in K; the others must receive
//! nothing. `--cp-pid` reads the control plane's CPU time around the changes.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc};
use weft_xds::{
    ConfigDiscoveryClient, DeltaConfigRequest, DeltaConfigResponse, Node, ProxyMode, TYPES,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Args {
    xds: String,
    api: String,
    token: String,
    streams: usize,
    namespaces: usize,
    changes: usize,
    kind: String,
    /// Only the streams of `ns-0` are affected by the changes.
    one_namespace: bool,
    cp_pid: Option<u32>,
    threads: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        xds: "127.0.0.1:15010".into(),
        api: "127.0.0.1:15014".into(),
        token: String::new(),
        streams: 1000,
        namespaces: 10,
        changes: 30,
        kind: "endpoint".into(),
        one_namespace: false,
        cp_pid: None,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` adds `--bench`.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--xds" => a.xds = value,
            "--api" => a.api = value,
            "--token" => a.token = std::fs::read_to_string(value)?.trim().to_string(),
            "--streams" => a.streams = value.parse()?,
            "--namespaces" => a.namespaces = value.parse()?,
            "--changes" => a.changes = value.parse()?,
            "--kind" => a.kind = value,
            "--affect" => a.one_namespace = value == "one",
            "--cp-pid" => a.cp_pid = Some(value.parse()?),
            "--threads" => a.threads = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(a)
}

impl Args {
    /// Whether stream `i` sees the changed objects.
    fn affected(&self, i: usize) -> bool {
        !self.one_namespace || i.is_multiple_of(self.namespaces)
    }

    fn affected_count(&self) -> usize {
        (0..self.streams).filter(|i| self.affected(*i)).count()
    }
}

/// The change being measured: the bytes that show a response carries it, how many
/// affected streams have ACKed one, and when the first and the last did.
struct Round {
    id: u64,
    marker: Vec<u8>,
    started: Instant,
    acked: AtomicUsize,
    /// Microseconds from `started`: the first and the last affected stream's ACK.
    first_us: AtomicU64,
    last_us: AtomicU64,
    done: Notify,
}

/// What every stream shares.
struct Shared {
    round: Mutex<Option<Arc<Round>>>,
    /// Streams that have ACKed their first response of each type.
    synced: AtomicUsize,
    synced_changed: Notify,
    responses: AtomicU64,
    /// Responses carrying a change that reached a stream it should not have.
    strays: AtomicU64,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One simulated proxy. A stream that fails before its first sync (a connection reset
/// while a thousand connect at once) tries again, as a real proxy reconnects; one that
/// fails later is reported and makes the round it misses time out.
async fn proxy(i: usize, args: Arc<Args>, shared: Arc<Shared>, gate: Arc<Semaphore>) {
    for attempt in 1.. {
        let mut synced = false;
        match stream(i, &args, &shared, &gate, &mut synced).await {
            Ok(()) => return,
            Err(e) if synced || attempt == 20 => {
                eprintln!("stream {i}: {e}");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * attempt)).await,
        }
    }
}

/// One stream: connects, subscribes to both types, ACKs everything.
async fn stream(
    i: usize,
    args: &Args,
    shared: &Shared,
    gate: &Semaphore,
    synced: &mut bool,
) -> Result<(), Error> {
    let ns = format!("ns-{}", i % args.namespaces);
    let node = Node {
        name: format!("sim-{i}.{ns}"),
        mode: ProxyMode::Sidecar as i32,
        namespace: ns,
        labels: HashMap::from([("app".to_string(), format!("sim-{i}"))]),
        service_account: "default".into(),
        version: "weft-bench".into(),
        // Simulated proxies have no admin API to read config dumps from.
        ..Default::default()
    };
    // At most a few connects at a time: a burst overflows the listener's backlog.
    let permit = gate.acquire().await?;
    let mut client = ConfigDiscoveryClient::connect(format!("http://{}", args.xds)).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    for (n, t) in TYPES.iter().enumerate() {
        tx.send(DeltaConfigRequest {
            node: (n == 0).then(|| node.clone()),
            type_url: t.to_string(),
            resource_names_subscribe: vec!["*".into()],
            ..Default::default()
        })?;
    }
    let mut inbound = client
        .delta_config(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    drop(permit);
    let affected = args.affected(i);
    let mut first_seen = [false; 2];
    let mut counted_round = 0;
    while let Some(resp) = inbound.message().await? {
        tx.send(DeltaConfigRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })?;
        shared.responses.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = TYPES.iter().position(|t| *t == resp.type_url)
            && !first_seen[t]
        {
            first_seen[t] = true;
            if first_seen.iter().all(|s| *s) {
                *synced = true;
                shared.synced.fetch_add(1, Ordering::Relaxed);
                shared.synced_changed.notify_one();
            }
        }
        count_round(args, shared, &resp, affected, &mut counted_round);
    }
    Ok(())
}

/// Counts a response that carries the round's change (once per stream and round).
fn count_round(
    args: &Args,
    shared: &Shared,
    resp: &DeltaConfigResponse,
    affected: bool,
    counted_round: &mut u64,
) {
    let round = shared
        .round
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(round) = round else { return };
    let carries = round.id != *counted_round
        && resp
            .resources
            .iter()
            .any(|r| contains(&r.body, &round.marker));
    if !carries {
        return;
    }
    *counted_round = round.id;
    if !affected {
        shared.strays.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let at = u64::try_from(round.started.elapsed().as_micros()).unwrap_or(u64::MAX);
    round.first_us.fetch_min(at, Ordering::Relaxed);
    round.last_us.fetch_max(at, Ordering::Relaxed);
    if round.acked.fetch_add(1, Ordering::Relaxed) + 1 == args.affected_count() {
        round.done.notify_one();
    }
}

/// `POST /apply` of `yaml` through the local API (HTTP/1.1, one connection per call).
async fn apply(args: &Args, namespace: &str, yaml: &str) -> Result<(), Error> {
    let mut conn = tokio::net::TcpStream::connect(&args.api).await?;
    let head = format!(
        "POST /apply?namespace={namespace}&source=bench HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/yaml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        args.api,
        args.token,
        yaml.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(yaml.as_bytes()).await?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.1 201") {
        return Err(format!("apply failed: {text}").into());
    }
    Ok(())
}

/// `exportTo` of the changed service and VirtualService: everywhere, or `ns-0`.
fn export_to(args: &Args) -> &'static str {
    if args.one_namespace {
        "[ns-0]"
    } else {
        "[\"*\"]"
    }
}

/// Each namespace's own config (a service with a route, visible there only), and the
/// service `shared.mesh.example` whose endpoint and route the rounds change.
fn background(args: &Args) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = (0..args.namespaces)
        .map(|k| {
            let ns = format!("ns-{k}");
            let yaml = format!(
                "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: local, namespace: {ns}}}
spec:
  hosts: [local.{ns}.example]
  exportTo: [\".\"]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.2.{k}.1}}, {{address: 10.2.{k}.2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: local, namespace: {ns}}}
spec:
  hosts: [local.{ns}.example]
  exportTo: [\".\"]
  http:
  - route: [{{destination: {{host: local.{ns}.example}}}}]
"
            );
            (ns, yaml)
        })
        .collect();
    out.push((
        "mesh".into(),
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: shared, namespace: mesh}}
spec:
  hosts: [shared.mesh.example]
  exportTo: {}
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: shared}}}}
",
            export_to(args)
        ),
    ));
    out.push(("mesh".into(), change(args, 0).1));
    out
}

/// Round `r`'s object and the bytes that show a response carries it.
fn change(args: &Args, r: u64) -> (Vec<u8>, String) {
    if args.kind == "endpoint" {
        let address = format!("10.1.{}.{}", r / 250, r % 250 + 1);
        let yaml = format!(
            "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: shared-1, namespace: mesh}}
spec:
  address: {address}
  labels: {{app: shared}}
"
        );
        (format!("\"{address}\"").into_bytes(), yaml)
    } else {
        let name = format!("bench-r{r}");
        let yaml = format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shared, namespace: mesh}}
spec:
  hosts: [shared.mesh.example]
  exportTo: {}
  http:
  - name: {name}
    route: [{{destination: {{host: shared.mesh.example}}}}]
",
            export_to(args)
        );
        (format!("\"{name}\"").into_bytes(), yaml)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The process's CPU time (user + system, all threads) from `/proc/PID/stat`, whose
/// figures are in clock ticks of 1/100 s (Linux's `USER_HZ`).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Connects every stream and waits until each has its first responses.
async fn connect_all(args: &Arc<Args>, shared: &Arc<Shared>) -> Result<Duration, Error> {
    let connecting = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    for i in 0..args.streams {
        let (args, shared, gate) = (Arc::clone(args), Arc::clone(shared), Arc::clone(&gate));
        tokio::spawn(proxy(i, args, shared, gate));
    }
    while shared.synced.load(Ordering::Relaxed) < args.streams {
        if connecting.elapsed() > Duration::from_secs(120) {
            return Err("streams did not all sync within 120 s".into());
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(1), shared.synced_changed.notified()).await;
    }
    Ok(connecting.elapsed())
}

/// One change's times from the start of its `POST /apply`: the answer to the apply,
/// the first and the last ACK.
struct Timing {
    applied: Duration,
    first: Duration,
    last: Duration,
}

/// Applies change `r` and waits until every affected stream has ACKed it.
async fn one_change(args: &Args, shared: &Shared, r: u64) -> Result<Timing, Error> {
    let (marker, yaml) = change(args, r);
    let round = Arc::new(Round {
        id: r,
        marker,
        started: Instant::now(),
        acked: AtomicUsize::new(0),
        first_us: AtomicU64::new(u64::MAX),
        last_us: AtomicU64::new(0),
        done: Notify::new(),
    });
    *shared.round.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&round));
    apply(args, "mesh", &yaml).await?;
    let applied = round.started.elapsed();
    if tokio::time::timeout(Duration::from_secs(10), round.done.notified())
        .await
        .is_err()
    {
        return Err(format!(
            "change {r}: only {}/{} streams ACKed it within 10 s",
            round.acked.load(Ordering::Relaxed),
            args.affected_count()
        )
        .into());
    }
    let us = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
    Ok(Timing {
        applied,
        first: us(&round.first_us),
        last: us(&round.last_us),
    })
}

/// Makes the changes one after the other; the time each took to reach every affected
/// stream.
async fn changes(args: &Args, shared: &Shared) -> Result<Vec<Duration>, Error> {
    let mut times = Vec::with_capacity(args.changes);
    for r in 1..=args.changes as u64 {
        let t = one_change(args, shared, r).await?;
        eprintln!(
            "xds_load: {} {}/{} streams: change {r}: applied {}, first ACK {}, last {}",
            args.kind,
            args.affected_count(),
            args.streams,
            ms(t.applied),
            ms(t.first),
            ms(t.last),
        );
        times.push(t.last);
        // Apart enough that each change is its own debounced batch.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(times)
}

async fn run(args: Args) -> Result<(), Error> {
    for (ns, yaml) in background(&args) {
        apply(&args, &ns, &yaml).await?;
    }
    let args = Arc::new(args);
    let shared = Arc::new(Shared {
        round: Mutex::new(None),
        synced: AtomicUsize::new(0),
        synced_changed: Notify::new(),
        responses: AtomicU64::new(0),
        strays: AtomicU64::new(0),
    });
    let connect_time = connect_all(&args, &shared).await?;
    // Let the status writer and the first pushes settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let responses_before = shared.responses.load(Ordering::Relaxed);
    let cpu_before = args.cp_pid.and_then(cpu_time);
    let own_before = cpu_time(std::process::id());
    let mut times = changes(&args, &shared).await?;
    let per_change = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => ms((b.saturating_sub(a)) / args.changes.max(1) as u32),
        _ => "-".into(),
    };
    let cpu = per_change(cpu_before, args.cp_pid.and_then(cpu_time));
    eprintln!(
        "xds_load: the load client's own CPU per change: {}",
        per_change(own_before, cpu_time(std::process::id()))
    );
    let strays = shared.strays.load(Ordering::Relaxed);
    if strays > 0 {
        return Err(format!("{strays} unaffected streams were sent a change").into());
    }
    times.sort();
    println!(
        "| {} | {} of {} | {} | {} | {} | {} | {} | {} | {} |",
        args.kind,
        args.affected_count(),
        args.streams,
        args.changes,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        ms(connect_time),
        shared.responses.load(Ordering::Relaxed) - responses_before,
        cpu,
    );
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
            .block_on(run(args))
    });
    if let Err(e) = result {
        eprintln!("xds_load: {e}");
        std::process::exit(1);
    }
}
