//! Bookinfo's ratings service (v1, ratings held in memory): `GET /ratings/ID` answers each
//! reviewer's stars, `POST /ratings/ID` replaces them, `/health` reports health.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::Error;
use crate::server::{self, Body, Request};

/// `weft sample ratings`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 9080)]
    pub port: u16,
}

/// Ratings posted by users, by product id (bookinfo's `userAddedRatings`).
#[derive(Default)]
struct Store(Mutex<HashMap<u32, Value>>);

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let store = Arc::new(Store::default());
    server::serve(
        options.port,
        move |req| {
            let store = store.clone();
            async move { handle(&store, &req) }
        },
        shutdown,
    )
    .await
}

fn handle(store: &Store, req: &Request) -> Response<Body> {
    let path = req.path();
    if path == "/health" {
        return server::json(StatusCode::OK, &json!({"status": "Ratings is healthy"}));
    }
    let Some(rest) = path.strip_prefix("/ratings/") else {
        return server::not_found();
    };
    let Some(id) = super::product_id(rest) else {
        return server::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "please provide numeric product ID"}),
        );
    };
    match req.method {
        Method::GET => server::json(StatusCode::OK, &ratings(store, id)),
        Method::POST => match serde_json::from_slice::<Value>(&req.body) {
            Ok(posted) => {
                if let Ok(mut map) = store.0.lock() {
                    map.insert(id, posted);
                }
                server::json(StatusCode::OK, &ratings(store, id))
            }
            Err(_) => server::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "please provide valid ratings JSON"}),
            ),
        },
        _ => server::method_not_allowed("GET, POST"),
    }
}

fn ratings(store: &Store, id: u32) -> Value {
    let posted = store.0.lock().ok().and_then(|map| map.get(&id).cloned());
    let ratings = posted.unwrap_or_else(|| json!({"Reviewer1": 5, "Reviewer2": 4}));
    json!({"id": id, "ratings": ratings})
}
