//! The beacon's protocol state: who this node has heard, and what each packet means.
//!
//! Sans-IO: the service feeds it datagrams with the time they arrived and asks it for the
//! packets to send; nothing here touches a socket or a clock. A member verifies every announce
//! with its mesh's MAC key; a node that has not been admitted has no key yet, so it can only
//! take announces of the mesh named by its join token (or any mesh, without a token) as
//! *unverified candidates* — safe, because the admission that follows checks the server
//! against the token's CA pin.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hyphae_core::pki::MeshId;
use hyphae_core::NodeId;

use crate::packet::{self, Kind, MacKey, Packet, Role};
use crate::replay::{Freshness, ReplayGuard};

/// Most senders the replay guard and the tables remember.
const MAX_ENTRIES: usize = 4096;
/// Most answers to queries per second: enough for a whole LAN of nodes booting at once (a
/// budget of 20 left 11 of 32 simultaneous starters waiting a full interval), small enough that
/// a spoofed flood of queries cannot turn us into a packet cannon (128 × 283 B ≈ 36 KB/s).
const MAX_REPLIES_PER_S: u32 = 128;

/// Where this node stands, which decides how packets are judged.
#[derive(Debug, Clone)]
pub enum Standing {
    /// A member: announces are verified with the mesh's MAC key.
    Member {
        /// This node's mesh.
        mesh: MeshId,
        /// Its MAC key.
        key: MacKey,
    },
    /// Not admitted yet: looking for `wanted` (from the join token), or any mesh.
    Joining {
        /// The mesh named by the join token, if any.
        wanted: Option<MeshId>,
    },
}

/// What one datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Our own packet, looped back by the broadcast.
    Own,
    /// Not a beacon packet of a version we speak.
    Malformed,
    /// A packet of another mesh (or, while joining, not the mesh of our token).
    OtherMesh,
    /// An announce of our mesh whose MAC is wrong.
    Forged,
    /// An authenticated packet older than one already accepted from its sender.
    Replayed,
    /// The packet accepted last, again (IPv4 and IPv6 copies): ignored.
    Duplicate,
    /// A verified member of our mesh; `new` when first heard (or heard again after expiry).
    Member {
        /// First time heard.
        new: bool,
    },
    /// An unverified announce of the mesh we want to join.
    Candidate {
        /// First time heard.
        new: bool,
    },
    /// An unadmitted node's hello: at most a pending entry.
    Hello {
        /// First time heard.
        new: bool,
    },
}

/// A node heard on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Heard {
    /// Its id.
    pub node: NodeId,
    /// Its display name.
    pub name: String,
    /// Its mesh (none for a hello without a wanted mesh).
    pub mesh: Option<String>,
    /// Its role as it announced it.
    pub role: Role,
    /// The address its packet came from.
    pub source: SocketAddr,
    /// The addresses it advertises.
    pub addresses: Vec<IpAddr>,
    /// Its admission port.
    pub admission_port: u16,
    /// Its coordinator port.
    pub coordinator_port: u16,
    /// Whether its MAC was checked (members only).
    pub verified: bool,
    /// A hello from a node with `auto_init` on.
    pub auto_init: bool,
    #[serde(skip)]
    last_seen: Option<Instant>,
}

impl Heard {
    /// The admission endpoints to dial: the source address first (it is known to route),
    /// unless it is IPv6 link-local: the admitting member records the address it sees, and a
    /// link-local one without its interface is useless to the others, so those go last.
    pub fn admission_addrs(&self) -> Vec<SocketAddr> {
        let port = self.admission_port;
        let source_link_local = match self.source {
            SocketAddr::V6(v6) => crate::interfaces::is_link_local_v6(v6.ip()),
            SocketAddr::V4(_) => false,
        };
        let source = match self.source {
            SocketAddr::V6(v6) => SocketAddr::V6(std::net::SocketAddrV6::new(
                *v6.ip(),
                port,
                0,
                v6.scope_id(),
            )),
            SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), port),
        };
        let mut out = Vec::new();
        if !source_link_local {
            out.push(source);
        }
        for ip in &self.addresses {
            let a = SocketAddr::new(*ip, port);
            let link_local_v6 =
                matches!(ip, IpAddr::V6(v6) if crate::interfaces::is_link_local_v6(v6));
            if !out.contains(&a) && !ip.is_loopback() && !ip.is_unspecified() && !link_local_v6 {
                out.push(a);
            }
        }
        if source_link_local {
            out.push(source);
        }
        out
    }
}

