//! The beacon service: sockets, timers and the local API around the sans-IO [`Discovery`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use hyphae_coordinator::token::JoinToken;
use hyphae_core::ipc::{self, IpcError};
use hyphae_core::pki::{Membership, MeshId};
use hyphae_core::{notify, NodeContext};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::candidates;
use crate::chain::{self, FoundBy, Offers};
use crate::dashboard_mdns::{Dashboard, DashboardAds};
use crate::discovery::{Discovery, Me, Standing, Verdict};
use crate::interfaces::{self, Interfaces};
use crate::mdns::{self, Finds, Mdns, Publication};
use crate::metrics::BeaconMetrics;
use crate::packet::{MacKey, Role, MAX_PACKET};
use crate::sockets::{self, BeaconSockets};

/// The service's name: its socket is `beacon.sock`, its state `state/beacon/`.
pub const SERVICE: &str = "beacon";
/// How many packets after a start (or admission) ask listeners to answer at once.
const QUERY_BURST: u32 = 3;

/// Why the beacon stopped.
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    /// The UDP sockets could not be bound.
    #[error("beacon socket: {0}")]
    Socket(std::io::Error),
    /// The epoch file could not be written.
    #[error("beacon state {path}: {source}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local socket could not be served.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

struct State {
    discovery: Discovery,
    found_by: Option<FoundBy>,
    found_after: Option<Duration>,
    candidates: Vec<SocketAddr>,
    init: bool,
    /// The auto_init nodes heard when this node won the election (for the genesis window).
    genesis: Vec<hyphae_core::NodeId>,
    role: Role,
    interfaces: Interfaces,
    mdns: Finds,
    hardware: Option<Value>,
    hardware_reports: u64,
}

