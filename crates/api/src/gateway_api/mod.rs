//! `gateway.networking.k8s.io`: the Kubernetes Gateway API kinds Istio serves.

pub mod gateway;
pub mod grpc_route;
pub mod http_route;
pub mod reference_grant;
pub mod tcp_route;

pub use gateway::{Gateway, GatewayClass};
pub use grpc_route::GrpcRoute;
pub use http_route::HttpRoute;
pub use reference_grant::ReferenceGrant;
pub use tcp_route::{TcpRoute, TlsRoute};