/// This node's own fields for the packets it sends.
#[derive(Debug, Clone)]
pub struct Me {
    /// Its id.
    pub node: NodeId,
    /// Its display name (a DNS label).
    pub name: String,
    /// Its start epoch (never goes back; see `replay`).
    pub epoch: u64,
    /// Its admission, coordinator and node ports.
    pub ports: (u16, u16, u16),
}

/// The protocol state of one beacon.
#[derive(Debug)]
pub struct Discovery {
    me: Me,
    standing: Standing,
    seq: u64,
    guard: ReplayGuard,
    members: BTreeMap<NodeId, Heard>,
    hellos: BTreeMap<NodeId, Heard>,
    expire_after: Duration,
    started: Instant,
    first_member: Option<Instant>,
    replies: (Instant, u32),
    auto_init: bool,
    hello_key: Option<MacKey>,
}

impl Discovery {
    /// A fresh state at `now`; entries not heard for `expire_after` are forgotten.
    pub fn new(me: Me, standing: Standing, now: Instant, expire_after: Duration) -> Discovery {
        Discovery {
            me,
            standing,
            seq: 0,
            guard: ReplayGuard::new(MAX_ENTRIES),
            members: BTreeMap::new(),
            hellos: BTreeMap::new(),
            expire_after,
            started: now,
            first_member: None,
            replies: (now, 0),
            auto_init: false,
            hello_key: None,
        }
    }

    /// Starts the clock of "no mesh heard for `init_after`" (and of `found_after`) now: when
    /// the beacon actually listens. Setting up sockets and mDNS can take longer than
    /// `init_after` on a starved machine (50 s on a TCG guest), and a clock started before
    /// that let a node found its own mesh the moment it began to listen, having heard nothing.
    pub fn start_listening(&mut self, now: Instant) {
        self.started = now;
    }

    /// `[discovery] auto_init_secret`: this node signs its hellos with it, and counts a heard
    /// node into the genesis round only when its hello verifies under it.
    pub fn set_auto_init_secret(&mut self, key: Option<MacKey>) {
        self.hello_key = key;
    }

    /// This node runs with `[discovery] auto_init`: its hellos say so.
    pub fn set_auto_init(&mut self, on: bool) {
        self.auto_init = on;
    }

    /// Where this node stands.
    pub fn standing(&self) -> &Standing {
        &self.standing
    }

    /// The node was admitted (or founded a mesh): from now on it verifies and announces.
    pub fn become_member(&mut self, mesh: MeshId, key: MacKey) {
        self.standing = Standing::Member { mesh, key };
        // Unverified candidates were only ever good for finding an admission endpoint.
        self.members.clear();
    }

    /// Judges one datagram that arrived at `now` from `source`.
    pub fn on_datagram(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) -> Verdict {
        self.expire(now);
        let Ok(frame) = packet::decode(bytes) else {
            return Verdict::Malformed;
        };
        let p = &frame.packet;
        if p.node == self.me.node {
            return Verdict::Own;
        }
        match (p.kind, &self.standing) {
            (Kind::Hello, _) => {
                // With a shared secret, only a hello signed under it is an auto_init peer.
                let auto_init =
                    p.auto_init && self.hello_key.as_ref().is_none_or(|k| frame.verify(k));
                let new = self.record_hello(now, p, source, auto_init);
                Verdict::Hello { new }
            }
            (Kind::Announce, Standing::Member { mesh, key }) => {
                if p.mesh != Some(*mesh) {
                    return Verdict::OtherMesh;
                }
                if !frame.verify(key) {
                    return Verdict::Forged;
                }
                let Some(mac) = frame.mac() else {
                    return Verdict::Forged;
                };
                match self.guard.check(p.node, p.epoch, p.seq, mac) {
                    Freshness::Duplicate => return Verdict::Duplicate,
                    Freshness::Replayed => return Verdict::Replayed,
                    Freshness::Fresh => {}
                }
                let new = self.record(now, p, source, true);
                if self.first_member.is_none() {
                    self.first_member = Some(now);
                }
                Verdict::Member { new }
            }
            (Kind::Announce, Standing::Joining { wanted }) => {
                if wanted.is_some() && p.mesh != *wanted {
                    return Verdict::OtherMesh;
                }
                // No key to check the MAC with; the stamps still keep stale copies out.
                let Some(mac) = frame.mac() else {
                    return Verdict::Forged;
                };
                match self.guard.check(p.node, p.epoch, p.seq, mac) {
                    Freshness::Duplicate => return Verdict::Duplicate,
                    Freshness::Replayed => return Verdict::Replayed,
                    Freshness::Fresh => {}
                }
                let new = self.record(now, p, source, false);
                if self.first_member.is_none() {
                    self.first_member = Some(now);
                }
                Verdict::Candidate { new }
            }
        }
    }

