//! Productpage's HTML. The markup users and tests look for keeps bookinfo's: the title
//! "Simple Bookstore App", "Book Details" / "Book Reviews", stars inside
//! `<font color="black">` (v2) or `<font color="red">` (v3), "Reviews served by:", and the
//! "Error fetching product ..." headings with bookinfo's apologies.

use std::fmt::Write;

use hyper::StatusCode;
use serde_json::Value;

use super::productpage::{DETAILS_UNAVAILABLE, Fetched, REVIEWS_UNAVAILABLE};
use super::{PRODUCT_DESCRIPTION_HTML, PRODUCT_TITLE, Review, ReviewsReply};
use crate::server::escape_html as esc;

/// What the product page shows.
pub(crate) struct View<'a> {
    pub user: Option<&'a str>,
    pub details: &'a Fetched,
    /// Reviews' answer when it gave one.
    pub reviews: Option<&'a ReviewsReply>,
    /// Why there are no reviews, when there are none.
    pub reviews_error: Option<&'a str>,
}

const HEAD: &str = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n\
<title>Simple Bookstore App</title>\n<style>\n\
body { font-family: sans-serif; margin: 0; }\n\
nav { background: #222; color: #ddd; padding: 0.6em 1em; display: flex; justify-content: space-between; align-items: center; }\n\
nav a, nav .brand { color: #fff; }\n\
main { padding: 0 1em; }\n\
.row { display: flex; flex-wrap: wrap; gap: 2em; }\n\
.col { flex: 1 1 20em; }\n\
h3, h4 { color: #337ab7; text-align: center; }\n\
blockquote { border-left: 4px solid #eee; margin: 1em 0; padding: 0.3em 1em; }\n\
</style>\n</head>\n<body>\n";

/// The page at `/productpage`.
pub(crate) fn productpage(view: &View<'_>) -> String {
    let mut html = String::from(HEAD);
    nav(&mut html, view.user);
    let _ = write!(
        html,
        "<main>\n<h3>{}</h3>\n<p>Summary: {}</p>\n<div class=\"row\">\n",
        esc(PRODUCT_TITLE),
        PRODUCT_DESCRIPTION_HTML
    );
    html.push_str("<div class=\"col\">\n");
    details(&mut html, view.details);
    html.push_str("</div>\n<div class=\"col\">\n");
    match view.reviews {
        Some(reply) => reviews(&mut html, reply),
        None => {
            html.push_str("<h4>Error fetching product reviews!</h4>\n");
            let _ = writeln!(
                html,
                "<p>{}</p>",
                esc(view.reviews_error.unwrap_or(REVIEWS_UNAVAILABLE))
            );
        }
    }
    html.push_str("</div>\n</div>\n</main>\n</body>\n</html>\n");
    html
}

/// The sign-in form, or who is signed in with a link to sign out.
fn nav(html: &mut String, user: Option<&str>) {
    html.push_str("<nav>\n<span class=\"brand\">BookInfo Sample</span>\n");
    match user {
        Some(user) => {
            let _ = writeln!(
                html,
                "<span class=\"user\">{} ( <a href=\"logout\">sign out</a> )</span>",
                esc(user)
            );
        }
        None => html.push_str(
            "<form method=\"post\" action=\"login\" name=\"login_form\">\n\
             <input type=\"text\" name=\"username\" id=\"username\" placeholder=\"User Name\">\n\
             <input type=\"password\" name=\"passwd\" placeholder=\"Password\">\n\
             <button type=\"submit\">Sign in</button>\n</form>\n",
        ),
    }
    html.push_str("</nav>\n");
}

fn details(html: &mut String, fetched: &Fetched) {
    if fetched.status != StatusCode::OK {
        html.push_str("<h4>Error fetching product details!</h4>\n");
        let error = fetched.body.get("error").and_then(Value::as_str);
        let _ = writeln!(html, "<p>{}</p>", esc(error.unwrap_or(DETAILS_UNAVAILABLE)));
        return;
    }
    let field = |name: &str| match fetched.body.get(name) {
        Some(Value::String(s)) => esc(s),
        Some(Value::Null) | None => String::new(),
        Some(other) => esc(&other.to_string()),
    };
    html.push_str("<h4>Book Details</h4>\n<dl>\n");
    for (label, name) in [
        ("Type", "type"),
        ("Pages", "pages"),
        ("Publisher", "publisher"),
        ("Language", "language"),
        ("ISBN-10", "ISBN-10"),
        ("ISBN-13", "ISBN-13"),
    ] {
        let _ = writeln!(html, "<dt>{label}:</dt>{}", field(name));
    }
    html.push_str("</dl>\n");
}

fn reviews(html: &mut String, reply: &ReviewsReply) {
    html.push_str("<h4>Book Reviews</h4>\n");
    for review in &reply.reviews {
        one_review(html, review);
    }
    let _ = write!(
        html,
        "<dl>\n<dt>Reviews served by:</dt>\n<u>{}</u>\n",
        esc(&reply.podname)
    );
    if !reply.clustername.is_empty() && reply.clustername != "null" {
        let _ = writeln!(html, "on cluster <u>{}</u>", esc(&reply.clustername));
    }
    html.push_str("</dl>\n");
}

fn one_review(html: &mut String, review: &Review) {
    let _ = write!(
        html,
        "<blockquote>\n<p>{}</p>\n<small>{}</small>\n",
        esc(&review.text),
        esc(&review.reviewer)
    );
    if let Some(rating) = &review.rating {
        if let Some(stars) = rating.stars.filter(|s| *s > 0) {
            let stars = usize::from(stars.min(5));
            let color = rating.color.as_deref().unwrap_or("black");
            let _ = writeln!(html, "<font color=\"{}\">", esc(color));
            for _ in 0..stars {
                html.push_str("<span class=\"glyphicon glyphicon-star\">&#9733;</span>\n");
            }
            for _ in stars..5 {
                html.push_str("<span class=\"glyphicon glyphicon-star-empty\">&#9734;</span>\n");
            }
            html.push_str("</font>\n");
        } else if let Some(error) = &rating.error {
            let _ = writeln!(html, "<p><i>{}</i></p>", esc(error));
        }
    }
    html.push_str("</blockquote>\n");
}

/// The page at `/`: what bookinfo is made of, and where to go.
pub(crate) fn index() -> String {
    let mut html = String::from(HEAD);
    html.push_str(
        "<main>\n<h3>Hello! This is a simple bookstore application consisting of three services \
         as shown below</h3>\n<table>\n\
         <tr><th>name</th><td>http://details:9080</td><th>endpoint</th><td>details</td></tr>\n\
         <tr><th>name</th><td>http://reviews:9080</td><th>endpoint</th><td>reviews</td>\
         <th>children</th><td>http://ratings:9080 (ratings)</td></tr>\n</table>\n\
         <p><a href=\"productpage?u=normal\">Normal user</a></p>\n\
         <p><a href=\"productpage?u=test\">Test user</a></p>\n</main>\n</body>\n</html>\n",
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookinfo::Rating;
    use serde_json::json;

    fn reply(color: &str) -> ReviewsReply {
        ReviewsReply {
            id: "0".into(),
            podname: "reviews-v2-abc".into(),
            clustername: "null".into(),
            reviews: vec![Review {
                reviewer: "Reviewer1".into(),
                text: "<great>".into(),
                rating: Some(Rating {
                    stars: Some(4),
                    color: Some(color.into()),
                    error: None,
                }),
            }],
        }
    }

    #[test]
    fn stars_render_in_their_color_with_the_serving_instance() {
        let details = Fetched {
            status: StatusCode::OK,
            body: json!({"type": "paperback", "pages": 200}),
        };
        let r = reply("red");
        let html = productpage(&View {
            user: Some("jason"),
            details: &details,
            reviews: Some(&r),
            reviews_error: None,
        });
        assert!(html.contains("<title>Simple Bookstore App</title>"));
        assert!(html.contains("<font color=\"red\">"));
        assert_eq!(html.matches("glyphicon-star\"").count(), 4);
        assert_eq!(html.matches("glyphicon-star-empty").count(), 1);
        assert!(html.contains("Reviews served by:</dt>\n<u>reviews-v2-abc</u>"));
        assert!(html.contains("&lt;great&gt;"));
        assert!(html.contains("<dt>Pages:</dt>200"));
        assert!(html.contains("jason ( <a href=\"logout\">sign out</a> )"));
    }

    #[test]
    fn failures_show_bookinfos_apologies() {
        let details = Fetched {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({"error": DETAILS_UNAVAILABLE}),
        };
        let html = productpage(&View {
            user: None,
            details: &details,
            reviews: None,
            reviews_error: Some(REVIEWS_UNAVAILABLE),
        });
        assert!(html.contains("Error fetching product details!"));
        assert!(html.contains(DETAILS_UNAVAILABLE));
        assert!(html.contains("Error fetching product reviews!"));
        assert!(html.contains(REVIEWS_UNAVAILABLE));
        assert!(html.contains("name=\"passwd\""));
    }
}
