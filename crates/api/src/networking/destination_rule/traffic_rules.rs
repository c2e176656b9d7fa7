//! Istio's rules for traffic policies (istiod's `validateTrafficPolicy` and friends, plus
//! the CRD schema's one-of and range constraints).

use std::collections::{BTreeMap, BTreeSet};

use super::traffic_policy::*;
use crate::networking::checks::{self, set};
use crate::path::FieldPath;
use crate::validate::{self, Validate, Validator};

impl Validate for TrafficPolicy {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let empty = self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
            && self.port_level_settings.is_empty()
            && self.tunnel.is_none()
            && self.proxy_protocol.is_none()
            && self.retry_budget.is_none();
        if empty {
            v.error(
                at.clone(),
                "traffic policy is empty: set at least one of loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings, tunnel or proxyProtocol",
            );
            return;
        }
        if self.tunnel.is_some() && self.proxy_protocol.is_some() {
            v.error(
                at.key("proxyProtocol"),
                "tunnel and proxyProtocol cannot be set together",
            );
        }
        validate_policy_parts(
            at,
            self.load_balancer.as_ref(),
            self.connection_pool.as_ref(),
            self.outlier_detection.as_ref(),
            self.tls.as_ref(),
            v,
        );
        for (i, p) in self.port_level_settings.iter().enumerate() {
            p.validate(&at.key("portLevelSettings").index(i), v);
        }
        if let Some(t) = &self.tunnel {
            t.validate(&at.key("tunnel"), v);
        }
        if let Some(p) = self.retry_budget.and_then(|b| b.percent) {
            v.check(at.key("retryBudget").key("percent"), validate::percent(p));
        }
    }
}

/// The four parts a port-level policy shares with the top-level one.
fn validate_policy_parts(
    at: &FieldPath,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
    v: &mut Validator<'_>,
) {
    if let Some(o) = outlier {
        o.validate(&at.key("outlierDetection"), v);
    }
    if let Some(p) = pool {
        p.validate(&at.key("connectionPool"), v);
    }
    if let Some(lb) = lb {
        validate_load_balancer(&at.key("loadBalancer"), lb, outlier, v);
    }
    if let Some(t) = tls {
        t.validate(&at.key("tls"), v);
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match &self.port {
            Some(p) => p.validate(&at.key("port"), v),
            None => v.error(
                at.key("port"),
                "port is required in a port-level traffic policy (e.g. port: {number: 443})",
            ),
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            v.error(
                at.clone(),
                "port traffic policy is empty: set at least one of loadBalancer, connectionPool, outlierDetection or tls",
            );
            return;
        }
        validate_policy_parts(
            at,
            self.load_balancer.as_ref(),
            self.connection_pool.as_ref(),
            self.outlier_detection.as_ref(),
            self.tls.as_ref(),
            v,
        );
    }
}

