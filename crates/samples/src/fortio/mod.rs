//! `weft sample fortio`: the load client of Istio's circuit-breaking task. `load` drives a
//! URL at a rate over N keep-alive connections and prints fortio's report (the histogram,
//! percentiles, `Sockets used`, `Code 200 : 18 (90.0 %)` lines and `All done`); `curl` and
//! `load -curl` make one call and print the answer.

mod flags;
mod load;
mod stats;

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::Error;
use flags::{LEVELS, LoadOptions, go_duration_text};
use load::{Plan, Stop, Tally, Target};
use stats::g;

/// The version fortio's report names.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-weft");
/// What fortio calls itself on the wire.
const USER_AGENT: &str = concat!("fortio.org/fortio-", env!("CARGO_PKG_VERSION"), "-weft");

const HELP: &str = "usage: weft sample fortio load [flags] URL
       weft sample fortio curl [flags] URL
flags (Go style: -c 2 or -c=2 or --c 2):
  -c N          connections (default 8)
  -qps Q        total calls per second, 0 for as fast as possible (default 8)
  -n N          exact number of calls (default 0: run for -t)
  -t DURATION   how long to run when -n is 0, 0 for until interrupted (default 5s)
  -timeout D    per call (default 3s)
  -H 'K: V'     extra request header (repeatable)
  -loglevel L   Debug, Verbose, Info, Warning, Error, Critical (default Info)
  -p LIST       percentiles to report (default 50,75,90,99,99.9)
  -curl         make one call and print the answer
  -keepalive=false  a new connection per call";

/// Runs `fortio ARGS...` (`load ...`, `curl ...`); returns the exit code.
pub async fn run(args: Vec<String>, shutdown: impl Future<Output = ()>) -> Result<u8, Error> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Error::Usage(format!("fortio: missing a command\n{HELP}")));
    };
    match command.as_str() {
        "load" => {
            let options = flags::parse(rest)?;
            if options.curl {
                curl(&options).await
            } else {
                load_test(&options, shutdown).await
            }
        }
        "curl" => curl(&flags::parse(rest)?).await,
        "help" | "-h" | "--help" | "-help" => {
            print_out(&format!("{HELP}\n"));
            Ok(0)
        }
        other => Err(Error::Usage(format!(
            "fortio: unknown command {other:?}\n{HELP}"
        ))),
    }
}

/// One call; prints the status line, headers and body as fortio's curl does.
async fn curl(options: &LoadOptions) -> Result<u8, Error> {
    let target = Target::new(options).await?;
    match load::once(&target, options.timeout).await {
        Ok(answer) => {
            let mut out = format!("{}\r\n", answer.status_line);
            for (k, v) in &answer.head {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&answer.body);
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&bytes);
            let _ = stdout.flush();
            Ok(if (200..300).contains(&answer.code) {
                0
            } else {
                1
            })
        }
        Err(e) => {
            log('E', "http_client.go:1032", &e);
            Ok(1)
        }
    }
}

async fn load_test(options: &LoadOptions, shutdown: impl Future<Output = ()>) -> Result<u8, Error> {
    if options.log_level != 2 {
        let level = LEVELS[options.log_level];
        let message = format!(
            "Log level is now {} {level} (was 2 Info)",
            options.log_level
        );
        log('I', "logger.go:97", &message);
    }
    let target = Arc::new(Target::new(options).await?);
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let qps = (options.qps > 0.0).then_some(options.qps);
    let length = if options.calls > 0 {
        format!("{} calls", options.calls)
    } else {
        go_duration_text(options.duration)
    };
    print_out(&format!(
        "Fortio {VERSION} running at {} queries per second, {procs}->{procs} procs, for {length}: {}\n{}\n",
        stats::shortest(options.qps.max(0.0)),
        options.url,
        starting_line(options, qps, procs),
    ));
    let stop = Arc::new(Stop {
        flag: AtomicBool::new(false),
        notify: Notify::new(),
    });
    let start = Instant::now();
    let workers = spawn_workers(options, qps, start, &target, &stop);
    let tally = collect(workers, &stop, shutdown).await;
    print_out(&report(
        options,
        &tally,
        start.elapsed(),
        options.connections,
    ));
    Ok(0)
}

