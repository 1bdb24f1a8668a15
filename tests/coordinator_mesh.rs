//! The coordinator on the harness: a mesh formed from `hyphae init` and join tokens, its
//! directory and roles as every node sees them.

mod support;

use std::time::Duration;

use anyhow::Result;
use hyphae_harness::Cluster;
use support::{coord_status, form_mesh, node_id, nodes, roles, wait_directory};

#[test]
fn three_nodes_form_a_mesh_from_tokens() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    let mesh = form_mesh(&c, 2)?;
    for n in c.nodes() {
        let list = wait_directory(n, 3, 2, Duration::from_secs(30))?;
        assert_eq!(roles(&list), (1, 2, 0), "n{}: {list:#?}", n.index());
        let status = coord_status(n)?.expect("coordinator status");
        assert_eq!(status["mesh_id"], mesh.as_str(), "{status}");
        assert_eq!(status["queen"], node_id(&c[0])?.as_str(), "{status}");
        // Joined nodes hold a certificate now.
        assert!(n.state_dir().join("identity/node.crt").exists());
    }
    // Every node lists the same ids.
    let ids = |i: usize| -> Result<Vec<String>> {
        let mut v: Vec<String> = nodes(&c[i])?
            .unwrap_or_default()
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        Ok(v)
    };
    assert_eq!(ids(0)?, ids(1)?);
    assert_eq!(ids(0)?, ids(2)?);
    Ok(())
}