fn validate_load_balancer(
    at: &FieldPath,
    lb: &LoadBalancerSettings,
    outlier: Option<&OutlierDetection>,
    v: &mut Validator<'_>,
) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        v.error(
            at.clone(),
            "set only one of simple and consistentHash (a load balancer has one algorithm)",
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        ch.validate(&at.key("consistentHash"), v);
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality(&at.key("localityLbSetting"), l, outlier, v);
    }
    checks::duration(at.key("warmupDurationSecs"), lb.warmup_duration_secs, v);
    if let Some(w) = &lb.warmup {
        w.validate(&at.key("warmup"), v);
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        match self.duration {
            Some(d) => checks::duration(at.key("duration"), Some(d), v),
            None => v.error(at.key("duration"), "warmup.duration is required (e.g. 60s)"),
        }
        if let Some(p) = self.minimum_percent {
            v.check(at.key("minimumPercent"), validate::percent(p));
        }
        if let Some(a) = self.aggression.filter(|a| *a < 1.0) {
            v.error(
                at.key("aggression"),
                format!("aggression {a} must be at least 1 (1 ramps traffic up linearly)"),
            );
        }
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let keys = [
            ("httpHeaderName", self.http_header_name.is_some()),
            ("httpCookie", self.http_cookie.is_some()),
            ("useSourceIp", self.use_source_ip.is_some()),
            (
                "httpQueryParameterName",
                self.http_query_parameter_name.is_some(),
            ),
        ];
        let chosen: Vec<&str> = keys.iter().filter(|k| k.1).map(|k| k.0).collect();
        if chosen.len() > 1 {
            v.error(
                at.clone(),
                format!(
                    "set only one hash key of httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName (found {})",
                    chosen.join(", ")
                ),
            );
        } else if chosen.is_empty() {
            v.warn(
                at.clone(),
                "consistentHash has no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName): requests are not pinned to an endpoint",
            );
        }
        if let Some(c) = &self.http_cookie {
            v.required(at.key("httpCookie").key("name"), !c.name.is_empty());
            for (i, a) in c.attributes.iter().enumerate() {
                let p = at.key("httpCookie").key("attributes").index(i).key("name");
                v.required(p, !a.name.is_empty());
            }
        }
        if self.ring_hash.is_some() && self.maglev.is_some() {
            v.error(at.clone(), "set only one of ringHash and maglev");
        }
        if self.minimum_ring_size.is_some_and(|n| n != 0) {
            v.warn(
                at.key("minimumRingSize"),
                "minimumRingSize is deprecated: use ringHash.minimumRingSize",
            );
            if self.ring_hash.is_some() || self.maglev.is_some() {
                v.error(
                    at.key("minimumRingSize"),
                    "set only one of minimumRingSize and ringHash/maglev",
                );
            }
        }
        if let Some(m) = &self.maglev {
            validate_maglev(
                &at.key("maglev").key("tableSize"),
                m.table_size.unwrap_or(0),
                v,
            );
        }
    }
}

fn validate_maglev(at: &FieldPath, size: u64, v: &mut Validator<'_>) {
    if size == 0 {
        v.error(
            at.clone(),
            "tableSize is required for maglev (a prime such as 65537)",
        );
        return;
    }
    if size >= 5_000_011 {
        v.error(
            at.clone(),
            format!("tableSize {size} must be less than 5000011"),
        );
    }
    if !is_prime(size) {
        v.error(
            at.clone(),
            format!("tableSize {size} must be a prime number (e.g. 65537)"),
        );
    }
}

/// Primality as Envoy tests it (2 and 3 are prime, even numbers are not).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

fn validate_locality(
    at: &FieldPath,
    l: &LocalityLbSetting,
    outlier: Option<&OutlierDetection>,
    v: &mut Validator<'_>,
) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        v.error(at.clone(), "set only one of distribute and failover");
        return;
    }
    if !l.failover.is_empty() {
        for (i, label) in l.failover_priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                v.error(
                    at.key("failoverPriority").index(i),
                    format!("failoverPriority cannot use the topology label {label:?} together with failover"),
                );
            }
        }
    }
    let mut sources = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let at = at.key("distribute").index(i);
        sources.push(d.from.as_str());
        validate_distribute(&at, d, v);
    }
    v.check(at.key("distribute"), localities(&sources));
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && outlier.is_none() {
        v.warn(
            at.clone(),
            "locality failover needs outlierDetection in the same traffic policy: without it no endpoint is ever marked unhealthy",
        );
    }
    for (i, f) in l.failover.iter().enumerate() {
        validate_failover(&at.key("failover").index(i), f, v);
    }
}

fn validate_distribute(at: &FieldPath, d: &LocalityDistribute, v: &mut Validator<'_>) {
    let mut total: u64 = 0;
    for (loc, w) in &d.to {
        if !(1..=100).contains(w) {
            v.error(
                at.key("to").key(loc),
                format!("locality weight {w} must be in 1-100"),
            );
        }
        total += u64::from(*w);
    }
    if total != 100 {
        v.error(
            at.key("to"),
            format!("locality weights add up to {total}; they must add up to 100"),
        );
    }
    let dests: Vec<&str> = d.to.keys().map(String::as_str).collect();
    v.check(at.key("to"), localities(&dests));
}

