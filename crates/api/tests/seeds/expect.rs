//! What each seed snippet must produce when loaded, keyed by (seed, first line).
//!
//! Decided from the seed checklists and from real Istio (istio/istio
//! `pkg/config/validation/validation.go`, the CRD schemas, and Kubernetes' strict field
//! validation, which `kubectl apply` uses by default). Where the seed text and Istio
//! disagree, Istio wins. Unknown fields are warnings by default and errors with
//! `LoadOptions { strict: true }` (as `kubectl apply` refuses them); the test checks both.

use crate::extract::Snippet;

/// The expected outcome for one snippet: exactly these errors and these warnings, each
/// given by substrings its printed report must contain (field path, a phrase of the
/// message, `@L<seed line>` for the line it points at). No errors means it must load.
pub struct Case {
    pub seed: &'static str,
    pub line: usize,
    pub kind: &'static str,
    pub errors: &'static [Needles],
    pub warnings: &'static [Needles],
    /// Fields Istio's schema does not have: warnings by default, errors when strict (as
    /// `kubectl apply`'s strict field validation refuses them).
    pub unknown: &'static [Needles],
    /// Why, in a few words (the checklist item or Istio rule behind it).
    pub why: &'static str,
}

type Needles = &'static [&'static str];

impl Case {
    /// The errors and warnings expected in default or strict mode.
    pub fn expected(&self, strict: bool) -> (Vec<Needles>, Vec<Needles>) {
        let mut errors = self.errors.to_vec();
        let mut warnings = self.warnings.to_vec();
        if strict {
            errors.extend(self.unknown);
        } else {
            warnings.extend(self.unknown);
        }
        (errors, warnings)
    }

    /// The same case, with fields Istio does not know.
    const fn unknown(self, unknown: &'static [Needles]) -> Case {
        Case { unknown, ..self }
    }
}

/// Loads with no problem at all.
const fn ok(seed: &'static str, line: usize, kind: &'static str, why: &'static str) -> Case {
    Case {
        seed,
        line,
        kind,
        errors: &[],
        warnings: &[],
        unknown: &[],
        why,
    }
}

/// Loads, with exactly these warnings.
const fn warns(
    seed: &'static str,
    line: usize,
    kind: &'static str,
    warnings: &'static [Needles],
    why: &'static str,
) -> Case {
    Case {
        seed,
        line,
        kind,
        errors: &[],
        warnings,
        unknown: &[],
        why,
    }
}

/// Refused, with exactly these errors and warnings.
const fn refused(
    seed: &'static str,
    line: usize,
    kind: &'static str,
    errors: &'static [Needles],
    warnings: &'static [Needles],
    why: &'static str,
) -> Case {
    Case {
        seed,
        line,
        kind,
        errors,
        warnings,
        unknown: &[],
        why,
    }
}

/// Kinds whose snippets are skipped because Weft does not model them: (API group, kind,
/// why). Every kind in the seeds is modelled today (IstioOperator included), so none is
/// skipped; a kind listed here that Weft models fails `skipped_kinds_are_really_unmodelled`.
pub const UNMODELLED_KINDS: &[(&str, &str, &str)] = &[];

/// How many snippets each seed holds: (seed, checked, skipped as unmodelled).
pub const SNIPPETS_PER_SEED: &[(&str, usize, usize)] = &[
    ("000", 6, 0),
    ("001", 0, 0),
    ("002", 5, 0),
    ("003", 11, 0),
    ("004", 88, 0),
];

/// A YAML fragment (no apiVersion/kind) the seed shows as a complete example; the test
/// wraps it into an object so that it is checked too.
pub struct Fragment {
    pub seed: &'static str,
    pub line: usize,
    pub kind: &'static str,
    /// The lines put before the fragment. When it does not end with a newline (`  - `), the
    /// fragment's first line completes its last line.
    pub header: &'static str,
    /// How far the fragment's lines are indented below the header.
    pub indent: usize,
}

