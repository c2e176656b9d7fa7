//! The seed articles' YAML, loaded as Weft loads files: every snippet meant to be valid
//! validates, and the broken ones are refused with a precise message.
//!
//! The seeds (`shared/seeds/*.txt`, beside the checkout) are five articles about Istio. The
//! snippets are pulled out of their text by `seeds/extract.rs`; what each must produce is
//! the table in `seeds/expect.rs`, decided from the seed checklists
//! (`shared/seed-checklists/`) and from what real Istio does with that YAML.

#[path = "seeds/expect.rs"]
mod expect;
#[path = "seeds/extract.rs"]
mod extract;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weft_api::{Kind, LoadOptions, Loaded, Severity, load_str};

use expect::{Case, FRAGMENTS, SNIPPETS_PER_SEED, UNMODELLED_KINDS};
use extract::Snippet;

/// `<repo>/../shared/seeds`; a missing directory fails the test (it is never skipped).
fn seeds_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seeds");
    assert!(
        dir.is_dir(),
        "the seed articles are missing: looked for {} (the repository is expected to be \
         checked out with shared/ beside it)",
        dir.display()
    );
    dir
}

/// Each seed's file name and text, in name order.
fn seeds() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(seeds_dir())
        .expect("read the seeds directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("a UTF-8 seed");
            (name, text)
        })
        .collect()
}

/// A seed is named in the table by the number its file name starts with (`004`).
fn seed_id(file: &str) -> &str {
    file.split('_').next().unwrap_or(file)
}

/// The snippets of every seed, split into those to check and those whose kind is listed
/// as unmodelled; then the fragments the table wraps into whole objects.
struct Found {
    checked: Vec<Snippet>,
    skipped: Vec<Snippet>,
    fragments: Vec<Snippet>,
}

fn find(seeds: &[(String, String)]) -> Found {
    let mut found = Found {
        checked: Vec::new(),
        skipped: Vec::new(),
        fragments: Vec::new(),
    };
    for (file, text) in seeds {
        for s in extract::extract(file, text) {
            let group = s.api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let listed = UNMODELLED_KINDS
                .iter()
                .any(|(g, k, _)| *g == group && *k == s.kind);
            if listed && !modelled(group, &s.kind) {
                found.skipped.push(s);
            } else {
                found.checked.push(s);
            }
        }
        for f in FRAGMENTS.iter().filter(|f| f.seed == seed_id(file)) {
            let frag = extract::fragment(file, text, f.line)
                .unwrap_or_else(|| panic!("no fragment at {file}:{}", f.line));
            found.fragments.push(f.wrap(frag));
        }
    }
    found
}

fn modelled(group: &str, kind: &str) -> bool {
    Kind::all().any(|k| k.info().group == group && k.info().name == kind)
}

/// Loads a snippet as the file `<seed>:<line>` and returns each report as printed, with
/// the seed line it points at appended (`... @L5225`) so that cases can name it.
fn load(s: &Snippet, strict: bool) -> (Loaded, Vec<(Severity, String)>) {
    let opts = LoadOptions {
        strict,
        ..LoadOptions::default()
    };
    let mut loaded = Loaded::default();
    let file = format!("{}:{}", s.seed, s.line);
    load_str(&s.text, Arc::from(Path::new(&file)), &opts, &mut loaded);
    let reports = loaded
        .reports
        .iter()
        .map(|r| {
            let at = s.seed_line(r.location.line as usize);
            (r.severity(), format!("{r} @L{at}"))
        })
        .collect();
    (loaded, reports)
}

/// Pairs each expected problem with a distinct report of that severity containing all its
/// needles; returns what did not pair up.
fn compare(
    expected: &[&[&str]],
    severity: Severity,
    reports: &[(Severity, String)],
) -> Vec<String> {
    let mut unused: Vec<&String> = reports
        .iter()
        .filter(|(sev, _)| *sev == severity)
        .map(|(_, r)| r)
        .collect();
    let mut problems = Vec::new();
    for needles in expected {
        match unused
            .iter()
            .position(|r| needles.iter().all(|n| r.contains(n)))
        {
            Some(i) => {
                unused.remove(i);
            }
            None => problems.push(format!("missing {severity} containing {needles:?}")),
        }
    }
    problems.extend(unused.into_iter().map(|r| format!("unexpected {r}")));
    problems
}

