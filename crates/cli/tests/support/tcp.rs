//! TCP and TLS helpers of the end-to-end tests: a tcp-echo-like backend, a line client
//! that can half-close or pick its source address, and real TLS servers run with openssl.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::{DEADLINE, TempDir, eventually, free_port};

/// A TCP server like Istio's tcp-echo sample: every line a client sends comes back as
/// `PREFIX line` (v1 answers `one ...`, v2 `two ...`). Two additions for tests: an
/// optional greeting sent before anything is read (a server-first protocol, like MySQL
/// or SMTP), and a last line `PREFIX eof` once the client has shut its side down, which
/// only arrives if the proxy passes the half-close on and keeps the other way open.
pub struct TcpEcho {
    pub port: u16,
    // Dropping the runtime stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl TcpEcho {
    pub fn start(prefix: &str) -> TcpEcho {
        Self::start_with(prefix, None)
    }

    /// A server that greets each client with `greeting` first.
    pub fn greeting(prefix: &str, greeting: &str) -> TcpEcho {
        Self::start_with(prefix, Some(greeting))
    }

    fn start_with(prefix: &str, greeting: Option<&str>) -> TcpEcho {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the TCP backend");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the TCP backend");
        let port = listener.local_addr().expect("backend address").port();
        let (prefix, greeting): (Arc<str>, Option<Arc<str>>) =
            (Arc::from(prefix), greeting.map(Arc::from));
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(echo_lines(stream, prefix.clone(), greeting.clone()));
            }
        });
        TcpEcho {
            port,
            _runtime: runtime,
        }
    }
}

async fn echo_lines(stream: tokio::net::TcpStream, prefix: Arc<str>, greeting: Option<Arc<str>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (read, mut write) = stream.into_split();
    if let Some(g) = greeting
        && write.write_all(format!("{g}\n").as_bytes()).await.is_err()
    {
        return;
    }
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if write
            .write_all(format!("{prefix} {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = write.write_all(format!("{prefix} eof\n").as_bytes()).await;
}

/// A line-oriented TCP client (for `TcpEcho`), with every wait bounded by `DEADLINE`.
pub struct LineClient {
    reader: std::io::BufReader<TcpStream>,
}

impl LineClient {
    /// Connects to 127.0.0.1:`port`; `None` when the connection is refused.
    pub fn connect(port: u16) -> Option<LineClient> {
        Self::connect_from(std::net::Ipv4Addr::LOCALHOST, port)
    }

    /// Connects from a chosen loopback address (any of 127.0.0.0/8 is this host's).
    pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> Option<LineClient> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        let from: std::net::SocketAddr = (source, 0).into();
        socket
            .bind(&from.into())
            .expect("bind the client's address");
        let to: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        socket.connect_timeout(&to.into(), DEADLINE).ok()?;
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        stream
            .set_write_timeout(Some(DEADLINE))
            .expect("set a write timeout");
        Some(LineClient {
            reader: std::io::BufReader::new(stream),
        })
    }

    /// Sends `line` and returns the line that comes back, without its newline; `None`
    /// when the connection is closed (or reset) instead.
    pub fn ask(&mut self, line: &str) -> Option<String> {
        use std::io::Write;
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .ok()?;
        self.read_line()
    }

    /// The next line the server sends; `None` at EOF or on a reset.
    pub fn read_line(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
        }
    }

    /// Everything the server sends until it closes its side.
    pub fn read_to_end(&mut self) -> std::io::Result<String> {
        use std::io::Read;
        let mut out = String::new();
        self.reader.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.reader.get_mut().write_all(bytes)
    }

    /// Shuts the client's sending side down (a half-close: it can still read).
    pub fn shutdown_write(&self) -> std::io::Result<()> {
        self.reader.get_ref().shutdown(std::net::Shutdown::Write)
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails, and names
/// the Debian package when it is not installed.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): install the Debian package `openssl`")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real TLS server (`openssl s_server -WWW`) on 127.0.0.1 with a throwaway
/// self-signed certificate for `host` (`cert.pem` in its directory, for clients to
/// trust); `GET /who` answers with its name. Killed, and its files removed, when dropped.
pub struct TlsBackend {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl TlsBackend {
    pub fn start(parent: &TempDir, name: &str, host: &str) -> TlsBackend {
        let dir = parent.0.join(format!("tls-{name}"));
        std::fs::create_dir_all(&dir).expect("create the TLS backend's directory");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                &format!("/CN={host}"),
                "-addext",
                &format!("subjectAltName=DNS:{host}"),
            ],
        );
        std::fs::write(dir.join("who"), format!("{name}\n")).expect("write the page");
        let port = free_port();
        let child = Command::new("openssl")
            .args([
                "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl s_server ({e}): install the Debian package `openssl`")
            });
        let mut backend = TlsBackend { port, dir, child };
        eventually("openssl s_server to listen", DEADLINE, || {
            if let Ok(Some(status)) = backend.child.try_wait() {
                panic!("openssl s_server exited early ({status})");
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        backend
    }

    /// The backend's certificate, for `curl --cacert`.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
