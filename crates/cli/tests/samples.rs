//! `weft sample APP`, end to end: the real binary's demo workloads on loopback (free ports,
//! upstreams named with the `--*-url` flags instead of mesh names), driven by curl, raw
//! sockets and the sample fortio client, with scripted backends standing in for a service
//! where a test needs to see what was sent or to make a call fail. The last test checks that
//! every file in `examples/` passes `weft validate`.
#![allow(clippy::unwrap_used)] // a failed set-up step should stop the test

#[allow(dead_code)] // the gateway helpers are for the other test binaries
mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::scripted::{Act, Scripted};
use support::{DEADLINE, TempDir, closed_port, curl, eventually, free_port};

#[path = "samples/bookinfo.rs"]
mod bookinfo;

/// A running `weft sample APP`, killed when dropped (its output is printed when the test is
/// failing).
struct Sample {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Sample {
    /// Starts `weft sample ARGS... --port PORT` on a free port and waits until it accepts.
    fn start(args: &[&str]) -> Sample {
        Sample::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Sample {
        let port = free_port();
        let dir = TempDir::new(&format!("sample-{}", args[0]));
        let log = dir.log_path();
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("sample")
            .args(args)
            .args(["--port", &port.to_string()])
            .env_remove("HOSTNAME")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start weft sample");
        let mut sample = Sample {
            child,
            port,
            log,
            _dir: dir,
        };
        eventually(
            &format!("weft sample {} to accept", args[0]),
            DEADLINE,
            || {
                if let Ok(Some(status)) = sample.child.try_wait() {
                    panic!(
                        "weft sample {args:?} exited early ({status}):\n{}",
                        sample.output()
                    );
                }
                TcpStream::connect(("127.0.0.1", port)).ok()
            },
        );
        sample
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn base(&self) -> String {
        self.url("")
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`) and returns the exit code, waiting up to `within`.
    fn signal_and_wait(&mut self, signal: &str, within: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill (procps)");
        assert!(sent.success(), "kill -{signal} failed");
        eventually("the sample to exit", within, || {
            self.child.try_wait().unwrap()
        })
        .code()
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- weft sample output (port {}) ---\n{}",
                self.port,
                self.output()
            );
        }
    }
}

/// Runs `weft sample fortio ARGS...` to completion: (exit code, stdout, stderr).
fn fortio(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["sample", "fortio"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run weft sample fortio");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn httpbin_answers_with_httpbins_shapes() {
    let httpbin = Sample::start(&["httpbin"]);
    let get = curl(&[
        "-H",
        "X-B3-Traceid: abc",
        "-H",
        "X-Request-Id: hidden",
        &httpbin.url("/get?a=1&a=2&b=x"),
    ]);
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), Some("application/json"));
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    let json: serde_json::Value = serde_json::from_str(&get.body).unwrap();
    assert_eq!(json["args"], serde_json::json!({"a": ["1", "2"], "b": "x"}));
    assert_eq!(json["headers"]["X-B3-Traceid"], "abc");
    assert_eq!(
        json["headers"]["Host"],
        format!("127.0.0.1:{}", httpbin.port)
    );
    assert!(
        json["headers"].get("X-Request-Id").is_none(),
        "proxy headers are hidden"
    );
    assert_eq!(json["origin"], "127.0.0.1");
    assert_eq!(json["url"], httpbin.url("/get?a=1&a=2&b=x"));
    assert!(
        get.body.starts_with("{\n  \"args\": {"),
        "two-space indent, keys sorted"
    );

    let headers = curl(&["-H", "end-user: jason", &httpbin.url("/headers")]);
    let json: serde_json::Value = serde_json::from_str(&headers.body).unwrap();
    assert_eq!(json["headers"]["End-User"], "jason");

    let ip: serde_json::Value = serde_json::from_str(&curl(&[&httpbin.url("/ip")]).body).unwrap();
    assert_eq!(ip, serde_json::json!({"origin": "127.0.0.1"}));

    let index = curl(&[&httpbin.url("/")]);
    assert!(index.body.contains("httpbin"));
    assert_eq!(curl(&[&httpbin.url("/nowhere")]).status, 404);
    // One access-log line per request, in the combined format.
    assert!(httpbin.output().contains("\"GET /headers HTTP/1.1\" 200"));
}

#[test]
fn httpbin_answers_statuses_delays_and_anything() {
    let httpbin = Sample::start(&["httpbin"]);
    for code in [200, 418, 503] {
        assert_eq!(
            curl(&[&httpbin.url(&format!("/status/{code}"))]).status,
            code
        );
    }
    assert_eq!(curl(&[&httpbin.url("/status/nope")]).status, 400);

    let start = Instant::now();
    let delayed = curl(&[&httpbin.url("/delay/1")]);
    assert_eq!(delayed.status, 200);
    assert!(start.elapsed() >= Duration::from_secs(1));

    let anything = curl(&[
        "-X",
        "PUT",
        "-d",
        "k=v",
        &httpbin.url("/anything/deep/path"),
    ]);
    let json: serde_json::Value = serde_json::from_str(&anything.body).unwrap();
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["form"]["k"], "v");
    assert_eq!(json["data"], "k=v");
    assert!(
        json["url"]
            .as_str()
            .unwrap()
            .ends_with("/anything/deep/path")
    );

    let rh = curl(&[&httpbin.url("/response-headers?x-test=yes")]);
    assert_eq!(rh.header("x-test"), Some("yes"));
    let json: serde_json::Value = serde_json::from_str(&rh.body).unwrap();
    assert_eq!(json["x-test"], "yes");
    assert_eq!(json["Content-Length"], rh.body.len().to_string());
}

#[test]
fn fortio_load_counts_codes_like_fortio() {
    let httpbin = Sample::start(&["httpbin"]);
    let (code, out, err) = fortio(&[
        "load",
        "-c",
        "2",
        "-qps",
        "0",
        "-n",
        "20",
        "-loglevel",
        "Warning",
        &httpbin.url("/status/503"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Starting at max qps with 2 thread(s)"),
        "{out}"
    );
    assert!(out.contains("for exactly 20 calls (10 per thread + 0)"));
    assert!(out.contains("Code 503 : 20 (100.0 %)"), "{out}");
    assert!(out.contains("All done 20 calls (plus 0 warmup)"));
    assert!(out.contains("# range, mid point, percentile, count"));
    for p in ["50%", "75%", "90%", "99%", "99.9%"] {
        assert!(out.contains(&format!("# target {p} ")), "{out}");
    }
    assert!(
        out.contains("Sockets used: 2 (for perfect keepalive, would be 2)"),
        "{out}"
    );
    assert_eq!(
        err.matches("Parsed non ok code 503 (HTTP/1.1 503)").count(),
        20,
        "{err}"
    );
    assert_eq!(httpbin.output().matches("GET /status/503").count(), 20);

    // The circuit-breaker walkthrough's mix: every tenth call fails.
    let mix = Scripted::start("httpbin", |n| {
        if n % 10 == 3 {
            Act::Status(503)
        } else {
            Act::Echo
        }
    });
    let (_, out, _) = fortio(&[
        "load",
        "-c",
        "2",
        "-qps",
        "0",
        "-n",
        "20",
        &format!("http://127.0.0.1:{}/get", mix.port),
    ]);
    assert!(
        out.contains("Code 200 : 18 (90.0 %)\nCode 503 : 2 (10.0 %)\n"),
        "{out}"
    );
}

#[test]
fn fortio_load_paces_calls_and_counts_sockets() {
    let httpbin = Sample::start(&["httpbin"]);
    // A paced run: 10 qps for 20 calls takes about 2 s.
    let start = Instant::now();
    let (_, out, _) = fortio(&[
        "load",
        "-c",
        "2",
        "-qps",
        "10",
        "-n",
        "20",
        &httpbin.url("/get"),
    ]);
    assert!(out.contains("Code 200 : 20 (100.0 %)"), "{out}");
    assert!(
        start.elapsed() >= Duration::from_millis(1_800),
        "not paced: {:?}",
        start.elapsed()
    );

    // A server that closes every connection makes fortio open a socket per call.
    let (_, out, _) = fortio(&[
        "load",
        "-c",
        "1",
        "-qps",
        "0",
        "-n",
        "5",
        "-H",
        "Connection: close",
        &httpbin.url("/get"),
    ]);
    assert!(
        out.contains("Sockets used: 5 (for perfect keepalive, would be 1)"),
        "{out}"
    );

    let (dead, _hold) = closed_port();
    let (code, out, _) = fortio(&[
        "load",
        "-c",
        "1",
        "-n",
        "3",
        "-qps",
        "0",
        &format!("http://127.0.0.1:{dead}/"),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("Code -1 : 3 (100.0 %)"), "{out}");
}

#[test]
fn fortio_curl_prints_the_answer() {
    let httpbin = Sample::start(&["httpbin"]);
    for args in [vec!["curl"], vec!["load", "-curl"]] {
        let mut all = args.clone();
        let url = httpbin.url("/get");
        all.extend(["-H", "x-from: fortio", url.as_str()]);
        let (code, out, err) = fortio(&all);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("\"X-From\": \"fortio\""), "{out}");
        assert!(
            out.contains("\"User-Agent\": \"fortio.org/fortio-"),
            "{out}"
        );
    }
    let (code, _, err) = fortio(&["load", "-bogus", "1", "http://127.0.0.1:1/"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("flag provided but not defined: -bogus"),
        "{err}"
    );
}

#[test]
fn helloworld_names_its_version_and_instance() {
    let v1 = Sample::start_with_env(
        &["helloworld", "--version", "v1"],
        &[("HOSTNAME", "helloworld-v1-7c9d")],
    );
    let v2 = Sample::start(&["helloworld", "--version", "v2"]);
    assert_eq!(
        curl(&[&v1.url("/hello")]).body,
        "Hello version: v1, instance: helloworld-v1-7c9d\n"
    );
    assert_eq!(
        curl(&[&v2.url("/hello")]).body,
        "Hello version: v2, instance: helloworld-v2\n"
    );
    assert_eq!(curl(&[&v1.url("/health")]).status, 200);
    assert_eq!(curl(&[&v1.url("/")]).status, 404);
}

#[test]
fn tcp_echo_prefixes_each_line() {
    let one = Sample::start(&["tcp-echo", "--prefix", "one"]);
    let mut conn = TcpStream::connect(("127.0.0.1", one.port)).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(b"hello\nworld\n").unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "one hello");
    assert_eq!(lines.next().unwrap().unwrap(), "one world");
    drop(conn);
    assert!(
        one.output()
            .contains("request: hello\nresponse: one hello\n"),
        "{}",
        one.output()
    );

    let two = Sample::start(&["tcp-echo", "--prefix", "two"]);
    let mut conn = TcpStream::connect(("127.0.0.1", two.port)).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(b"Sat Nov 21 15:23:01 UTC 2026\n").unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    assert_eq!(line, "two Sat Nov 21 15:23:01 UTC 2026\n");
}

#[test]
fn web_frontend_shows_customers_and_passes_the_user_header() {
    let v1 = Sample::start(&["customers", "--version", "v1"]);
    let v2 = Sample::start(&["customers", "--version", "v2"]);
    let list: serde_json::Value = serde_json::from_str(&curl(&[&v1.url("/")]).body).unwrap();
    assert_eq!(list[0], serde_json::json!({"name": "Jewel Schaefer"}));
    let list: serde_json::Value = serde_json::from_str(&curl(&[&v2.url("/")]).body).unwrap();
    assert!(list[0]["city"].is_string() && list[0]["name"] == "Jewel Schaefer");

    let front_v1 = Sample::start(&["web-frontend", "--customers-url", &v1.base()]);
    let page = curl(&[&front_v1.url("/")]).body;
    assert!(
        page.contains("<th class=\"px-4 py-2\">NAME</th>") && !page.contains("CITY"),
        "{page}"
    );
    assert!(page.contains("Jewel Schaefer"));
    let front_v2 =
        Sample::start_with_env(&["web-frontend"], &[("CUSTOMER_SERVICE_URL", &v2.base())]);
    let page = curl(&[&front_v2.url("/")]).body;
    assert!(page.contains("<th class=\"px-4 py-2\">CITY</th>"), "{page}");

    // The header the course routes on reaches customers, with the trace headers.
    let scripted = Scripted::start("customers", |_| Act::Echo);
    let front = Sample::start(&[
        "web-frontend",
        "--customers-url",
        &format!("http://127.0.0.1:{}", scripted.port),
    ]);
    let reply = curl(&[
        "-H",
        "user: debug",
        "-H",
        "x-request-id: r-1",
        &front.url("/"),
    ]);
    assert_eq!(reply.status, 500, "an echo is not a customer list");
    let seen = &scripted.seen()[0].headers;
    assert_eq!(seen["user"], "debug");
    assert_eq!(seen["x-request-id"], "r-1");

    let (dead, _hold) = closed_port();
    let front = Sample::start(&[
        "web-frontend",
        "--customers-url",
        &format!("http://127.0.0.1:{dead}"),
    ]);
    assert_eq!(curl(&[&front.url("/")]).status, 500);
}

#[test]
fn samples_exit_promptly_and_cleanly_when_signalled() {
    for (args, signal) in [
        (vec!["productpage"], "TERM"),
        (vec!["httpbin"], "INT"),
        (vec!["tcp-echo", "--prefix", "one"], "TERM"),
        (vec!["customers", "--version", "v1"], "TERM"),
    ] {
        let mut sample = Sample::start(&args);
        // An open connection must not hold the exit up.
        let _idle = TcpStream::connect(("127.0.0.1", sample.port)).unwrap();
        let code = sample.signal_and_wait(signal, Duration::from_secs(5));
        assert_eq!(code, Some(0), "{args:?} on SIG{signal}");
    }
    // sleep has no port: it idles until signalled.
    let mut sleep = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["sample", "sleep"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(sleep.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("idle"), "{first}");
    assert!(
        sleep.try_wait().unwrap().is_none(),
        "sleep must keep running"
    );
    Command::new("kill")
        .args(["-TERM", &sleep.id().to_string()])
        .status()
        .unwrap();
    let status = eventually("sleep to exit", Duration::from_secs(5), || {
        sleep.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_busy_port_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["sample", "details", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 0.0.0.0:{port}")),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["sample", "productpage", "--reviews-url", "reviews:9080"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad upstream URL \"reviews:9080\""));
}

/// Every YAML file under `examples/`.
fn example_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            example_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

#[test]
fn every_example_passes_weft_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    example_files(&root, &mut files);
    files.sort();
    for dir in [
        "bookinfo",
        "httpbin",
        "helloworld",
        "tcp-echo",
        "customers",
        "sleep",
        "egress",
        "hello-world",
    ] {
        assert!(
            files
                .iter()
                .any(|f| f.parent().and_then(Path::file_name) == Some(dir.as_ref())),
            "no examples/{dir}/*.yaml"
        );
    }
    for file in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["validate", "--strict", "-f"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "weft validate {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
