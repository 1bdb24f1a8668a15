//! Linking the rocksdb crate (written against RocksDB 10's C API) with Debian's librocksdb 7.8.
//!
//! Shared here (feature `rocksdb-compat`) because two crates open RocksDB (the coordinator and
//! the chunkstore's shard index) and a C symbol may be defined only once in the final binary:
//! each of them enables the feature, cargo unifies it, the stub is compiled once.
//!
//! Only one symbol the crate references is missing from 7.8:
//! `rocksdb_write_buffer_manager_destroy`, called when an `Options` that holds a write buffer
//! manager is dropped. Hyphae never sets one, so the function is never called; the stub
//! only satisfies the linker. Every function Hyphae does call exists in 7.8 with the
//! same signature (the coordinator's storage suite and the chunkstore's tests exercise them). Absent when RocksDB is compiled from
//! source (`ROCKSDB_COMPILE=1`), which has the real one.

/// Never called (no write buffer manager is ever created); see the module documentation.
#[no_mangle]
pub extern "C" fn rocksdb_write_buffer_manager_destroy(_manager: *mut std::ffi::c_void) {}