impl Fragment {
    /// The fragment inside its header, keyed by the fragment's first seed line.
    pub fn wrap(&self, frag: Snippet) -> Snippet {
        let pad = " ".repeat(self.indent);
        let mut text = self.header.to_string();
        let mut lines: Vec<usize> = self.header.lines().map(|_| frag.line).collect();
        let mut joins = !self.header.is_empty() && !self.header.ends_with('\n');
        for (line, n) in frag.text.lines().zip(&frag.lines) {
            if std::mem::take(&mut joins) {
                text.push_str(&format!("{line}\n"));
            } else {
                text.push_str(&format!("{pad}{line}\n"));
                lines.push(*n);
            }
        }
        let api_version = self
            .header
            .lines()
            .find_map(|l| l.strip_prefix("apiVersion:"))
            .unwrap_or("")
            .trim()
            .to_string();
        Snippet {
            text,
            lines,
            api_version,
            kind: self.kind.to_string(),
            ..frag
        }
    }
}

const VS_HEADER: &str =
    "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: fragment\n";
const VS_HTTP_HEADER: &str = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n\
     metadata:\n  name: fragment\nspec:\n  hosts:\n  - customers.default.svc.cluster.local\n  http:\n";
const AP_HEADER: &str = "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n\
     metadata:\n  name: fragment\nspec:\n";

/// Fragments shown as complete examples: seed 002's VirtualService examples after the first
/// ones (`spec:` or the `http:` list; two are the checklist's broken-indentation examples,
/// seed-000-003.md errors 7), seed 004's resiliency rules, AuthorizationPolicy rule parts
/// (one with `host:` for `hosts:`, seed-004b.md divergence 5) and EnvoyFilter patch
/// (mis-indented, seed-004b.md divergence 13).
///
/// Left out as excerpts, not examples: 003:376 and 003:385 (lines of a `kubectl edit`
/// buffer), and in seed 004 the match-only `http:` lines at 2759 and 2769, the blocks cut
/// with `...` at 2789, 2811, 2875 and 2892, and the `spec:` outline with `...` at 4864.
pub const FRAGMENTS: &[Fragment] = &[
    Fragment {
        seed: "002",
        line: 181,
        kind: "VirtualService",
        header: VS_HEADER,
        indent: 0,
    },
    Fragment {
        seed: "002",
        line: 212,
        kind: "VirtualService",
        header: "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: fragment\nspec:\n  hosts:\n  - recommendation\n  http:\n",
        indent: 2,
    },
    Fragment {
        seed: "002",
        line: 232,
        kind: "VirtualService",
        header: VS_HEADER,
        indent: 0,
    },
    Fragment {
        seed: "002",
        line: 251,
        kind: "VirtualService",
        header: VS_HEADER,
        indent: 0,
    },
    Fragment {
        seed: "004",
        line: 3218,
        kind: "VirtualService",
        header: VS_HTTP_HEADER,
        indent: 2,
    },
    Fragment {
        seed: "004",
        line: 3246,
        kind: "VirtualService",
        header: VS_HTTP_HEADER,
        indent: 2,
    },
    Fragment {
        seed: "004",
        line: 3351,
        kind: "VirtualService",
        header: VS_HTTP_HEADER,
        indent: 2,
    },
    Fragment {
        seed: "004",
        line: 3371,
        kind: "VirtualService",
        header: VS_HTTP_HEADER,
        indent: 2,
    },
    Fragment {
        seed: "004",
        line: 4794,
        kind: "AuthorizationPolicy",
        header: AP_HEADER,
        indent: 2,
    },
    Fragment {
        seed: "004",
        line: 4826,
        kind: "AuthorizationPolicy",
        header: "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n\
                 metadata:\n  name: fragment\nspec:\n  rules:\n  - ",
        indent: 4,
    },
    Fragment {
        seed: "004",
        line: 4845,
        kind: "AuthorizationPolicy",
        header: "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n\
                 metadata:\n  name: fragment\nspec:\n  rules:\n  - ",
        indent: 4,
    },
    Fragment {
        seed: "004",
        line: 5803,
        kind: "EnvoyFilter",
        header: "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  \
                 name: fragment\nspec:\n  configPatches:\n",
        indent: 2,
    },
];

