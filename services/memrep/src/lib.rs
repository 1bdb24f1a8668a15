//! Hyphae's memory replicator (`hyphae memrep`): runs QEMU VMs whose RAM and device state are
//! checkpointed in epochs and copied to backup nodes, so that a backup can resume the guest
//! when its host dies. See docs/memrep.md.

pub mod accel;
pub mod backup_choice;
pub mod cgroup_throttle;
pub mod checkpoint;
pub mod control_rpc;
pub mod dirty;
pub mod epoch;
pub mod epoch_rpc;
pub mod failover;
pub mod guest_check;
pub mod migrate;
pub mod qemu;
pub mod qmp;
pub mod ram_map;
pub mod replica_store;
pub mod restore;
pub mod service;
pub mod supervisor;
pub mod tables;
pub mod takeover;
pub mod vm_disk;
pub mod vm_runner;
pub mod vm_throttle;
pub use service::{run, MemrepError};
