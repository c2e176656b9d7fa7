//! A real `weft control-plane` and a `weft proxy --control-plane` gateway for the
//! end-to-end tests, each killed when dropped (with its log printed when the test is
//! failing); `weft` CLI commands run against the control plane.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::{DEADLINE, TempDir, eventually, free_port, try_curl};

/// A `weft control-plane` on ports of its own.
pub struct ControlPlane {
    child: Child,
    pub api: String,
    pub xds: String,
    pub state: PathBuf,
    log: PathBuf,
}

impl ControlPlane {
    pub fn start(dir: &TempDir) -> ControlPlane {
        let api = format!("127.0.0.1:{}", free_port());
        let xds = format!("127.0.0.1:{}", free_port());
        ControlPlane::start_on(dir, api, xds)
    }

    /// Starts one on given addresses (a restart takes the same, and its log goes on in
    /// the same file).
    pub fn start_on(dir: &TempDir, api: String, xds: String) -> ControlPlane {
        let state = dir.config_dir().join("state");
        let log = dir.log_path().with_file_name("control-plane.log");
        ControlPlane::launch(state, log, api, xds, &[])
    }

    /// Starts one with its state in `state`, its log appended to `log`, `extra` flags;
    /// waits until its API answers.
    pub fn launch(
        state: PathBuf,
        log: PathBuf,
        api: String,
        xds: String,
        extra: &[&str],
    ) -> ControlPlane {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the control plane's log");
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["control-plane", "--listen", &api, "--xds-listen", &xds])
            .arg("--state-dir")
            .arg(&state)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start weft control-plane");
        let mut cp = ControlPlane {
            child,
            api,
            xds,
            state,
            log,
        };
        let url = format!("http://{}/healthz/ready", cp.api);
        eventually("the control plane to answer", DEADLINE, || {
            if let Ok(Some(status)) = cp.child.try_wait() {
                panic!(
                    "weft control-plane exited early ({status}):\n{}",
                    cp.log_text()
                );
            }
            try_curl(&[&url]).filter(|r| r.status == 200)
        });
        cp
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        super::signal_pid(self.child.id(), "TERM");
        eventually("the control plane to exit", DEADLINE, || {
            self.child.try_wait().expect("wait for the control plane")
        })
        .code()
    }

    /// The API's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// The API token from the state directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state.join("api-token"))
            .expect("the API token")
            .trim()
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `pilot_proxy_convergence_time_count` on `/metrics`.
    pub fn convergence_samples(&self) -> Option<u64> {
        let reply = try_curl(&[&format!("http://{}/metrics", self.api)])?;
        let line = reply
            .body
            .lines()
            .find(|l| l.starts_with("pilot_proxy_convergence_time_count "))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    /// `weft ARGS --control-plane .. --state-dir ..` with `stdin`.
    pub fn weft(&self, args: &[&str], stdin: &str) -> Output {
        weft_at(&self.api, &self.state, args, stdin)
    }

    /// `weft apply -f -` of `yaml`; asserts it worked.
    pub fn apply(&self, yaml: &str) {
        let out = self.weft(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "weft apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The API's JSON at `path`, with the token.
    pub fn get_json(&self, path: &str) -> Value {
        let auth = format!("Authorization: Bearer {}", self.token());
        let reply = try_curl(&["-H", &auth, &self.url(path)]).expect("the API answers");
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).expect("JSON from the API")
    }

    /// `/debug/syncz`'s state of `type_name` (CONFIG, SERVICES) for the one proxy.
    pub fn sync_state(&self, type_name: &str) -> Option<Value> {
        let syncz = self.get_json("/debug/syncz");
        let proxy = syncz["proxies"].as_array()?.first()?.clone();
        proxy["types"]
            .as_array()?
            .iter()
            .find(|t| t["name"] == type_name)
            .cloned()
    }
}

/// `weft ARGS` against the control plane at `api` with the state directory `state` (its
/// token), `stdin` as standard input; the caller's WEFT_* environment does not leak in.
pub fn weft_at(api: &str, state: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .args(["--control-plane", api])
        .arg("--state-dir")
        .arg(state)
        .env_remove("WEFT_STATE_DIR")
        .env_remove("WEFT_CONTROL_PLANE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run weft");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait for weft")
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- weft control-plane log ---\n{}", self.log_text());
        }
    }
}

/// A `weft proxy` gateway (`istio=ingressgateway`, namespace istio-system) fed by the
/// control plane.
pub struct GatewayProxy {
    child: Child,
    pub admin: u16,
    log: PathBuf,
}

impl GatewayProxy {
    /// Starts it with `extra` arguments and waits for its admin API.
    pub fn start(dir: &TempDir, cp: &ControlPlane, extra: &[&str]) -> GatewayProxy {
        let admin = free_port();
        let log = dir.log_path();
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["proxy", "--control-plane", &cp.xds, "--name", "ingress"])
            .args([
                "--labels",
                "istio=ingressgateway",
                "--namespace",
                "istio-system",
            ])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--readiness", "127.0.0.1:0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the proxy's log"))
            .spawn()
            .expect("start weft proxy");
        let mut proxy = GatewayProxy { child, admin, log };
        eventually("the proxy's admin API", DEADLINE, || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("weft proxy exited early ({status}):\n{}", proxy.log_text());
            }
            try_curl(&[&format!("http://127.0.0.1:{admin}/ready")]).filter(|r| r.status == 200)
        });
        proxy
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin API's `/config_dump`.
    pub fn config_dump(&self) -> Value {
        let reply = try_curl(&[&format!("http://127.0.0.1:{}/config_dump", self.admin)])
            .expect("the admin API answers");
        serde_json::from_str(&reply.body).expect("JSON from the admin API")
    }
}

impl Drop for GatewayProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- weft proxy log ---\n{}", self.log_text());
        }
    }
}
