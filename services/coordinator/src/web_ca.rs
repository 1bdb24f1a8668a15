//! The web CA (ECDSA P-256, signs gateway HTTPS certificates) on the coordinator's side.
//!
//! `hyphae init` makes it next to the mesh CA. A mesh made before the web CA existed gets one
//! from its queen: the queen creates it and publishes its certificate in the key space
//! (`pki/web_ca_cert`, written only if absent so two queens in quick succession cannot make two
//! different ones), then hands certificate and key to the princes over mutual TLS like the mesh
//! CA key. The published certificate is what `hyphae ca export` prints on nodes without the key.

use std::collections::HashSet;
use std::time::Duration;

use hyphae_core::pki::{PkiError, WebCertificateAuthority};
use hyphae_core::NodeId;

use crate::command::{Command, CommandResult, Kv};
use crate::methods::InstallWebCa;
use crate::service::Coordinator;

/// Key-space table of public PKI facts.
pub const PKI_TABLE: &str = "pki";
/// Key of the web CA certificate (PEM) in [`PKI_TABLE`].
pub const WEB_CA_CERT_KEY: &str = "web_ca_cert";

/// What the queen should do about the web CA, decided from what it has and what is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCaAction {
    /// Nothing: it holds the key and the certificate is published.
    Nothing,
    /// Publish the certificate it holds (the key space has none yet).
    Publish,
    /// Create a web CA and publish it (neither exists: a mesh from before the web CA).
    Create,
    /// Another web CA is published but this node lacks its key: wait to be handed it.
    WaitForKey,
    /// The published certificate differs from the one held: keep serving, warn the operator.
    Mismatch,
}

/// Decides what to do from the locally held certificate PEM (if any) and the published one.
pub fn web_ca_action(held: Option<&str>, published: Option<&str>) -> WebCaAction {
    match (held, published) {
        (Some(h), Some(p)) if h.trim() == p.trim() => WebCaAction::Nothing,
        (Some(_), Some(_)) => WebCaAction::Mismatch,
        (Some(_), None) => WebCaAction::Publish,
        (None, Some(_)) => WebCaAction::WaitForKey,
        (None, None) => WebCaAction::Create,
    }
}

impl Coordinator {
    /// The web CA, if this node holds its key.
    pub fn web_certificate_authority(&self) -> Result<WebCertificateAuthority, PkiError> {
        self.membership
            .web_certificate_authority(&self.identity_dir)
    }

    /// The published web CA certificate (PEM), from the local replica of the key space.
    pub fn published_web_ca(&self) -> Option<String> {
        self.view
            .get(PKI_TABLE, WEB_CA_CERT_KEY)
            .map(|v| String::from_utf8_lossy(&v.value).into_owned())
    }

    /// The queen's duty: make sure the mesh has a web CA, held here and published.
    pub async fn ensure_web_ca(&self) {
        let held = self.web_certificate_authority().ok();
        let published = self.published_web_ca();
        let action = web_ca_action(
            held.as_ref().map(|c| c.cert_pem()).as_deref(),
            published.as_deref(),
        );
        match action {
            WebCaAction::Nothing | WebCaAction::WaitForKey => {}
            WebCaAction::Mismatch => {
                tracing::warn!("this queen's web CA differs from the published one")
            }
            WebCaAction::Publish => {
                if let Some(ca) = held {
                    self.publish_web_ca(&ca).await;
                }
            }
            WebCaAction::Create => {
                let ca = match WebCertificateAuthority::create(self.membership.secrets.mesh_id) {
                    Ok(ca) => ca,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot create the web CA");
                        return;
                    }
                };
                if self.publish_web_ca(&ca).await {
                    match ca.store(&self.identity_dir) {
                        Ok(()) => tracing::info!("created the mesh's web CA"),
                        Err(e) => tracing::error!(error = %e, "cannot store the new web CA"),
                    }
                }
            }
        }
    }

    /// Publishes `ca`'s certificate if none is; true when this write won.
    async fn publish_web_ca(&self, ca: &WebCertificateAuthority) -> bool {
        let command = Command::Put {
            table: PKI_TABLE.into(),
            key: WEB_CA_CERT_KEY.into(),
            value: ca.cert_pem().into_bytes(),
            expect_version: Some(0),
        };
        match self.write_as_queen(command).await {
            Ok(CommandResult::Ok { .. }) => true,
            Ok(other) => {
                tracing::debug!(result = ?other, "web CA already published");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish the web CA");
                false
            }
        }
    }

    /// Hands the web CA to princes that have not had it from this queen yet.
    pub async fn give_web_ca_to_princes(&self, given: &mut HashSet<NodeId>) {
        let (voters, _) = self.raft_members();
        let pending: Vec<NodeId> = crate::duties::heard_from(
            self,
            voters
                .into_iter()
                .filter(|v| *v != self.id && !given.contains(v)),
        );
        if pending.is_empty() {
            return;
        }
        let Ok(ca) = self.web_certificate_authority() else {
            return;
        };
        let bundle = (ca.cert_pem(), ca.key_pem());
        for prince in pending {
            let Some(addr) = self.node(&prince).map(|n| n.coordinator_addr) else {
                continue;
            };
            match self
                .peers
                .call::<InstallWebCa>(prince, &addr, &bundle, Some(Duration::from_secs(2)))
                .await
            {
                Ok(Ok(())) => {
                    tracing::info!(%prince, "gave the web CA to a prince");
                    given.insert(prince);
                }
                Ok(Err(e)) => tracing::warn!(%prince, error = %e, "prince refused the web CA"),
                Err(e) => {
                    tracing::debug!(%prince, error = %e, "cannot reach prince for the web CA")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_from_held_and_published() {
        assert_eq!(web_ca_action(None, None), WebCaAction::Create);
        assert_eq!(web_ca_action(Some("A\n"), None), WebCaAction::Publish);
        assert_eq!(web_ca_action(Some("A\n"), Some("A")), WebCaAction::Nothing);
        assert_eq!(web_ca_action(Some("A"), Some("B")), WebCaAction::Mismatch);
        assert_eq!(web_ca_action(None, Some("B")), WebCaAction::WaitForKey);
    }
}
