//! Fixed-size chunking of a byte stream, sans-IO: feed it buffers as they arrive, take whole
//! chunks out. Only one chunk is ever buffered, so a 10 GiB upload never sits in memory.

use bytes::{Bytes, BytesMut};

/// The default chunk size (4 MiB), as in the architecture.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// Cuts a stream into chunks of exactly `chunk_size` bytes (the last one may be shorter; an
/// empty stream has no chunks).
#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    pending: BytesMut,
}

impl Chunker {
    /// A chunker for chunks of `chunk_size` bytes (at least 1).
    pub fn new(chunk_size: usize) -> Chunker {
        let chunk_size = chunk_size.max(1);
        Chunker {
            chunk_size,
            pending: BytesMut::with_capacity(chunk_size),
        }
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Adds bytes; returns every chunk they completed, in order.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let room = self.chunk_size - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == self.chunk_size {
                out.push(self.take_pending());
            }
        }
        out
    }

    /// The end of the stream: the last, short chunk if any bytes are left.
    pub fn finish(mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            None
        } else {
            Some(self.take_pending())
        }
    }

    fn take_pending(&mut self) -> Bytes {
        let full = std::mem::replace(&mut self.pending, BytesMut::with_capacity(self.chunk_size));
        full.freeze()
    }
}

/// Which chunks a byte range `[start, end)` of a file touches, given its chunk size: the first
/// and one past the last chunk index (range reads fetch only these).
pub fn chunks_for_range(chunk_size: u64, start: u64, end: u64) -> std::ops::Range<u64> {
    if end <= start || chunk_size == 0 {
        return 0..0;
    }
    (start / chunk_size)..end.div_ceil(chunk_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunks_reassemble_to_the_input(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            chunk_size in 1usize..700,
            cuts in proptest::collection::vec(0usize..5000, 0..8),
        ) {
            let mut c = Chunker::new(chunk_size);
            let mut chunks = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|x| x.min(data.len())).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort();
            for w in cuts.windows(2) {
                chunks.extend(c.push(&data[w[0]..w[1]]));
            }
            chunks.extend(c.finish());
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(&joined, &data);
            prop_assert_eq!(chunks.len(), data.len().div_ceil(chunk_size));
            for (i, ch) in chunks.iter().enumerate() {
                prop_assert!(!ch.is_empty());
                if i + 1 < chunks.len() {
                    prop_assert_eq!(ch.len(), chunk_size);
                }
            }
        }

        #[test]
        fn range_covers_exactly_the_needed_chunks(cs in 1u64..100, a in 0u64..1000, len in 1u64..1000) {
            let r = chunks_for_range(cs, a, a + len);
            prop_assert!(r.start * cs <= a);
            prop_assert!((r.start + 1) * cs > a);
            prop_assert!(r.end * cs >= a + len);
            prop_assert!((r.end - 1) * cs < a + len);
        }
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(Chunker::new(4).finish().is_none());
        assert_eq!(chunks_for_range(4, 3, 3), 0..0);
    }
}
