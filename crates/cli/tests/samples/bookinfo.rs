//! Bookinfo's four services as `weft sample` processes: the page, the stars, sign-in and
//! `end-user`, retries and timeouts, the apologies when a service is down, and the trace
//! headers every call passes on.

use std::time::{Duration, Instant};

use super::Sample;
use super::support::scripted::{Act, Scripted};
use super::support::{TempDir, closed_port, curl};

const BOOKINFO_TITLE: &str = "<title>Simple Bookstore App</title>";
const REVIEWS_SORRY: &str = "Sorry, product reviews are currently unavailable for this book.";
const DETAILS_SORRY: &str = "Sorry, product details are currently unavailable for this book.";

/// Bookinfo with the given reviews base URL: productpage, details and ratings, real.
struct Bookinfo {
    productpage: Sample,
    _details: Sample,
    _ratings: Sample,
}

fn bookinfo(reviews_url: &str) -> Bookinfo {
    let details = Sample::start(&["details"]);
    let ratings = Sample::start(&["ratings"]);
    let productpage = Sample::start(&[
        "productpage",
        "--details-url",
        &details.base(),
        "--reviews-url",
        reviews_url,
        "--ratings-url",
        &ratings.base(),
    ]);
    Bookinfo {
        productpage,
        _details: details,
        _ratings: ratings,
    }
}

#[test]
fn bookinfo_page_shows_black_stars_from_reviews_v2_and_who_served_them() {
    let ratings = Sample::start(&["ratings"]);
    let reviews = Sample::start_with_env(
        &[
            "reviews",
            "--version",
            "v2",
            "--ratings-url",
            &ratings.base(),
        ],
        &[("HOSTNAME", "reviews-v2-5f8c9")],
    );
    let app = bookinfo(&reviews.base());
    let page = curl(&[&app.productpage.url("/productpage")]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(BOOKINFO_TITLE), "{}", page.body);
    assert!(page.body.contains("Book Details") && page.body.contains("paperback"));
    assert!(page.body.contains("Book Reviews"));
    assert!(page.body.contains("<font color=\"black\">"));
    assert!(!page.body.contains("<font color=\"red\">"));
    // Reviewer1 gives 5 stars and Reviewer2 4, out of 5 each.
    assert_eq!(page.body.matches("glyphicon-star\"").count(), 9);
    assert_eq!(page.body.matches("glyphicon-star-empty").count(), 1);
    assert!(page.body.contains("Reviews served by:"));
    assert!(page.body.contains("reviews-v2-5f8c9"), "{}", page.body);
    // Each service logged the request it served.
    assert!(
        app.productpage
            .output()
            .contains("\"GET /productpage HTTP/1.1\" 200")
    );
    assert!(reviews.output().contains("\"GET /reviews/0 HTTP/1.1\" 200"));
    assert!(ratings.output().contains("\"GET /ratings/0 HTTP/1.1\" 200"));
}

#[test]
fn reviews_v1_has_no_stars_and_v3_red_ones() {
    let ratings = Sample::start(&["ratings"]);
    let v1 = Sample::start(&[
        "reviews",
        "--version",
        "v1",
        "--ratings-url",
        "http://127.0.0.1:1",
    ]);
    let body = curl(&[&v1.url("/reviews/0")]).body;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["podname"], "reviews-v1",
        "no HOSTNAME: named after the workload"
    );
    assert!(json["reviews"][0].get("rating").is_none(), "{body}");

    let v3 = Sample::start(&[
        "reviews",
        "--version",
        "v3",
        "--ratings-url",
        &ratings.base(),
    ]);
    let app = bookinfo(&v3.base());
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    assert!(page.contains("<font color=\"red\">"), "{page}");
    assert!(!page.contains("<font color=\"black\">"));
    let app = bookinfo(&v1.base());
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    assert!(
        page.contains("Book Reviews") && !page.contains("<font color"),
        "{page}"
    );
    assert!(page.contains("Reviews served by:") && page.contains("reviews-v1"));
}

