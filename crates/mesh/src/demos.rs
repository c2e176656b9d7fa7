//! The demos `weft up --demo NAME` starts: one row per workload (named, labelled and
//! given service accounts as Istio's samples and the seeds' course name them), the
//! config each demo applies first, and the lines `weft up` prints to try it. Every
//! workload runs `weft sample APP ...`.

use std::collections::BTreeMap;

use crate::error::{MeshError, Result};
use crate::process::User;
use crate::{PortSpec, WorkloadSpec};

/// One demo.
pub struct Demo {
    pub name: &'static str,
    pub about: &'static str,
    /// Objects applied before the workloads start: (source name, YAML).
    pub config: &'static [(&'static str, &'static str)],
    /// What to try once it is up (`{weft}` is the command's name).
    pub try_lines: &'static [&'static str],
}

/// One workload of a demo.
pub struct DemoWorkload {
    /// The demos it belongs to; empty: every demo (the `sleep` client).
    pub demos: &'static [&'static str],
    pub name: &'static str,
    pub app: &'static str,
    pub version: Option<&'static str>,
    pub service_account: &'static str,
    /// `PORT[:TARGET]/PROTOCOL`, as `weft run --port` takes them.
    pub ports: &'static [&'static str],
    /// The Service to declare it in; `None` when the demo's config has the Service.
    pub service: Option<&'static str>,
    /// After `weft sample`.
    pub sample: &'static [&'static str],
    pub env: &'static [(&'static str, &'static str)],
}

pub const DEMOS: &[Demo] = &[
    Demo {
        name: "bookinfo",
        about: "Istio's Bookinfo: productpage, details, reviews v1/v2/v3, ratings",
        config: &[
            (
                "examples/bookinfo/bookinfo.yaml",
                include_str!("../../../examples/bookinfo/bookinfo.yaml"),
            ),
            (
                "examples/bookinfo/bookinfo-gateway.yaml",
                include_str!("../../../examples/bookinfo/bookinfo-gateway.yaml"),
            ),
        ],
        try_lines: &[
            "curl -s http://127.0.0.1:{port80}/productpage | grep -o '<title>.*</title>'",
            "{weft} exec sleep -- curl -s productpage:9080/productpage",
            "{weft} apply -f examples/bookinfo/destination-rule-all.yaml -f examples/bookinfo/virtual-service-all-v1.yaml",
        ],
    },
    Demo {
        name: "httpbin",
        about: "httpbin, with the fortio load client",
        config: &[],
        try_lines: &[
            "{weft} exec sleep -- curl -s httpbin:8000/headers",
            "{weft} exec fortio -- fortio load -c 2 -qps 0 -n 20 -loglevel Warning http://httpbin:8000/get",
        ],
    },
    Demo {
        name: "helloworld",
        about: "helloworld v1 and v2",
        config: &[],
        try_lines: &["{weft} exec sleep -- curl -s helloworld:5000/hello"],
    },
    Demo {
        name: "tcp-echo",
        about: "tcp-echo v1 (prefix one) and v2 (prefix two)",
        config: &[],
        try_lines: &[
            "{weft} exec sleep -- bash -c 'exec 3<>/dev/tcp/tcp-echo/9000; echo hello >&3; head -n 1 <&3'",
        ],
    },
    Demo {
        name: "hello-world",
        about: "the course's hello-world (port 80 to 3000)",
        config: &[],
        try_lines: &[
            "{weft} apply -f examples/hello-world/gateway.yaml -f examples/hello-world/vs-hello-world.yaml",
            "curl -v http://127.0.0.1:8080/",
        ],
    },
    Demo {
        name: "customers",
        about: "the course's web-frontend and customers v1/v2",
        config: &[],
        try_lines: &["{weft} exec sleep -- curl -s web-frontend"],
    },
];

const HELLOWORLD_PORTS: &[&str] = &["5000/http"];
const TCP_ECHO_PORTS: &[&str] = &["9000/tcp"];
/// The course's Services (customers, hello-world) map port 80 to the apps' 3000.
const COURSE_PORTS: &[&str] = &["80:3000/http"];

