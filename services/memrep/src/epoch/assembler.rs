//! The backup's side of one epoch stream: parts arrive one by one, are checked (order, sizes,
//! page ranges, fencing, digest) and buffered; only a complete, verified epoch comes out. A
//! half-received or corrupt epoch is dropped whole and never reaches the replica.

use super::wire::{decode_part, EpochHeader, EpochPart};

const PAGE: usize = 4096;

/// A complete, verified epoch, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteEpoch {
    /// Its header.
    pub header: EpochHeader,
    /// Page indices, ascending.
    pub indices: Vec<u32>,
    /// Page contents.
    pub data: Vec<u8>,
    /// Device state.
    pub device: Vec<u8>,
}

/// Why an epoch stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A part did not decode.
    #[error("undecodable epoch part")]
    Decode,
    /// Parts out of order (pages before header, anything after End, ...).
    #[error("epoch part out of order: {0}")]
    Order(&'static str),
    /// The epoch is from a fenced (older) generation or not newer than the replica.
    #[error("stale epoch: generation {generation} epoch {epoch}, replica has generation {have_generation} epoch {have_epoch}")]
    Stale {
        /// Offered generation.
        generation: u64,
        /// Offered epoch.
        epoch: u64,
        /// Replica's generation.
        have_generation: u64,
        /// Replica's epoch.
        have_epoch: u64,
    },
    /// Sizes that do not add up (page data length, page index beyond RAM, too many pages).
    #[error("epoch malformed: {0}")]
    Malformed(&'static str),
    /// The digest does not match.
    #[error("epoch digest mismatch")]
    Digest,
}

/// What the replica has committed so far (for fencing and ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The generation of the last committed epoch.
    pub generation: u64,
    /// The last committed epoch (0: none).
    pub epoch: u64,
    /// The replica's RAM size (0: no replica yet, any size accepted).
    pub ram_bytes: u64,
    /// The replica's disk size (checked with the RAM size: a VM keeps its disk size).
    pub disk_bytes: u64,
}

/// Assembles one epoch stream.
#[derive(Debug)]
pub struct Assembler {
    committed: Committed,
    vm: String,
    header: Option<EpochHeader>,
    indices: Vec<u32>,
    data: Vec<u8>,
    device: Option<Vec<u8>>,
    hasher: blake3::Hasher,
    done: bool,
}

impl Assembler {
    /// A new stream for VM `vm` whose replica is at `committed`.
    pub fn new(vm: &str, committed: Committed) -> Assembler {
        Assembler {
            committed,
            vm: vm.to_string(),
            header: None,
            indices: Vec::new(),
            data: Vec::new(),
            device: None,
            hasher: blake3::Hasher::new(),
            done: false,
        }
    }