struct Shared {
    state: Mutex<State>,
    metrics: BeaconMetrics,
    started: Instant,
    config: hyphae_core::config::DiscoverySection,
    node: String,
    name: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn standing_of(ctx: &NodeContext, membership: Option<&Membership>) -> Standing {
    if let Some(m) = membership {
        return Standing::Member {
            mesh: m.secrets.mesh_id,
            key: MacKey::derive(&m.secrets.beacon_key),
        };
    }
    let wanted = ctx
        .config
        .mesh
        .join_token
        .as_deref()
        .and_then(|t| JoinToken::parse(t).ok())
        .and_then(|t| t.mesh_id.parse::<MeshId>().ok());
    Standing::Joining { wanted }
}

/// A DNS-label form of the node name for packets (the config already enforces this for
/// configured names; a host name may need trimming).
fn packet_name(name: &str, fallback: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(crate::packet::MAX_NAME)
        .collect();
    if clean.is_empty() || clean.starts_with('-') {
        fallback.to_string()
    } else {
        clean
    }
}

/// Runs the beacon until `shutdown` fires.
pub async fn run(ctx: Arc<NodeContext>, shutdown: CancellationToken) -> Result<(), BeaconError> {
    let config = ctx.config.discovery.clone();
    let epoch_file = ctx.paths.service_state(SERVICE).join("epoch");
    let epoch = crate::epoch::next(&epoch_file).map_err(|source| BeaconError::State {
        path: epoch_file.clone(),
        source,
    })?;
    let node = ctx.key.node_id();
    let now = Instant::now();
    let me = Me {
        node,
        name: packet_name(&ctx.name, &node.to_string()),
        epoch,
        ports: (
            ctx.config.ports.admission,
            ctx.config.ports.coordinator,
            ctx.config.ports.node,
        ),
    };
    let ttl = (config.interval * 5).max(Duration::from_secs(5));
    let mut discovery = Discovery::new(me, standing_of(&ctx, ctx.membership.as_ref()), now, ttl);
    discovery.set_auto_init(config.auto_init);
    discovery.set_auto_init_secret(
        config
            .auto_init_secret
            .as_deref()
            .map(MacKey::from_auto_init_secret),
    );
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (pinned, bad) = candidates::resolve(
        &config.candidates,
        &candidates::from_cmdline(&cmdline),
        ctx.config.ports.admission,
    );
    for b in bad {
        tracing::warn!(candidate = %b, "ignoring a discovery candidate that is not IP[:PORT]");
    }
    let metrics = BeaconMetrics::register(&ctx.metrics);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            discovery,
            found_by: None,
            found_after: None,
            candidates: pinned,
            init: false,
            genesis: Vec::new(),
            role: Role::None,
            interfaces: Interfaces::default(),
            mdns: Finds::new(),
            hardware: None,
            hardware_reports: 0,
        }),
        metrics,
        started: now,
        config: config.clone(),
        node: node.to_string(),
        name: ctx.name.clone(),
    });

    // A port taken by something else must not stop the node: the later steps still work.
    let mut sockets = match config.beacon {
        true => match BeaconSockets::bind(ctx.config.ports.beacon) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %BeaconError::Socket(e), "UDP beacon off");
                None
            }
        },
        false => None,
    };

    let (mut mdns, mdns_events) = if config.mdns {
        match Mdns::start() {
            Ok((m, events)) => (Some(m), Some(events)),
            Err(e) => {
                tracing::error!(error = %e, "mDNS off: cannot start the responder");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let publication = |standing: &Standing| Publication {
        node,
        host: packet_name(&ctx.name, &node.to_string()),
        mesh: match standing {
            Standing::Member { mesh, key } => Some((*mesh, key.clone())),
            Standing::Joining { .. } => None,
        },
        admission_port: ctx.config.ports.admission,
        coordinator_port: ctx.config.ports.coordinator,
        addresses: interfaces::scan().advertised,
    };
    if let Some(m) = mdns.as_mut() {
        let p = publication(shared.lock().discovery.standing());
        if let Err(e) = m.publish(&p) {
            tracing::warn!(error = %e, "cannot publish the mDNS record");
        }
    }
    let dashboard = |queen: bool| Dashboard {
        node,
        host: packet_name(&ctx.name, &node.to_string()),
        port: ctx.config.gateway.port,
        addresses: interfaces::scan().advertised,
        queen,
    };
    let mut dashboard_ads = match mdns.as_ref().map(|m| DashboardAds::new(m.daemon())) {
        Some(Ok(mut ads)) => {
            if let Some(m) = mdns.as_ref() {
                if let Err(e) = ads.publish(m.daemon(), &dashboard(false)) {
                    tracing::warn!(error = %e, "cannot publish the dashboard over mDNS");
                }
            }
            Some(ads)
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "no dashboard over mDNS");
            None
        }
        None => None,
    };

    let router = {
        let s = shared.clone();
        let status = move || status_json(&s);
        let s = shared.clone();
        ipc::base_router(status, ctx.metrics.clone()).merge(axum::Router::new().route(
            "/peers",
            get(move || {
                let s = s.clone();
                async move { axum::Json(peers_json(&s)) }
            }),
        ))
    };
    let ipc_task = ipc::serve(&ctx.paths.socket(SERVICE), router, shutdown.clone()).await?;
    let line = match &sockets {
        Some(_) => format!("beacon of node {node} on udp/{}", ctx.config.ports.beacon),
        None => format!("discovery of node {node} (UDP beacon off)"),
    };
    tracing::info!("{line}");
    notify::ready(&line);

    let hardware_task = tokio::spawn(report_hardware(
        ctx.clone(),
        shared.clone(),
        shutdown.clone(),
    ));

    // Only now does the node hear others: count `init_after` from here.
    shared.lock().discovery.start_listening(Instant::now());
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut burst = QUERY_BURST;
    let mut ticks: u64 = 0;
    let (mut buf4, mut buf6) = ([0u8; 2048], [0u8; 2048]);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                ticks += 1;
                if refresh_standing(&ctx, &shared) {
                    burst = QUERY_BURST;
                    if let Some(m) = mdns.as_mut() {
                        let p = publication(shared.lock().discovery.standing());
                        if let Err(e) = m.publish(&p) {
                            tracing::warn!(error = %e, "cannot publish the mDNS record");
                        }
                    }
                }
                if ticks % 5 == 1 {
                    refresh_role(&ctx, &shared).await;
                    // Only the queen answers `hyphae.local` (see `dashboard_mdns`).
                    if let (Some(ads), Some(m)) = (dashboard_ads.as_mut(), mdns.as_ref()) {
                        let queen = shared.lock().role == Role::Queen;
                        let renamed = ads.lost_the_name();
                        if queen != ads.published_as_queen() || (queen && renamed) {
                            tracing::info!(queen, "publishing the dashboard over mDNS");
                            if let Err(e) = ads.publish(m.daemon(), &dashboard(queen)) {
                                tracing::warn!(error = %e, "cannot publish the dashboard over mDNS");
                            }
                        }
                    }
                }
                evaluate(&shared);
                if let Some(sockets) = sockets.as_mut() {
                    announce(sockets, &shared, burst > 0).await;
                }
                burst = burst.saturating_sub(1);
            }
            // Judge the chain at once on news, not at the next tick: a joiner's coordinator
            // polls `/peers` and should not wait an interval.
            event = recv_mdns(mdns_events.as_ref()) => {
                on_mdns(&shared, event);
                evaluate(&shared);
            }
            got = sockets::recv(sockets.as_ref().and_then(|s| s.v4.as_ref()), &mut buf4) => {
                if let (Ok((n, from)), Some(s)) = (got, sockets.as_ref()) {
                    on_datagram(s, &shared, &buf4[..n], from).await;
                    evaluate(&shared);
                }
            }
            got = sockets::recv(sockets.as_ref().and_then(|s| s.v6.as_ref()), &mut buf6) => {
                if let (Ok((n, from)), Some(s)) = (got, sockets.as_ref()) {
                    on_datagram(s, &shared, &buf6[..n], from).await;
                    evaluate(&shared);
                }
            }
        }
    }
    notify::stopping();
    if let Some(m) = mdns {
        m.shutdown();
    }
    let _ = hardware_task.await;
    let _ = ipc_task.await;
    Ok(())
}

