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
    assert_eq!(query_param("/p?a=1&b=x+y", "b").as_deref(), Some("x y"));
    assert_eq!(query_param("/p?a=1", "c"), None);
}