#[test]
fn signing_in_makes_productpage_send_end_user_to_reviews() {
    let reviews = Scripted::start("reviews", |_| Act::Echo);
    let app = bookinfo(&format!("http://127.0.0.1:{}", reviews.port));
    let page = app.productpage.url("/productpage");
    let end_user = |n: usize| {
        reviews.seen()[n].headers["end-user"]
            .as_str()
            .map(str::to_string)
    };

    curl(&[&page]);
    assert_eq!(end_user(0), None, "nobody signed in yet");

    let dir = TempDir::new("bookinfo-login");
    let jar = dir.config_dir().join("cookies");
    let jar = jar.to_str().unwrap();
    let login = curl(&[
        "-c",
        jar,
        "-H",
        &format!("Referer: {page}"),
        "-d",
        "username=jason&passwd=secret",
        &app.productpage.url("/login"),
    ]);
    assert_eq!(login.status, 302, "{login:?}");
    assert_eq!(login.header("location"), Some(page.as_str()));
    let signed_in = curl(&["-b", jar, &page]);
    assert!(
        signed_in
            .body
            .contains("jason ( <a href=\"logout\">sign out</a> )")
    );
    assert_eq!(end_user(1).as_deref(), Some("jason"));

    let logout = curl(&["-b", jar, "-c", jar, &app.productpage.url("/logout")]);
    assert_eq!(logout.status, 302);
    let after = curl(&["-b", jar, &page]);
    assert!(
        after.body.contains("name=\"passwd\""),
        "the sign-in form is back"
    );
    assert_eq!(end_user(2), None);

    // An end-user header from the caller is passed on as well.
    curl(&["-H", "end-user: jason", &page]);
    assert_eq!(end_user(3).as_deref(), Some("jason"));
}

#[test]
fn dead_upstreams_give_bookinfos_apologies() {
    let (dead, _hold) = closed_port();
    let details_dead = format!("http://127.0.0.1:{dead}");
    let ratings = Sample::start(&["ratings"]);
    let productpage = Sample::start(&[
        "productpage",
        "--details-url",
        &details_dead,
        "--reviews-url",
        &details_dead,
        "--ratings-url",
        &ratings.base(),
    ]);
    let page = curl(&[&productpage.url("/productpage")]);
    assert_eq!(page.status, 200, "the page itself still loads");
    assert!(page.body.contains(BOOKINFO_TITLE));
    assert!(page.body.contains("Error fetching product details!"));
    assert!(page.body.contains(DETAILS_SORRY));
    assert!(page.body.contains("Error fetching product reviews!"));
    assert!(page.body.contains(REVIEWS_SORRY), "{}", page.body);
    let api = curl(&[&productpage.url("/api/v1/products/0/reviews")]);
    assert_eq!(api.status, 500);
    assert_eq!(api.body, format!("{{\"error\": \"{REVIEWS_SORRY}\"}}"));
}

#[test]
fn productpage_asks_reviews_twice_before_giving_up() {
    // The first answer fails, the retry succeeds: the page shows reviews.
    let flaky = Scripted::start(
        "reviews",
        |n| if n == 0 { Act::Status(503) } else { Act::Echo },
    );
    let app = bookinfo(&format!("http://127.0.0.1:{}", flaky.port));
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    assert!(
        page.contains("Book Reviews") && !page.contains(REVIEWS_SORRY),
        "{page}"
    );
    assert_eq!(flaky.count(), 2);

    // Always failing: exactly two attempts, then the apology with reviews' status.
    let broken = Scripted::start("reviews", |_| Act::Status(503));
    let app = bookinfo(&format!("http://127.0.0.1:{}", broken.port));
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    assert!(page.contains(REVIEWS_SORRY));
    assert_eq!(broken.count(), 2);
    let api = curl(&[&app.productpage.url("/api/v1/products/0/reviews")]);
    assert_eq!(api.status, 503);
    assert_eq!(broken.count(), 4);
}