    /// Whether to answer this packet now (it asked, and the reply budget allows).
    pub fn should_answer(&mut self, now: Instant, verdict: Verdict, query: bool) -> bool {
        let answerable = matches!(
            verdict,
            Verdict::Member { .. } | Verdict::Candidate { .. } | Verdict::Hello { .. }
        );
        if !query || !answerable {
            return false;
        }
        if now.duration_since(self.replies.0) >= Duration::from_secs(1) {
            self.replies = (now, 0);
        }
        if self.replies.1 >= MAX_REPLIES_PER_S {
            return false;
        }
        self.replies.1 += 1;
        true
    }

    fn record(&mut self, now: Instant, p: &Packet, source: SocketAddr, verified: bool) -> bool {
        let heard = heard_of(now, p, source, verified);
        if self.members.len() >= MAX_ENTRIES && !self.members.contains_key(&p.node) {
            return false;
        }
        self.members.insert(p.node, heard).is_none()
    }

    fn record_hello(
        &mut self,
        now: Instant,
        p: &Packet,
        source: SocketAddr,
        auto_init: bool,
    ) -> bool {
        if self.hellos.len() >= MAX_ENTRIES && !self.hellos.contains_key(&p.node) {
            return false;
        }
        // A member that restarts unadmitted... cannot happen; but a hello never touches the
        // member table, whatever it claims.
        let mut heard = heard_of(now, p, source, false);
        heard.auto_init = auto_init;
        self.hellos.insert(p.node, heard).is_none()
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.expire_after;
        let fresh = |h: &Heard| h.last_seen.is_some_and(|t| now.duration_since(t) < ttl);
        self.members.retain(|_, h| fresh(h));
        self.hellos.retain(|_, h| fresh(h));
    }

    /// The next packet to send: an announce when a member, else a hello.
    pub fn next_packet(
        &mut self,
        query: bool,
        role: Role,
        addresses: &[IpAddr],
    ) -> Result<Vec<u8>, packet::EncodeError> {
        self.seq += 1;
        let (kind, mesh) = match &self.standing {
            Standing::Member { mesh, .. } => (Kind::Announce, Some(*mesh)),
            Standing::Joining { wanted } => (Kind::Hello, *wanted),
        };
        let p = Packet {
            kind,
            query,
            auto_init: self.auto_init && kind == Kind::Hello,
            role,
            mesh,
            node: self.me.node,
            epoch: self.me.epoch,
            seq: self.seq,
            admission_port: self.me.ports.0,
            coordinator_port: self.me.ports.1,
            node_port: self.me.ports.2,
            addresses: addresses.to_vec(),
            name: self.me.name.clone(),
        };
        match (&self.standing, &self.hello_key) {
            (Standing::Member { key, .. }, _) => p.encode_announce(key),
            (Standing::Joining { .. }, Some(key)) => p.encode_signed_hello(key),
            (Standing::Joining { .. }, None) => p.encode_hello(),
        }
    }

    /// The members (verified) or candidates (unverified) heard within the expiry time.
    pub fn members(&mut self, now: Instant) -> Vec<Heard> {
        self.expire(now);
        self.members.values().cloned().collect()
    }

    /// The unadmitted nodes heard within the expiry time.
    pub fn hellos(&mut self, now: Instant) -> Vec<Heard> {
        self.expire(now);
        self.hellos.values().cloned().collect()
    }

    /// How long after start the first member (or candidate) was heard.
    pub fn found_after(&self) -> Option<Duration> {
        self.first_member.map(|t| t.duration_since(self.started))
    }

    /// The mesh a joiner should ask: the token's, else the lowest id among those heard (a
    /// deterministic pick, so that every tokenless joiner on a LAN picks the same one).
    pub fn target_mesh(&mut self, now: Instant) -> Option<MeshId> {
        match &self.standing {
            Standing::Member { mesh, .. } => Some(*mesh),
            Standing::Joining { wanted: Some(m) } => Some(*m),
            Standing::Joining { wanted: None } => {
                self.expire(now);
                self.members
                    .values()
                    .filter_map(|h| h.mesh.as_deref()?.parse::<MeshId>().ok())
                    .min()
            }
        }
    }