/// How often the hardware is sampled; the spike rule decides which samples are reported.
const HARDWARE_SAMPLE: Duration = Duration::from_secs(5);
/// How long after start the first sample is taken.
const HARDWARE_FIRST: Duration = Duration::from_secs(10);

/// Samples the hardware and sends the profile to the queen through the local coordinator
/// (`PUT /hardware` on `coordinator.sock`) when the spike rule says so.
async fn report_hardware(ctx: Arc<NodeContext>, shared: Arc<Shared>, shutdown: CancellationToken) {
    // Not while the node starts: a busy start makes the coordinator miss Raft heartbeats
    // (measured: a restarted queen won an election it should not have), and nothing needs
    // the profile in the first seconds.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(HARDWARE_FIRST) => {}
    }
    let share = crate::hardware::Share::from(&ctx.config.share);
    let sampler = tokio::task::spawn_blocking(move || crate::hardware::Sampler::new(share)).await;
    let mut sampler = match sampler {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no hardware profile: sysinfo unavailable");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "no hardware profile");
            return;
        }
    };
    let mut gate = crate::spike::SpikeGate::standard();
    let socket = ctx.paths.socket("coordinator");
    loop {
        let profile = sampler.sample();
        let figures = profile.figures();
        let value = serde_json::to_value(&profile).unwrap_or(Value::Null);
        shared.lock().hardware = Some(value.clone());
        let now = Instant::now();
        if gate.due(now, figures) {
            let body = json!({ "hardware": value }).to_string().into_bytes();
            let sent = tokio::time::timeout(
                Duration::from_secs(15),
                ipc::request(&socket, axum::http::Method::PUT, "/hardware", Some(body)),
            )
            .await;
            match sent {
                Ok(Ok((status, _))) if status.is_success() => {
                    gate.sent(now, figures);
                    shared.lock().hardware_reports += 1;
                    tracing::debug!(?figures, "hardware profile reported");
                }
                // Not a member yet, or no queen: the next sample tries again.
                Ok(Ok((status, body))) => {
                    tracing::debug!(%status, body = %String::from_utf8_lossy(&body), "hardware report refused")
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "coordinator not answering"),
                Err(_) => tracing::debug!("hardware report timed out"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(HARDWARE_SAMPLE) => {}
        }
    }
}

async fn recv_mdns(
    events: Option<&mdns_sd::Receiver<mdns_sd::ServiceEvent>>,
) -> Option<mdns_sd::ServiceEvent> {
    match events {
        Some(rx) => rx.recv_async().await.ok(),
        None => std::future::pending().await,
    }
}

/// Records what mDNS resolved or saw go away.
fn on_mdns(shared: &Shared, event: Option<mdns_sd::ServiceEvent>) {
    let Some(event) = event else { return };
    let mut st = shared.lock();
    match event {
        mdns_sd::ServiceEvent::ServiceResolved(svc) => {
            if svc.get_property_val_str("node") == Some(shared.node.as_str()) {
                return;
            }
            if let Some((fullname, find)) = mdns::find_of(&svc, st.discovery.standing()) {
                tracing::debug!(node = %find.node, host = %find.host, "mDNS found a node");
                st.mdns.insert(fullname, find);
            }
        }
        mdns_sd::ServiceEvent::ServiceRemoved(_, fullname) => {
            st.mdns.remove(&fullname);
        }
        _ => {}
    }
}

/// Picks up an admission (or a founding) that happened since the last tick.
fn refresh_standing(ctx: &NodeContext, shared: &Shared) -> bool {
    if matches!(shared.lock().discovery.standing(), Standing::Member { .. }) {
        return false;
    }
    match Membership::load(&ctx.paths.identity_dir(), ctx.key.clone()) {
        Ok(Some(m)) => {
            let mut st = shared.lock();
            st.discovery
                .become_member(m.secrets.mesh_id, MacKey::derive(&m.secrets.beacon_key));
            st.init = false;
            // Finds were judged without the key; they come back as the records refresh.
            st.mdns.clear();
            tracing::info!(mesh = %m.secrets.mesh_id, "beacon now announces this node as a member");
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::debug!(error = %e, "membership not readable yet");
            false
        }
    }
}

/// Asks the local coordinator for this node's role (shown in announces).
async fn refresh_role(ctx: &NodeContext, shared: &Shared) {
    let socket = ctx.paths.socket("coordinator");
    let answer = tokio::time::timeout(
        Duration::from_millis(500),
        ipc::get_json(&socket, "/status"),
    )
    .await;
    if let Ok(Ok(status)) = answer {
        let role = Role::from_name(status["role"].as_str().unwrap_or(""));
        shared.lock().role = role;
    }
}

/// Updates which step found the mesh, and the auto-init verdict.
fn evaluate(shared: &Shared) {
    let now = Instant::now();
    let config = &shared.config;
    let mut st = shared.lock();
    if st.found_by.is_none() {
        let waited = now.duration_since(shared.started);
        let offers = Offers {
            beacon: st.discovery.found_after().is_some(),
            mdns: !mdns_target(&mut st, now).is_empty(),
            candidates: !st.candidates.is_empty(),
            earlier_steps_on: config.beacon || config.mdns,
            beacon_on: config.beacon,
        };
        if let Some(step) = chain::winner(offers, waited, config.interval) {
            // The beacon knows when it first heard the mesh; the others are judged per tick.
            let after = match step {
                FoundBy::Beacon => st.discovery.found_after().unwrap_or(waited),
                _ => waited,
            };
            st.found_by = Some(step);
            st.found_after = Some(after);
            tracing::info!(
                ?step,
                after_ms = after.as_millis() as u64,
                "discovery found the mesh"
            );
        }
    }
    if config.auto_init && !st.init && st.discovery.should_init(now, config.init_after) {
        st.init = true;
        st.genesis = st.discovery.genesis_round(now);
        tracing::info!(genesis = ?st.genesis, "no mesh heard and lowest id among unadmitted nodes: founding a mesh");
    }
}

async fn announce(sockets: &mut BeaconSockets, shared: &Shared, query: bool) {
    let ifaces = interfaces::scan();
    sockets.join_multicast(&ifaces.multicast_v6);
    let packet = {
        let mut st = shared.lock();
        st.interfaces = ifaces.clone();
        let role = st.role;
        st.discovery.next_packet(query, role, &ifaces.advertised)
    };
    let packet = match packet {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build a beacon packet");
            return;
        }
    };
    // `beacon_ipv4 = false`: IPv6 link-local multicast alone.
    let none = std::collections::BTreeSet::new();
    let broadcast = if shared.config.beacon_ipv4 {
        &ifaces.broadcast
    } else {
        &none
    };
    let copies = sockets
        .broadcast(&packet, broadcast, &ifaces.multicast_v6)
        .await;
    for _ in 0..copies {
        shared.metrics.sent(packet.len());
    }
}

