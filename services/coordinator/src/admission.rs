//! Admission, the queen's side: join tokens, pending nodes, `hyphae admit`.
//!
//! A join arrives on any member's admission endpoint and is forwarded to the queen, who holds
//! the CA key. With a valid token she signs the joiner's CSR and commits the node together with
//! the token's spending, in one command, so a token can never admit more nodes than its uses.
//! Without a token the node is recorded as pending; once admitted, its next poll (the same
//! request again) returns its bundle, built from the committed certificate.

use hyphae_core::pki::{node_id_of_request, CertificateAuthority, EnrolmentBundle, PkiError};
use hyphae_core::transport::ca_pin;
use hyphae_core::NodeId;

use crate::addr::{dialable_by_others, join_host_port};
use crate::command::{Command, CommandResult, BATCH_FOR_ONE};
use crate::directory::{table, NodeRecord, NodeStatus, TokenRecord};
use crate::error::CoordinatorError;
use crate::methods::{ForwardJoin, JoinOutcome, JoinRequest};
use crate::service::{now_unix, Coordinator};
use crate::token::JoinToken;

fn refuse(reason: impl Into<String>) -> JoinOutcome {
    let reason = reason.into();
    tracing::warn!(%reason, "admission refused");
    JoinOutcome::Refused { reason }
}

fn unavailable(reason: impl Into<String>) -> JoinOutcome {
    let reason = reason.into();
    tracing::info!(%reason, "admission postponed");
    JoinOutcome::Unavailable { reason }
}