/// Starts one worker per connection, sharing the calls and the rate between them.
fn spawn_workers(
    options: &LoadOptions,
    qps: Option<f64>,
    start: Instant,
    target: &Arc<Target>,
    stop: &Arc<Stop>,
) -> tokio::task::JoinSet<Tally> {
    let c = options.connections;
    let deadline =
        (options.calls == 0 && !options.duration.is_zero()).then(|| start + options.duration);
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..c {
        // The first `calls % c` workers make one call more, as fortio splits them.
        let calls = (options.calls > 0)
            .then(|| options.calls / c as u64 + u64::from((i as u64) < options.calls % c as u64));
        let plan = Plan {
            calls,
            deadline,
            interval: qps.map(|q| Duration::from_secs_f64(c as f64 / q)),
            timeout: options.timeout,
            keepalive: options.keepalive,
            warn: options.log_level <= 3,
        };
        workers.spawn(load::worker(target.clone(), plan, stop.clone()));
    }
    workers
}

/// Waits for every worker and adds up what they saw; on `shutdown` tells them to stop, so
/// an interrupted run still reports.
async fn collect(
    mut workers: tokio::task::JoinSet<Tally>,
    stop: &Stop,
    shutdown: impl Future<Output = ()>,
) -> Tally {
    let mut tally = Tally::default();
    tokio::pin!(shutdown);
    let mut interrupted = false;
    loop {
        tokio::select! {
            done = workers.join_next() => match done {
                Some(Ok(t)) => tally.merge(&t),
                Some(Err(_)) => {}
                None => break,
            },
            _ = &mut shutdown, if !interrupted => {
                interrupted = true;
                stop.flag.store(true, Ordering::Relaxed);
                stop.notify.notify_waiters();
            }
        }
    }
    tally
}

/// Fortio's second line, which says how the calls are spread.
fn starting_line(options: &LoadOptions, qps: Option<f64>, procs: usize) -> String {
    let c = options.connections as u64;
    let rate = qps.map_or("max".to_string(), stats::shortest);
    let head = format!("Starting at {rate} qps with {c} thread(s) [gomax {procs}]");
    match (options.calls, qps) {
        (n, None) if n > 0 => format!(
            "{head} for exactly {n} calls ({} per thread + {})",
            n / c,
            n % c
        ),
        (n, Some(_)) if n > 0 => format!(
            "{head} : exactly {n}, {} calls each (total {n} + {})",
            n / c,
            n % c
        ),
        (_, _) if options.duration.is_zero() => format!("{head} until interrupted"),
        (_, None) => format!("{head} for {}", go_duration_text(options.duration)),
        (_, Some(q)) => {
            let each = (q * options.duration.as_secs_f64() / c as f64).round() as u64;
            format!(
                "{head} for {} : {each} calls each (total {})",
                go_duration_text(options.duration),
                each * c
            )
        }
    }
}

/// The summary fortio prints when the run ends.
fn report(options: &LoadOptions, tally: &Tally, elapsed: Duration, connections: usize) -> String {
    let calls = tally.durations.counter.count;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let qps = calls as f64 / secs;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Ended after {} : {calls} calls. qps={}",
        go_duration_text(elapsed),
        g(qps, 5)
    );
    let _ = writeln!(
        out,
        "{}",
        tally.durations.counter.line("Aggregated Function Time")
    );
    out.push_str(&tally.durations.report(&options.percentiles));
    let _ = writeln!(
        out,
        "Sockets used: {} (for perfect keepalive, would be {connections})",
        tally.sockets
    );
    for (code, n) in &tally.codes {
        let pct = if calls == 0 {
            0.0
        } else {
            100.0 * *n as f64 / calls as f64
        };
        let _ = writeln!(out, "Code {code} : {n} ({pct:.1} %)");
    }
    let _ = writeln!(out, "{}", tally.header_sizes.line("Response Header Sizes"));
    let _ = writeln!(
        out,
        "{}",
        tally.total_sizes.line("Response Body/Total Sizes")
    );
    let _ = writeln!(
        out,
        "All done {calls} calls (plus 0 warmup) {:.3} ms avg, {qps:.1} qps",
        tally.durations.counter.avg() * 1_000.0
    );
    out
}

/// A fortio log line on stderr: `15:23:01 W http_client.go:679> message`.
fn log(level: char, origin: &str, message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{} {level} {origin}> {message}",
        crate::clock::now().clock()
    );
}

fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
