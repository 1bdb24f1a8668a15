//! Gateway certificates: the queen signs a node's HTTPS certificate for the names and addresses
//! its directory record gives it (its name, the mesh's built-in names, its IPs), nothing else.
//!
//! The gateway asks its local coordinator (`POST /gateway-cert` on coordinator.sock); a
//! coordinator that is not the queen forwards the request over mutual TLS, so the queen knows
//! which node asks from the connection's certificate, never from the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyphae_core::pki::{AllowedServerNames, NODE_NAME_SUFFIX};
use hyphae_core::NodeId;

use crate::directory::NodeRecord;
use crate::methods::GatewayCert;
use crate::service::Coordinator;

/// The mesh's zone, under which nodes, services and user names live.
pub const MESH_ZONE: &str = "hyphae.internal";
/// Names every gateway answers for (the dashboard, files, certificates and admission).
pub const BUILT_IN_NAMES: [&str; 3] = ["hypermesh", "assets", "trust"];

/// What a node's gateway certificate may name, from its directory record.
pub fn allowed_names(record: &NodeRecord) -> AllowedServerNames {
    let mut allowed = AllowedServerNames::default();
    let name = record.name.to_ascii_lowercase();
    let id = record.id.to_string().to_ascii_lowercase();
    for n in [name.clone(), id.clone()] {
        allowed.dns.insert(format!("{n}.{NODE_NAME_SUFFIX}"));
        allowed.dns.insert(format!("{n}.local"));
        allowed.dns.insert(n);
    }
    for b in BUILT_IN_NAMES {
        allowed.dns.insert(b.to_string());
        allowed.dns.insert(format!("{b}.{MESH_ZONE}"));
    }
    allowed.dns.insert("hyphae.local".into());
    allowed.dns.insert("localhost".into());
    allowed.ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
    allowed.ips.insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
    for a in &record.addresses {
        if let Ok(ip) = a.parse::<IpAddr>() {
            allowed.ips.insert(ip);
        }
    }
    allowed
}

impl Coordinator {
    /// The queen's side: signs `csr_pem` for `node` if it is a member and claims only its names.
    /// Answers the chain as PEM: the certificate, then the web CA that signed it.
    pub fn sign_gateway_cert_as_queen(
        &self,
        node: NodeId,
        csr_pem: &str,
    ) -> Result<String, String> {
        let record = self
            .node(&node)
            .ok_or_else(|| format!("no node {node} in the directory"))?;
        if !record.status.is_member() {
            return Err(format!("node {node} is {:?}, not a member", record.status));
        }
        let ca = self
            .web_certificate_authority()
            .map_err(|e| format!("the queen cannot sign gateway certificates yet: {e}"))?;
        let der = ca
            .sign_server_request(csr_pem, &allowed_names(&record))
            .map_err(|e| e.to_string())?;
        let leaf = pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        Ok(format!("{}\n{}", leaf.trim_end(), ca.cert_pem().trim_end()) + "\n")
    }

    /// This node's gateway certificate chain (PEM, leaf then web CA): signed here when queen,
    /// else by the queen.
    pub async fn gateway_cert(&self, csr_pem: String) -> Result<String, String> {
        if self.is_queen() {
            return self.sign_gateway_cert_as_queen(self.id, &csr_pem);
        }
        let (queen, addr) = self.queen().ok_or("no queen right now")?;
        self.peers
            .call::<GatewayCert>(queen, &addr, &csr_pem, None)
            .await
            .map_err(|e| format!("cannot reach the queen: {e}"))?
    }
}
