use super::*;

fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
    StringMatch {
        exact: exact.map(Into::into),
        prefix: prefix.map(Into::into),
        regex: regex.map(Into::into),
    }
}

#[test]
fn string_matchers() {
    let exact = StrMatcher::compile(&sm(Some("/productpage"), None, None), false).unwrap();
    assert!(exact.matches("/productpage", false) && !exact.matches("/productpage/x", false));
    let prefix = StrMatcher::compile(&sm(None, Some("/static"), None), false).unwrap();
    assert!(prefix.matches("/static/css", false) && !prefix.matches("/stat", false));
    let regex = StrMatcher::compile(&sm(None, None, Some("/v[0-9]+/.*")), false).unwrap();
    assert!(regex.matches("/v1/items", false));
    assert!(
        !regex.matches("/api/v1/items", false),
        "regexes match the whole value, as in Envoy"
    );
    let folded = StrMatcher::compile(&sm(None, Some("/API"), None), true).unwrap();
    assert!(folded.matches("/api/x", true) && folded.matches("/Api/x", true));
    assert!(
        StrMatcher::compile(&sm(None, None, None), false)
            .unwrap()
            .matches("anything", false)
    );
}

#[test]
fn virtual_host_precedence() {
    let hosts = vec![
        vec!["*".to_string()],
        vec!["*.example.com".to_string()],
        vec!["shop.example.com".to_string()],
    ];
    let pick = |a: &str| pick_virtual_host(&hosts, |v| v.as_slice(), a).map(|v| v[0].as_str());
    assert_eq!(pick("shop.example.com:8080"), Some("shop.example.com"));
    assert_eq!(pick("api.example.com"), Some("*.example.com"));
    assert_eq!(pick("example.com"), Some("*"));
    assert_eq!(
        pick_virtual_host(&hosts[1..], |v| v.as_slice(), "other.org"),
        None
    );
}

#[test]
fn ports_are_stripped() {
    assert_eq!(strip_port("reviews:9080"), "reviews");
    assert_eq!(strip_port("reviews"), "reviews");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
}

#[test]
fn query_params() {
    // Undecoded, as Envoy's route matching compares them.
    assert_eq!(query_param("/p?a=1&b=x+y%41", "b"), Some("x+y%41"));
    assert_eq!(query_param("/p?a=1", "c"), None);
    assert_eq!(query_param("/p?flag&x=1", "flag"), Some(""));
    assert_eq!(query_param("/p?b=1&b=2", "b"), Some("1"));
}

#[test]
fn istio_quirks() {
    let star = StrMatcher::compile(&sm(None, None, Some("*")), false).unwrap();
    assert!(
        matches!(star, StrMatcher::Present),
        "regex `*` is a presence match"
    );
    let re = StrMatcher::compile(&sm(None, None, Some("/api/.*")), true).unwrap();
    assert!(re.matches("/api/x", true) && !re.matches("/API/x", true));
    let exact_empty = StrMatcher::compile(&sm(Some(""), None, None), false).unwrap();
    assert!(
        without_header_hit(&exact_empty, None),
        "missing counts as empty"
    );
    assert!(!without_header_hit(&StrMatcher::Present, None));
    let mut h = http::HeaderMap::new();
    h.append("x", http::HeaderValue::from_static("a"));
    h.append("x", http::HeaderValue::from_static("b"));
    assert_eq!(header_value(&h, "x").as_deref(), Some("a,b"));
    assert_eq!(header_value(&h, "y"), None);
}

mod cors {
    use http::{HeaderMap, Method};
    use weft_api::networking::virtual_service::{CorsPolicy, UnmatchedPreflights};

    use super::super::{Cors, CorsVerdict};
    use super::sm;

    fn policy(unmatched: Option<UnmatchedPreflights>) -> Cors {
        Cors::compile(&CorsPolicy {
            allow_origins: vec![sm(Some("https://a.example"), None, None)],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["*".into()],
            max_age: Some(weft_api::validate::Duration::from_std(
                std::time::Duration::from_secs(90),
            )),
            allow_credentials: Some(true),
            unmatched_preflights: unmatched,
            ..Default::default()
        })
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn preflight(origin: &str) -> HeaderMap {
        headers(&[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-a, x-b"),
        ])
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered() {
        let CorsVerdict::Preflight(h) =
            policy(None).verdict(&Method::OPTIONS, &preflight("https://a.example"))
        else {
            panic!("not answered")
        };
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        // `*` echoes what the browser asked for, as Envoy does.
        assert_eq!(h["access-control-allow-headers"], "x-a, x-b");
        assert_eq!(h["access-control-max-age"], "90");
        assert_eq!(h["access-control-allow-credentials"], "true");
    }

    #[test]
    fn other_origins_are_forwarded_or_ignored() {
        let evil = preflight("https://evil.example");
        assert!(matches!(
            policy(None).verdict(&Method::OPTIONS, &evil),
            CorsVerdict::Forward
        ));
        let ignore = policy(Some(UnmatchedPreflights::Ignore));
        let CorsVerdict::Preflight(h) = ignore.verdict(&Method::OPTIONS, &evil) else {
            panic!("IGNORE answers it")
        };
        assert!(!h.contains_key("access-control-allow-origin"));
        let get = headers(&[("origin", "https://evil.example")]);
        assert!(matches!(
            policy(None).verdict(&Method::GET, &get),
            CorsVerdict::Forward
        ));
    }

    #[test]
    fn actual_requests_get_origin_and_credentials_and_no_origin_is_not_cors() {
        let ok = headers(&[("origin", "https://a.example")]);
        let CorsVerdict::Allowed(h) = policy(None).verdict(&Method::GET, &ok) else {
            panic!("allowed")
        };
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-credentials"], "true");
        // An OPTIONS without Access-Control-Request-Method is an actual request.
        assert!(matches!(
            policy(None).verdict(&Method::OPTIONS, &ok),
            CorsVerdict::Allowed(_)
        ));
        assert!(matches!(
            policy(None).verdict(&Method::GET, &HeaderMap::new()),
            CorsVerdict::Forward
        ));
    }

    #[test]
    fn a_matcher_accepting_star_allows_every_origin() {
        let any = Cors::compile(&CorsPolicy {
            allow_origins: vec![sm(Some("*"), None, None)],
            ..Default::default()
        })
        .unwrap();
        assert!(any.allows("https://whatever.example"));
        let legacy = Cors::compile(&CorsPolicy {
            allow_origin: vec!["https://old.example".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(legacy.allows("https://old.example") && !legacy.allows("https://x.example"));
    }
}
