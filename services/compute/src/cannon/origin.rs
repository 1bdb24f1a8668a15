//! The job node's side of the quorum-timeout: while a Cannon job runs, its inputs are
//! registered here so a worker whose neighbour is late can fetch the block it needs
//! (`compute.cannon.fetch`) instead of stalling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::grid::{Kind, Split};
use super::local::cut;
use crate::error::ComputeError;
use crate::Matrix;

/// One job's inputs.
pub struct OriginJob {
    /// `A`.
    pub a: Arc<Matrix>,
    /// `B`.
    pub b: Arc<Matrix>,
    /// How they are cut.
    pub split: Split,
}

/// The inputs of the Cannon jobs this node runs.
#[derive(Clone, Default)]
pub struct Origins {
    jobs: Arc<Mutex<HashMap<String, Arc<OriginJob>>>>,
}

/// Unregisters a job's inputs when dropped.
pub struct Registration {
    origins: Origins,
    job: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.origins.jobs.lock() {
            jobs.remove(&self.job);
        }
    }
}

impl Origins {
    /// Serves `job`'s inputs until the returned guard is dropped.
    pub fn register(&self, job: &str, entry: OriginJob) -> Registration {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(job.to_string(), Arc::new(entry));
        }
        Registration {
            origins: self.clone(),
            job: job.to_string(),
        }
    }

    /// Block `(bi, bj)` of `kind` of `job`.
    pub fn block(
        &self,
        job: &str,
        kind: Kind,
        bi: usize,
        bj: usize,
    ) -> Result<Matrix, ComputeError> {
        let entry = self
            .jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.get(job).cloned())
            .ok_or_else(|| ComputeError::Shape(format!("no Cannon job {job} here")))?;
        let q = entry.split.q;
        if bi >= q || bj >= q {
            return Err(ComputeError::Shape(format!(
                "block ({bi},{bj}) outside a {q}x{q} grid"
            )));
        }
        let m = if kind == Kind::A { &entry.a } else { &entry.b };
        cut(m, &entry.split, kind, bi, bj)
    }
}
