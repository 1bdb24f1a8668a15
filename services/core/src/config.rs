//! `hyphae.toml`: the node's configuration.
//!
//! Every key is optional and has a documented default (see `docs/configuration.md`), so an image
//! can boot with no file at all. The file is strict in the other direction: an unknown key or a
//! value of the wrong shape stops the node at start with a message that names the key and the
//! file, because a typo silently ignored on a hundred Raspberry Pis is worse than a refusal.
//!
//! Each service adds its own section here when its issue lands; a section that does not exist
//! yet is an unknown key.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` named a file that does not exist.
    #[error("config file {path} does not exist (given with --config)")]
    Missing { path: PathBuf },
    /// The file exists but could not be read.
    #[error("config file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key is unknown, a value has the wrong type, or the TOML does not parse.
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The whole configuration of a node. `Default` is what a node runs with when no file exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node: its name and the address it listens on.
    pub node: NodeSection,
    /// The UDP/TCP ports of the node's services.
    pub ports: PortsSection,
    /// QUIC transport and RPC limits.
    pub transport: TransportSection,
    /// Logging.
    pub log: LogSection,
    /// How this node joins a mesh (join token, members' addresses).
    pub mesh: MeshSection,
    /// The coordinator's timings (Raft, liveness).
    pub coordinator: CoordinatorSection,
    /// How the node finds its mesh (beacon, mDNS, candidates) and whether it may found one.
    pub discovery: DiscoverySection,
    /// How much of each resource the node offers the mesh.
    pub share: ShareSection,
    /// The gateway: HTTPS/HTTP/3 and DNS ports, login sessions.
    pub gateway: GatewaySection,
    /// The mesh store on this node (`hyphae chunkstore`).
    pub storage: StorageSection,
    /// The compute worker on this node (`hyphae compute`).
    pub compute: ComputeSection,
}

/// `[discovery]`: the discovery chain (see `docs/discovery.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySection {
    /// Step 1: the UDP beacon on `[ports] beacon` (IPv4 broadcast, IPv6 ff02::1). Default true.
    pub beacon: bool,
    /// Step 2: mDNS, service `_hyphae._udp.local.`. Default true.
    pub mdns: bool,
    /// Step 3: admission addresses to try (`IP` or `IP:PORT`), also taken from the kernel
    /// command line `hyphae.candidates=IP,IP`. Default none.
    pub candidates: Vec<String>,
    /// How often the beacon announces this node. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A node without a mesh and without a join token founds one when it hears no mesh for
    /// `init_after` and has the lowest id among the unadmitted nodes it hears. Default false.
    pub auto_init: bool,
    /// See `auto_init`. Default 3 s.
    #[serde(with = "humantime_serde")]
    pub init_after: Duration,
    /// How long after an `auto_init` the founder admits, without a token, exactly the
    /// unadmitted `auto_init` nodes it heard during its election. Default 10 min; 0 disables.
    #[serde(with = "humantime_serde")]
    pub genesis_window: Duration,
    /// A secret shared by the `auto_init` nodes of a new mesh (e.g. in the image's
    /// hyphae.toml): their hellos are MAC'd with it, and the founder's genesis window admits only
    /// nodes whose hellos verified. Default none (any `auto_init` hello counts).
    pub auto_init_secret: Option<String>,
    /// Whether the UDP beacon also uses IPv4 broadcast (IPv6 link-local multicast is always
    /// on while `beacon` is). Default true; false leaves an IPv6-only beacon.
    pub beacon_ipv4: bool,
}

impl Default for DiscoverySection {
    fn default() -> Self {
        DiscoverySection {
            beacon: true,
            mdns: true,
            candidates: Vec::new(),
            interval: Duration::from_secs(1),
            auto_init: false,
            init_after: Duration::from_secs(3),
            genesis_window: Duration::from_secs(600),
            auto_init_secret: None,
            beacon_ipv4: true,
        }
    }
}

/// `[gateway]`: the web/API gateway and the mesh DNS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    /// The HTTPS port: TCP for HTTP/1.1 and HTTP/2, UDP for HTTP/3 (the same number). Default
    /// 8443 (the development profile); the image sets 443, which needs CAP_NET_BIND_SERVICE.
    pub port: u16,
    /// The DNS port (UDP and TCP) of the `hyphae.internal.` zone. Default 8053; 53 on the image.
    pub dns_port: u16,
    /// How long a login session lasts. Default 12 h.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Login attempts a single client address may make in a burst. Default 5.
    pub login_burst: u32,
    /// Login attempts a single client address regains per minute after the burst. Default 10.
    pub login_per_minute: u32,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            port: 8443,
            dns_port: 8053,
            session_ttl: Duration::from_secs(12 * 3600),
            login_burst: 5,
            login_per_minute: 10,
        }
    }
}

