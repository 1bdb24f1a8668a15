//! How many data (k) and parity (m) shards a chunk gets, and the defaults by mesh size.

use serde::{Deserialize, Serialize};

/// Largest k + m accepted (one shard per distinct node; also bounds decode cost).
pub const MAX_SHARDS: usize = 64;

/// A Reed-Solomon layout: any `k` of the `k + m` shards rebuild the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Redundancy {
    /// Data shards.
    pub k: u8,
    /// Parity shards: how many shards (nodes) may be lost.
    pub m: u8,
}

/// Why a layout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedundancyError {
    /// k is zero, or k + m is too large.
    #[error("k={k} m={m}: k must be at least 1 and k+m at most {MAX_SHARDS}")]
    Invalid { k: u32, m: u32 },
    /// Not enough nodes to put every shard on its own node.
    #[error("k={k} m={m} needs {} distinct storage nodes, the mesh has {nodes}", k + m)]
    TooFewNodes { k: u32, m: u32, nodes: usize },
}

impl Redundancy {
    /// A checked layout.
    pub fn new(k: u32, m: u32) -> Result<Redundancy, RedundancyError> {
        if k == 0 || (k + m) as usize > MAX_SHARDS {
            return Err(RedundancyError::Invalid { k, m });
        }
        Ok(Redundancy {
            k: k as u8,
            m: m as u8,
        })
    }

    /// Total shards.
    pub fn total(&self) -> usize {
        self.k as usize + self.m as usize
    }

    /// The architecture's default for a mesh of `nodes` storage nodes: 1 → 1+0, 2 → 1+1,
    /// 3 → 2+1, 4–5 → 2+2, 6 or more → 4+2.
    pub fn default_for(nodes: usize) -> Redundancy {
        let (k, m) = match nodes {
            0 | 1 => (1, 0),
            2 => (1, 1),
            3 => (2, 1),
            4 | 5 => (2, 2),
            _ => (4, 2),
        };
        Redundancy { k, m }
    }

    /// Checks that `nodes` distinct nodes can hold every shard.
    pub fn check_fits(&self, nodes: usize) -> Result<(), RedundancyError> {
        if self.total() > nodes {
            return Err(RedundancyError::TooFewNodes {
                k: self.k.into(),
                m: self.m.into(),
                nodes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_their_mesh() {
        for n in 1..20 {
            let r = Redundancy::default_for(n);
            assert!(r.check_fits(n).is_ok(), "{n}: {r:?}");
        }
        assert_eq!(Redundancy::default_for(6), Redundancy { k: 4, m: 2 });
        assert_eq!(Redundancy::default_for(3), Redundancy { k: 2, m: 1 });
        assert!(Redundancy::new(0, 1).is_err());
        assert!(Redundancy::new(60, 10).is_err());
        assert!(Redundancy::new(4, 2).unwrap().check_fits(5).is_err());
    }
}
