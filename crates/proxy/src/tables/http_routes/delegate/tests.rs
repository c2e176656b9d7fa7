//! Istio's delegate merge: match fitting and narrowing, inheritance, conflicts, visibility.

use weft_api::networking::virtual_service::{HttpRewrite, HttpRoute};

use super::*;

fn prefix(p: &str) -> Option<StringMatch> {
    Some(StringMatch {
        prefix: Some(p.into()),
        ..Default::default()
    })
}

fn exact(e: &str) -> Option<StringMatch> {
    Some(StringMatch {
        exact: Some(e.into()),
        ..Default::default()
    })
}

fn regex(r: &str) -> Option<StringMatch> {
    Some(StringMatch {
        regex: Some(r.into()),
        ..Default::default()
    })
}

fn uri(m: Option<StringMatch>) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: m,
        ..Default::default()
    }
}

fn route(name: &str, matches: Vec<HttpMatchRequest>) -> HttpRoute {
    HttpRoute {
        name: name.into(),
        matches,
        ..Default::default()
    }
}

#[test]
fn child_uri_must_fit_inside_the_root_prefix() {
    let root = route("root", vec![uri(prefix("/reviews"))]);
    for (child, fits) in [
        (prefix("/reviews/v2"), true),
        (exact("/reviews/1"), true),
        (prefix("/reviews"), true),
        (prefix("/ratings"), false),
        (exact("/ratings"), false),
        (regex("/reviews/.*"), false),
    ] {
        let merged = merge_route(&root, &route("child", vec![uri(child.clone())]));
        assert_eq!(merged.is_some(), fits, "{child:?}");
        if let Some(m) = merged {
            assert_eq!(m.name, "root-child");
            assert_eq!(m.matches[0].uri, child);
        }
    }
    let root = route("", vec![uri(exact("/login"))]);
    assert!(merge_route(&root, &route("", vec![uri(exact("/login"))])).is_some());
    assert!(merge_route(&root, &route("", vec![uri(exact("/logout"))])).is_none());
    assert!(merge_route(&root, &route("", vec![uri(prefix("/login"))])).is_none());
}

#[test]
fn empty_sides_take_the_other_and_unset_fields_are_inherited() {
    let mut root = route("root", vec![uri(prefix("/api"))]);
    root.rewrite = Some(HttpRewrite {
        uri: "/".into(),
        ..Default::default()
    });
    let merged = merge_route(&root, &route("", Vec::new())).unwrap();
    assert_eq!(merged.matches[0].uri, prefix("/api"));
    assert_eq!(merged.name, "root");
    assert_eq!(merged.rewrite, root.rewrite);
    let merged = merge_route(&route("", Vec::new()), &route("c", vec![uri(exact("/x"))])).unwrap();
    assert_eq!(merged.matches[0].uri, exact("/x"));
}

#[test]
fn root_conditions_narrow_the_child_and_each_child_match_needs_a_root_match() {
    let mut a = uri(prefix("/a"));
    a.headers.insert("x-team".into(), exact("blue").unwrap());
    let b = uri(prefix("/b"));
    let root = route("", vec![a, b]);
    let mut child_match = HttpMatchRequest {
        method: exact("GET"),
        ..Default::default()
    };
    child_match
        .headers
        .insert("x-user".into(), exact("jason").unwrap());
    // No uri in the child: it fits both root matches, and takes each one's conditions.
    let merged = merge_route(&root, &route("", vec![child_match])).unwrap();
    assert_eq!(merged.matches.len(), 2);
    assert_eq!(merged.matches[0].uri, prefix("/a"));
    assert_eq!(merged.matches[0].method, exact("GET"));
    assert_eq!(merged.matches[0].headers.len(), 2);
    assert_eq!(merged.matches[1].uri, prefix("/b"));
    assert_eq!(merged.matches[1].headers.len(), 1);
    // A child header that contradicts the root's conflicts.
    let mut clash = uri(prefix("/a/x"));
    clash.headers.insert("x-team".into(), exact("red").unwrap());
    let root = route("", vec![root.matches[0].clone()]);
    assert!(merge_route(&root, &route("", vec![clash])).is_none());
    // One fitting child match is not enough when another fits nowhere.
    let root = route("", vec![uri(prefix("/a"))]);
    let child = route("", vec![uri(prefix("/a/1")), uri(prefix("/z"))]);
    assert!(merge_route(&root, &child).is_none());
}

#[test]
fn visibility_follows_export_to() {
    assert!(exported_to(&[], "team", "root"));
    assert!(exported_to(&["*".into()], "team", "root"));
    assert!(exported_to(&["root".into()], "team", "root"));
    assert!(!exported_to(&[".".into()], "team", "root"));
    assert!(exported_to(&[".".into()], "root", "root"));
}
