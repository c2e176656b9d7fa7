//! Fortio's command line, parsed the way Go's `flag` package does (`-qps 0`, `-qps=0`,
//! `--qps 0`, booleans as `-curl` or `-curl=false`, flags stop at the first argument that
//! is not one), so that commands copied from Istio's docs run unchanged.

use std::time::Duration;

use crate::Error;

/// Fortio's log levels, by number as its log lines print them.
pub(crate) const LEVELS: [&str; 7] = [
    "Debug", "Verbose", "Info", "Warning", "Error", "Critical", "Fatal",
];

/// What `fortio load` and `fortio curl` were asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadOptions {
    /// `-c`: connections, each driven by its own worker.
    pub connections: usize,
    /// `-qps`: total target rate; 0 or less is as fast as possible.
    pub qps: f64,
    /// `-n`: exact number of calls (0: run for `duration`).
    pub calls: u64,
    /// `-t`: how long to run when `calls` is 0 (zero: until interrupted).
    pub duration: Duration,
    /// `-timeout`: per call.
    pub timeout: Duration,
    /// `-H`: extra request headers, `name: value`.
    pub headers: Vec<(String, String)>,
    /// `-loglevel`, as an index into [`LEVELS`].
    pub log_level: usize,
    /// `-curl`: make one call and print the answer instead of load testing.
    pub curl: bool,
    /// `-keepalive`: reuse connections between calls.
    pub keepalive: bool,
    /// `-p`: percentiles to report.
    pub percentiles: Vec<f64>,
    pub url: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            connections: 8,
            qps: 8.0,
            calls: 0,
            duration: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            headers: Vec::new(),
            log_level: 2,
            curl: false,
            keepalive: true,
            percentiles: vec![50.0, 75.0, 90.0, 99.0, 99.9],
            url: String::new(),
        }
    }
}

/// Parses the arguments after `load` or `curl`.
pub(crate) fn parse(args: &[String]) -> Result<LoadOptions, Error> {
    let mut o = LoadOptions::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            break;
        };
        if flag.is_empty() {
            break;
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        i += 1;
        if let Some(on) = boolean(name, inline.as_deref())? {
            match name {
                "curl" => o.curl = on,
                "keepalive" => o.keepalive = on,
                // Accepted for compatibility; they change nothing here.
                _ => {}
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| usage(format!("flag needs an argument: -{name}")))?;
                i += 1;
                v.clone()
            }
        };
        set(&mut o, name, &value)?;
    }
    let rest = &args[i.min(args.len())..];
    match rest {
        [url] => o.url = url.clone(),
        [] => {
            return Err(usage(
                "missing the URL to call (fortio load [flags] URL)".into(),
            ));
        }
        _ => {
            return Err(usage(format!(
                "one URL expected after the flags, got {rest:?} (flags go before the URL)"
            )));
        }
    }
    Ok(o)
}

/// `Some(value)` for a boolean flag (bare means true), `None` for any other flag.
fn boolean(name: &str, inline: Option<&str>) -> Result<Option<bool>, Error> {
    if !matches!(
        name,
        "curl" | "keepalive" | "allow-initial-errors" | "stdclient" | "jitter" | "uniform"
    ) {
        return Ok(None);
    }
    match inline {
        None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(Some(true)),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(Some(false)),
        Some(v) => Err(usage(format!("invalid boolean value {v:?} for -{name}"))),
    }
}

fn set(o: &mut LoadOptions, name: &str, value: &str) -> Result<(), Error> {
    let bad = |what: &str| usage(format!("invalid value {value:?} for flag -{name}: {what}"));
    match name {
        "c" => {
            o.connections = value.parse().map_err(|_| bad("want a number"))?;
            if o.connections == 0 {
                return Err(bad("need at least one connection"));
            }
        }
        "qps" => o.qps = value.parse().map_err(|_| bad("want a number"))?,
        "n" => o.calls = value.parse().map_err(|_| bad("want a whole number"))?,
        "t" => o.duration = go_duration(value).ok_or_else(|| bad("want a duration like 5s"))?,
        "timeout" => {
            o.timeout = go_duration(value).ok_or_else(|| bad("want a duration like 3s"))?
        }
        "H" => {
            let (k, v) = value
                .split_once(':')
                .ok_or_else(|| bad("want 'Name: value'"))?;
            o.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        "loglevel" => {
            o.log_level = LEVELS
                .iter()
                .position(|l| l.eq_ignore_ascii_case(value))
                .ok_or_else(|| {
                    bad("want Debug, Verbose, Info, Warning, Error, Critical or Fatal")
                })?;
        }
        "p" => {
            o.percentiles = value
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("want numbers like 50,75,99.9"))?;
        }
        _ => return Err(usage(format!("flag provided but not defined: -{name}"))),
    }
    Ok(())
}

/// Go's `time.ParseDuration`: `300ms`, `1.5h`, `2h45m`; a bare `0` too.
pub(crate) fn go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0.0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3_600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go's `Duration.String()`: `77.394694ms`, `1.5s`, `2m3s`.
pub(crate) fn go_duration_text(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let frac = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let width = unit.to_string().len() - 1;
            let digits = format!("{rest:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m) = (secs / 3_600, secs % 3_600 / 60);
    let s = frac(nanos % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn usage(message: String) -> Error {
    Error::Usage(format!("fortio: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_istios_circuit_breaker_command() {
        let o = parse(&args(&[
            "-c",
            "2",
            "-qps",
            "0",
            "-n",
            "20",
            "-loglevel",
            "Warning",
            "http://httpbin:8000/get",
        ]))
        .unwrap();
        assert_eq!(o.connections, 2);
        assert_eq!(o.qps, 0.0);
        assert_eq!(o.calls, 20);
        assert_eq!(LEVELS[o.log_level], "Warning");
        assert_eq!(o.url, "http://httpbin:8000/get");
    }

    #[test]
    fn go_flag_forms() {
        let o = parse(&args(&[
            "--qps=5",
            "-curl",
            "-H",
            "x-a: b",
            "-t",
            "1m30s",
            "http://x/",
        ]))
        .unwrap();
        assert_eq!(o.qps, 5.0);
        assert!(o.curl);
        assert_eq!(o.headers, vec![("x-a".to_string(), "b".to_string())]);
        assert_eq!(o.duration, Duration::from_secs(90));
        assert!(parse(&args(&["-bogus", "1", "http://x/"])).is_err());
        assert!(parse(&args(&["-c", "2"])).is_err());
        assert!(parse(&args(&["http://x/", "-c", "2"])).is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(
            go_duration_text(Duration::from_nanos(77_394_694)),
            "77.394694ms"
        );
        assert_eq!(go_duration_text(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(go_duration_text(Duration::from_secs(123)), "2m3s");
        assert_eq!(go_duration_text(Duration::from_micros(500)), "500µs");
        assert_eq!(go_duration(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("5"), None);
    }
}
