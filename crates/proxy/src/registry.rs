//! The services a proxy knows and their endpoints: the mesh's service registry, shared
//! with the control plane, lives in `weft_api::registry`; the proxy builds one from the
//! config objects it is given.

pub use weft_api::registry::*;