async fn on_datagram(sockets: &BeaconSockets, shared: &Shared, bytes: &[u8], from: SocketAddr) {
    let now = Instant::now();
    let query = bytes.len() > 6 && bytes.len() <= MAX_PACKET && bytes[6] & 1 == 1;
    let answer = {
        let mut st = shared.lock();
        let verdict = st.discovery.on_datagram(now, bytes, from);
        shared.metrics.received(bytes.len(), verdict);
        let members = st.discovery.members(now).len();
        shared.metrics.members.set(members as i64);
        match verdict {
            // `members` lets the benchmark read convergence from the log.
            Verdict::Member { new: true } | Verdict::Candidate { new: true } => {
                tracing::debug!(%from, members, "heard a new member")
            }
            Verdict::Forged | Verdict::Replayed => {
                tracing::debug!(%from, ?verdict, "dropped a beacon packet")
            }
            _ => {}
        }
        if st.discovery.should_answer(now, verdict, query) {
            let role = st.role;
            let addrs = st.interfaces.advertised.clone();
            st.discovery.next_packet(false, role, &addrs).ok()
        } else {
            None
        }
    };
    if let Some(packet) = answer {
        if sockets.send_to(&packet, from).await {
            shared.metrics.sent(packet.len());
        }
    }
}

/// Admission endpoints of the target mesh found over mDNS.
fn mdns_target(st: &mut State, now: Instant) -> Vec<SocketAddr> {
    let target = st.discovery.target_mesh(now).map(|m| m.to_string());
    let mut out = Vec::new();
    for f in st.mdns.values() {
        if f.mesh.is_some() && f.mesh == target {
            for a in &f.admission {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
        }
    }
    out
}

fn standing_name(s: &Standing) -> &'static str {
    match s {
        Standing::Member { .. } => "member",
        Standing::Joining { .. } => "joining",
    }
}

