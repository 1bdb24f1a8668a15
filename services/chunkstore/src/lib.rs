//! The mesh store (`hyphae chunkstore`): files cut into chunks, encrypted, erasure-coded into
//! shards that live on distinct nodes, healed and scrubbed by the mesh itself.
//!
//! The design is in `docs/storage.md`; the map of the modules is in `docs/ARCHITECTURE.md`.
