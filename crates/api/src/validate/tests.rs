use super::*;
use std::time::Duration as Std;

#[test]
fn durations_parse_like_go() {
    let ok = [
        ("1s", Std::from_secs(1)),
        ("500ms", Std::from_millis(500)),
        ("1.5s", Std::from_millis(1500)),
        ("0.5s", Std::from_millis(500)),
        ("1h30m", Std::from_secs(5400)),
        ("3m", Std::from_secs(180)),
        ("100us", Std::from_micros(100)),
        ("0", Std::ZERO),
        ("0s", Std::ZERO),
    ];
    for (text, want) in ok {
        assert_eq!(Duration::parse(text).map(Duration::get), Ok(want), "{text}");
    }
    for bad in ["", "10", "10x", "-1s", "s", "1.s2", "ms"] {
        assert!(Duration::parse(bad).is_err(), "{bad:?} should fail");
    }
    assert!(
        Duration::parse("10x")
            .unwrap_err()
            .contains("unknown unit \"x\"")
    );
}

#[test]
fn millisecond_durations() {
    assert!(duration_ms(Duration::parse("1ms").unwrap()).is_ok());
    assert!(
        duration_ms(Duration::parse("0s").unwrap())
            .unwrap_err()
            .contains("at least 1ms")
    );
    assert!(
        duration_ms(Duration::parse("1500us").unwrap())
            .unwrap_err()
            .contains("millisecond precision")
    );
}

#[test]
fn hosts() {
    for ok in [
        "reviews",
        "reviews.default",
        "reviews.default.svc.cluster.local",
        "*.example.com",
        "*",
        "a-b.c1",
    ] {
        assert!(wildcard_host(ok).is_ok(), "{ok}");
    }
    assert!(fqdn_host("*").is_err());
    assert!(fqdn_host("*.example.com").is_err());
    for bad in [
        "",
        "a..b",
        "-a.com",
        "foo*.com",
        "a.*.com",
        "under_score.com",
        &"x".repeat(64),
    ] {
        assert!(wildcard_host(bad).is_err(), "{bad:?} should fail");
    }
}

/// Istio's host syntax: `*foo` first labels, upper case, a trailing dot, and no all-digit
/// top-level domain.
#[test]
fn hosts_follow_istio() {
    for ok in [
        "reviews",
        "reviews.prod.svc.cluster.local",
        "*.example.com",
        "*",
        "*x",
        "*-x.io",
        "*foo.example.com",
        "ISTIOD-HOST.DOMAIN",
        "a.b.",
        "istio.io.",
    ] {
        assert_eq!(wildcard_host(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "a..b",
        "foo*.com",
        "a.*.com",
        "foo.*.com",
        "ns/foo",
        "a_b.com",
        "10.0.0.1",
        "-a",
        "-a.com",
    ] {
        assert!(wildcard_host(bad).is_err(), "{bad:?}");
    }
    assert!(fqdn_host("api.example.com").is_ok() && fqdn_host("*.example.com").is_err());
    assert!(partial_wildcard("*x").is_err() && partial_wildcard("*.x").is_ok());
}

#[test]
fn kubernetes_names_are_lower_case() {
    assert!(is_dns_label("Reviews") && !is_k8s_label("Reviews"));
    assert!(is_k8s_label("istio-system") && !is_k8s_label("-a") && !is_k8s_label(""));
    assert!(is_k8s_subdomain("gateway.networking.k8s.io") && !is_k8s_subdomain("a..b"));
    assert!(!is_k8s_subdomain(&"a".repeat(254)) && is_k8s_subdomain(&"a".repeat(64)));
}

#[test]
fn ports_percentages_regexes_ips() {
    assert!(port(1).is_ok() && port(65535).is_ok());
    assert!(port(0).is_err() && port(65536).is_err());
    assert!(percent(0.0).is_ok() && percent(100.0).is_ok() && percent(50.5).is_ok());
    assert!(percent(-0.1).is_err() && percent(100.1).is_err());
    assert!(regex("^/api/v[0-9]+").is_ok());
    assert!(regex("(unclosed").unwrap_err().contains("invalid regex"));
    assert!(regex("a(?=b)").is_err(), "look-ahead is not RE2");
    assert!(
        ip_or_cidr("10.0.0.0/8").is_ok()
            && ip_or_cidr("::1").is_ok()
            && ip_or_cidr("1.2.3.4").is_ok()
    );
    assert!(ip_or_cidr("10.0.0/8").is_err() && ip_or_cidr("host").is_err());
}

#[test]
fn labels_and_names() {
    assert!(label_key("app").is_ok() && label_key("app.kubernetes.io/name").is_ok());
    assert!(
        label_key("-app").is_err()
            && label_key("/app").is_err()
            && label_key(&"a".repeat(64)).is_err()
    );
    assert!(
        label_value("").is_ok() && label_value("v1").is_ok() && label_value("v1.2_x-y").is_ok()
    );
    assert!(label_value("v 1").is_err());
    assert!(object_name("reviews").is_ok() && object_name("bookinfo-gateway").is_ok());
    assert!(
        object_name("Reviews").is_err() && object_name("").is_err() && object_name("a_b").is_err()
    );
}
