//! Bookinfo's reviews service: `/reviews/ID` answers two reviews and the instance that
//! served them. v1 shows no ratings; v2 asks ratings and shows black stars, v3 red ones.
//! Like bookinfo's, v2 waits up to 10 s for ratings and v3 up to 2.5 s; when ratings fails
//! each review says "Ratings service is currently unavailable".

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{Rating, Review, ReviewsReply};
use crate::client::Upstream;
use crate::headers::{self, PROPAGATED};
use crate::server::{self, Body, Request};
use crate::{Error, instance_name};

/// The message in place of stars when ratings cannot be reached.
pub(crate) const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// Which reviews: v1 (no stars), v2 (black stars), v3 (red stars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    V1,
    V2,
    V3,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
        }
    }

    /// The star color, `None` for v1 which does not call ratings.
    fn star_color(self) -> Option<&'static str> {
        match self {
            Version::V1 => None,
            Version::V2 => Some("black"),
            Version::V3 => Some("red"),
        }
    }

    /// Bookinfo's reviews waits 10 s for ratings when its stars are black and 2.5 s
    /// otherwise (the fix the fault-injection task mentions for v3).
    fn ratings_timeout(self) -> Duration {
        match self {
            Version::V3 => Duration::from_millis(2_500),
            _ => Duration::from_secs(10),
        }
    }
}

/// `weft sample reviews`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Which version to be.
    #[arg(long, value_enum)]
    pub version: Version,
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 9080)]
    pub port: u16,
    /// Where ratings is (v2 and v3 call `<URL>/ratings/ID`).
    #[arg(long, value_name = "URL", default_value = "http://ratings:9080")]
    pub ratings_url: String,
    /// How long to wait for ratings [default: 10s for v2, 2.5s for v3, as bookinfo's].
    #[arg(long, value_name = "SECONDS")]
    pub ratings_timeout: Option<f64>,
}

struct Reviews {
    version: Version,
    ratings: Upstream,
    timeout: Duration,
    podname: String,
    clustername: String,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let timeout = match options.ratings_timeout {
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|e| Error::Usage(format!("--ratings-timeout {secs}: {e}")))?,
        None => options.version.ratings_timeout(),
    };
    let app = Arc::new(Reviews {
        version: options.version,
        ratings: Upstream::new(&options.ratings_url)?,
        timeout,
        podname: instance_name(&format!("reviews-{}", options.version.name())),
        clustername: std::env::var("CLUSTER_NAME").unwrap_or_else(|_| "null".to_string()),
    });
    server::serve(
        options.port,
        move |req| {
            let app = app.clone();
            async move { app.handle(&req).await }
        },
        shutdown,
    )
    .await
}

impl Reviews {
    async fn handle(&self, req: &Request) -> Response<Body> {
        let path = req.path();
        if path == "/health" {
            return server::json(StatusCode::OK, &json!({"status": "Reviews is healthy"}));
        }
        let Some(id) = path.strip_prefix("/reviews/").and_then(super::product_id) else {
            return server::not_found();
        };
        if req.method != Method::GET {
            return server::method_not_allowed("GET");
        }
        let stars = match self.version.star_color() {
            Some(color) => Some((color, self.ratings(id, req).await)),
            None => None,
        };
        let rating = |reviewer: &str| {
            stars.as_ref().map(|(color, stars)| {
                match stars.as_ref().and_then(|s| s.get(reviewer)) {
                    Some(n) => Rating {
                        stars: Some(n),
                        color: Some(color.to_string()),
                        error: None,
                    },
                    None => Rating {
                        error: Some(RATINGS_UNAVAILABLE.to_string()),
                        ..Rating::default()
                    },
                }
            })
        };
        let reply = ReviewsReply {
            id: id.to_string(),
            podname: self.podname.clone(),
            clustername: self.clustername.clone(),
            reviews: vec![
                Review {
                    reviewer: "Reviewer1".into(),
                    text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!".into(),
                    rating: rating("Reviewer1"),
                },
                Review {
                    reviewer: "Reviewer2".into(),
                    text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.".into(),
                    rating: rating("Reviewer2"),
                },
            ],
        };
        match serde_json::to_value(&reply) {
            Ok(body) => server::json(StatusCode::OK, &body),
            Err(e) => server::text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    }

    /// Each reviewer's stars from ratings, `None` when ratings failed.
    async fn ratings(&self, id: u32, req: &Request) -> Option<Stars> {
        let forwarded = headers::forward(&req.headers, PROPAGATED);
        let path = format!("/ratings/{id}");
        match self.ratings.get(&path, &forwarded, self.timeout).await {
            Ok((StatusCode::OK, body)) => {
                let value: Value = serde_json::from_slice(&body).ok()?;
                Some(Stars(value.get("ratings")?.clone()))
            }
            Ok((status, _)) => {
                server::log_line(format_args!(
                    "Error: unable to contact ratings got status of {}",
                    status.as_u16()
                ));
                None
            }
            Err(e) => {
                server::log_line(format_args!("Error: unable to contact ratings: {e}"));
                None
            }
        }
    }
}

/// The `ratings` object ratings answered: stars by reviewer.
struct Stars(Value);

impl Stars {
    fn get(&self, reviewer: &str) -> Option<u8> {
        let n = self.0.get(reviewer)?.as_u64()?;
        u8::try_from(n.min(5)).ok()
    }
}
