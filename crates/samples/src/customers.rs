//! The Istio course's application: `customers` answers a JSON list of customers (v2 adds
//! each one's city), and `web-frontend` renders that list as an HTML table (a CITY column
//! when the answer has cities). web-frontend passes the `user` header on to customers, so a
//! VirtualService can send `user: debug` traffic to v2. The course's first app,
//! `hello-world`, answers `Hello World` to every GET.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::Error;
use crate::client::Upstream;
use crate::headers::{self, PROPAGATED};
use crate::server::{self, Body, Request, escape_html as esc};

/// The customers both versions list, and the cities v2 adds.
const CUSTOMERS: [(&str, &str); 10] = [
    ("Jewel Schaefer", "Hegmannview"),
    ("Raleigh Larson", "Port Ramon"),
    ("Eloise Senger", "New Zita"),
    ("Moshe Zieme", "South Brandon"),
    ("Filiberto Lubowitz", "Lake Ayla"),
    ("Ms.Kadin Kling", "East Maddison"),
    ("Jennyfer Bergstrom", "West Alene"),
    ("Candelario Rutherford", "Lake Ruthie"),
    ("Kenyatta Flatley", "North Bret"),
    ("Gianni Pouros", "Gradyburgh"),
];

/// web-frontend's wait for customers; long enough for the course's 5 s injected delay.
const CUSTOMERS_TIMEOUT: Duration = Duration::from_secs(30);

/// Which customers: v1 (names) or v2 (names and cities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    V1,
    V2,
}

/// `weft sample customers`.
#[derive(Debug, Clone, clap::Args)]
pub struct CustomersOptions {
    /// Which version to be.
    #[arg(long, value_enum)]
    pub version: Version,
    /// The port to listen on (0.0.0.0); the course's Service maps port 80 to it.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// `weft sample hello-world`.
#[derive(Debug, Clone, clap::Args)]
pub struct HelloWorldOptions {
    /// The port to listen on (0.0.0.0); the course's Service maps port 80 to it.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// The course's hello-world: `Hello World` (plain text) for a GET of any path.
pub async fn run_hello_world(
    options: HelloWorldOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    server::serve(
        options.port,
        |req| async move {
            match req.method {
                Method::GET | Method::HEAD => server::text(StatusCode::OK, "Hello World"),
                _ => server::method_not_allowed("GET, HEAD"),
            }
        },
        shutdown,
    )
    .await
}

/// `weft sample web-frontend`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebFrontendOptions {
    /// The port to listen on (0.0.0.0); the course's Service maps port 80 to it.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Where customers is (web-frontend GETs `<URL>/`), as the course's Deployment sets it.
    #[arg(
        long,
        value_name = "URL",
        env = "CUSTOMER_SERVICE_URL",
        default_value = "http://customers.default.svc.cluster.local"
    )]
    pub customers_url: String,
}

pub async fn run_customers(
    options: CustomersOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let list: Arc<Value> = Arc::new(customers(options.version));
    server::serve(
        options.port,
        move |req| {
            let list = list.clone();
            async move {
                match (req.path(), &req.method) {
                    ("/", &Method::GET) => server::json(StatusCode::OK, &list),
                    ("/", _) => server::method_not_allowed("GET"),
                    _ => server::not_found(),
                }
            }
        },
        shutdown,
    )
    .await
}

fn customers(version: Version) -> Value {
    let list = CUSTOMERS
        .iter()
        .map(|(name, city)| match version {
            Version::V1 => json!({"name": name}),
            Version::V2 => json!({"name": name, "city": city}),
        })
        .collect();
    Value::Array(list)
}

pub async fn run_web_frontend(
    options: WebFrontendOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let upstream = Arc::new(Upstream::new(&options.customers_url)?);
    server::serve(
        options.port,
        move |req| {
            let upstream = upstream.clone();
            async move { web_frontend(&upstream, &req).await }
        },
        shutdown,
    )
    .await
}

async fn web_frontend(customers: &Upstream, req: &Request) -> Response<Body> {
    match (req.path(), &req.method) {
        ("/", &Method::GET) => {}
        ("/", _) => return server::method_not_allowed("GET"),
        _ => return server::not_found(),
    }
    let mut names: Vec<&str> = PROPAGATED.to_vec();
    names.push("user");
    let forwarded = headers::forward(&req.headers, &names);
    let list = match customers.get("/", &forwarded, CUSTOMERS_TIMEOUT).await {
        Ok((StatusCode::OK, body)) => serde_json::from_slice::<Vec<Value>>(&body)
            .map_err(|e| format!("customers answered something that is not a list: {e}")),
        Ok((status, _)) => Err(format!("customers answered {}", status.as_u16())),
        Err(e) => Err(format!("cannot reach customers: {e}")),
    };
    match list {
        Ok(list) => server::html(StatusCode::OK, page(&list)),
        Err(why) => {
            server::log_line(format_args!("{why}"));
            // A failed call fails the page: the course watches web-frontend's error rate
            // follow the faults injected into customers.
            server::html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "<!DOCTYPE html>\n<title>Error</title>\n<p>{}</p>\n",
                    esc(&why)
                ),
            )
        }
    }
}

/// The customers table; the CITY column appears when the answer has cities (v2).
fn page(list: &[Value]) -> String {
    let has_city = list.iter().any(|c| c.get("city").is_some());
    let cell = |c: &Value, field: &str| esc(c.get(field).and_then(Value::as_str).unwrap_or(""));
    let mut html = String::from(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Customers</title>\n\
         <style>table { border-collapse: collapse; } th, td { border: 1px solid #ccc; \
         padding: 0.5rem 1rem; }</style>\n</head>\n<body>\n<h1>Customers</h1>\n\
         <table class=\"table-auto\">\n<thead>\n<tr>\n",
    );
    if has_city {
        html.push_str("<th class=\"px-4 py-2\">CITY</th>\n");
    }
    html.push_str("<th class=\"px-4 py-2\">NAME</th>\n</tr>\n</thead>\n<tbody>\n");
    for customer in list {
        html.push_str("<tr>\n");
        if has_city {
            html.push_str(&format!(
                "<td class=\"border px-4 py-2\">{}</td>\n",
                cell(customer, "city")
            ));
        }
        html.push_str(&format!(
            "<td class=\"border px-4 py-2\">{}</td>\n</tr>\n",
            cell(customer, "name")
        ));
    }
    html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lists_names_and_v2_adds_cities() {
        let v1 = customers(Version::V1);
        assert_eq!(v1[0], json!({"name": "Jewel Schaefer"}));
        let v2 = customers(Version::V2);
        assert!(v2[0].get("city").is_some());
    }

    #[test]
    fn the_city_column_shows_only_for_v2() {
        let v1 = customers(Version::V1);
        let v1 = page(v1.as_array().map_or(&[][..], Vec::as_slice));
        assert!(v1.contains("<th class=\"px-4 py-2\">NAME</th>"));
        assert!(!v1.contains("CITY"));
        let v2 = customers(Version::V2);
        let v2 = page(v2.as_array().map_or(&[][..], Vec::as_slice));
        assert!(v2.contains("<th class=\"px-4 py-2\">CITY</th>"));
        assert!(v2.contains("Hegmannview"));
    }
}
