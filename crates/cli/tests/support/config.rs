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
