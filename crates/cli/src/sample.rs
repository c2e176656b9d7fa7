//! `weft sample APP`: runs one of the demo workloads (Istio's bookinfo, httpbin, helloworld,
//! tcp-echo, sleep and fortio, the course's web-frontend and customers) in the foreground
//! until SIGTERM or Ctrl-C. `weft up --demo` and `weft run` start them as mesh workloads.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use weft_samples::{bookinfo, customers, fortio, helloworld, httpbin, tcp_echo};

#[derive(Args)]
pub struct SampleArgs {
    #[command(subcommand)]
    app: App,
}

#[derive(Subcommand)]
enum App {
    /// Bookinfo's product page (v1): the HTML page at /productpage that calls details and
    /// reviews, sign-in at /login, the JSON API under /api/v1/products.
    Productpage(bookinfo::productpage::Options),
    /// Bookinfo's details (v1): /details/ID.
    Details(bookinfo::details::Options),
    /// Bookinfo's reviews: v1 without stars, v2 black stars, v3 red stars (v2 and v3 ask
    /// ratings).
    Reviews(bookinfo::reviews::Options),
    /// Bookinfo's ratings (v1): /ratings/ID.
    Ratings(bookinfo::ratings::Options),
    /// httpbin: /get, /headers, /ip, /status/CODE, /delay/SECONDS, /anything, ...
    Httpbin(httpbin::Options),
    /// Istio's helloworld: /hello answers the version and the instance.
    Helloworld(helloworld::Options),
    /// Istio's tcp-echo server: echoes each line with a prefix (`one hello`).
    TcpEcho(tcp_echo::Options),
    /// The course's hello-world: `Hello World` for a GET of any path (port 3000).
    HelloWorld(customers::HelloWorldOptions),
    /// The course's web-frontend: an HTML table of what customers answers.
    WebFrontend(customers::WebFrontendOptions),
    /// The course's customers: a JSON list of customers (v2 adds each one's city).
    Customers(customers::CustomersOptions),
    /// An idle client to `weft exec` into (Istio's sleep sample).
    Sleep,
    /// Fortio's load client: `fortio load -c 2 -qps 0 -n 20 URL`, `fortio curl URL`
    /// (Go-style flags, as Istio's docs write them).
    Fortio {
        /// `load [flags] URL` or `curl [flags] URL`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

pub fn run(args: SampleArgs) -> anyhow::Result<ExitCode> {
    let fortio = matches!(args.app, App::Fortio { .. });
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Servers need little; fortio's workers get every core, as Go's scheduler gives them.
    if !fortio {
        builder.worker_threads(2);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args.app));
    // Open connections and sleeping handlers must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(app: App) -> anyhow::Result<ExitCode> {
    let shutdown = weft_samples::termination()?;
    match app {
        App::Productpage(o) => bookinfo::productpage::run(o, shutdown).await?,
        App::Details(o) => bookinfo::details::run(o, shutdown).await?,
        App::Reviews(o) => bookinfo::reviews::run(o, shutdown).await?,
        App::Ratings(o) => bookinfo::ratings::run(o, shutdown).await?,
        App::Httpbin(o) => httpbin::run(o, shutdown).await?,
        App::Helloworld(o) => helloworld::run(o, shutdown).await?,
        App::TcpEcho(o) => tcp_echo::run(o, shutdown).await?,
        App::HelloWorld(o) => customers::run_hello_world(o, shutdown).await?,
        App::WebFrontend(o) => customers::run_web_frontend(o, shutdown).await?,
        App::Customers(o) => customers::run_customers(o, shutdown).await?,
        App::Sleep => weft_samples::sleep(shutdown).await,
        App::Fortio { args } => return Ok(ExitCode::from(fortio::run(args, shutdown).await?)),
    }
    Ok(ExitCode::SUCCESS)
}
