//! Istio YAML the end-to-end tests write again and again.

/// A Gateway named `name` for the `istio: ingressgateway` proxy, serving HTTP on `port` for
/// `hosts`.
pub fn http_gateway(name: &str, port: u16, hosts: &[&str]) -> String {
    let hosts: String = hosts.iter().map(|h| format!("    - \"{h}\"\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: http
      protocol: HTTP
    hosts:
{hosts}"
    )
}

/// A ServiceEntry for `<name>.default.svc.cluster.local:9080` whose one endpoint, listed
/// in the entry itself, serves on 127.0.0.1:`port`.
pub fn static_service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts:
  - {name}.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
"
    )
}

/// `<name>.default.svc.cluster.local:9080` with one endpoint on 127.0.0.1 per backend
/// port; `protocol` is the port's protocol (and, lower-cased, its name).
pub fn service(name: &str, protocol: &str, ports: &[u16]) -> String {
    let port_name = protocol.to_ascii_lowercase();
    let endpoints: String = ports
        .iter()
        .map(|p| format!("  - address: 127.0.0.1\n    ports:\n      {port_name}: {p}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts:
  - {name}.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: {port_name}
    protocol: {protocol}
  resolution: STATIC
  endpoints:
{endpoints}"
    )
}

/// A VirtualService for every host on Gateway `gateway`, with `http` as its routes (items
/// of `spec.http`, indented two spaces).
pub fn virtual_service(name: &str, gateway: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts:
  - \"*\"
  gateways:
  - {gateway}
  http:
{http}"
    )
}