fn pem_cert(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

impl Coordinator {
    /// The mesh CA, if this node holds its key.
    pub fn certificate_authority(&self) -> Result<CertificateAuthority, PkiError> {
        self.membership.certificate_authority(&self.identity_dir)
    }

    /// A fresh join token (stored hashed).
    pub async fn create_token(
        &self,
        ttl: std::time::Duration,
        uses: u32,
    ) -> Result<JoinToken, CoordinatorError> {
        if uses == 0 {
            return Err(CoordinatorError::BadRequest(
                "uses must be at least 1".into(),
            ));
        }
        let token = JoinToken::generate(
            &self.membership.secrets.mesh_id.to_string(),
            ca_pin(self.membership.ca_cert.as_ref()),
        );
        let record = TokenRecord {
            secret_hash: token.secret_hash(),
            expires_unix: now_unix().saturating_add(ttl.as_secs()),
            uses_left: uses,
        };
        self.propose_ok(Command::CreateToken {
            id: token.id.clone(),
            token: record,
        })
        .await?;
        Ok(token)
    }

    /// A join received on this node's admission endpoint: handled here when queen, else
    /// forwarded to the queen over mutual TLS.
    #[tracing::instrument(level = "info", skip_all, fields(name = %request.name))]
    pub async fn handle_join(&self, request: JoinRequest) -> JoinOutcome {
        if self.is_queen() {
            return self.join_as_queen(request).await;
        }
        let Some((queen, addr)) = self.queen() else {
            return unavailable("no queen right now; try again shortly");
        };
        match self
            .peers
            .call::<ForwardJoin>(queen, &addr, &request, None)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => unavailable(format!("cannot reach the queen: {e}")),
        }
    }

    /// The queen's handling of a join or poll.
    pub async fn join_as_queen(&self, request: JoinRequest) -> JoinOutcome {
        let node = match node_id_of_request(&request.csr_pem) {
            Ok(id) => id,
            Err(e) => return refuse(e.to_string()),
        };
        if self.view_has(table::REVOCATIONS, &node.to_string()) {
            return refuse(format!("node {node} is revoked"));
        }
        let ip = request.observed_ip.clone().unwrap_or_default();
        // The directory records the address the request came from; one the other members
        // cannot dial (IPv6 link-local, as when a booting node's IPv4 is not configured yet)
        // would leave the node admitted but unreachable. The joiner tries its other paths
        // and asks again.
        if let Ok(seen) = ip.parse::<std::net::IpAddr>() {
            if !dialable_by_others(seen) {
                tracing::info!(%node, %seen, "join from an address other members cannot dial; asked to retry");
                return unavailable(format!(
                    "{seen} cannot be dialled by other members; ask again from a routable address"
                ));
            }
        }
        let addr = ip
            .parse()
            .map(|ip| join_host_port(ip, request.coordinator_port))
            .unwrap_or_default();
        if let Some(existing) = self.node(&node) {
            match existing.status {
                NodeStatus::Up | NodeStatus::Suspect | NodeStatus::Down => {
                    return match &existing.cert_pem {
                        Some(cert) => self.bundle_for(node, cert),
                        None => refuse("admitted without a certificate (should not happen)"),
                    };
                }
                NodeStatus::Revoked => return refuse(format!("node {node} is revoked")),
                NodeStatus::Left => {
                    return refuse(format!(
                        "node {node} left this mesh; wipe its state to rejoin"
                    ))
                }
                NodeStatus::Pending if request.token.is_none() => {
                    if self.genesis_admits(&node) {
                        return self.admit_in_genesis(node).await;
                    }
                    return JoinOutcome::Pending { node };
                }
                NodeStatus::Pending => {}
            }
        }
        let now = now_unix();
        let mut record = NodeRecord {
            id: node,
            name: request.name.clone(),
            addresses: if ip.is_empty() { vec![] } else { vec![ip] },
            coordinator_addr: addr,
            status: NodeStatus::Up,
            admitted_unix: now,
            last_seen_unix: now,
            uptime_s: 0,
            jitter_ms: 0,
            hardware: None,
            csr_pem: None,
            cert_pem: None,
        };
        let Some(token_text) = &request.token else {
            let genesis = self.genesis_admits(&node);
            if !genesis && !self.may_add_pending() {
                return unavailable(
                    "too many nodes are asking to join without a token; try again later",
                );
            }
            record.status = NodeStatus::Pending;
            record.admitted_unix = 0;
            record.csr_pem = Some(request.csr_pem.clone());
            return match self.propose(Command::AddPending { node: record }).await {
                Ok(CommandResult::Ok { .. }) if genesis => self.admit_in_genesis(node).await,
                Ok(CommandResult::Ok { .. }) => {
                    tracing::info!(%node, "node is pending; admit it with `hyphae admit {node}`");
                    JoinOutcome::Pending { node }
                }
                Ok(CommandResult::Refused { reason }) => refuse(reason),
                Ok(CommandResult::Batch(_)) => unavailable(BATCH_FOR_ONE.to_string()),
                Err(e) => unavailable(e.to_string()),
            };
        };
        let token = match JoinToken::parse(token_text) {
            Ok(t) => t,
            Err(e) => return refuse(e.to_string()),
        };
        if token.mesh_id != self.membership.secrets.mesh_id.to_string() {
            return refuse(format!(
                "the token is for mesh {}, not this one",
                token.mesh_id
            ));
        }
        let ca = match self.certificate_authority() {
            Ok(ca) => ca,
            Err(e) => return unavailable(format!("the queen cannot sign certificates: {e}")),
        };
        let bundle = match EnrolmentBundle::issue(&ca, &self.membership.secrets, &request.csr_pem) {
            Ok(b) => b,
            Err(e) => return refuse(e.to_string()),
        };
        record.cert_pem = Some(bundle.node_cert.clone());
        let command = Command::AdmitWithToken {
            token_id: token.id.clone(),
            secret_hash: token.secret_hash(),
            now_unix: now,
            node: record,
        };
        match self.propose(command).await {
            Ok(CommandResult::Ok { .. }) => match bundle.to_toml() {
                Ok(bundle_toml) => {
                    tracing::info!(%node, "admitted with a join token");
                    JoinOutcome::Admitted { bundle_toml }
                }
                Err(e) => refuse(e.to_string()),
            },
            Ok(CommandResult::Refused { reason }) => refuse(reason),
            Ok(CommandResult::Batch(_)) => unavailable(BATCH_FOR_ONE.to_string()),
            Err(e) => unavailable(e.to_string()),
        }
    }

    /// `hyphae admit NODE` at the queen: signs the pending node's CSR and commits it.
    pub async fn admit_as_queen(&self, node: NodeId) -> Result<(), String> {
        let record = self
            .node(&node)
            .ok_or_else(|| format!("no node {node} in the directory"))?;
        if record.status != NodeStatus::Pending {
            return Err(format!("node {node} is {:?}, not pending", record.status));
        }
        let csr = record
            .csr_pem
            .ok_or_else(|| format!("pending node {node} has no certificate request"))?;
        let ca = self
            .certificate_authority()
            .map_err(|e| format!("the queen cannot sign certificates: {e}"))?;
        let (signed, cert) = ca.sign_request(&csr).map_err(|e| e.to_string())?;
        if signed != node {
            return Err("the stored request is for another key".into());
        }
        self.propose_ok(Command::Admit {
            node,
            cert_pem: pem_cert(cert.as_ref()),
            now_unix: now_unix(),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Whether the genesis window (`crate::genesis`) lets `node` in without a token now.
    fn genesis_admits(&self, node: &NodeId) -> bool {
        self.genesis
            .as_ref()
            .is_some_and(|g| g.admits(node, now_unix()))
    }

    /// Admits a pending node of the genesis window and hands it its bundle.
    async fn admit_in_genesis(&self, node: NodeId) -> JoinOutcome {
        if let Err(e) = self.admit_as_queen(node).await {
            return unavailable(format!("genesis admission: {e}"));
        }
        tracing::info!(%node, "admitted in the auto_init genesis window");
        match self.node(&node).and_then(|r| r.cert_pem) {
            Some(cert) => self.bundle_for(node, &cert),
            // Not applied here yet: the joiner's next poll gets its bundle.
            None => JoinOutcome::Pending { node },
        }
    }

    /// The flood limit on new pending entries (`crate::pending_gate`).
    fn may_add_pending(&self) -> bool {
        let pending = self
            .nodes()
            .iter()
            .filter(|n| n.status == NodeStatus::Pending)
            .count();
        let allowed = self
            .pending_gate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit_one(std::time::Instant::now(), pending);
        if !allowed {
            tracing::warn!(
                pending,
                "new pending entry refused: too many tokenless join requests"
            );
        }
        allowed
    }

    fn bundle_for(&self, node: NodeId, cert_pem: &str) -> JoinOutcome {
        let bundle = EnrolmentBundle {
            node_id: node,
            node_cert: cert_pem.to_string(),
            ca_cert: pem_cert(self.membership.ca_cert.as_ref()),
            mesh: self.membership.secrets.clone(),
        };
        match bundle.to_toml() {
            Ok(bundle_toml) => JoinOutcome::Admitted { bundle_toml },
            Err(e) => refuse(e.to_string()),
        }
    }

    fn view_has(&self, table: &str, key: &str) -> bool {
        crate::command::Kv::get(&self.view, table, key).is_some()
    }
}