const UNKNOWN: &str = "unknown field";
const BAD_YAML: &str = "invalid YAML";

pub const CASES: &[Case] = &[
    // Seed 000 (English, then the same YAML in the Spanish copy).
    ok(
        "000",
        33,
        "List",
        "kubectl get -o yaml: bookinfo's four DestinationRules with server-set metadata",
    ),
    ok(
        "000",
        142,
        "VirtualService",
        "reviews: end-user jason -> v2, others -> v1",
    ),
    // Istio 1.0's abort.percent: current Istio's schema dropped it, but Weft keeps reading
    // it (as percentage.value, with a deprecation warning) so that this walkthrough works as
    // the seed writes it; it is a known field, so strict mode does not refuse it.
    warns(
        "000",
        191,
        "VirtualService",
        &[&[
            "spec.http[0].fault.abort.percent",
            "Istio 1.0 field",
            "@L211",
        ]],
        "abort.percent (Istio 1.0) is read as percentage.value",
    ),
    ok("000", 297, "List", "Spanish copy of 000:33"),
    ok("000", 408, "VirtualService", "Spanish copy of 000:142"),
    warns(
        "000",
        466,
        "VirtualService",
        &[&[
            "spec.http[0].fault.abort.percent",
            "Istio 1.0 field",
            "@L486",
        ]],
        "Spanish copy of 000:191",
    ),
    // Seed 002.
    refused(
        "002",
        35,
        "DestinationRule",
        &[
            &["spec.subsets[0].labels", "not indented", "@L43"],
            &["spec.subsets[1].labels", "not indented", "@L46"],
        ],
        &[],
        "checklist: subset labels mis-indented, `version` lands beside an empty `labels` \
         (kubectl refuses the unknown field; without it both subsets would select every pod)",
    )
    .unknown(&[
        &["spec.subsets[0].version", UNKNOWN, "@L44"],
        &["spec.subsets[1].version", UNKNOWN, "@L47"],
    ]),
    ok("002", 58, "VirtualService", "90/10 weighted split"),
    ok(
        "002",
        85,
        "ServiceEntry",
        "lowercase `protocol: http` is accepted (Istio parses protocols case-insensitively)",
    ),
    warns(
        "002",
        106,
        "Gateway",
        &[&["spec.selector", "no selector", "@L110"]],
        "HTTPS 443 SIMPLE with serverCertificate/privateKey; checklist: no `selector`, which \
         Istio accepts (the Gateway then applies to every gateway proxy) and Weft warns about",
    ),
    ok("002", 158, "VirtualService", "75/25 weighted split"),
    ok(
        "002",
        181,
        "VirtualService",
        "fragment: cookie regex (RE2) AND uri prefix match",
    ),
    refused(
        "002",
        212,
        "VirtualService",
        &[&["spec.http[0]", "set route", "@L212"]],
        &[&["spec.http[1]", "never used", "@L220"]],
        "fragment, checklist: `route:` nested in the match and `- destination` dedented into the \
         match list, so the rule has no route (Istio: HTTP route or redirect is required); the \
         emptied second match matches everything, so the catch-all rule after it is dead",
    )
    .unknown(&[
        &["spec.http[0].match[0].route", UNKNOWN, "@L216"],
        &["spec.http[0].match[1].destination", UNKNOWN, "@L217"],
    ]),
    ok(
        "002",
        232,
        "VirtualService",
        "fragment: mirror to version-v2",
    ),
    refused(
        "002",
        251,
        "VirtualService",
        &[
            &["spec.tcp[0]", "needs route destinations", "@L258"],
            &["spec.tcp[1]", "needs route destinations", "@L259"],
        ],
        &[],
        "fragment, checklist: TCP route mis-indented; `route:` is left empty (null, which \
         Kubernetes reads as unset) and `- destination` became a second TCP rule (Istio: TCP \
         route is required, for both)",
    )
    .unknown(&[&["spec.tcp[1].destination", UNKNOWN, "@L259"]]),
    // Seed 003.
    ok(
        "003",
        444,
        "Gateway",
        "bookinfo-gateway, indented under a list item",
    ),
    refused(
        "003",
        459,
        "VirtualService",
        &[&[BAD_YAML]],
        &[],
        "checklist: stray `EOF` line inside the YAML block (the parser notices at the end of \
         the document, one line past the EOF)",
    ),
    ok(
        "003",
        528,
        "DestinationRule",
        "02-create-destination-rules.yaml: productpage",
    ),
    ok("003", 539, "DestinationRule", "reviews v1/v2/v3"),
    ok("003", 556, "DestinationRule", "ratings"),
    ok("003", 576, "DestinationRule", "details"),
    ok(
        "003",
        600,
        "VirtualService",
        "03-create-reviews-virtual-service.yaml: productpage",
    ),
    ok("003", 613, "VirtualService", "reviews -> v2"),
    ok("003", 626, "VirtualService", "ratings"),
    ok("003", 639, "VirtualService", "details"),
    ok(
        "003",
        686,
        "VirtualService",
        "kubectl get -o yaml: reviews 50/50 v1/v3",
    ),
    // Seed 004, part a.
    refused(
        "004",
        606,
        "IstioOperator",
        &[&[BAD_YAML]],
        &[],
        "`istioctl profile diff` output: lines carry diff markers, it is not a manifest",
    ),
    ok("004", 873, "IstioOperator", "demo-profile.yaml"),
    ok(
        "004",
        1023,
        "IstioOperator",
        "iop-egress.yaml: egress gateway disabled",
    ),
    ok(
        "004",
        1051,
        "IstioOperator",
        "checklist: typo `kabel:` for `label:`",
    )
    .unknown(&[&[
        "spec.components.ingressGateways[0].kabel",
        UNKNOWN,
        "did you mean \"label\"",
        "@L1063",
    ]]),
    ok("004", 1847, "Gateway", "my-gateway, two hosts"),
    ok("004", 1950, "Gateway", "gateway, hosts *"),
    ok("004", 2002, "Deployment", "hello-world"),
    ok(
        "004",
        2025,
        "Service",
        "hello-world (kind before apiVersion)",
    ),
    ok(
        "004",
        2060,
        "VirtualService",
        "hello-world bound to the gateway",
    ),
    ok("004", 2192, "DestinationRule", "customers subsets v1/v2"),
    warns(
        "004",
        2251,
        "VirtualService",
        &[&[
            "spec.http[1]",
            "\"customers-v2-routes\" is never used",
            "@L2265",
        ]],
        "checklist: the 70/30 split is two catch-all rules, so the second is never used \
         (Istio warns: only the last rule can have no matches)",
    ),
    ok(
        "004",
        2278,
        "VirtualService",
        "user-agent regex match, then default",
    ),
    ok("004", 2306, "VirtualService", "redirect uri + authority"),
    ok(
        "004",
        2326,
        "VirtualService",
        "mirror with mirrorPercentage",
    ),
    ok("004", 2361, "Gateway", "weight-based routing lab"),
    ok("004", 2389, "Deployment", "web-frontend"),
    ok("004", 2416, "Service", "web-frontend"),
    ok("004", 2447, "Deployment", "customers-v1"),
    ok("004", 2473, "Service", "customers"),
    ok(
        "004",
        2502,
        "VirtualService",
        "web-frontend bound to the gateway",
    ),
    ok("004", 2558, "DestinationRule", "customers subsets"),
    ok("004", 2578, "VirtualService", "customers -> v1"),
    ok("004", 2609, "Deployment", "customers-v2"),
    ok("004", 2653, "VirtualService", "customers 50/50"),
    ok(
        "004",
        2834,
        "VirtualService",
        "v1beta1, request header set, response header remove, 20/80",
    ),
    ok("004", 2922, "Gateway", "advanced routing lab"),
    ok("004", 2950, "Deployment", "web-frontend"),
    ok("004", 2977, "Service", "web-frontend"),
    ok("004", 2991, "VirtualService", "web-frontend"),
    ok("004", 3010, "Deployment", "customers-v1"),
    ok("004", 3036, "Deployment", "customers-v2"),
    ok("004", 3062, "Service", "customers"),
    ok("004", 3076, "VirtualService", "customers -> v1"),
    ok("004", 3091, "DestinationRule", "customers subsets"),
    ok(
        "004",
        3129,
        "VirtualService",
        "header user: debug -> v2, else v1",
    ),
    ok(
        "004",
        3289,
        "DestinationRule",
        "connection pool and outlier detection",
    ),
    ok("004", 3404, "Gateway", "fault injection lab"),
    ok("004", 3431, "Deployment", "web-frontend"),
    ok("004", 3458, "Service", "web-frontend"),
    ok("004", 3472, "VirtualService", "web-frontend"),
    ok("004", 3493, "Deployment", "customers-v1"),
    ok("004", 3519, "Service", "customers"),
    ok("004", 3533, "DestinationRule", "customers, subset v1 only"),
    ok("004", 3544, "VirtualService", "customers -> v1"),
    ok("004", 3218, "VirtualService", "fragment: route timeout 10s"),
    ok(
        "004",
        3246,
        "VirtualService",
        "fragment: 10 retries, 2s per try, on connect-failure,reset",
    ),
    ok(
        "004",
        3351,
        "VirtualService",
        "fragment: abort 30% with 404",
    ),
    ok("004", 3371, "VirtualService", "fragment: delay 5% by 3s"),
    ok("004", 3571, "VirtualService", "50% 5s delay"),
    ok("004", 3673, "VirtualService", "50% HTTP 500 abort"),
    // Seed 004, part b.
    ok(
        "004",
        3791,
        "ServiceEntry",
        "googleapis, MESH_EXTERNAL, DNS, TLS 443",
    ),
    ok(
        "004",
        3813,
        "ServiceEntry",
        "mongocluster, STATIC, CIDR address, endpoints",
    ),
    ok("004", 3920, "ServiceEntry", "github.com, HTTPS 443, DNS"),
    ok(
        "004",
        4158,
        "PeerAuthentication",
        "STRICT for app: hello-world",
    ),
    ok("004", 4209, "DestinationRule", "*.example.com, TLS SIMPLE"),
    ok("004", 4305, "Gateway", "mTLS lab"),
    ok("004", 4351, "Deployment", "web-frontend"),
    ok("004", 4378, "Service", "web-frontend"),
    ok("004", 4392, "VirtualService", "web-frontend"),
    ok("004", 4426, "Deployment", "customers-v1"),
    ok("004", 4452, "Service", "customers"),
    ok(
        "004",
        4466,
        "VirtualService",
        "customers (`number:` one space deeper than usual is fine YAML)",
    ),
    ok(
        "004",
        4538,
        "VirtualService",
        "customers bound to the gateway",
    ),
    ok("004", 4619, "PeerAuthentication", "namespace-wide STRICT"),
    refused(
        "004",
        4666,
        "RequestAuthentication",
        &[
            &["metadata.name", "required"],
            &["spec.jwtRules[0].jwksUri", "no scheme", "@L4677"],
        ],
        &[],
        "checklist: metadata's fields not indented (name and namespace land at the top level, \
         metadata is null, which Kubernetes reads as unset); Istio also refuses jwksUri \
         \"someuri\" (scheme must be http or https)",
    )
    .unknown(&[
        &[": name: unknown field", "@L4669"],
        &[": namespace: unknown field", "@L4670"],
    ]),
    ok(
        "004",
        4794,
        "AuthorizationPolicy",
        "fragment: three sources (ipBlocks, notNamespaces, requestPrincipals), ORed by Istio",
    ),
    ok(
        "004",
        4826,
        "AuthorizationPolicy",
        "fragment: `host:` is not a field",
    )
    .unknown(&[&[
        "spec.rules[0].to[0].operation.host",
        UNKNOWN,
        "did you mean \"hosts\"",
        "@L4828",
    ]]),
    ok(
        "004",
        4845,
        "AuthorizationPolicy",
        "fragment: when conditions on a JWT claim and a header",
    ),
    refused(
        "004",
        4725,
        "AuthorizationPolicy",
        &[&[BAD_YAML, "@L4730"]],
        &[],
        "checklist: `spec: selector:` on one line",
    ),
    ok("004", 4925, "Gateway", "access control lab"),
    ok("004", 4952, "ServiceAccount", "web-frontend"),
    ok(
        "004",
        4957,
        "Deployment",
        "web-frontend with its service account",
    ),
    ok("004", 4985, "Service", "web-frontend"),
    ok("004", 4999, "VirtualService", "web-frontend"),
    ok("004", 5022, "ServiceAccount", "customers-v1"),
    ok(
        "004",
        5027,
        "Deployment",
        "customers-v1 with its service account",
    ),
    ok("004", 5054, "Service", "customers"),
    ok("004", 5068, "VirtualService", "customers"),
    ok(
        "004",
        5105,
        "AuthorizationPolicy",
        "deny-all: empty spec (ALLOW with no rules)",
    ),
    ok(
        "004",
        5147,
        "AuthorizationPolicy",
        "allow-ingress-frontend; principals soft-wrapped onto the next line",
    ),
    refused(
        "004",
        5210,
        "AuthorizationPolicy",
        &[&[BAD_YAML, "\"source\" already defined at line 14", "@L5225"]],
        &[],
        "checklist: duplicate `source` key in one `from` item",
    ),
    warns(
        "004",
        5931,
        "WasmPlugin",
        &[&["spec.selector", "no matchLabels", "@L5937"]],
        "checklist: `selector.labels` is not a field (matchLabels is); the selector left is empty, \
         which Istio warns about",
    )
    .unknown(&[&["spec.selector.labels", UNKNOWN, "matchLabels", "@L5938"]]),
    warns(
        "004",
        6139,
        "WasmPlugin",
        &[&[
            "spec.url",
            "oci://[REPOSITORY]/wasm:v1",
            "not a valid oci URL",
            "@L6148",
        ]],
        "url keeps the article's [REPOSITORY] placeholder: Istio accepts it (its URL check \
         falls back to http://oci://...), Weft warns",
    ),
    refused(
        "004",
        5803,
        "EnvoyFilter",
        &[&[BAD_YAML, "@L5804"]],
        &[],
        "fragment, checklist: `patch:` indented deeper than `applyTo:` in the configPatches item",
    ),
    ok("004", 6172, "ServiceAccount", "httpbin"),
    ok("004", 6177, "Service", "httpbin"),
    ok("004", 6192, "Deployment", "httpbin"),
    ok(
        "004",
        6389,
        "Sidecar",
        "productpage: egress to reviews, details, istio-system",
    ),
    refused(
        "004",
        6404,
        "Sidecar",
        &[&[BAD_YAML, "@L6406"]],
        &[],
        "checklist: `metadata:  name:` on one line",
    ),
    ok("004", 6417, "Sidecar", "reviews-v2"),
    ok("004", 6432, "Sidecar", "reviews-v3"),
    ok("004", 6447, "Sidecar", "details"),
    ok("004", 6460, "Sidecar", "ratings"),
    ok("004", 6873, "WorkloadGroup", "ratings VM template"),
    ok(
        "004",
        7262,
        "DestinationRule",
        "locality failover with outlier detection",
    ),
    refused(
        "004",
        7291,
        "DestinationRule",
        &[&[BAD_YAML]],
        &[],
        "checklist: locality `distribute.to` weights mis-indented",
    ),
];
