//! Shared pieces of the end-to-end tests: a temp dir per test, echo backends, the `weft
//! proxy` child process, curl as the client, and waiting for a condition with a deadline.

use std::convert::Infallible;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

// Not every test binary uses every helper.
#[allow(dead_code)]
pub mod config;
#[allow(dead_code)]
pub mod control_plane;
#[allow(dead_code)]
pub mod scripted;
#[allow(dead_code)]
pub mod tcp;

/// How long start-up and config reloads may take before a test gives up.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A directory removed when dropped: `config/` is what the proxy serves, the proxy's log
/// sits beside it (inside, every log line would look like a config change).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after the test, unique within this run.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("weft-gateway-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).expect("create the test's temp dir");
        TempDir(dir)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.0.join("config")
    }

    pub fn log_path(&self) -> PathBuf {
        self.0.join("proxy.log")
    }

    /// Writes (or replaces) a config file. The new text goes to a temporary name first
    /// and is renamed in place, so the proxy never reads a half-written file.
    pub fn write(&self, file: &str, text: &str) {
        let path = self.config_dir().join(file);
        let tmp = self.0.join(format!("{file}.tmp"));
        std::fs::write(&tmp, text).expect("write a config file");
        std::fs::rename(&tmp, &path).expect("move a config file into place");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends `TERM`, `INT` or `KILL` to a process.
pub fn signal_pid(pid: u32, signal: &str) {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = match signal {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        _ => Signal::KILL,
    };
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// A port nothing listens on right now, and one this test process has not handed out
/// before: the tests of a binary run in parallel, and a port the OS picked for one
/// (`bind :0`, then released) could be picked again for another before the first binds
/// it. Ports come from below Linux's ephemeral range (32768 and up), so neither can a
/// client connection's local port take it; each process starts at its own place.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + n % SPAN).expect("below 32000");
        // Each listener is closed before the next bind.
        let bindable = |host: &str| TcpListener::bind((host, port)).is_ok();
        if bindable("127.0.0.1") && bindable("0.0.0.0") {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// A port that refuses connections for as long as the returned socket lives: bound, so
/// nothing else can take it, but not listening.
pub fn closed_port() -> (u16, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&any.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("the bound address")
        .port();
    (port, socket)
}

/// Calls `check` every 50 ms until it returns `Some`, and returns that; panics naming
/// `what` once `timeout` has passed.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that answers every request with a JSON line naming
/// itself and echoing what it received (method, path, version, headers), plus the
/// response headers `x-backend: NAME` and `x-backend-secret` for header rules to edit.
pub struct Backend {
    pub port: u16,
    // Dropping the runtime stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::serve(|listener| accept(listener, Arc::from(name)))
    }

    /// Binds 127.0.0.1 on a free port and runs `server` on it in the backend's runtime.
    fn serve<F, Fut>(server: F) -> Backend
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the backend");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the backend");
        let port = listener.local_addr().expect("backend address").port();
        runtime.spawn(server(listener));
        Backend {
            port,
            _runtime: runtime,
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, name: Arc<str>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let reply = echo(&name, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn echo(name: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let values = headers
            .entry(k.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = values {
            list.push(Value::String(String::from_utf8_lossy(v.as_bytes()).into()));
        }
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let body = json!({
        "backend": name,
        "method": req.method().as_str(),
        "path": path,
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("header"));
    h.insert("x-backend", name.parse().expect("backend name as a header"));
    h.insert("x-backend-secret", "s3cret".parse().expect("header"));
    resp
}

/// A running `weft proxy` in gateway mode, killed when dropped (its log is printed when
/// the test is failing).
pub struct Gateway {
    child: Child,
    /// The port the Gateway YAML opens.
    pub port: u16,
    pub admin: u16,
    log: PathBuf,
}

impl Gateway {
    /// Starts the proxy on `dir`'s config and waits until its admin API answers `/ready`
    /// and `port` accepts connections. Fails if the initial config had objects refused
    /// or left unserved: a test's fixture is wrong then, not the feature.
    pub fn start(dir: &TempDir, port: u16) -> Gateway {
        Gateway::start_with(dir, port, &[])
    }

    /// [`Gateway::start`] with more `weft proxy` arguments. Readiness is served on a port
    /// the OS picks unless `extra` names `--readiness`, so tests never fight over 15021.
    pub fn start_with(dir: &TempDir, port: u16, extra: &[&str]) -> Gateway {
        let admin = free_port();
        let log = dir.log_path();
        let readiness: &[&str] = if extra.contains(&"--readiness") {
            &[]
        } else {
            &["--readiness", "127.0.0.1:0"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("proxy")
            .arg("--config-dir")
            .arg(dir.config_dir())
            .args(["--labels", "istio=ingressgateway"])
            .args(["--listen-address", "127.0.0.1"])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--log", "info"])
            .args(readiness)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the proxy log"))
            .spawn()
            .expect("start weft proxy");
        let mut gw = Gateway {
            child,
            port,
            admin,
            log,
        };
        eventually("the admin API to answer /ready", DEADLINE, || {
            gw.assert_running();
            let ready = try_curl(&[&format!("http://127.0.0.1:{admin}/ready")]);
            ready.filter(|r| r.status == 200)
        });
        eventually("the gateway port to accept connections", DEADLINE, || {
            gw.assert_running();
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let text = gw.log_text();
        assert!(
            !text.contains("config refused") && !text.contains("config not served"),
            "the test's config was not all served:\n{text}"
        );
        gw
    }

    /// `curl` to `path` on the gateway port, with extra curl arguments.
    pub fn get(&self, path: &str, args: &[&str]) -> Reply {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut all: Vec<&str> = args.to_vec();
        all.push(&url);
        curl(&all)
    }

    /// The admin API's URL for `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// Waits up to `timeout` for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        eventually("the proxy to exit", timeout, || {
            self.child.try_wait().expect("poll the proxy")
        })
        .code()
    }

    /// The proxy's process id (to signal it).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("weft proxy exited early ({status}):\n{}", self.log_text());
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- weft proxy log ---\n{}", self.log_text());
        }
    }
}

/// One response as curl saw it.
#[derive(Debug)]
pub struct Reply {
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: String,
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What the backend saw, from its echo body.
    pub fn echo(&self) -> Echo {
        match serde_json::from_str(&self.body) {
            Ok(v) => Echo(v),
            Err(e) => panic!("not a backend's echo ({e}): {self:?}"),
        }
    }
}

/// A backend's account of the request it received.
pub struct Echo(pub Value);

impl Echo {
    pub fn backend(&self) -> &str {
        self.0["backend"].as_str().unwrap_or("")
    }

    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or("")
    }

    /// `HTTP/1.1` or `HTTP/2.0`.
    pub fn version(&self) -> &str {
        self.0["version"].as_str().unwrap_or("")
    }

    /// Every value the request carried for header `name` (lower-case).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.0["headers"][name]
            .as_array()
            .map(|vs| vs.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The request's only value for header `name`, `None` when absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.headers(name);
        assert!(all.len() <= 1, "header {name} sent more than once: {all:?}");
        all.first().copied()
    }
}

/// Runs curl with `args` (a URL among them) and returns its standard output; panics when
/// curl fails. `-q` ignores any .curlrc and `--noproxy` any proxy the environment names.
pub fn curl_raw(args: &[&str]) -> String {
    try_curl_raw(args).unwrap_or_else(|e| panic!("curl {args:?} failed: {e}"))
}

fn try_curl_raw(args: &[&str]) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One request with curl; panics when it fails.
pub fn curl(args: &[&str]) -> Reply {
    let mut all = vec!["-i"];
    all.extend_from_slice(args);
    parse_reply(&curl_raw(&all))
}

/// One request with curl; `None` when curl fails (nothing listening yet, say).
pub fn try_curl(args: &[&str]) -> Option<Reply> {
    let mut all = vec!["-i"];
    all.extend_from_slice(args);
    try_curl_raw(&all).ok().map(|out| parse_reply(&out))
}

/// Splits `curl -i` output into the status line, headers and body.
pub fn parse_reply(out: &str) -> Reply {
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or("").to_string();
    let status = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        version,
        status,
        headers,
        body: body.to_string(),
    }
}

// Not every test file uses these.
#[allow(dead_code)]
impl Backend {
    /// Like [`Backend::start`], but serving HTTP/1.1 and HTTP/2 with prior knowledge (h2c)
    /// alike; the echo also names the request's `authority` (HTTP/2's `:authority`).
    pub fn start_auto(name: &str) -> Backend {
        Backend::serve(|listener| accept_auto(listener, Arc::from(name)))
    }
}

#[allow(dead_code)]
async fn accept_auto(listener: tokio::net::TcpListener, name: Arc<str>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let reply = echo_with_authority(&name, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// [`echo`]'s reply with the request's authority added to the JSON.
#[allow(dead_code)]
fn echo_with_authority(name: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({
        "backend": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "version": format!("{:?}", req.version()),
        "authority": req.uri().authority().map(|a| a.as_str()),
    });
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let values = headers
            .entry(k.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = values {
            list.push(Value::String(String::from_utf8_lossy(v.as_bytes()).into()));
        }
    }
    body["headers"] = Value::Object(headers);
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("header"));
    h.insert("x-backend", name.parse().expect("backend name as a header"));
    resp
}

/// A port on 127.0.0.1 that never completes a TCP handshake while the value lives: its
/// listener's accept queue is full (backlog 0, filled by our own connections, never
/// accepted), so the kernel drops further SYNs and a connect hangs until it times out.
#[allow(dead_code)]
pub struct Blackhole {
    pub port: u16,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

#[allow(dead_code)]
pub fn blackhole() -> Blackhole {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    listener.bind(&any.into()).expect("bind 127.0.0.1:0");
    listener.listen(0).expect("listen with backlog 0");
    let addr = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("the bound address");
    let mut queued = Vec::new();
    // Connect until one attempt hangs: the queue is full from then on.
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(s);
        assert!(queued.len() < 16, "the listen backlog never filled up");
    }
    Blackhole {
        port: addr.port(),
        _listener: listener,
        _queued: queued,
    }
}

/// End-to-end tests that make network namespaces and iptables rules need root and these
/// tools (`(tool, version flag, Debian package)`); without them they fail saying so.
#[allow(dead_code)] // only the namespace tests call it
pub fn require_root_and_tools(tests: &str, tools: &[(&str, &str, &str)]) {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(
        uid.ok(),
        Some(0),
        "the {tests} tests create network namespaces and iptables rules: run them as root"
    );
    for (tool, arg, package) in tools {
        let found = std::process::Command::new(tool)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is missing: install the Debian package {package} (apt-get install {package})"
        );
    }
}
