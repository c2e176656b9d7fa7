//! Istio's helloworld: `/hello` answers `Hello version: v1, instance: <instance>`, the
//! version and instance telling which workload served the request.

use std::future::Future;
use std::sync::Arc;

use hyper::{Method, Response, StatusCode};

use crate::server::{self, Body, Request};
use crate::{Error, instance_name};

/// `weft sample helloworld`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The version to report (Istio's sample runs v1 and v2; any name works).
    #[arg(long)]
    pub version: String,
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let greeting: Arc<str> = Arc::from(greeting(
        &options.version,
        &instance_name(&format!("helloworld-{}", options.version)),
    ));
    server::serve(
        options.port,
        move |req| {
            let greeting = greeting.clone();
            async move { handle(&greeting, &req) }
        },
        shutdown,
    )
    .await
}

fn greeting(version: &str, instance: &str) -> String {
    format!("Hello version: {version}, instance: {instance}\n")
}

fn handle(greeting: &str, req: &Request) -> Response<Body> {
    match (req.path(), &req.method) {
        ("/hello", &Method::GET | &Method::HEAD) => {
            server::html(StatusCode::OK, greeting.to_string())
        }
        ("/health", &Method::GET | &Method::HEAD) => {
            server::html(StatusCode::OK, "Helloworld is healthy")
        }
        ("/hello" | "/health", _) => server::method_not_allowed("GET, HEAD"),
        _ => server::not_found(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn greeting_has_istios_shape() {
        assert_eq!(
            super::greeting("v2", "helloworld-v2-abc"),
            "Hello version: v2, instance: helloworld-v2-abc\n"
        );
    }
}