const CUSTOMERS_URL: (&str, &str) = (
    "CUSTOMER_SERVICE_URL",
    "http://customers.default.svc.cluster.local",
);

pub const WORKLOADS: &[DemoWorkload] = &[
    bookinfo("productpage-v1", "productpage", "v1"),
    bookinfo("details-v1", "details", "v1"),
    bookinfo("reviews-v1", "reviews", "v1"),
    bookinfo("reviews-v2", "reviews", "v2"),
    bookinfo("reviews-v3", "reviews", "v3"),
    bookinfo("ratings-v1", "ratings", "v1"),
    DemoWorkload {
        demos: &["httpbin"],
        name: "httpbin-v1",
        app: "httpbin",
        version: Some("v1"),
        service_account: "httpbin",
        ports: &["8000/http"],
        service: Some("httpbin"),
        sample: &["httpbin"],
        env: &[],
    },
    DemoWorkload {
        demos: &["httpbin"],
        name: "httpbin-v2",
        app: "httpbin",
        version: Some("v2"),
        service_account: "httpbin",
        ports: &["8000/http"],
        service: Some("httpbin"),
        sample: &["httpbin"],
        env: &[],
    },
    DemoWorkload {
        demos: &["httpbin"],
        name: "fortio",
        app: "fortio",
        version: None,
        service_account: "default",
        // An idle client to run `fortio load` in (`weft exec` has it on the PATH), as Istio's
        // fortio-deploy.
        ports: &[],
        service: None,
        sample: &["sleep"],
        env: &[],
    },
    versioned(
        &"helloworld",
        "helloworld-v1",
        "v1",
        HELLOWORLD_PORTS,
        &["helloworld", "--version", "v1"],
    ),
    versioned(
        &"helloworld",
        "helloworld-v2",
        "v2",
        HELLOWORLD_PORTS,
        &["helloworld", "--version", "v2"],
    ),
    versioned(
        &"tcp-echo",
        "tcp-echo-v1",
        "v1",
        TCP_ECHO_PORTS,
        &["tcp-echo", "--prefix", "one"],
    ),
    versioned(
        &"tcp-echo",
        "tcp-echo-v2",
        "v2",
        TCP_ECHO_PORTS,
        &["tcp-echo", "--prefix", "two"],
    ),
    DemoWorkload {
        demos: &["customers"],
        name: "web-frontend",
        app: "web-frontend",
        version: Some("v1"),
        service_account: "default",
        ports: &["80:8080/http"],
        service: Some("web-frontend"),
        sample: &["web-frontend"],
        env: &[CUSTOMERS_URL],
    },
    versioned(
        &"customers",
        "customers-v1",
        "v1",
        COURSE_PORTS,
        &["customers", "--version", "v1"],
    ),
    versioned(
        &"customers",
        "customers-v2",
        "v2",
        COURSE_PORTS,
        &["customers", "--version", "v2"],
    ),
    DemoWorkload {
        demos: &["hello-world"],
        name: "hello-world",
        app: "hello-world",
        version: None,
        service_account: "default",
        ports: COURSE_PORTS,
        service: Some("hello-world"),
        sample: &["hello-world"],
        env: &[],
    },
    DemoWorkload {
        demos: &[],
        name: "sleep",
        app: "sleep",
        version: None,
        service_account: "sleep",
        // Istio's sleep.yaml declares port 80 though nothing listens there.
        ports: &["80/http"],
        service: Some("sleep"),
        sample: &["sleep"],
        env: &[],
    },
];

const fn bookinfo(name: &'static str, app: &'static str, version: &'static str) -> DemoWorkload {
    DemoWorkload {
        demos: &["bookinfo"],
        name,
        app,
        version: Some(version),
        service_account: match app.as_bytes() {
            b"productpage" => "bookinfo-productpage",
            b"details" => "bookinfo-details",
            b"reviews" => "bookinfo-reviews",
            _ => "bookinfo-ratings",
        },
        ports: &["9080/http"],
        service: None,
        sample: match name.as_bytes() {
            b"reviews-v1" => &["reviews", "--version", "v1"],
            b"reviews-v2" => &["reviews", "--version", "v2"],
            b"reviews-v3" => &["reviews", "--version", "v3"],
            b"productpage-v1" => &["productpage"],
            b"details-v1" => &["details"],
            _ => &["ratings"],
        },
        env: &[],
    }
}