fn validate_failover(at: &FieldPath, f: &LocalityFailover, v: &mut Validator<'_>) {
    if f.from == f.to {
        v.error(
            at.clone(),
            format!(
                "failover from {:?} to the same region: from and to must differ",
                f.from
            ),
        );
    }
    if f.from.contains('/') || f.to.contains('/') {
        v.error(
            at.clone(),
            "failover names regions only (no '/' zone or subzone)",
        );
    }
    if f.from.contains('*') || f.to.contains('*') {
        v.error(
            at.clone(),
            "failover regions cannot contain the wildcard '*'",
        );
    }
}

/// Localities (`region/zone/subzone`, optionally ending in `*`) that do not overlap.
fn localities(list: &[&str]) -> Result<(), String> {
    // region -> zone -> subzones; "*" marks "everything below".
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for loc in list {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Err(format!(
                "locality {loc:?}: a wildcard '*' may appear once, at the end"
            ));
        }
        let overlap = || Err(format!("locality {loc:?} overlaps one listed before it"));
        if seen.contains_key("*") {
            return overlap();
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality {loc:?} has an empty region, zone or subzone"
            ));
        }
        let zones = seen.get(parts[0]);
        let clash = match parts.len() {
            1 => zones.is_some(),
            2 => zones.is_some_and(|z| z.contains_key("*") || z.contains_key(parts[1])),
            _ => zones.is_some_and(|z| {
                z.contains_key("*")
                    || z.get(parts[1])
                        .is_some_and(|s| s.contains("*") || s.contains(parts[2]))
            }),
        };
        if clash {
            return overlap();
        }
        let zones = seen.entry(parts[0]).or_default();
        let zone = parts.get(1).copied().unwrap_or("*");
        let sub = parts.get(2).copied().unwrap_or("*");
        zones.entry(zone).or_default().insert(sub);
    }
    Ok(())
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if self.tcp.is_none() && self.http.is_none() {
            v.error(at.clone(), "connection pool is empty: set tcp and/or http");
            return;
        }
        if let Some(h) = &self.http {
            h.validate(&at.key("http"), v);
        }
        if let Some(t) = &self.tcp {
            t.validate(&at.key("tcp"), v);
        }
    }
}

fn non_negative(at: FieldPath, value: Option<i32>, v: &mut Validator<'_>) {
    if let Some(n) = value.filter(|n| *n < 0) {
        v.error(at, format!("{n} must not be negative"));
    }
}

impl Validate for HttpSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        non_negative(
            at.key("http1MaxPendingRequests"),
            self.http1_max_pending_requests,
            v,
        );
        non_negative(at.key("http2MaxRequests"), self.http2_max_requests, v);
        non_negative(
            at.key("maxRequestsPerConnection"),
            self.max_requests_per_connection,
            v,
        );
        non_negative(at.key("maxRetries"), self.max_retries, v);
        non_negative(
            at.key("maxConcurrentStreams"),
            self.max_concurrent_streams,
            v,
        );
        checks::duration(at.key("idleTimeout"), self.idle_timeout, v);
        if self.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && self.use_client_protocol == Some(true)
        {
            v.error(
                at.key("useClientProtocol"),
                "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(k) = &self.http2_keep_alive {
            checks::duration(at.key("http2KeepAlive").key("interval"), k.interval, v);
            checks::duration(at.key("http2KeepAlive").key("timeout"), k.timeout, v);
        }
    }
}