#[test]
fn productpage_gives_reviews_3_seconds_per_attempt() {
    let slow = Scripted::start("reviews", |_| Act::Delay(Duration::from_secs(5)));
    let app = bookinfo(&format!("http://127.0.0.1:{}", slow.port));
    let start = Instant::now();
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    let took = start.elapsed();
    assert!(page.contains(REVIEWS_SORRY), "{page}");
    // Two attempts of 3 s: the "about 6 seconds" of Istio's fault-injection task.
    assert!(
        took >= Duration::from_millis(5_800),
        "gave up after {took:?}"
    );
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert_eq!(slow.count(), 2);
}

#[test]
fn reviews_says_ratings_is_unavailable_when_it_cannot_reach_it() {
    let (dead, _hold) = closed_port();
    let reviews = Sample::start(&[
        "reviews",
        "--version",
        "v2",
        "--ratings-url",
        &format!("http://127.0.0.1:{dead}"),
    ]);
    let app = bookinfo(&reviews.base());
    let page = curl(&[&app.productpage.url("/productpage")]).body;
    assert!(page.contains("Book Reviews"));
    assert_eq!(
        page.matches("Ratings service is currently unavailable")
            .count(),
        2,
        "{page}"
    );
    assert!(!page.contains("<font color"));

    let failing = Scripted::start("ratings", |_| Act::Status(500));
    let reviews = Sample::start(&[
        "reviews",
        "--version",
        "v2",
        "--ratings-url",
        &format!("http://127.0.0.1:{}", failing.port),
    ]);
    let body = curl(&[&reviews.url("/reviews/0")]).body;
    assert!(
        body.contains("\"error\":\"Ratings service is currently unavailable\""),
        "{body}"
    );
}

/// The headers Istio needs apps to pass on, as a client or a gateway would send them.
const TRACE_HEADERS: &[(&str, &str)] = &[
    ("x-request-id", "5d2a4f4e-2c3b-4f7e-9a1b-0c3d2e1f4a5b"),
    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
    ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
    ("x-b3-sampled", "1"),
    ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    (
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ),
    ("tracestate", "congo=t61rcWkgMzE"),
    ("x-ot-span-context", "abc"),
    ("user-agent", "trace-test/1.0"),
];

fn trace_args() -> Vec<String> {
    TRACE_HEADERS
        .iter()
        .flat_map(|(k, v)| ["-H".to_string(), format!("{k}: {v}")])
        .collect()
}

fn assert_propagated(who: &str, seen: &serde_json::Value) {
    for (name, value) in TRACE_HEADERS {
        assert_eq!(
            seen[*name].as_str(),
            Some(*value),
            "{who} did not receive {name}: {seen}"
        );
    }
}

#[test]
fn trace_headers_are_propagated_on_every_call() {
    let details = Scripted::start("details", |_| Act::Echo);
    let reviews = Scripted::start("reviews", |_| Act::Echo);
    let ratings = Scripted::start("ratings", |_| Act::Echo);
    let productpage = Sample::start(&[
        "productpage",
        "--details-url",
        &format!("http://127.0.0.1:{}", details.port),
        "--reviews-url",
        &format!("http://127.0.0.1:{}", reviews.port),
        "--ratings-url",
        &format!("http://127.0.0.1:{}", ratings.port),
    ]);
    let mut args = trace_args();
    args.push(productpage.url("/productpage"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args);
    assert_propagated("details", &details.seen()[0].headers);
    assert_propagated("reviews", &reviews.seen()[0].headers);

    // reviews passes them on to ratings, with end-user.
    let v2 = Sample::start(&[
        "reviews",
        "--version",
        "v2",
        "--ratings-url",
        &format!("http://127.0.0.1:{}", ratings.port),
    ]);
    let mut args = trace_args();
    args.extend(["-H".into(), "end-user: jason".into(), v2.url("/reviews/0")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args);
    let seen = &ratings.seen()[0].headers;
    assert_propagated("ratings", seen);
    assert_eq!(seen["end-user"], "jason");

    // With no trace coming in, productpage starts one of its own, as bookinfo's does.
    curl(&[&productpage.url("/productpage")]);
    let seen = &details.seen()[1].headers;
    assert_eq!(
        seen["x-b3-traceid"].as_str().map(str::len),
        Some(16),
        "{seen}"
    );
    assert_eq!(seen["x-b3-sampled"], "1");
}
