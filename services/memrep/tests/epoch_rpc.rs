//! Epochs over real mutual-TLS QUIC on loopback into a real replica store: acknowledged only
//! when applied, refused (replica unchanged) when stale, tampered or cut short.

use std::sync::Arc;
use std::time::Duration;

use hyphae_core::config::TransportSection;
use hyphae_core::identity::NodeKey;
use hyphae_core::metrics::MetricsRegistry;
use hyphae_core::pki::{request_certificate, EnrolmentBundle, Membership};
use hyphae_core::rpc::{self, Limits, RpcError, RpcMetrics};
use hyphae_core::transport::{MeshEndpoint, MeshTls};
use hyphae_memrep::epoch::wire::{encode_epoch, EpochHeader};
use hyphae_memrep::epoch_rpc::{router, send_epoch, Replicas, MEMREP};
use tokio_util::sync::CancellationToken;

struct Node {
    dir: tempfile::TempDir,
    membership: Membership,
}

fn founder() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(NodeKey::load_or_create(dir.path()).unwrap());
    let membership = Membership::init(dir.path(), key).unwrap();
    Node { dir, membership }
}

fn enrol(founder: &Node) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(NodeKey::load_or_create(dir.path()).unwrap());
    let csr = request_certificate(&key).unwrap();
    let ca = founder
        .membership
        .certificate_authority(founder.dir.path())
        .unwrap();
    let bundle = EnrolmentBundle::issue(&ca, &founder.membership.secrets, &csr).unwrap();
    bundle.install(dir.path(), &key).unwrap();
    let membership = Membership::load(dir.path(), key).unwrap().unwrap();
    Node { dir, membership }
}

fn limits() -> Limits {
    Limits {
        max_frame_bytes: 16 * 1024 * 1024,
        request_timeout: Duration::from_secs(30),
        frame_timeout: Duration::from_secs(10),
    }
}

const PAGE: usize = 4096;

fn header(generation: u64, epoch: u64, pages: u32) -> EpochHeader {
    EpochHeader {
        vm: "vm1".into(),
        generation,
        epoch,
        ram_bytes: 1024 * PAGE as u64,
        disk_bytes: 0,
        pages,
        device_bytes: 4,
    }
}

#[tokio::test]
async fn epochs_over_quic_apply_before_ack_and_bad_ones_change_nothing() {
    let a = founder();
    let b = enrol(&a);
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let replicas = Arc::new(Replicas::new(&b.dir.path().join("replicas"), shm.path()));

    let tls = MeshTls::new(&b.membership).unwrap();
    let server = MeshEndpoint::server(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        MEMREP,
        &TransportSection::default(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(rpc::serve(
        server,
        Arc::new(router(b.membership.node_id(), replicas.clone())),
        limits(),
        RpcMetrics::register(&MetricsRegistry::new()),
        shutdown.clone(),
    ));
    let client = MeshEndpoint::client(
        &MeshTls::new(&a.membership).unwrap(),
        MEMREP,
        &TransportSection::default(),
    )
    .unwrap();
    let conn = client.connect(addr, None).await.unwrap();

    // Epoch 1: 600 pages (several parts), acknowledged once applied.
    let idx: Vec<u32> = (0..600).collect();
    let data: Vec<u8> = (0..600 * PAGE).map(|i| (i / PAGE) as u8 ^ 0x5a).collect();
    let parts = encode_epoch(header(1, 1, 600), &idx, &data, b"dev1").unwrap();
    let ack = send_epoch(&conn, "vm1", &parts, &limits()).await.unwrap();
    assert_eq!((ack.generation, ack.epoch), (1, 1));
    {
        let store = replicas.get("vm1").await.unwrap();
        let s = store.lock().await;
        assert_eq!(&s.ram().unwrap()[..600 * PAGE], &data[..]);
    }

    // Epoch 2 cut short (End missing): an error, the replica stays at epoch 1.
    let parts2 = encode_epoch(header(1, 2, 1), &[7], &[9u8; PAGE], b"dev2").unwrap();
    let cut = &parts2[..parts2.len() - 1];
    assert!(send_epoch(&conn, "vm1", cut, &limits()).await.is_err());
    // Tampered: digest mismatch.
    let mut bad = parts2.clone();
    let last = bad.len() - 1;
    let n = bad[last].len();
    bad[last][n - 1] ^= 1;
    assert!(matches!(
        send_epoch(&conn, "vm1", &bad, &limits()).await,
        Err(RpcError::Remote(_))
    ));
    {
        let store = replicas.get("vm1").await.unwrap();
        let s = store.lock().await;
        assert_eq!(s.meta().unwrap().epoch, 1);
        assert_eq!(s.ram().unwrap()[7 * PAGE], 7 ^ 0x5a);
    }
    // The real epoch 2 goes through.
    let ack = send_epoch(&conn, "vm1", &parts2, &limits()).await.unwrap();
    assert_eq!(ack.epoch, 2);

    // A new generation (failover) fences the old one: its epochs are refused.
    let parts = encode_epoch(header(2, 1, 1), &[1], &[1u8; PAGE], b"dev3").unwrap();
    send_epoch(&conn, "vm1", &parts, &limits()).await.unwrap();
    let stale = encode_epoch(header(1, 3, 1), &[1], &[2u8; PAGE], b"dev4").unwrap();
    let err = send_epoch(&conn, "vm1", &stale, &limits())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stale"), "{err}");
    // Bad VM names are refused before touching the disk.
    assert!(send_epoch(&conn, "../x", &parts, &limits()).await.is_err());

    shutdown.cancel();
    let list = replicas.list().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].1.unwrap().generation, 2);
}
