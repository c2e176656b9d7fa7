//! Istio's tcp-echo server: for each line a client sends, answers the line prefixed with
//! the server's prefix and a space (`hello` -> `one hello`), so that clients see which
//! version served their connection.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Error;
use crate::server::log_line;

/// Lines beyond this end the connection (the original has no bound; a sample keeps one).
const MAX_LINE: u64 = 1 << 20;

/// `weft sample tcp-echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// What to put before each echoed line (Istio's v1 uses `one`, v2 `two`).
    #[arg(long)]
    pub prefix: String,
    /// The ports to listen on (0.0.0.0), e.g. `9000` or `9000,9001`.
    #[arg(long, value_delimiter = ',', default_value = "9000")]
    pub port: Vec<u16>,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let mut listeners = Vec::new();
    for port in &options.port {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        log_line(format_args!(
            "listening on {bound}, prefix: {}",
            options.prefix
        ));
        listeners.push(listener);
    }
    let prefix: std::sync::Arc<str> = options.prefix.into();
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept(listener, prefix.clone()));
    }
    shutdown.await;
    tasks.abort_all();
    Ok(())
}

async fn accept(listener: TcpListener, prefix: std::sync::Arc<str>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream, prefix.clone()));
            }
            Err(e) => {
                log_line(format_args!("failed to accept connection, err: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Echoes whole lines until the client closes; a last line without `\n` is not answered,
/// as in the original.
async fn echo(stream: TcpStream, prefix: std::sync::Arc<str>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => return,
            Ok(_) if line.last() != Some(&b'\n') => return,
            Ok(_) => {}
            Err(e) => {
                log_line(format_args!("failed to read data, err: {e}"));
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        log_line(format_args!("request: {}", text.trim_end_matches('\n')));
        let reply = answer(&prefix, &line);
        log_line(format_args!(
            "response: {}",
            String::from_utf8_lossy(&reply).trim_end_matches('\n')
        ));
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// `prefix + " " + line`, the line keeping its newline.
fn answer(prefix: &str, line: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(prefix.len() + 1 + line.len());
    reply.extend_from_slice(prefix.as_bytes());
    reply.push(b' ');
    reply.extend_from_slice(line);
    reply
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_prefix_space_line() {
        assert_eq!(super::answer("one", b"hello\n"), b"one hello\n");
    }
}
