//! A `weft control-plane` in the lab's hub (10.250.0.1), which every pod reaches, with
//! the CLI calls the tests make against it: `weft apply`, workloads registering through
//! the local API, and any other `weft` command run from the hub.

use std::process::Output;

use super::{Lab, Pod};
use crate::support::{DEADLINE, eventually};

/// The control plane's local API and xDS addresses.
pub const API: &str = "10.250.0.1:15014";
pub const XDS: &str = "10.250.0.1:15010";

/// The running control plane: where it runs, its state directory and API token.
pub struct ControlPlane {
    pub hub: Pod,
    pub state: String,
    pub token: String,
}

impl Lab {
    /// Starts the control plane in the hub and waits until it answers its readiness path.
    pub fn control_plane(&mut self) -> ControlPlane {
        let hub = self.hub();
        let state = self.dir().join("cp-state").display().to_string();
        let weft = env!("CARGO_BIN_EXE_weft");
        let i = self.spawn(
            &hub,
            "control plane",
            &[
                weft,
                "control-plane",
                "--listen",
                API,
                "--xds-listen",
                XDS,
                "--state-dir",
                &state,
            ],
        );
        eventually("the control plane to answer", DEADLINE, || {
            self.assert_running(i);
            let reply = self
                .curl(&hub, &[&format!("http://{API}/healthz/ready")])
                .ok()?;
            (reply.status == 200).then_some(())
        });
        let token = std::fs::read_to_string(format!("{state}/api-token"))
            .expect("the control plane's API token");
        ControlPlane {
            hub,
            state,
            token: token.trim().to_string(),
        }
    }
}

impl ControlPlane {
    /// `weft ARGS --control-plane API --state-dir STATE`, run in the hub.
    pub fn weft(&self, lab: &Lab, args: &[&str]) -> Output {
        let weft = env!("CARGO_BIN_EXE_weft");
        let mut all = vec![weft];
        all.extend_from_slice(args);
        all.extend(["--control-plane", API, "--state-dir", &self.state]);
        lab.exec(&self.hub, &all)
    }

    /// `weft apply -f` of `yaml`; fails the test when it is refused.
    pub fn apply(&self, lab: &Lab, yaml: &str) {
        let file = lab.dir().join("apply.yaml");
        std::fs::write(&file, yaml).expect("write the file to apply");
        let out = self.weft(lab, &["apply", "-f", &file.display().to_string()]);
        assert!(
            out.status.success(),
            "weft apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Registers workload `name` of namespace `default` at `pod`'s address, with
    /// `labels` and its named ports, through the local API (`POST /v1/workloads`).
    pub fn register(
        &self,
        lab: &Lab,
        pod: &Pod,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[(&str, u16)],
    ) {
        let labels = serde_json::Map::from_iter(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))),
        );
        let ports = serde_json::Map::from_iter(
            ports
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))),
        );
        let body = serde_json::json!({
            "name": name,
            "namespace": "default",
            "labels": labels,
            "serviceAccount": name,
            "address": pod.ip.to_string(),
            "ports": ports,
        })
        .to_string();
        let auth = format!("Authorization: Bearer {}", self.token);
        let url = format!("http://{API}/v1/workloads");
        let reply = lab
            .curl(
                &self.hub,
                &["-X", "POST", "-H", &auth, "--data-binary", &body, &url],
            )
            .unwrap_or_else(|e| panic!("curl failed: {e}"));
        assert_eq!(reply.status, 201, "{reply:?}");
    }
}