/// What is wrong with how one snippet loaded, in one mode; empty when it is as expected.
fn check(s: &Snippet, case: &Case, strict: bool) -> Vec<String> {
    let (errors, warnings) = case.expected(strict);
    let (loaded, reports) = load(s, strict);
    let mut problems = compare(&errors, Severity::Error, &reports);
    problems.extend(compare(&warnings, Severity::Warning, &reports));
    if errors.is_empty() && loaded.objects.is_empty() {
        problems.push("no object was loaded".into());
    }
    if !errors.is_empty() && !loaded.objects.is_empty() {
        problems.push("an object with errors was loaded".into());
    }
    if problems.is_empty() {
        return problems;
    }
    let numbered: String = s
        .text
        .lines()
        .enumerate()
        .map(|(i, l)| format!("  {:>5} | {l}\n", s.seed_line(i + 1)))
        .collect();
    let printed: Vec<&str> = reports.iter().map(|(_, r)| r.as_str()).collect();
    vec![format!(
        "{}:{} {} ({}, strict: {strict}) - {}\n  expected errors {errors:?}, warnings {warnings:?}\n  got:\n    {}\n  problems:\n    {}\n  snippet:\n{numbered}",
        s.seed,
        s.line,
        case.kind,
        case.why,
        if errors.is_empty() {
            "expected valid"
        } else {
            "expected refused"
        },
        printed.join("\n    "),
        problems.join("\n    "),
    )]
}

#[test]
fn seed_snippets_load_as_istio_would() {
    let seeds = seeds();
    let found = find(&seeds);
    let cases: BTreeMap<(&str, usize), &Case> = expect::CASES
        .iter()
        .map(|c| ((c.seed, c.line), c))
        .collect();
    assert_eq!(
        cases.len(),
        expect::CASES.len(),
        "a (seed, line) is listed twice"
    );
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for s in found.checked.iter().chain(&found.fragments) {
        let key = (seed_id(&s.seed), s.line);
        let Some(case) = cases.get(&key) else {
            failures.push(format!(
                "{}:{} {} has no expectation in seeds/expect.rs:\n{}",
                s.seed, s.line, s.kind, s.text
            ));
            continue;
        };
        seen.insert(key);
        if !s.kind.is_empty() && case.kind != s.kind {
            failures.push(format!(
                "{}:{} is a {}, the table says {}",
                s.seed, s.line, s.kind, case.kind
            ));
        }
        failures.extend(check(s, case, false));
        failures.extend(check(s, case, true));
    }
    for key in cases.keys().filter(|k| !seen.contains(*k)) {
        failures.push(format!(
            "{}:{} is in the table but no snippet starts there",
            key.0, key.1
        ));
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) with the seeds' snippets:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_snippet_is_found() {
    let seeds = seeds();
    let Found {
        checked, skipped, ..
    } = find(&seeds);
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in &checked {
        counts.entry(seed_id(&s.seed)).or_default().0 += 1;
    }
    for s in &skipped {
        counts.entry(seed_id(&s.seed)).or_default().1 += 1;
    }
    for (seed, want_checked, want_skipped) in SNIPPETS_PER_SEED {
        let got = counts.remove(seed).unwrap_or_default();
        assert_eq!(
            got,
            (*want_checked, *want_skipped),
            "seed {seed}: (checked, skipped) snippets found vs expected"
        );
    }
    assert!(
        counts.is_empty(),
        "snippets in seeds the table does not list: {counts:?}"
    );
    assert_eq!(
        seeds.len(),
        SNIPPETS_PER_SEED.len(),
        "the table lists a different number of seeds than there are"
    );
    // Independently of the extractor's rules: every line that opens an object must be in
    // some extracted snippet.
    let mut covered: BTreeSet<(String, usize)> = BTreeSet::new();
    for s in checked.iter().chain(&skipped) {
        covered.extend(s.lines.iter().map(|n| (s.seed.clone(), *n)));
    }
    for (file, text) in &seeds {
        for (i, line) in text.lines().enumerate() {
            let plain = line.replace('\u{a0}', " ");
            let plain = plain.trim_start_matches('*').trim_start();
            if plain.starts_with("apiVersion:") && !covered.contains(&(file.clone(), i + 1)) {
                panic!("{file}:{} opens an object no snippet holds: {line}", i + 1);
            }
        }
    }
}

#[test]
fn skipped_kinds_are_really_unmodelled() {
    for (group, kind, why) in UNMODELLED_KINDS {
        assert!(
            !modelled(group, kind),
            "{group} {kind} is listed as unmodelled ({why}) but Weft models it: check its snippets"
        );
    }
}
