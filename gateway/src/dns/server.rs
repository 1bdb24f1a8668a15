//! The DNS server for `hyphae.internal.` (hickory-server, UDP and TCP), answering from the
//! same [`resolve`] as the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::Mutex;

use super::resolve::{self, Resolution};
use super::snapshot::MeshSnapshot;
use crate::local::LocalServices;

/// Answers are given with this TTL: the mesh changes, resolvers should ask again soon.
const TTL: u32 = 5;
/// How long a snapshot of the directory is reused between queries.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// A briefly cached [`MeshSnapshot`], shared by the DNS server and the resolve API.
#[derive(Debug)]
pub struct SnapshotCache {
    local: LocalServices,
    cached: Mutex<Option<(Instant, Arc<MeshSnapshot>)>>,
}

impl SnapshotCache {
    /// A cache over the node's coordinator.
    pub fn new(local: LocalServices) -> SnapshotCache {
        SnapshotCache {
            local,
            cached: Mutex::new(None),
        }
    }

    /// The current snapshot (reads the coordinator at most once per second).
    pub async fn get(&self) -> Result<Arc<MeshSnapshot>, crate::error::ApiError> {
        let mut guard = self.cached.lock().await;
        if let Some((at, s)) = guard.as_ref() {
            if at.elapsed() < SNAPSHOT_TTL {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(MeshSnapshot::load(&self.local).await?);
        *guard = Some((Instant::now(), s.clone()));
        Ok(s)
    }
}

/// The hickory request handler of the mesh zone.
#[derive(Debug, Clone)]
pub struct MeshDns {
    cache: Arc<SnapshotCache>,
}

impl MeshDns {
    /// A handler answering from `cache`.
    pub fn new(cache: Arc<SnapshotCache>) -> MeshDns {
        MeshDns { cache }
    }
}

/// The DNS records of a resolution that answer a query of type `qtype` for `owner`.
pub fn to_dns_records(owner: &Name, qtype: RecordType, records: &[resolve::Record]) -> Vec<Record> {
    let mut out = vec![];
    let mut owner = owner.clone();
    for r in records {
        let rdata = match r {
            resolve::Record::A {
                value: std::net::IpAddr::V4(ip),
            } => RData::A(A(*ip)),
            resolve::Record::Aaaa {
                value: std::net::IpAddr::V6(ip),
            } => RData::AAAA(AAAA(*ip)),
            resolve::Record::Srv { port, target, .. } => match Name::from_ascii(target) {
                Ok(t) => RData::SRV(SRV::new(0, 0, *port, t)),
                Err(_) => continue,
            },
            resolve::Record::Cname { value } => match Name::from_ascii(value) {
                Ok(t) => {
                    // The CNAME goes first, then the target's records are owned by the target.
                    out.push(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::CNAME(CNAME(t.clone())),
                    ));
                    owner = t;
                    continue;
                }
                Err(_) => continue,
            },
            _ => continue,
        };
        let wanted = qtype == RecordType::ANY || rdata.record_type() == qtype;
        if wanted {
            out.push(Record::from_rdata(owner.clone(), TTL, rdata));
        }
    }
    out
}

#[async_trait::async_trait]
impl RequestHandler for MeshDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = false;
        let builder = MessageResponseBuilder::from_message_request(request);
        let (code, records) = match request.request_info() {
            Err(_) => (ResponseCode::FormErr, vec![]),
            Ok(info) => {
                let owner: Name = info.query.name().into();
                let qtype = info.query.query_type();
                let name = owner.to_ascii();
                match self.cache.get().await {
                    Err(e) => {
                        tracing::warn!(error = %e, "DNS: no directory to answer from");
                        (ResponseCode::ServFail, vec![])
                    }
                    Ok(snapshot) => match resolve::resolve(&snapshot, &name) {
                        Resolution::Found(r) => {
                            (ResponseCode::NoError, to_dns_records(&owner, qtype, &r))
                        }
                        Resolution::NxDomain => (ResponseCode::NXDomain, vec![]),
                        Resolution::NotOurs => (ResponseCode::Refused, vec![]),
                    },
                }
            }
        };
        metadata.response_code = code;
        let response = builder.build(metadata, records.iter(), [], [], []);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "DNS: could not send an answer");
                hickory_proto::op::Header {
                    metadata,
                    counts: hickory_proto::op::HeaderCounts::default(),
                }
                .into()
            }
        }
    }
}
