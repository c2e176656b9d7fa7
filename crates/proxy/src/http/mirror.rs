//! Mirroring (`mirror`, `mirrors`): a copy of the request goes to another destination,
//! fire and forget. The copy's Host says `-shadow`, its answer is read and dropped, and
//! nothing about it (slowness, failure) reaches the original request.

use std::sync::Arc;

use http_body_util::BodyExt;
use tokio::time::Instant;

use super::attempts::{Origin, Template};
use super::{Body, Shared};
use crate::cluster::outlier::Outcome;
use crate::cluster::{Cluster, PickRequest};
use crate::stats::ClusterStats;

/// Sends a shadow of the request to `cluster` in the background, giving up at `deadline`
/// (the route's timeout applies to shadows too).
pub(super) fn spawn(
    shared: &Shared,
    cluster: Arc<Cluster>,
    template: &Template,
    body: Body,
    origin: &Origin<'_>,
    deadline: Option<Instant>,
) {
    let stats = shared.stats.cluster(&cluster.name);
    let picked = cluster.pick(&PickRequest {
        headers: &template.headers,
        path: origin.path,
        peer: origin.peer,
        local: origin.local,
        original_dst: origin.original_dst,
        health: Some(&stats.health),
        avoid: &[],
    });
    let Some(address) = picked.map(|p| p.address().into_owned()) else {
        tracing::debug!(cluster = %cluster.name, "mirror has no endpoint: not sent");
        return;
    };
    let http2 = super::upstream_http2(&cluster, template.version);
    let req = template.shadow(body, &address, http2);
    ClusterStats::bump(&stats.upstream_rq_total);
    let pool = shared.pool.clone();
    tokio::spawn(async move {
        let send = async {
            let limits = &cluster.limits;
            let resp = pool
                .send(&address, http2, &cluster.connection, limits, &stats, req)
                .await;
            match resp {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Read to the end so the connection can be reused.
                    let _ = resp.into_body().collect().await;
                    cluster.report(&stats.health, &address, Outcome::Status(status));
                }
                Err(e) => tracing::debug!(%address, error = ?e, "mirror request failed"),
            }
        };
        match deadline {
            Some(d) => {
                if tokio::time::timeout_at(d, send).await.is_err() {
                    tracing::debug!(%address, "mirror request timed out");
                }
            }
            None => send.await,
        }
    });
}
