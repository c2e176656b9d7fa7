//! Warnings about rules and matches that can never apply, after Istio's
//! `analyzeUnreachable*Rules`: a rule after one without match, a match that repeats an
//! earlier one, and a URI prefix that an earlier prefix already covers. Rules are tried in
//! order and the first that matches wins, so these are never used.

use std::collections::BTreeMap;

use crate::common::StringMatch;
use crate::path::FieldPath;
use crate::validate::Validator;

use super::{HttpMatchRequest, HttpRoute};

/// One rule as the analysis sees it.
struct Rule<'a, M> {
    label: String,
    matches: &'a [M],
    /// A rule that delegates hands unmatched requests on to later rules.
    delegates: bool,
}

pub(super) fn unreachable_http(at: &FieldPath, routes: &[HttpRoute], v: &mut Validator<'_>) {
    let rules: Vec<Rule<'_, HttpMatchRequest>> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| Rule {
            label: label(&r.name, i),
            matches: &r.matches,
            delegates: r.delegate.is_some(),
        })
        .collect();
    let without_name = |m: &HttpMatchRequest| HttpMatchRequest {
        name: String::new(),
        ..m.clone()
    };
    let match_label = |i: usize, j: usize| label(&routes[i].matches[j].name, j);
    let kept = unused_rules(at, &rules, without_name, &match_label, v);
    covered_prefixes(at, routes, &kept, v);
}

pub(super) fn unreachable_l4<'a, M>(
    at: &FieldPath,
    matches: impl Iterator<Item = &'a [M]>,
    v: &mut Validator<'_>,
) where
    M: PartialEq + Default + Clone + 'a,
{
    let rules: Vec<Rule<'_, M>> = matches
        .enumerate()
        .map(|(i, m)| Rule {
            label: format!("#{i}"),
            matches: m,
            delegates: false,
        })
        .collect();
    unused_rules(at, &rules, M::clone, &|_, j| format!("#{j}"), v);
}

fn label(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("#{index}")
    } else {
        format!("{name:?}")
    }
}