impl Validate for TcpSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        non_negative(at.key("maxConnections"), self.max_connections, v);
        checks::duration(at.key("connectTimeout"), self.connect_timeout, v);
        checks::duration(
            at.key("maxConnectionDuration"),
            self.max_connection_duration,
            v,
        );
        checks::duration(at.key("idleTimeout"), self.idle_timeout, v);
        if let Some(k) = &self.tcp_keepalive {
            checks::duration(at.key("tcpKeepalive").key("time"), k.time, v);
            checks::duration(at.key("tcpKeepalive").key("interval"), k.interval, v);
        }
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        checks::duration(at.key("baseEjectionTime"), self.base_ejection_time, v);
        checks::duration(at.key("interval"), self.interval, v);
        if self.consecutive_errors.is_some_and(|n| n != 0) {
            v.warn(
                at.key("consecutiveErrors"),
                "consecutiveErrors is deprecated: use consecutive5xxErrors or consecutiveGatewayErrors",
            );
        }
        let split = self.split_external_local_origin_errors == Some(true);
        if !split
            && self
                .consecutive_local_origin_failures
                .is_some_and(|n| n > 0)
        {
            v.error(
                at.key("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures only counts when splitExternalLocalOriginErrors is true",
            );
        }
        for (field, value) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("minHealthPercent", self.min_health_percent),
        ] {
            if let Some(p) = value.filter(|p| !(0..=100).contains(p)) {
                v.error(
                    at.key(field),
                    format!("percentage {p} must be between 0 and 100"),
                );
            }
        }
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        let mode = self.mode.unwrap_or_default();
        let sans = !self.subject_alt_names.is_empty();
        if self.insecure_skip_verify == Some(true) {
            let conflict = match mode {
                ClientTlsMode::Simple => {
                    set(&self.ca_certificates) || set(&self.credential_name) || sans
                }
                ClientTlsMode::Mutual => set(&self.ca_certificates) || sans,
                _ => false,
            };
            if conflict {
                v.error(
                    at.key("insecureSkipVerify"),
                    "insecureSkipVerify cannot be combined with caCertificates, subjectAltNames or (in SIMPLE mode) credentialName: nothing would be verified",
                );
            }
        }
        let originates = matches!(mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
        if originates && set(&self.credential_name) {
            if set(&self.client_certificate)
                || set(&self.ca_certificates)
                || set(&self.private_key)
                || set(&self.ca_crl)
            {
                v.error(
                    at.key("credentialName"),
                    "with credentialName, the certificates come from the secret: remove clientCertificate, privateKey, caCertificates and caCrl",
                );
            }
            return;
        }
        if mode == ClientTlsMode::Mutual {
            if !set(&self.client_certificate) {
                v.error(
                    at.key("clientCertificate"),
                    "MUTUAL TLS needs clientCertificate (and privateKey), or a credentialName",
                );
            }
            if !set(&self.private_key) {
                v.error(
                    at.key("privateKey"),
                    "MUTUAL TLS needs privateKey (and clientCertificate), or a credentialName",
                );
            }
        }
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, at: &FieldPath, v: &mut Validator<'_>) {
        if let Some(p) = self.protocol.as_deref()
            && !matches!(p, "" | "CONNECT" | "POST")
        {
            v.error(
                at.key("protocol"),
                format!("invalid tunnel protocol {p:?}: use \"CONNECT\" or \"POST\""),
            );
        }
        if self.target_host.is_empty() {
            v.required(at.key("targetHost"), false);
        } else if validate::fqdn_host(&self.target_host).is_err()
            && validate::ip_address(&self.target_host).is_err()
        {
            v.error(
                at.key("targetHost"),
                format!(
                    "tunnel targetHost {:?} must be a DNS name or an IP address",
                    self.target_host
                ),
            );
        }
        checks::port(at.key("targetPort"), self.target_port, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_like_envoy() {
        assert!(is_prime(2) && is_prime(3) && is_prime(65537) && is_prime(5_000_011));
        assert!(!is_prime(4) && !is_prime(65536) && !is_prime(9));
    }

    #[test]
    fn locality_overlaps() {
        assert!(localities(&["us-west/zone1/*", "us-west/zone2/*", "us-east/*"]).is_ok());
        assert!(localities(&["us-west", "us-west/zone1"]).is_err());
        assert!(localities(&["us-west/zone1", "us-west/zone1/sub"]).is_err());
        assert!(localities(&["*", "us-west"]).is_err());
        assert!(localities(&["us-*/a"]).is_err());
        assert!(localities(&["us-west//a"]).is_err());
        assert!(localities(&["r/z/a", "r/z/b"]).is_ok());
    }
}
