//! Bookinfo's details service (v1): `/details/ID` answers the book's facts, `/health` its
//! health, as bookinfo's Ruby server does.

use std::future::Future;

use hyper::{Method, Response, StatusCode};
use serde_json::json;

use crate::Error;
use crate::server::{self, Body, Request};

/// `weft sample details`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 9080)]
    pub port: u16,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    server::serve(options.port, |req| async move { handle(&req) }, shutdown).await
}

fn handle(req: &Request) -> Response<Body> {
    if req.method != Method::GET {
        return server::method_not_allowed("GET");
    }
    let path = req.path();
    if path == "/health" {
        return server::json(StatusCode::OK, &json!({"status": "Details is healthy"}));
    }
    let Some(rest) = path.strip_prefix("/details") else {
        return server::not_found();
    };
    let last = rest.rsplit('/').next().unwrap_or("");
    match super::product_id(last) {
        Some(id) => server::json(StatusCode::OK, &book(id)),
        None => server::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "please provide numeric product id"}),
        ),
    }
}

/// The details bookinfo returns for every id.
pub(crate) fn book(id: u32) -> serde_json::Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}