/// `[share]`: the share of each resource the operator lets the mesh use, in percent (0-100).
/// The scheduler and storage placement respect them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareSection {
    /// CPU, percent of all cores. Default 100.
    pub cpu: u8,
    /// GPU, percent. Default 100.
    pub gpu: u8,
    /// RAM, percent. Default 100.
    pub ram: u8,
    /// Storage, percent of the data disk. Default 100.
    pub storage: u8,
    /// Directories whose files this node shares as assets: scanned and hashed (BLAKE3),
    /// published to the mesh, served to peers by hash. Absolute paths. Default none.
    pub dirs: Vec<std::path::PathBuf>,
}

impl Default for ShareSection {
    fn default() -> Self {
        ShareSection {
            cpu: 100,
            gpu: 100,
            ram: 100,
            storage: 100,
            dirs: Vec::new(),
        }
    }
}

/// `[storage]`: this node's part of the mesh store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Share of this node's free disk the mesh may use, weighting placement (0 = store
    /// nothing here; 1 = all of it). Default 1.0.
    pub share: f64,
    /// Failure domain label (rack, room, power strip): shards of one chunk go to distinct
    /// domains first. Default: none (the node is its own domain).
    pub domain: Option<String>,
    /// Chunk size for files written through this node, in bytes. Default 4 MiB.
    pub chunk_size: u64,
    /// Data shards per chunk; with `parity`, overrides the default by mesh size.
    pub data_shards: Option<u32>,
    /// Parity shards per chunk (how many node losses a file survives).
    pub parity_shards: Option<u32>,
    /// How often every local shard is re-verified. Default a week.
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
    /// Largest share of the disk's read bandwidth scrubbing may take (0..1]. Default 0.1.
    pub scrub_bandwidth: f64,
    /// How long a chunk no file references is kept before its shards are reclaimed.
    #[serde(with = "humantime_serde")]
    pub gc_grace: Duration,
    /// Repair bandwidth cap (bytes/s of rebuilt shards) so client I/O keeps its latency.
    /// Default 64 MiB/s.
    pub heal_bytes_per_sec: u64,
    /// Largest manifest value the chunkstore writes to the coordinator; a file whose manifest
    /// is larger gets a split manifest (a root and segments of at most this size). Default
    /// 2 MiB − 64 KiB (the coordinator's API takes 2 MiB bodies); 4 KiB at least.
    pub manifest_value_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            share: 1.0,
            domain: None,
            chunk_size: 4 << 20,
            data_shards: None,
            parity_shards: None,
            scrub_interval: Duration::from_secs(7 * 24 * 3600),
            scrub_bandwidth: 0.1,
            gc_grace: Duration::from_secs(3600),
            heal_bytes_per_sec: 64 << 20,
            manifest_value_bytes: (2 << 20) - (64 << 10),
        }
    }
}

/// `[compute]`: the compute worker (see `docs/compute.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeSection {
    /// Whether to open a Vulkan device for GEMM tiles. Default true (a node without a loader
    /// or device runs the CPU backend).
    pub vulkan: bool,
    /// Whether a software Vulkan device (lavapipe) may be opened. Default false: it is ~1% of
    /// a CPU BLAS, good for correctness tests only.
    pub vulkan_software: bool,
    /// Only a Vulkan device whose name contains this. Default: the best one.
    pub vulkan_device: Option<String>,
    /// Threads of the CPU backend (0 = one per core allowed by `[share] cpu`). Default 0.
    pub threads: usize,
    /// TEST ONLY: corrupt every tile result this worker returns, to prove verification
    /// catches and quarantines a lying worker. Never set it on a real node. Default false.
    pub test_corrupt_results: bool,
    /// TEST ONLY: hold every block this worker passes on in a Cannon pulse (to its neighbours
    /// and its `C` block back) for this long, to prove the pulse's quorum-timeout survives a
    /// slow neighbour. Default 0 (none).
    #[serde(with = "humantime_serde")]
    pub test_cannon_delay: Duration,
    /// TEST ONLY: hold every tile result this worker returns for this long before answering,
    /// so a cluster test's kill lands mid-job however fast the machine is. Default 0 (none).
    #[serde(with = "humantime_serde")]
    pub test_tile_delay: Duration,
}

