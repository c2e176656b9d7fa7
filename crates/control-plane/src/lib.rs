//! Weft's control plane, what istiod is to Istio: it keeps the mesh's config (the store),
//! knows every service and its endpoints (the registry), works out what each proxy needs
//! (scoping), and pushes it to the proxies. Kubernetes plugs into the same store and
//! registry interfaces later.

pub mod api;
pub mod metrics;
pub mod push;
pub mod random;
pub mod scope;
pub mod state;
pub mod store;