    /// Admission endpoints of the target mesh heard on the LAN, most recently heard first.
    pub fn admission_addrs(&mut self, now: Instant) -> Vec<SocketAddr> {
        let Some(target) = self.target_mesh(now).map(|m| m.to_string()) else {
            return Vec::new();
        };
        let mut heard: Vec<&Heard> = self
            .members
            .values()
            .filter(|h| h.mesh.as_deref() == Some(target.as_str()))
            .collect();
        heard.sort_by_key(|h| std::cmp::Reverse(h.last_seen));
        let mut out = Vec::new();
        for h in heard {
            for a in h.admission_addrs() {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// The auto-init rule: not a member, no token, no mesh heard since start for `init_after`,
    /// and this node's id is the lowest among the unadmitted nodes heard.
    pub fn should_init(&mut self, now: Instant, init_after: Duration) -> bool {
        if !matches!(self.standing, Standing::Joining { wanted: None }) {
            return false;
        }
        if self.first_member.is_some() || now.duration_since(self.started) < init_after {
            return false;
        }
        self.expire(now);
        let me = self.me.node;
        self.hellos.keys().all(|other| me < *other)
    }

    /// The election round's electorate: the unadmitted `auto_init` nodes heard right now (their
    /// hellos said so). The founder hands these ids to its coordinator's genesis window.
    pub fn genesis_round(&mut self, now: Instant) -> Vec<NodeId> {
        self.expire(now);
        self.hellos
            .values()
            .filter(|h| h.auto_init)
            .map(|h| h.node)
            .collect()
    }
}

fn heard_of(now: Instant, p: &Packet, source: SocketAddr, verified: bool) -> Heard {
    Heard {
        node: p.node,
        name: p.name.clone(),
        mesh: p.mesh.map(|m| m.to_string()),
        role: p.role,
        source,
        addresses: p.addresses.clone(),
        admission_port: p.admission_port,
        coordinator_port: p.coordinator_port,
        verified,
        auto_init: p.auto_init,
        last_seen: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyphae_core::pki::SecretKey;

    const TTL: Duration = Duration::from_secs(10);

    fn me(b: u8) -> Me {
        Me {
            node: NodeId::from_raw([b; 10]),
            name: format!("n{b}"),
            epoch: 1000,
            ports: (7445, 7441, 7440),
        }
    }

    fn mesh(b: u8) -> MeshId {
        MeshId::from_bytes([b; 10])
    }

    fn key(b: u8) -> MacKey {
        MacKey::derive(&SecretKey([b; 32]))
    }

    fn member(node: u8, m: u8, now: Instant) -> Discovery {
        Discovery::new(
            me(node),
            Standing::Member {
                mesh: mesh(m),
                key: key(m),
            },
            now,
            TTL,
        )
    }

    fn src(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 41234))
    }

    #[test]
    fn members_of_one_mesh_find_each_other() {
        let t = Instant::now();
        let (mut a, mut b) = (member(1, 7, t), member(2, 7, t));
        let pa = a.next_packet(true, Role::Queen, &[]).unwrap();
        assert_eq!(b.on_datagram(t, &pa, src(1)), Verdict::Member { new: true });
        assert!(b.should_answer(t, Verdict::Member { new: true }, true));
        let pb = b.next_packet(false, Role::Bee, &[]).unwrap();
        assert_eq!(a.on_datagram(t, &pb, src(2)), Verdict::Member { new: true });
        assert_eq!(a.members(t).len(), 1);
        assert_eq!(
            a.admission_addrs(t),
            vec!["10.0.0.2:7445".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(a.found_after(), Some(Duration::ZERO));
    }

    #[test]
    fn link_local_sources_are_dialled_last() {
        let t = Instant::now();
        let (mut a, mut b) = (member(1, 7, t), member(2, 7, t));
        let advertised: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fe80::2".parse().unwrap()];
        let pb = b.next_packet(false, Role::Bee, &advertised).unwrap();
        let from: SocketAddr = "[fe80::2%3]:41234".parse().unwrap();
        a.on_datagram(t, &pb, from);
        assert_eq!(
            a.admission_addrs(t),
            vec![
                "10.0.0.2:7445".parse::<SocketAddr>().unwrap(),
                "[fe80::2%3]:7445".parse().unwrap()
            ]
        );
    }

    #[test]
    fn other_meshes_forgeries_and_replays_are_dropped() {
        let t = Instant::now();
        let mut a = member(1, 7, t);
        let mut other = member(2, 8, t);
        let po = other.next_packet(false, Role::Queen, &[]).unwrap();
        assert_eq!(a.on_datagram(t, &po, src(2)), Verdict::OtherMesh);

        // Someone who knows our mesh id but not our key.
        let mut forger = Discovery::new(
            me(3),
            Standing::Member {
                mesh: mesh(7),
                key: key(99),
            },
            t,
            TTL,
        );
        let pf = forger.next_packet(false, Role::Queen, &[]).unwrap();
        assert_eq!(a.on_datagram(t, &pf, src(3)), Verdict::Forged);

        let mut b = member(4, 7, t);
        let old = b.next_packet(false, Role::Bee, &[]).unwrap();
        let new = b.next_packet(false, Role::Bee, &[]).unwrap();
        assert_eq!(
            a.on_datagram(t, &new, src(4)),
            Verdict::Member { new: true }
        );
        assert_eq!(a.on_datagram(t, &new, src(4)), Verdict::Duplicate);
        assert_eq!(a.on_datagram(t, &old, src(4)), Verdict::Replayed);
        assert_eq!(a.on_datagram(t, b"garbage", src(4)), Verdict::Malformed);
        let own = a.next_packet(false, Role::Bee, &[]).unwrap();
        assert_eq!(a.on_datagram(t, &own, src(1)), Verdict::Own);
        // Only the real member is in the table.
        let members = a.members(t);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].node, NodeId::from_raw([4; 10]));
    }

    #[test]
    fn a_hello_only_ever_makes_a_pending_entry() {
        let t = Instant::now();
        let mut a = member(1, 7, t);
        // A hello claiming our mesh (it cannot prove it).
        let mut j = Discovery::new(
            me(2),
            Standing::Joining {
                wanted: Some(mesh(7)),
            },
            t,
            TTL,
        );
        let h = j.next_packet(true, Role::None, &[]).unwrap();
        assert_eq!(a.on_datagram(t, &h, src(2)), Verdict::Hello { new: true });
        assert!(a.members(t).is_empty());
        assert_eq!(a.hellos(t).len(), 1);
    }

    #[test]
    fn joiners_take_unverified_announces_of_their_token_mesh_only() {
        let t = Instant::now();
        let mut j = Discovery::new(
            me(9),
            Standing::Joining {
                wanted: Some(mesh(7)),
            },
            t,
            TTL,
        );
        let mut ours = member(1, 7, t);
        let mut theirs = member(2, 8, t);
        let p7 = ours.next_packet(false, Role::Queen, &[]).unwrap();
        let p8 = theirs.next_packet(false, Role::Queen, &[]).unwrap();
        assert_eq!(j.on_datagram(t, &p8, src(2)), Verdict::OtherMesh);
        assert_eq!(
            j.on_datagram(t, &p7, src(1)),
            Verdict::Candidate { new: true }
        );
        assert_eq!(
            j.admission_addrs(t),
            vec!["10.0.0.1:7445".parse::<SocketAddr>().unwrap()]
        );
        // Admitted: candidates are dropped, announces are now verified.
        j.become_member(mesh(7), key(7));
        assert!(j.members(t).is_empty());
        let p7b = ours.next_packet(false, Role::Queen, &[]).unwrap();
        assert_eq!(
            j.on_datagram(t, &p7b, src(1)),
            Verdict::Member { new: true }
        );
    }

    #[test]
    fn entries_expire() {
        let t = Instant::now();
        let (mut a, mut b) = (member(1, 7, t), member(2, 7, t));
        let pb = b.next_packet(false, Role::Bee, &[]).unwrap();
        a.on_datagram(t, &pb, src(2));
        assert_eq!(a.members(t + TTL / 2).len(), 1);
        assert!(a.members(t + TTL).is_empty());
    }

    #[test]
    fn auto_init_elects_the_lowest_unadmitted_id() {
        let t = Instant::now();
        let after = Duration::from_secs(3);
        let fresh = |b| Discovery::new(me(b), Standing::Joining { wanted: None }, t, TTL);
        let (mut low, mut high) = (fresh(1), fresh(2));
        let hl = low.next_packet(true, Role::None, &[]).unwrap();
        let hh = high.next_packet(true, Role::None, &[]).unwrap();
        low.on_datagram(t, &hh, src(2));
        high.on_datagram(t, &hl, src(1));
        assert!(
            !low.should_init(t + Duration::from_secs(1), after),
            "too early"
        );
        assert!(low.should_init(t + after, after));
        assert!(!high.should_init(t + after, after), "a lower id was heard");

        // Once a mesh is heard nobody inits; a node with a token never does.
        let mut m = member(5, 7, t);
        let pm = m.next_packet(false, Role::Queen, &[]).unwrap();
        low.on_datagram(t, &pm, src(5));
        assert!(!low.should_init(t + after, after));
        let mut tokened = Discovery::new(
            me(0),
            Standing::Joining {
                wanted: Some(mesh(7)),
            },
            t,
            TTL,
        );
        assert!(!tokened.should_init(t + after, after));
    }

    #[test]
    fn auto_init_waits_from_when_the_beacon_listens() {
        let t = Instant::now();
        let mut d = Discovery::new(me(1), Standing::Joining { wanted: None }, t, TTL);
        d.set_auto_init(true);
        // A slow start: the sockets listen a minute after the state was made.
        let listening = t + Duration::from_secs(60);
        d.start_listening(listening);
        assert!(!d.should_init(listening, Duration::from_secs(3)));
        assert!(!d.should_init(listening + Duration::from_secs(2), Duration::from_secs(3)));
        assert!(d.should_init(listening + Duration::from_secs(3), Duration::from_secs(3)));
    }

    #[test]
    fn the_genesis_round_is_the_auto_init_hellos_heard() {
        let t = Instant::now();
        let fresh = |b, auto| {
            let mut d = Discovery::new(me(b), Standing::Joining { wanted: None }, t, TTL);
            d.set_auto_init(auto);
            d
        };
        let mut founder = fresh(1, true);
        let (mut peer, mut plain) = (fresh(2, true), fresh(3, false));
        let hp = peer.next_packet(true, Role::None, &[]).unwrap();
        let hq = plain.next_packet(true, Role::None, &[]).unwrap();
        founder.on_datagram(t, &hp, src(2));
        founder.on_datagram(t, &hq, src(3));
        // Both are unadmitted nodes in the election; only the auto_init one is in the round.
        assert_eq!(founder.hellos(t).len(), 2);
        assert_eq!(founder.genesis_round(t), vec![NodeId::from_raw([2; 10])]);
        // Expired hellos are not in it.
        assert!(founder.genesis_round(t + TTL).is_empty());
    }

    #[test]
    fn with_a_secret_only_signed_hellos_join_the_genesis_round() {
        let t = Instant::now();
        let secret = |s: &str| Some(MacKey::from_auto_init_secret(s));
        let fresh = |b, key: Option<MacKey>| {
            let mut d = Discovery::new(me(b), Standing::Joining { wanted: None }, t, TTL);
            d.set_auto_init(true);
            d.set_auto_init_secret(key);
            d
        };
        let mut founder = fresh(1, secret("ours"));
        let mut friend = fresh(2, secret("ours"));
        let mut stranger = fresh(3, secret("theirs"));
        let mut unsigned = fresh(4, None);
        for (d, last) in [(&mut friend, 2), (&mut stranger, 3), (&mut unsigned, 4)] {
            let h = d.next_packet(true, Role::None, &[]).unwrap();
            assert_eq!(
                founder.on_datagram(t, &h, src(last)),
                Verdict::Hello { new: true }
            );
        }
        // All three are unadmitted nodes; only the one that knows the secret is in the round.
        assert_eq!(founder.hellos(t).len(), 3);
        assert_eq!(founder.genesis_round(t), vec![NodeId::from_raw([2; 10])]);
    }

    #[test]
    fn replies_are_rate_limited() {
        let t = Instant::now();
        let mut a = member(1, 7, t);
        let v = Verdict::Hello { new: true };
        let answered = (0..1000).filter(|_| a.should_answer(t, v, true)).count();
        assert_eq!(answered, MAX_REPLIES_PER_S as usize);
        assert!(a.should_answer(t + Duration::from_secs(1), v, true));
        assert!(!a.should_answer(t, Verdict::Forged, true));
        assert!(!a.should_answer(t + Duration::from_secs(5), v, false));
    }
}
