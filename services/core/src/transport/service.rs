//! The services a node runs, as the transport sees them: a name, an ALPN and a default port.

/// One service's network identity. Each service listens on its own UDP port with its own ALPN,
/// so that under systemd each unit owns its socket, and a request can never reach the wrong one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceSpec {
    /// Short name: socket file `<name>.sock`, unit `hyphae-<name>.service`, metric prefix.
    pub name: &'static str,
    /// TLS ALPN protocol id; the trailing number is the wire version of that service.
    pub alpn: &'static [u8],
    /// The UDP port it listens on unless the config says otherwise.
    pub default_port: u16,
}

impl ServiceSpec {
    /// The node agent: ping and node information, present on every node.
    pub const NODE: ServiceSpec = ServiceSpec {
        name: "node",
        alpn: b"hyphae-node/1",
        default_port: 7440,
    };

    /// The coordinator: Raft between members and the coordinator's member RPCs (mutual TLS).
    pub const COORDINATOR: ServiceSpec = ServiceSpec {
        name: "coordinator",
        alpn: b"hyphae-coordinator/1",
        default_port: 7441,
    };

    /// Admission: the one endpoint that accepts nodes without a certificate (server-only TLS,
    /// the joiner pins the CA from its join token). It serves nothing but admission methods.
    pub const ADMISSION: ServiceSpec = ServiceSpec {
        name: "admission",
        alpn: b"hyphae-admission/1",
        default_port: 7445,
    };

    /// The chunkstore: shard put/get/delete/verify between nodes (mutual TLS).
    pub const CHUNKSTORE: ServiceSpec = ServiceSpec {
        name: "chunkstore",
        alpn: b"hyphae-chunkstore/1",
        default_port: 7442,
    };

    /// The compute worker: GEMM tiles and inference between nodes (mutual TLS).
    pub const COMPUTE: ServiceSpec = ServiceSpec {
        name: "compute",
        alpn: b"hyphae-compute/1",
        default_port: 7443,
    };
    /// The memory replicator: VM epochs from a primary to its backups (mutual TLS).
    pub const MEMREP: ServiceSpec = ServiceSpec {
        name: "memrep",
        alpn: b"hyphae-memrep/1",
        default_port: 7444,
    };
}