fn status_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let mut st = shared.lock();
    let members = st.discovery.members(now);
    let pending = st.discovery.hellos(now);
    let mesh = st.discovery.target_mesh(now).map(|m| m.to_string());
    let (sent, sent_bytes, received, received_bytes) = shared.metrics.totals();
    json!({
        "ready": true,
        "service": SERVICE,
        "node_id": shared.node,
        "name": shared.name,
        "standing": standing_name(st.discovery.standing()),
        "mesh_id": mesh,
        "found_by": st.found_by,
        "found_after_ms": st.found_after.map(|d| d.as_millis() as u64),
        "steps": {"beacon": shared.config.beacon, "mdns": shared.config.mdns, "candidates": st.candidates.len()},
        "members": members,
        "pending": pending,
        "mdns": st.mdns.values().cloned().collect::<Vec<_>>(),
        "hardware": st.hardware,
        "hardware_reports": st.hardware_reports,
        "sending_on": {
            "broadcast": st.interfaces.broadcast.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            "multicast_v6_interfaces": st.interfaces.multicast_v6.iter().collect::<Vec<_>>(),
            "advertised": st.interfaces.advertised.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        },
        "auto_init": {"enabled": shared.config.auto_init, "init": st.init},
        "packets": {
            "sent": sent, "sent_bytes": sent_bytes,
            "received": received, "received_bytes": received_bytes,
            "dropped": {
                "malformed": shared.metrics.dropped("malformed"),
                "other_mesh": shared.metrics.dropped("other_mesh"),
                "forged": shared.metrics.dropped("forged"),
                "replayed": shared.metrics.dropped("replayed"),
            },
        },
        "uptime_s": shared.started.elapsed().as_secs(),
    })
}

/// `/peers`: what a joining coordinator needs.
fn peers_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let mut st = shared.lock();
    let admission: Vec<SocketAddr> = match st.found_by {
        Some(FoundBy::Beacon) | Some(FoundBy::Mdns) => {
            // Every step's finds, in the chain's order.
            let mut a = st.discovery.admission_addrs(now);
            for m in mdns_target(&mut st, now) {
                if !a.contains(&m) {
                    a.push(m);
                }
            }
            // The chain keeps its order, but pinned candidates stay a fallback.
            for c in &st.candidates {
                if !a.contains(c) {
                    a.push(*c);
                }
            }
            a
        }
        Some(FoundBy::Candidates) => st.candidates.clone(),
        None => Vec::new(),
    };
    let addresses: Vec<String> = admission.iter().map(SocketAddr::to_string).collect();
    json!({
        "member": matches!(st.discovery.standing(), Standing::Member { .. }),
        "mesh_id": st.discovery.target_mesh(now).map(|m| m.to_string()),
        "found_by": st.found_by,
        "admission": addresses,
        "init": st.init,
        "genesis": st.genesis.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    })
}
