//! The mesh store (`hyphae chunkstore`): files cut into chunks, encrypted, erasure-coded into
//! shards that live on distinct nodes, healed and scrubbed by the mesh itself.
//!
//! The design is in `docs/storage.md`; the map of the modules is in `docs/ARCHITECTURE.md`.

pub mod local;

// The shard index links RocksDB; hyphae-core (feature `rocksdb-compat`) supplies the one C
// symbol Debian's librocksdb lacks, so the crate must be linked even where nothing else of it
// is used yet.
use hyphae_core as _;