    /// Feeds one encoded part. Returns the complete epoch after `End`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<CompleteEpoch>, AssembleError> {
        if self.done {
            return Err(AssembleError::Order("part after End"));
        }
        let part = decode_part(bytes).map_err(|_| AssembleError::Decode)?;
        match part {
            EpochPart::Header(h) => {
                if self.header.is_some() {
                    return Err(AssembleError::Order("second header"));
                }
                if h.vm != self.vm {
                    return Err(AssembleError::Malformed("epoch for another VM"));
                }
                let c = self.committed;
                let newer = h.generation > c.generation
                    || (h.generation == c.generation && h.epoch > c.epoch);
                if !newer {
                    return Err(AssembleError::Stale {
                        generation: h.generation,
                        epoch: h.epoch,
                        have_generation: c.generation,
                        have_epoch: c.epoch,
                    });
                }
                if h.ram_bytes == 0 || h.ram_bytes % PAGE as u64 != 0 {
                    return Err(AssembleError::Malformed(
                        "RAM size not a whole number of pages",
                    ));
                }
                if h.disk_bytes % PAGE as u64 != 0 {
                    return Err(AssembleError::Malformed(
                        "disk size not a whole number of pages",
                    ));
                }
                if c.ram_bytes != 0 && h.ram_bytes != c.ram_bytes {
                    return Err(AssembleError::Malformed(
                        "RAM size differs from the replica",
                    ));
                }
                if c.ram_bytes != 0 && h.disk_bytes != c.disk_bytes {
                    return Err(AssembleError::Malformed(
                        "disk size differs from the replica",
                    ));
                }
                let total_pages = h
                    .ram_bytes
                    .checked_add(h.disk_bytes)
                    .map(|b| b / PAGE as u64)
                    .filter(|&p| p <= u64::from(u32::MAX))
                    .ok_or(AssembleError::Malformed("RAM and disk beyond 16 TiB"))?;
                if u64::from(h.pages) > total_pages {
                    return Err(AssembleError::Malformed("more pages than RAM and disk"));
                }
                self.hasher.update(bytes);
                self.header = Some(h);
            }
            EpochPart::Pages { indices, data } => {
                let h = self
                    .header
                    .as_ref()
                    .ok_or(AssembleError::Order("pages before header"))?;
                if self.device.is_some() {
                    return Err(AssembleError::Order("pages after device state"));
                }
                if data.len() != indices.len() * PAGE {
                    return Err(AssembleError::Malformed("page data length"));
                }
                if self.indices.len() + indices.len() > h.pages as usize {
                    return Err(AssembleError::Malformed("more pages than announced"));
                }
                let max = h.ram_bytes.saturating_add(h.disk_bytes) / PAGE as u64;
                let mut prev = self.indices.last().copied();
                for &i in &indices {
                    if u64::from(i) >= max {
                        return Err(AssembleError::Malformed("page index beyond RAM and disk"));
                    }
                    if prev.is_some_and(|p| p >= i) {
                        return Err(AssembleError::Malformed("page indices not ascending"));
                    }
                    prev = Some(i);
                }
                self.hasher.update(bytes);
                self.indices.extend_from_slice(&indices);
                self.data.extend_from_slice(&data);
            }
            EpochPart::Device(d) => {
                let h = self
                    .header
                    .as_ref()
                    .ok_or(AssembleError::Order("device before header"))?;
                if self.device.is_some() {
                    return Err(AssembleError::Order("second device state"));
                }
                if d.len() != h.device_bytes as usize {
                    return Err(AssembleError::Malformed("device state length"));
                }
                if self.indices.len() != h.pages as usize {
                    return Err(AssembleError::Malformed("fewer pages than announced"));
                }
                self.hasher.update(bytes);
                self.device = Some(d);
            }
            EpochPart::End { digest } => {
                let header = self
                    .header
                    .take()
                    .ok_or(AssembleError::Order("End before header"))?;
                let device = self
                    .device
                    .take()
                    .ok_or(AssembleError::Order("End before device state"))?;
                self.done = true;
                if *self.hasher.finalize().as_bytes() != digest {
                    return Err(AssembleError::Digest);
                }
                return Ok(Some(CompleteEpoch {
                    header,
                    indices: std::mem::take(&mut self.indices),
                    data: std::mem::take(&mut self.data),
                    device,
                }));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{encode_epoch, encode_part};
    use super::*;

    fn header(epoch: u64, pages: u32) -> EpochHeader {
        EpochHeader {
            vm: "vm1".into(),
            generation: 1,
            epoch,
            ram_bytes: 64 * PAGE as u64,
            disk_bytes: 0,
            pages,
            device_bytes: 3,
        }
    }

    fn none() -> Committed {
        Committed {
            generation: 0,
            epoch: 0,
            ram_bytes: 0,
            disk_bytes: 0,
        }
    }

    fn run(a: &mut Assembler, parts: &[Vec<u8>]) -> Result<Option<CompleteEpoch>, AssembleError> {
        let mut out = None;
        for p in parts {
            out = a.push(p)?;
        }
        Ok(out)
    }

    #[test]
    fn a_whole_epoch_comes_out() {
        let data: Vec<u8> = (0..3 * PAGE).map(|i| i as u8).collect();
        let parts = encode_epoch(header(1, 3), &[1, 5, 9], &data, b"dev").unwrap();
        let e = run(&mut Assembler::new("vm1", none()), &parts)
            .unwrap()
            .unwrap();
        assert_eq!(e.indices, vec![1, 5, 9]);
        assert_eq!(e.data, data);
        assert_eq!(e.device, b"dev");
    }

    #[test]
    fn many_pages_span_several_parts() {
        let idx: Vec<u32> = (0..600).collect();
        let mut h = header(1, 600);
        h.ram_bytes = 1024 * PAGE as u64;
        let data = vec![7u8; 600 * PAGE];
        let parts = encode_epoch(h, &idx, &data, b"dev").unwrap();
        assert!(parts.len() > 4);
        let e = run(&mut Assembler::new("vm1", none()), &parts)
            .unwrap()
            .unwrap();
        assert_eq!(e.indices.len(), 600);
    }

    #[test]
    fn a_truncated_stream_gives_nothing() {
        let data = vec![1u8; 2 * PAGE];
        let parts = encode_epoch(header(1, 2), &[0, 1], &data, b"dev").unwrap();
        let mut a = Assembler::new("vm1", none());
        assert_eq!(run(&mut a, &parts[..parts.len() - 1]).unwrap(), None);
    }

    #[test]
    fn tampering_is_caught() {
        let data = vec![1u8; 2 * PAGE];
        let mut parts = encode_epoch(header(1, 2), &[0, 1], &data, b"dev").unwrap();
        // Replace the page part with different data of the same shape.
        parts[1] = encode_part(&EpochPart::Pages {
            indices: vec![0, 1],
            data: vec![2u8; 2 * PAGE],
        })
        .unwrap();
        assert_eq!(
            run(&mut Assembler::new("vm1", none()), &parts),
            Err(AssembleError::Digest)
        );
    }

    #[test]
    fn fencing_and_ordering() {
        let committed = Committed {
            generation: 2,
            epoch: 10,
            ram_bytes: 64 * PAGE as u64,
            disk_bytes: 0,
        };
        let data = vec![1u8; PAGE];
        // An old primary (generation 1) is refused even with a higher epoch number.
        let mut h = header(50, 1);
        h.generation = 1;
        let parts = encode_epoch(h, &[0], &data, b"dev").unwrap();
        assert!(matches!(
            Assembler::new("vm1", committed).push(&parts[0]),
            Err(AssembleError::Stale { .. })
        ));
        // Same generation, an epoch already committed: refused.
        let mut h = header(10, 1);
        h.generation = 2;
        let parts = encode_epoch(h, &[0], &data, b"dev").unwrap();
        assert!(Assembler::new("vm1", committed).push(&parts[0]).is_err());
        // A new generation starting again at epoch 1 is accepted.
        let mut h = header(1, 1);
        h.generation = 3;
        let parts = encode_epoch(h, &[0], &data, b"dev").unwrap();
        assert!(run(&mut Assembler::new("vm1", committed), &parts)
            .unwrap()
            .is_some());
    }

    #[test]
    fn disk_pages_follow_ram_pages_in_one_epoch() {
        let mut h = header(1, 3);
        h.disk_bytes = 8 * PAGE as u64;
        let data = vec![3u8; 3 * PAGE];
        // RAM page 5, disk pages 0 and 7 (indices 64 and 71).
        let parts = encode_epoch(h.clone(), &[5, 64, 71], &data, b"dev").unwrap();
        let e = run(&mut Assembler::new("vm1", none()), &parts)
            .unwrap()
            .unwrap();
        assert_eq!(e.indices, vec![5, 64, 71]);
        // Beyond the disk: refused.
        let parts = encode_epoch(h.clone(), &[5, 64, 72], &data, b"dev").unwrap();
        assert!(matches!(
            run(&mut Assembler::new("vm1", none()), &parts),
            Err(AssembleError::Malformed(_))
        ));
        // A replica with another disk size refuses it.
        let committed = Committed {
            generation: 1,
            epoch: 0,
            ram_bytes: 64 * PAGE as u64,
            disk_bytes: 4 * PAGE as u64,
        };
        let parts = encode_epoch(h.clone(), &[5], &data[..PAGE], b"dev").unwrap();
        assert!(Assembler::new("vm1", committed).push(&parts[0]).is_err());
        // Sizes that overflow are refused, not a panic.
        h.disk_bytes = u64::MAX - 4095;
        let parts = encode_epoch(h, &[5], &data[..PAGE], b"dev").unwrap();
        assert!(Assembler::new("vm1", none()).push(&parts[0]).is_err());
    }

    #[test]
    fn malformed_parts_are_refused() {
        let mut a = Assembler::new("vm1", none());
        assert!(a.push(b"\xff\xff\xff").is_err());
        let mut a = Assembler::new("vm1", none());
        let pages = encode_part(&EpochPart::Pages {
            indices: vec![0],
            data: vec![0; PAGE],
        })
        .unwrap();
        assert_eq!(
            a.push(&pages),
            Err(AssembleError::Order("pages before header"))
        );
        let mut a = Assembler::new("vm1", none());
        a.push(&encode_part(&EpochPart::Header(header(1, 2))).unwrap())
            .unwrap();
        let beyond = encode_part(&EpochPart::Pages {
            indices: vec![64],
            data: vec![0; PAGE],
        })
        .unwrap();
        assert!(matches!(a.push(&beyond), Err(AssembleError::Malformed(_))));
        let mut a = Assembler::new("vm1", none());
        a.push(&encode_part(&EpochPart::Header(header(1, 2))).unwrap())
            .unwrap();
        let descending = encode_part(&EpochPart::Pages {
            indices: vec![3, 2],
            data: vec![0; 2 * PAGE],
        })
        .unwrap();
        assert!(matches!(
            a.push(&descending),
            Err(AssembleError::Malformed(_))
        ));
    }
}
