//! The worker side of `compute.tile`: decode, compute on the tile backend, answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyphae_core::rpc::{ErrorCode, Router, RpcFault};
use hyphae_core::transport::ServiceSpec;
use hyphae_core::NodeId;

use super::backends::Backends;
use super::methods::{ComputeTile, TileResponse};
use crate::matrix_file;

/// The RPC router of the compute service. `corrupt` is the test-only faulty-worker switch
/// (`[compute] test_corrupt_results`): every result gets +1 on its first row; `delay` the
/// test-only slow-worker switch (`[compute] test_tile_delay`): every answer waits that long.
pub fn router(local: NodeId, backends: Arc<Backends>, corrupt: bool, delay: Duration) -> Router {
    Router::new(ServiceSpec::COMPUTE, local).unary::<ComputeTile, _, _>(move |peer, req| {
        let backends = backends.clone();
        async move {
            let span =
                tracing::info_span!("tile", job = %req.job, tile = req.tile, from = %peer.node);
            let _e = span.enter();
            let bad = |e: crate::ComputeError| RpcFault::new(ErrorCode::BadRequest, e.to_string());
            let a = matrix_file::decode(&req.a).map_err(bad)?;
            let b = matrix_file::decode(&req.b).map_err(bad)?;
            crate::matrix::product_shape(&a, &b).map_err(bad)?;
            let done = tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                backends
                    .gemm(&a, &b)
                    .map(|(c, name)| (c, name, t.elapsed()))
            })
            .await
            .map_err(|e| RpcFault::new(ErrorCode::Internal, format!("tile task: {e}")))?;
            let (mut c, backend, took) =
                done.map_err(|e| RpcFault::new(ErrorCode::Internal, e.to_string()))?;
            if corrupt {
                let cols = c.cols();
                for x in c.data_mut().iter_mut().take(cols) {
                    *x += 1.0;
                }
                tracing::warn!("test_corrupt_results: returning a corrupted tile");
            }
            if !delay.is_zero() {
                tracing::debug!(?delay, "test_tile_delay: holding the tile back");
                tokio::time::sleep(delay).await;
            }
            Ok(TileResponse {
                c: matrix_file::encode(&c),
                backend,
                micros: took.as_micros() as u64,
            })
        }
    })
}