impl Default for ComputeSection {
    fn default() -> Self {
        ComputeSection {
            vulkan: true,
            vulkan_software: false,
            vulkan_device: None,
            threads: 0,
            test_corrupt_results: false,
            test_cannon_delay: Duration::ZERO,
            test_tile_delay: Duration::ZERO,
        }
    }
}

/// `[mesh]`: how a node that is not a member yet gets admitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSection {
    /// A join token from `hyphae token create`; with it the node is admitted at once, without
    /// it the node waits as pending until an administrator admits it.
    pub join_token: Option<String>,
    /// Addresses of members' admission endpoints (`IP` or `IP:PORT`; the port defaults to
    /// `[ports] admission`, 7445). Discovery without addresses is not built yet.
    pub peers: Vec<String>,
}

/// `[coordinator]`: Raft and liveness timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorSection {
    /// How often the queen sends Raft heartbeats. Default 30 ms.
    #[serde(with = "humantime_serde")]
    pub raft_heartbeat: Duration,
    /// The shortest election timeout; each node picks one at random up to 1.5 times this.
    /// openraft's followers also honour the dead queen's lease (the longest timeout) first, so
    /// a dead queen is replaced 2.5–3 timeouts after her last heartbeat. Default 100 ms:
    /// replaced within about 300 ms.
    #[serde(with = "humantime_serde")]
    pub election_timeout: Duration,
    /// How often every node sends its liveness heartbeat to the queen. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A node silent this long is marked suspect. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub suspect_after: Duration,
    /// A node silent this long is marked down (the event healing reacts to). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub heal_after: Duration,
    /// A snapshot of the state is taken after this many log entries since the last one, and
    /// the log before it is purged. Default 5000.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging node catches up from the log
    /// rather than a whole snapshot. Default 1000.
    pub snapshot_keep_logs: u64,
}