/// Warns about rules that follow a rule without match and about repeated matches; returns
/// the (rule, match) pairs still worth comparing.
fn unused_rules<M: PartialEq + Default>(
    at: &FieldPath,
    rules: &[Rule<'_, M>],
    key: impl Fn(&M) -> M,
    match_label: &dyn Fn(usize, usize) -> String,
    v: &mut Validator<'_>,
) -> Vec<(usize, usize)> {
    let mut first_empty: Option<usize> = None;
    let mut catch_all: Option<usize> = None;
    let mut seen = Seen {
        matches: Vec::new(),
        kept: Vec::new(),
    };
    for (i, rule) in rules.iter().enumerate() {
        let shadowed_by = match (rule.matches.is_empty(), first_empty, catch_all) {
            (true, Some(e), _) => Some(format!(
                "rule {} before it has no match either (only the last rule may have no match)",
                rules[e].label
            )),
            (_, _, Some(c)) => Some(format!(
                "rule {} before it matches every request (put the rule without match last)",
                rules[c].label
            )),
            _ => None,
        };
        if let Some(why) = shadowed_by {
            v.warn(
                at.index(i),
                format!("rule {} is never used: {why}", rule.label),
            );
            continue;
        }
        if rule.matches.is_empty() {
            first_empty = Some(i);
        }
        seen.rule(at, rules, i, &key, match_label, v);
        let matches_all =
            rule.matches.is_empty() || rule.matches.iter().any(|m| key(m) == M::default());
        if matches_all && !rule.delegates {
            catch_all = Some(i);
        }
    }
    seen.kept
}

/// The matches met so far (with their rule), and the (rule, match) pairs not repeated.
struct Seen<M> {
    matches: Vec<(M, usize)>,
    kept: Vec<(usize, usize)>,
}

impl<M: PartialEq> Seen<M> {
    /// Notes the matches of rule `i`, warning about those an earlier rule already has.
    fn rule(
        &mut self,
        at: &FieldPath,
        rules: &[Rule<'_, M>],
        i: usize,
        key: &impl Fn(&M) -> M,
        match_label: &dyn Fn(usize, usize) -> String,
        v: &mut Validator<'_>,
    ) {
        let rule = &rules[i];
        let mut repeats = 0;
        for (j, m) in rule.matches.iter().enumerate() {
            let k = key(m);
            if let Some((_, earlier)) = self.matches.iter().find(|(s, _)| *s == k) {
                let msg = format!(
                    "match {} of rule {} is never used: rule {} has the same match",
                    match_label(i, j),
                    rule.label,
                    rules[*earlier].label
                );
                v.warn(at.index(i).key("match").index(j), msg);
                repeats += 1;
            } else {
                self.matches.push((k, i));
                self.kept.push((i, j));
            }
        }
        if repeats > 0 && repeats == rule.matches.len() {
            v.warn(
                at.index(i),
                format!(
                    "rule {} is never used: all its matches appear in earlier rules",
                    rule.label
                ),
            );
        }
    }
}

/// A URI-prefix match reduced to what Istio compares for overlaps.
struct PrefixMatch<'a> {
    rule: usize,
    index: usize,
    prefix: &'a str,
    port: u32,
    method: String,
    authority: String,
    maps: [BTreeMap<&'a str, String>; 3],
}

fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    match sm {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn prefix_match(rule: usize, index: usize, m: &HttpMatchRequest) -> Option<PrefixMatch<'_>> {
    let prefix = m
        .uri
        .as_ref()?
        .prefix
        .as_deref()
        .filter(|p| !p.is_empty())?;
    let mut method = exact_or_prefix(m.method.as_ref());
    if method.is_empty() {
        // Istio compares a match without method as if it matched GET.
        method = "exact:GET".into();
    }
    Some(PrefixMatch {
        rule,
        index,
        prefix,
        port: m.port.unwrap_or(0),
        method,
        authority: exact_or_prefix(m.authority.as_ref()),
        maps: [
            reduced(&m.headers),
            reduced(&m.query_params),
            reduced(&m.without_headers),
        ],
    })
}

fn reduced(source: &BTreeMap<String, StringMatch>) -> BTreeMap<&str, String> {
    source
        .iter()
        .map(|(k, sm)| (k.as_str(), exact_or_prefix(Some(sm))))
        .collect()
}

/// Whether the earlier match `a` takes every request the later match `b` would (Istio's
/// `coveredValidation`, comparison for comparison).
fn covers(a: &PrefixMatch<'_>, b: &PrefixMatch<'_>) -> bool {
    let narrower = |x: &str, y: &str| x == y || x.starts_with(y);
    b.prefix.starts_with(a.prefix)
        && a.port == b.port
        && narrower(&a.method, &b.method)
        && narrower(&a.authority, &b.authority)
        && a.maps.iter().zip(&b.maps).all(|(am, bm)| {
            am.len() == bm.len()
                && am
                    .iter()
                    .all(|(k, av)| bm.get(k).is_some_and(|bv| narrower(av, bv)))
        })
}

fn covered_prefixes(
    at: &FieldPath,
    routes: &[HttpRoute],
    kept: &[(usize, usize)],
    v: &mut Validator<'_>,
) {
    let prefixed: Vec<PrefixMatch<'_>> = kept
        .iter()
        .filter_map(|&(i, j)| prefix_match(i, j, &routes[i].matches[j]))
        .collect();
    for (n, a) in prefixed.iter().enumerate() {
        for b in prefixed.iter().skip(n + 1) {
            if a.prefix == b.prefix || !covers(a, b) {
                continue;
            }
            let name = |p: &PrefixMatch<'_>| {
                (
                    label(&routes[p.rule].matches[p.index].name, p.index),
                    label(&routes[p.rule].name, p.rule),
                )
            };
            let ((ma, ra), (mb, rb)) = (name(a), name(b));
            v.warn(
                at.index(b.rule).key("match").index(b.index),
                format!(
                    "match {mb} of rule {rb} (prefix {:?}) is never used: match {ma} of rule {ra} (prefix {:?}) comes first and covers it",
                    b.prefix, a.prefix
                ),
            );
        }
    }
}
