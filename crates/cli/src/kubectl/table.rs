//! `weft get`'s table, in kubectl's shape: NAME (NAMESPACE first with -A), the columns
//! Istio's CRDs print (`additionalPrinterColumns`), AGE; columns padded to their widest
//! cell and three spaces apart.

use serde_json::Value;
use weft_api::kind::Kind;

/// A column: its header, and where its value is in the object (a JSON pointer), or how
/// many entries a map there has, or the object's age.
enum Column {
    Field(&'static str, &'static str),
    Count(&'static str, &'static str),
    Age,
}

/// The columns after NAME, as each kind's CRD lists them.
fn columns(kind: Kind) -> Vec<Column> {
    use Column::{Age, Count, Field};
    match kind {
        Kind::VirtualService => vec![
            Field("GATEWAYS", "/spec/gateways"),
            Field("HOSTS", "/spec/hosts"),
            Age,
        ],
        Kind::DestinationRule => vec![Field("HOST", "/spec/host"), Age],
        Kind::ServiceEntry => vec![
            Field("HOSTS", "/spec/hosts"),
            Field("LOCATION", "/spec/location"),
            Field("RESOLUTION", "/spec/resolution"),
            Age,
        ],
        Kind::WorkloadEntry => vec![Age, Field("ADDRESS", "/spec/address")],
        Kind::PeerAuthentication => vec![Field("MODE", "/spec/mtls/mode"), Age],
        Kind::AuthorizationPolicy => vec![Field("ACTION", "/spec/action"), Age],
        // kubectl's: the number of entries, never their values.
        Kind::Secret => vec![Field("TYPE", "/type"), Count("DATA", "/data"), Age],
        _ => vec![Age],
    }
}

/// The table for `items` (objects as the API returns them), `now` in Unix seconds.
pub fn render(kind: Kind, items: &[Value], all_namespaces: bool, now: i64) -> String {
    let cols = columns(kind);
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(items.len() + 1);
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.push("NAME".to_string());
    header.extend(cols.iter().map(|c| match c {
        Column::Field(name, _) | Column::Count(name, _) => name.to_string(),
        Column::Age => "AGE".to_string(),
    }));
    rows.push(header);
    for item in items {
        let meta = |k: &str| {
            item.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut row = Vec::new();
        if all_namespaces {
            row.push(meta("namespace"));
        }
        row.push(meta("name"));
        for c in &cols {
            row.push(match c {
                Column::Field(_, pointer) => cell(item.pointer(pointer)),
                Column::Count(_, pointer) => item
                    .pointer(pointer)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    .to_string(),
                Column::Age => age(&meta("creationTimestamp"), now),
            });
        }
        rows.push(row);
    }
    layout(&rows)
}

/// kubectl's (and istioctl's) table layout: each column as wide as its widest cell, three
/// spaces apart, no padding after the last.
pub fn layout<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// A value as kubectl prints a JSONPath column: strings as they are, lists as JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The age of an RFC 3339 timestamp, in kubectl's words (`45s`, `3m20s`, `5h`, `12d`).
fn age(timestamp: &str, now: i64) -> String {
    match timestamp.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => human_duration(now - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let y = d / 365;
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            r => format!("{d}d{r}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if y < 8 {
        match d % 365 {
            0 => format!("{y}y"),
            r => format!("{y}y{r}d"),
        }
    } else {
        format!("{y}y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_like_kubectls() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn a_secret_table_counts_entries_and_shows_no_values() {
        let items = [
            json!({"metadata": {"name": "httpbin-credential", "namespace": "istio-system", "creationTimestamp": "2026-01-01T00:00:00Z"},
                            "type": "kubernetes.io/tls", "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}}),
        ];
        let now = "2026-01-01T00:00:05Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_second();
        assert_eq!(
            render(Kind::Secret, &items, false, now),
            "NAME                 TYPE                DATA   AGE\n\
             httpbin-credential   kubernetes.io/tls   2      5s\n"
        );
    }

    #[test]
    fn a_virtual_service_table() {
        let items = [
            json!({"metadata": {"name": "bookinfo", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "spec": {"gateways": ["bookinfo-gateway"], "hosts": ["*"]}}),
            json!({"metadata": {"name": "reviews", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "spec": {"hosts": ["reviews"]}}),
        ];
        let now = "2026-01-01T00:00:42Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_second();
        assert_eq!(
            render(Kind::VirtualService, &items, false, now),
            "NAME       GATEWAYS               HOSTS         AGE\n\
             bookinfo   [\"bookinfo-gateway\"]   [\"*\"]         42s\n\
             reviews                           [\"reviews\"]   42s\n"
        );
    }
}