impl Default for CoordinatorSection {
    fn default() -> Self {
        CoordinatorSection {
            raft_heartbeat: Duration::from_millis(30),
            election_timeout: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            suspect_after: Duration::from_secs(5),
            heal_after: Duration::from_secs(60),
            snapshot_every: 5_000,
            snapshot_keep_logs: 1_000,
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Human-friendly node name shown in the directory and dashboard; default: the host name.
    pub name: Option<String>,
    /// Address every QUIC endpoint binds; default `::` (all IPv6 and IPv4 addresses), falling
    /// back to `0.0.0.0` on hosts without IPv6.
    pub listen: IpAddr,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: None,
            listen: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// `[ports]`: one UDP port per service endpoint (the table in the architecture).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsSection {
    /// The node agent's QUIC endpoint (ping, node info); default 7440.
    pub node: u16,
    /// The coordinator's QUIC endpoint (Raft, member RPCs; mutual TLS); default 7441.
    pub coordinator: u16,
    /// The admission endpoint (joiners without a certificate; server-only TLS); default 7445.
    pub admission: u16,
    /// The discovery beacon (UDP broadcast and IPv6 multicast); default 41234.
    pub beacon: u16,
    /// The chunkstore's QUIC endpoint (shards between nodes); default 7442.
    pub chunkstore: u16,
    /// The compute worker's QUIC endpoint (tiles between nodes); default 7443.
    pub compute: u16,
    /// The memory replicator's QUIC endpoint (VM epochs to backups); default 7444.
    pub memrep: u16,
}

impl Default for PortsSection {
    fn default() -> Self {
        PortsSection {
            node: 7440,
            coordinator: 7441,
            admission: 7445,
            beacon: 41234,
            chunkstore: 7442,
            compute: 7443,
            memrep: 7444,
        }
    }
}

/// `[transport]`: limits that protect a node from slow or hostile peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportSection {
    /// Largest RPC frame accepted (bytes); bigger frames close the stream. Default 16 MiB.
    pub max_frame_bytes: u32,
    /// How long a request may take end to end before the caller gives up. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a stream may sit between frames before the server drops it. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub frame_timeout: Duration,
    /// A connection with no traffic for this long is closed. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Keep-alive interval on idle connections. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How many streams a peer may have open at once per connection. Default 256.
    pub max_concurrent_streams: u32,
}

impl Default for TransportSection {
    fn default() -> Self {
        TransportSection {
            max_frame_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            max_concurrent_streams: 256,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Default filter in `tracing` syntax (overridden by `RUST_LOG`). Default `info`.
    pub level: String,
    /// `text` for people, `json` for log shippers. Under systemd, logs go to journald either way.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// The shape of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

impl Config {
    /// Loads the file at `path`. A missing file is an error only when it was named explicitly;
    /// otherwise the defaults apply.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if explicit {
                    Err(ConfigError::Missing {
                        path: path.to_path_buf(),
                    })
                } else {
                    Ok(Config::default())
                };
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    /// Parses TOML text; `origin` is only used in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                path: origin.to_path_buf(),
                key: key_of(&e),
                message: e.inner().message().trim().to_string(),
            })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks the rules that types alone cannot express.
    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: origin.to_path_buf(),
            key: key.to_string(),
            message: message.to_string(),
        };
        if let Some(name) = &self.node.name {
            if name.is_empty()
                || name.len() > 63
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                || name.starts_with('-')
            {
                return Err(invalid(
                    "node.name",
                    "must be 1-63 letters, digits or '-', not starting with '-' (it becomes a DNS label)",
                ));
            }
        }
        if self.ports.node == 0 {
            return Err(invalid("ports.node", "must be between 1 and 65535"));
        }
        if self.ports.coordinator == 0 {
            return Err(invalid("ports.coordinator", "must be between 1 and 65535"));
        }
        if self.ports.admission == 0 {
            return Err(invalid("ports.admission", "must be between 1 and 65535"));
        }
        if self.ports.beacon == 0 {
            return Err(invalid("ports.beacon", "must be between 1 and 65535"));
        }
        if self.discovery.interval < Duration::from_millis(50) {
            return Err(invalid("discovery.interval", "must be at least 50ms"));
        }
        if self
            .discovery
            .auto_init_secret
            .as_ref()
            .is_some_and(|s| s.len() < 16)
        {
            return Err(invalid(
                "discovery.auto_init_secret",
                "must be at least 16 characters",
            ));
        }
        if self.discovery.init_after.is_zero() {
            return Err(invalid("discovery.init_after", "must be longer than zero"));
        }
        for (key, value) in [
            ("share.cpu", self.share.cpu),
            ("share.gpu", self.share.gpu),
            ("share.ram", self.share.ram),
            ("share.storage", self.share.storage),
        ] {
            if value > 100 {
                return Err(invalid(key, "is a percentage: 0 to 100"));
            }
        }
        if let Some(d) = self.share.dirs.iter().find(|d| !d.is_absolute()) {
            return Err(invalid(
                "share.dirs",
                &format!("{} is not an absolute path", d.display()),
            ));
        }
        if self.ports.chunkstore == 0 {
            return Err(invalid("ports.chunkstore", "must be between 1 and 65535"));
        }
        if self.ports.compute == 0 {
            return Err(invalid("ports.compute", "must be between 1 and 65535"));
        }
        if self.ports.memrep == 0 {
            return Err(invalid("ports.memrep", "must be between 1 and 65535"));
        }
        let st = &self.storage;
        if !(0.0..=1.0).contains(&st.share) {
            return Err(invalid("storage.share", "must be between 0 and 1"));
        }
        if !(st.scrub_bandwidth > 0.0 && st.scrub_bandwidth <= 1.0) {
            return Err(invalid("storage.scrub_bandwidth", "must be in (0, 1]"));
        }
        if st.chunk_size < 4096 || st.chunk_size > 64 << 20 {
            return Err(invalid(
                "storage.chunk_size",
                "must be between 4 KiB and 64 MiB",
            ));
        }
        if st.manifest_value_bytes < 4096 || st.manifest_value_bytes > (2 << 20) - (64 << 10) {
            return Err(invalid(
                "storage.manifest_value_bytes",
                "must be between 4 KiB and 2 MiB - 64 KiB",
            ));
        }
        if st.data_shards.is_some() != st.parity_shards.is_some() || st.data_shards == Some(0) {
            return Err(invalid(
                "storage.data_shards",
                "set data_shards (>= 1) and parity_shards together",
            ));
        }
        if st.scrub_interval.is_zero() || st.heal_bytes_per_sec == 0 {
            return Err(invalid(
                "storage.scrub_interval",
                "scrub_interval and heal_bytes_per_sec must be positive",
            ));
        }
        let c = &self.coordinator;
        if c.raft_heartbeat.is_zero() || c.election_timeout <= c.raft_heartbeat * 2 {
            return Err(invalid(
                "coordinator.election_timeout",
                "must be longer than twice coordinator.raft_heartbeat (and both above zero)",
            ));
        }
        if c.heartbeat_interval.is_zero()
            || c.suspect_after <= c.heartbeat_interval
            || c.heal_after < c.suspect_after
        {
            return Err(invalid(
                "coordinator.heal_after",
                "need heartbeat_interval < suspect_after <= heal_after",
            ));
        }
        if self.transport.max_frame_bytes < 1024 {
            return Err(invalid(
                "transport.max_frame_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if self.transport.request_timeout.is_zero() {
            return Err(invalid(
                "transport.request_timeout",
                "must be longer than zero",
            ));
        }
        if self.transport.frame_timeout.is_zero() {
            return Err(invalid(
                "transport.frame_timeout",
                "must be longer than zero",
            ));
        }
        if self.transport.keep_alive >= self.transport.idle_timeout {
            return Err(invalid(
                "transport.keep_alive",
                "must be shorter than transport.idle_timeout",
            ));
        }
        if self.transport.max_concurrent_streams == 0 {
            return Err(invalid(
                "transport.max_concurrent_streams",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The node's display name: the configured one, else the host name, else its id.
    pub fn node_name(&self, fallback: &str) -> String {
        if let Some(name) = &self.node.name {
            return name.clone();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| fallback.to_string())
    }
}

/// Turns serde's path into the dotted key an operator would write, adding the unknown field's
/// own name where serde only reports its parent.
fn key_of(e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let path = e.path().to_string();
    let message = e.inner().message();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(field) = rest.split('`').next() {
            return if path == "." || path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
    }
    if path == "." || path.is_empty() {
        "(top level)".to_string()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/hyphae/hyphae.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn keys_are_read() {
        let c = parse(
            "[node]\nname = \"pi-kitchen\"\nlisten = \"0.0.0.0\"\n[ports]\nnode = 9000\n\
             [transport]\nrequest_timeout = \"2s\"\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        assert_eq!(c.node.name.as_deref(), Some("pi-kitchen"));
        assert_eq!(c.ports.node, 9000);
        assert_eq!(c.transport.request_timeout, Duration::from_secs(2));
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = parse("[ports]\nnoed = 1\n").unwrap_err().to_string();
        assert!(err.contains("ports.noed"), "{err}");
        assert!(err.contains("/etc/hyphae/hyphae.toml"), "{err}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let err = parse("[nodee]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("`nodee`"), "{err}");
    }

    #[test]
    fn bad_value_names_key() {
        let err = parse("[ports]\nnode = \"seven\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ports.node"), "{err}");
        let err = parse("[ports]\nnode = 70000\n").unwrap_err().to_string();
        assert!(err.contains("ports.node"), "{err}");
        let err = parse("[transport]\nidle_timeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("transport.idle_timeout"), "{err}");
        let err = parse("[node]\nname = \"no spaces\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.name"), "{err}");
    }

    #[test]
    fn discovery_and_share_sections() {
        let c = parse(
            "[discovery]\nbeacon = false\nmdns = false\ncandidates = [\"10.0.0.1\"]\n\
             auto_init = true\ninit_after = \"2s\"\n[share]\ncpu = 50\n",
        )
        .unwrap();
        assert!(!c.discovery.beacon && !c.discovery.mdns && c.discovery.auto_init);
        assert_eq!(c.discovery.candidates, vec!["10.0.0.1".to_string()]);
        assert_eq!(c.discovery.init_after, Duration::from_secs(2));
        assert_eq!((c.share.cpu, c.share.gpu), (50, 100));
        let err = parse("[share]\ncpu = 150\n").unwrap_err().to_string();
        assert!(err.contains("share.cpu"), "{err}");
        let err = parse("[discovery]\nbeacons = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("discovery.beacons"), "{err}");
    }

    #[test]
    fn genesis_window_and_ipv4_switch() {
        let d = Config::default().discovery;
        assert_eq!(d.genesis_window, Duration::from_secs(600));
        assert!(d.beacon_ipv4);
        let c = parse(
            "[discovery]
genesis_window = \"0s\"\nbeacon_ipv4 = false\n",
        )
        .unwrap();
        assert!(c.discovery.genesis_window.is_zero() && !c.discovery.beacon_ipv4);
        let c = parse("[discovery]\nauto_init_secret = \"0123456789abcdef\"\n").unwrap();
        assert_eq!(
            c.discovery.auto_init_secret.as_deref(),
            Some("0123456789abcdef")
        );
        let err = parse("[discovery]\nauto_init_secret = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("discovery.auto_init_secret"), "{err}");
    }

    #[test]
    fn broken_toml_is_refused() {
        let err = parse("[ports\n").unwrap_err().to_string();
        assert!(err.contains("hyphae.toml"), "{err}");
    }

    #[test]
    fn missing_file_only_matters_when_explicit() {
        let p = Path::new("/nonexistent/hyphae.toml");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        assert!(matches!(
            Config::load(p, true),
            Err(ConfigError::Missing { .. })
        ));
    }
}