/// A versioned workload of a demo whose Service is named after the app, as Istio's
/// helloworld and tcp-echo samples and the course's customers declare theirs.
const fn versioned(
    app: &'static &'static str,
    name: &'static str,
    version: &'static str,
    ports: &'static [&'static str],
    sample: &'static [&'static str],
) -> DemoWorkload {
    DemoWorkload {
        demos: std::slice::from_ref(app),
        name,
        app,
        version: Some(version),
        service_account: "default",
        ports,
        service: Some(*app),
        sample,
        env: &[],
    }
}

/// The demos named, in the order given; an unknown name is an error listing the known.
pub fn select(names: &[String]) -> Result<Vec<&'static Demo>> {
    let mut out: Vec<&'static Demo> = Vec::new();
    for name in names {
        let demo = DEMOS.iter().find(|d| d.name == name).ok_or_else(|| {
            let known: Vec<&str> = DEMOS.iter().map(|d| d.name).collect();
            MeshError::Invalid(format!(
                "no demo {name:?}: pick one of {}",
                known.join(", ")
            ))
        })?;
        if !out.iter().any(|d| d.name == demo.name) {
            out.push(demo);
        }
    }
    Ok(out)
}

/// The workloads of the selected demos (each once; `sleep` when any demo is).
pub fn workloads(demos: &[&Demo]) -> Vec<&'static DemoWorkload> {
    if demos.is_empty() {
        return Vec::new();
    }
    WORKLOADS
        .iter()
        .filter(|w| {
            w.demos.is_empty() || w.demos.iter().any(|d| demos.iter().any(|s| s.name == *d))
        })
        .collect()
}

impl DemoWorkload {
    /// What `weft run` would be told for it; `weft` is the binary the samples run from.
    pub fn spec(&self, weft: &str, user: User) -> Result<WorkloadSpec> {
        let mut labels = BTreeMap::from([("app".to_string(), self.app.to_string())]);
        if let Some(v) = self.version {
            labels.insert("version".into(), v.into());
        }
        let ports = self
            .ports
            .iter()
            .map(|p| PortSpec::parse(p))
            .collect::<Result<Vec<_>>>()?;
        let mut command = vec![weft.to_string(), "sample".to_string()];
        command.extend(self.sample.iter().map(|s| s.to_string()));
        Ok(WorkloadSpec {
            name: self.name.into(),
            namespace: "default".into(),
            labels,
            service_account: self.service_account.into(),
            ports,
            service: self.service.map(String::from),
            sidecar: true,
            command,
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            user,
            interactive: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_makes_a_spec_and_belongs_to_a_known_demo() {
        for w in WORKLOADS {
            assert!(w.spec("weft", User::Root).is_ok(), "{}", w.name);
            for d in w.demos {
                assert!(DEMOS.iter().any(|demo| demo.name == *d), "{}: {d}", w.name);
            }
        }
    }

    #[test]
    fn bookinfo_has_its_six_workloads_and_sleep() {
        let demos = select(&["bookinfo".into()]).unwrap_or_default();
        let names: Vec<&str> = workloads(&demos).iter().map(|w| w.name).collect();
        assert_eq!(
            names,
            [
                "productpage-v1",
                "details-v1",
                "reviews-v1",
                "reviews-v2",
                "reviews-v3",
                "ratings-v1",
                "sleep"
            ]
        );
    }

    #[test]
    fn demos_combine_and_unknown_ones_are_refused() {
        let demos =
            select(&["httpbin".into(), "helloworld".into(), "httpbin".into()]).unwrap_or_default();
        let names: Vec<&str> = workloads(&demos).iter().map(|w| w.name).collect();
        assert_eq!(
            names,
            [
                "httpbin-v1",
                "httpbin-v2",
                "fortio",
                "helloworld-v1",
                "helloworld-v2",
                "sleep"
            ]
        );
        assert!(select(&["nope".into()]).is_err());
    }
}
