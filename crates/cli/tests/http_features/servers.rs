//! The special backends and clients of the HTTP feature tests: a gRPC server (HTTP/2 with
//! trailers) and a gRPC client, a WebSocket echo server and raw frame helpers, a server
//! that counts its connections, and a reader of the kernel's TCP socket table.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on 127.0.0.1 that stops when dropped.
pub struct Server {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

/// Runs `serve` for every accepted connection.
fn server<F, Fut>(serve: F) -> Server
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    Server {
        port,
        _runtime: runtime,
    }
}

/// A gRPC-style server (HTTP/2 only): echoes the request message with `grpc-status: 0`
/// in the trailers, and answers `/…/Fail` with no message and `grpc-status: 14`. It
/// reports the HTTP version and `te` it saw in `x-seen-version` / `x-seen-te`.
pub fn grpc() -> Server {
    server(|stream| async move {
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let version = format!("{:?}", req.version());
            let te = req.headers().get("te").cloned();
            let fail = req.uri().path().ends_with("/Fail");
            let message = req.into_body().collect().await?.to_bytes();
            let mut trailers = HeaderMap::new();
            let (status, text) = if fail {
                ("14", "unavailable")
            } else {
                ("0", "ok")
            };
            trailers.insert("grpc-status", HeaderValue::from_static(status));
            trailers.insert("grpc-message", HeaderValue::from_static(text));
            let body = Full::new(message).with_trailers(async move { Some(Ok(trailers)) });
            let mut resp = Response::new(body);
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/grpc"));
            h.insert("x-seen-version", HeaderValue::try_from(version).unwrap());
            if let Some(te) = te {
                h.insert("x-seen-te", te);
            }
            Ok::<_, hyper::Error>(resp)
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
}

/// A gRPC answer as the client saw it.
pub struct GrpcReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

impl GrpcReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One unary gRPC call over h2c to `port`, as a gRPC client makes it (POST,
/// `application/grpc`, `te: trailers`), reading the trailers.
pub fn grpc_call(port: u16, path: &str, message: &'static [u8]) -> GrpcReply {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::post(format!("http://greeter.example.com{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(message)))
            .unwrap();
        let resp = tokio::time::timeout(super::DEADLINE, sender.send_request(req))
            .await
            .expect("a gRPC answer in time")
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        GrpcReply {
            status,
            headers,
            body: collected.to_bytes().to_vec(),
            trailers,
        }
    })
}

/// A WebSocket server: answers the upgrade with 101, then echoes every frame it gets.
pub fn websocket_echo() -> Server {
    server(|stream| async move {
        let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    echo_frames(TokioIo::new(upgraded)).await;
                }
            });
            let mut resp = Response::new(Empty::<Bytes>::new());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert("upgrade", HeaderValue::from_static("websocket"));
            h.insert("connection", HeaderValue::from_static("Upgrade"));
            // The accept key of the RFC's sample nonce (the test always sends that one).
            h.insert(
                "sec-websocket-accept",
                HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            );
            Ok::<_, Infallible>(resp)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    })
}

/// Reads masked client frames (short payloads) and writes each payload back unmasked.
async fn echo_frames<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S) {
    loop {
        let mut head = [0u8; 2];
        if io.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = usize::from(head[1] & 0x7f);
        let mut mask = [0u8; 4];
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut mask).await.is_err() || io.read_exact(&mut payload).await.is_err() {
            return;
        }
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= mask[i % 4]);
        let mut frame = vec![head[0], u8::try_from(len).unwrap()];
        frame.extend_from_slice(&payload);
        if io.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// A masked text frame, as a client sends it (payloads under 126 bytes).
pub fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one unmasked server frame and returns its payload.
pub fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
    stream.read_exact(&mut payload).unwrap();
    payload
}

/// Reads an HTTP response head (up to the blank line).
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An HTTP/1.1 and h2c server answering 200, counting the connections it accepted and
/// those the client closed.
pub struct Counting {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    _server: Server,
}

impl Counting {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

pub fn counting() -> Counting {
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (a, c) = (accepted.clone(), closed.clone());
    let server = server(move |stream| {
        let (a, c) = (a.clone(), c.clone());
        async move {
            a.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    Counting {
        port: server.port,
        accepted,
        closed,
        _server: server,
    }
}

/// The timer of the established TCP socket on this host connected to 127.0.0.1:`port`
/// (the proxy's pooled upstream connection), from `/proc/net/tcp`: the kind (0 none, 1
/// retransmit, 2 keep-alive, 4 zero-window probe) and when it is due.
pub fn client_socket_timer(port: u16) -> Option<(u8, Duration)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");

    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[2] != remote || f[3] != "01" {
            return None;
        }
        let (kind, when) = f[5].split_once(':')?;
        let kind = u8::from_str_radix(kind, 16).ok()?;
        // In clock ticks of USER_HZ, 100 per second on Linux.
        let ticks = u64::from_str_radix(when, 16).ok()?;
        Some((kind, Duration::from_millis(ticks * 10)))
    })
}
