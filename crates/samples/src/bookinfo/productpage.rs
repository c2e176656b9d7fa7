//! Bookinfo's productpage (v1): the HTML page that calls details, then reviews, and the
//! JSON API beside it, with bookinfo's sign-in. Signed in, it tells reviews who the user is
//! with the `end-user` header; an incoming `end-user` is passed on the same way. Like
//! bookinfo's, it gives details one try of 3 s and reviews two (3 s each), so an injected
//! 7 s delay behind reviews shows "Sorry, product reviews are currently unavailable" after
//! about 6 s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{PRODUCT_DESCRIPTION_HTML, PRODUCT_ID, PRODUCT_TITLE, ReviewsReply, page};
use crate::Error;
use crate::client::{CallError, Upstream};
use crate::headers::{self, PROPAGATED};
use crate::server::{self, Body, Request};

/// Each call's budget, bookinfo's `timeout=3.0`.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Bookinfo asks reviews twice before giving up.
const REVIEWS_ATTEMPTS: usize = 2;

pub(crate) const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
pub(crate) const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_UNAVAILABLE: &str = "Sorry, product ratings are currently unavailable for this book.";

/// The cookie that holds the signed-in user.
const SESSION_COOKIE: &str = "session";

/// `weft sample productpage`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The port to listen on (0.0.0.0).
    #[arg(long, default_value_t = 9080)]
    pub port: u16,
    /// Where details is (called as `<URL>/details/0`).
    #[arg(long, value_name = "URL", default_value = "http://details:9080")]
    pub details_url: String,
    /// Where reviews is (called as `<URL>/reviews/0`).
    #[arg(long, value_name = "URL", default_value = "http://reviews:9080")]
    pub reviews_url: String,
    /// Where ratings is (called by `/api/v1/products/0/ratings`).
    #[arg(long, value_name = "URL", default_value = "http://ratings:9080")]
    pub ratings_url: String,
}

struct Productpage {
    details: Upstream,
    reviews: Upstream,
    ratings: Upstream,
}

/// What one upstream call gave: the status to report and the JSON to show.
pub(crate) struct Fetched {
    pub status: StatusCode,
    pub body: Value,
}

pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let app = Arc::new(Productpage {
        details: Upstream::new(&options.details_url)?,
        reviews: Upstream::new(&options.reviews_url)?,
        ratings: Upstream::new(&options.ratings_url)?,
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

impl Productpage {
    async fn handle(&self, req: &Request) -> Response<Body> {
        let path = req.path();
        match (path, &req.method) {
            ("/" | "/index.html", &Method::GET) => server::html(StatusCode::OK, page::index()),
            ("/health", &Method::GET) => server::html(StatusCode::OK, "Product page is healthy"),
            ("/login", &Method::POST) => login(req),
            ("/logout", &Method::GET) => logout(req),
            ("/productpage", &Method::GET) => self.productpage(req).await,
            ("/api/v1/products", &Method::GET) => products(),
            (p, &Method::GET) if p.starts_with("/api/v1/products/") => self.api(req).await,
            ("/" | "/index.html" | "/health" | "/logout" | "/productpage", _) => {
                server::method_not_allowed("GET")
            }
            ("/login", _) => server::method_not_allowed("POST"),
            _ => server::not_found(),
        }
    }

    async fn productpage(&self, req: &Request) -> Response<Body> {
        let user = session_user(&req.headers);
        let headers = forward_headers(req, user.as_deref());
        let details = self.details(PRODUCT_ID, &headers).await;
        let reviews = self.reviews(PRODUCT_ID, &headers).await;
        let reviews_reply = (reviews.status == StatusCode::OK)
            .then(|| serde_json::from_value::<ReviewsReply>(reviews.body.clone()).ok())
            .flatten();
        let html = page::productpage(&page::View {
            user: user.as_deref(),
            details: &details,
            reviews: reviews_reply.as_ref(),
            reviews_error: reviews.body.get("error").and_then(Value::as_str),
        });
        server::html(StatusCode::OK, html)
    }

    /// `/api/v1/products/ID[/reviews|/ratings]`: the upstream's JSON and status.
    async fn api(&self, req: &Request) -> Response<Body> {
        let rest = req.path().trim_start_matches("/api/v1/products/");
        let (id, what) = match rest.split_once('/') {
            Some((id, what)) => (id, what),
            None => (rest, ""),
        };
        let Some(id) = super::product_id(id) else {
            return server::not_found();
        };
        let headers = forward_headers(req, session_user(&req.headers).as_deref());
        let fetched = match what {
            "" => self.details(id, &headers).await,
            "reviews" => self.reviews(id, &headers).await,
            "ratings" => self.ratings(id, &headers).await,
            _ => return server::not_found(),
        };
        server::respond(fetched.status, "application/json", py_json(&fetched.body))
    }

    async fn details(&self, id: u32, headers: &HeaderMap) -> Fetched {
        let got = self
            .details
            .get(&format!("/details/{id}"), headers, CALL_TIMEOUT)
            .await;
        fetched(got, DETAILS_UNAVAILABLE, "details")
    }

    async fn reviews(&self, id: u32, headers: &HeaderMap) -> Fetched {
        let path = format!("/reviews/{id}");
        let mut last = None;
        for _ in 0..REVIEWS_ATTEMPTS {
            let got = self.reviews.get(&path, headers, CALL_TIMEOUT).await;
            if matches!(&got, Ok((StatusCode::OK, _))) {
                return fetched(got, REVIEWS_UNAVAILABLE, "reviews");
            }
            last = Some(got);
        }
        match last {
            Some(got) => fetched(got, REVIEWS_UNAVAILABLE, "reviews"),
            None => unavailable(StatusCode::INTERNAL_SERVER_ERROR, REVIEWS_UNAVAILABLE),
        }
    }

    async fn ratings(&self, id: u32, headers: &HeaderMap) -> Fetched {
        let got = self
            .ratings
            .get(&format!("/ratings/{id}"), headers, CALL_TIMEOUT)
            .await;
        fetched(got, RATINGS_UNAVAILABLE, "ratings")
    }
}

/// Turns a call's outcome into what the page shows: the JSON on a 200, else the apology
/// with the upstream's status (500 when there was no answer), as bookinfo does.
fn fetched(
    got: Result<(StatusCode, bytes::Bytes), CallError>,
    apology: &str,
    service: &str,
) -> Fetched {
    match got {
        Ok((StatusCode::OK, body)) => match serde_json::from_slice(&body) {
            Ok(body) => Fetched {
                status: StatusCode::OK,
                body,
            },
            Err(_) => unavailable(StatusCode::INTERNAL_SERVER_ERROR, apology),
        },
        Ok((status, _)) => {
            server::log_line(format_args!("{service} answered {}", status.as_u16()));
            unavailable(status, apology)
        }
        Err(e) => {
            server::log_line(format_args!("{service} unavailable: {e}"));
            unavailable(StatusCode::INTERNAL_SERVER_ERROR, apology)
        }
    }
}

fn unavailable(status: StatusCode, apology: &str) -> Fetched {
    Fetched {
        status,
        body: json!({"error": apology}),
    }
}

/// The headers sent to details, reviews and ratings: the trace context and the others
/// bookinfo propagates, a B3 trace of productpage's own when none came in, and
/// `end-user: USER` when someone is signed in (else an incoming `end-user` passes on).
fn forward_headers(req: &Request, user: Option<&str>) -> HeaderMap {
    let mut headers = headers::forward(&req.headers, PROPAGATED);
    headers::ensure_b3(&mut headers);
    if let Some(value) = user.and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert("end-user", value);
    }
    headers
}

fn products() -> Response<Body> {
    let list = json!([{
        "id": PRODUCT_ID,
        "title": PRODUCT_TITLE,
        "descriptionHtml": PRODUCT_DESCRIPTION_HTML,
    }]);
    server::respond(StatusCode::OK, "application/json", py_json(&list))
}

/// `POST /login` (form fields `username`, `passwd`): remembers the user in the session
/// cookie and sends the browser back where it came from. Any password is accepted, as in
/// bookinfo.
fn login(req: &Request) -> Response<Body> {
    let body = String::from_utf8_lossy(&req.body);
    let user = server::form_pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "username")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let encoded = percent_encoding::utf8_percent_encode(&user, percent_encoding::NON_ALPHANUMERIC);
    back(
        req,
        &format!("{SESSION_COOKIE}={encoded}; Path=/; HttpOnly"),
    )
}

/// `GET /logout`: forgets the user.
fn logout(req: &Request) -> Response<Body> {
    back(
        req,
        &format!("{SESSION_COOKIE}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"),
    )
}

/// A redirect to the page the request came from (`/productpage` when it names none), with
/// a session cookie.
fn back(req: &Request, cookie: &str) -> Response<Body> {
    let target = req.header("referer").unwrap_or("/productpage");
    let mut resp = server::html(
        StatusCode::FOUND,
        format!(
            "<!doctype html>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n\
             <p>You should be redirected automatically to the target URL: <a href=\"{0}\">{0}</a>.</p>\n",
            server::escape_html(target)
        ),
    );
    let h = resp.headers_mut();
    if let Ok(location) = HeaderValue::from_str(target) {
        h.insert(header::LOCATION, location);
    }
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        h.insert(header::SET_COOKIE, cookie);
    }
    resp
}

/// The signed-in user named by the session cookie.
fn session_user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|user| !user.is_empty())
}

/// JSON as Python's `json.dumps` writes it (`{"id": 0, "title": ...}`), productpage's API format.
fn py_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string().into_bytes();
    }
    out
}

/// serde_json's compact output with Python's `", "` and `": "` separators.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_round_trips_odd_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; session=j%C3%A4son%20x"),
        );
        assert_eq!(session_user(&headers).as_deref(), Some("jäson x"));
        headers.insert(header::COOKIE, HeaderValue::from_static("session="));
        assert_eq!(session_user(&headers), None);
    }

    #[test]
    fn py_json_uses_pythons_separators() {
        let text = py_json(&json!({"a": [1, 2], "b": "x"}));
        assert_eq!(String::from_utf8_lossy(&text), r#"{"a": [1, 2], "b": "x"}"#);
    }
}
