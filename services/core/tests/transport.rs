//! Live mutual-TLS QUIC endpoints on loopback: who gets in, who is refused, and what bad frames
//! do (close one stream, nothing else).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyphae_core::config::TransportSection;
use hyphae_core::identity::NodeKey;
use hyphae_core::metrics::MetricsRegistry;
use hyphae_core::pki::{request_certificate, EnrolmentBundle, Membership};
use hyphae_core::rpc::{
    self, ErrorCode, Frame, FrameKind, Limits, Method, Ping, PingRequest, Router, RpcError,
    RpcMetrics,
};
use hyphae_core::transport::{
    probe, MeshEndpoint, MeshTls, ServiceSpec, TransportError, MESH_SERVER_NAME,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A member node's credentials in a temporary state directory.
struct TestNode {
    dir: tempfile::TempDir,
    membership: Membership,
}

fn founder() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(NodeKey::load_or_create(dir.path()).unwrap());
    let membership = Membership::init(dir.path(), key).unwrap();
    TestNode { dir, membership }
}

fn enrol(founder: &TestNode) -> TestNode {
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
    TestNode { dir, membership }
}

const TEST: ServiceSpec = ServiceSpec {
    name: "test",
    alpn: b"hyphae-test/1",
    default_port: 0,
};
const OTHER: ServiceSpec = ServiceSpec {
    name: "other",
    alpn: b"hyphae-other/1",
    default_port: 0,
};

/// Echoes its request back; used to exercise bodies of any size.
struct Echo;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(Vec<u8>);
impl Method for Echo {
    const NAME: &'static str = "test.echo";
    type Request = Blob;
    type Response = Blob;
}

/// Streams `n` items back.
struct Count;
impl Method for Count {
    const NAME: &'static str = "test.count";
    type Request = u32;
    type Response = u32;
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    metrics: RpcMetrics,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn limits() -> Limits {
    Limits {
        max_frame_bytes: 64 * 1024,
        request_timeout: Duration::from_secs(5),
        frame_timeout: Duration::from_secs(2),
    }
}

fn start_server(node: &TestNode, service: ServiceSpec) -> Server {
    let tls = MeshTls::new(&node.membership).unwrap();
    let endpoint = MeshEndpoint::server(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        service,
        &TransportSection::default(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let router = Router::new(service, node.membership.node_id())
        .unary::<Echo, _, _>(|_peer, req| async move { Ok(req) })
        .streaming::<Count, _>(|_peer, n, ch| {
            Box::pin(async move {
                for i in 0..n {
                    ch.send_item(&i)
                        .await
                        .map_err(|e| rpc::RpcFault::new(ErrorCode::Internal, e.to_string()))?;
                }
                ch.end()
                    .await
                    .map_err(|e| rpc::RpcFault::new(ErrorCode::Internal, e.to_string()))
            })
        });
    let metrics = RpcMetrics::register(&MetricsRegistry::new());
    let shutdown = CancellationToken::new();
    tokio::spawn(rpc::serve(
        endpoint,
        Arc::new(router),
        limits(),
        metrics.clone(),
        shutdown.clone(),
    ));
    Server {
        addr,
        shutdown,
        metrics,
    }
}

fn client(node: &TestNode, service: ServiceSpec) -> MeshEndpoint {
    let tls = MeshTls::new(&node.membership).unwrap();
    MeshEndpoint::client(&tls, service, &TransportSection::default()).unwrap()
}

/// Connects and makes one call; the refusal may surface at either step (TLS 1.3 lets the
/// client finish its handshake before the server has judged the client's certificate).
async fn ping_via(ep: &MeshEndpoint, addr: SocketAddr) -> Result<(), String> {
    let conn = ep.connect(addr, None).await.map_err(|e| e.to_string())?;
    rpc::call::<Ping>(&conn, &PingRequest { nonce: 7 }, &limits())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn members_talk_and_strangers_are_refused() {
    let a = founder();
    let b = enrol(&a);
    let stranger = founder(); // another mesh, its own CA
    let server = start_server(&a, TEST);

    // A member of the same mesh gets in, and learns who answered.
    let conn = client(&b, TEST)
        .connect(server.addr, Some(a.membership.node_id()))
        .await
        .unwrap();
    assert_eq!(conn.peer, a.membership.node_id());
    let pong = rpc::call::<Ping>(&conn, &PingRequest { nonce: 42 }, &limits())
        .await
        .unwrap();
    assert_eq!(pong.nonce, 42);
    assert_eq!(pong.node, a.membership.node_id());
    assert_eq!(pong.service, "test");

    // Asking for another node id at that address is refused by the client itself.
    let wrong = client(&b, TEST)
        .connect(server.addr, Some(b.membership.node_id()))
        .await;
    assert!(wrong.is_err(), "connected to the wrong node");

    // Another mesh's node is refused by the server...
    assert!(ping_via(&client(&stranger, TEST), server.addr)
        .await
        .is_err());
    // ...and a member refuses a server of another mesh.
    let stranger_server = start_server(&stranger, TEST);
    let err = client(&b, TEST)
        .connect(stranger_server.addr, None)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");

    // A client without any certificate is refused.
    let anon = probe::anonymous_client(TEST.alpn).unwrap();
    let refused = async {
        let conn = anon.connect(server.addr, MESH_SERVER_NAME).unwrap().await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(
            &Frame::request(
                Ping::NAME,
                rpc::encode_body(&PingRequest { nonce: 1 }).unwrap(),
            )
            .encode(1 << 16)
            .unwrap(),
        )
        .await?;
        send.finish()?;
        let mut byte = [0u8; 1];
        recv.read_exact(&mut byte).await?;
        anyhow::Ok(())
    };
    assert!(tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .unwrap()
        .is_err());

    // A client of another service (ALPN) is refused.
    assert!(ping_via(&client(&b, OTHER), server.addr).await.is_err());

    // Every refusal was counted; the good connection still works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        server.metrics.refused(TEST) >= 3,
        "refused {}",
        server.metrics.refused(TEST)
    );
    rpc::call::<Ping>(&conn, &PingRequest { nonce: 43 }, &limits())
        .await
        .unwrap();
}

#[tokio::test]
async fn revoked_nodes_are_refused_at_the_handshake() {
    let a = founder();
    let b = enrol(&a);
    let server = start_server(&a, TEST);
    ping_via(&client(&b, TEST), server.addr).await.unwrap();
    a.membership
        .revocations
        .revoke(b.membership.node_id(), "test");
    assert!(ping_via(&client(&b, TEST), server.addr).await.is_err());
    // And b, told of a revoked server, refuses it too.
    let server_b = start_server(&b, TEST);
    let c = enrol(&a);
    c.membership
        .revocations
        .revoke(b.membership.node_id(), "test");
    assert!(client(&c, TEST).connect(server_b.addr, None).await.is_err());
}

#[tokio::test]
async fn unary_and_streaming_calls() {
    let a = founder();
    let b = enrol(&a);
    let server = start_server(&a, TEST);
    let conn = client(&b, TEST).connect(server.addr, None).await.unwrap();
    let blob = Blob((0..40_000u32).map(|i| i as u8).collect());
    assert_eq!(
        rpc::call::<Echo>(&conn, &blob, &limits()).await.unwrap(),
        blob
    );
    let mut ch = rpc::open::<Count>(&conn, &5, &limits()).await.unwrap();
    let mut got = Vec::new();
    while let Some(i) = ch.recv_item::<u32>().await.unwrap() {
        got.push(i);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    // Unknown methods get a typed error.
    struct Nope;
    impl Method for Nope {
        const NAME: &'static str = "test.nope";
        type Request = ();
        type Response = ();
    }
    match rpc::call::<Nope>(&conn, &(), &limits()).await {
        Err(RpcError::Remote(f)) => assert_eq!(f.code, ErrorCode::UnknownMethod),
        other => panic!("expected UnknownMethod, got {other:?}"),
    }
    // A request larger than the limit is refused by the sender before it leaves.
    let huge = Blob(vec![0; 100_000]);
    assert!(matches!(
        rpc::call::<Echo>(&conn, &huge, &limits()).await,
        Err(RpcError::Frame(_))
    ));
}

/// Sends raw bytes on a fresh stream and returns what the server answered (an Error frame is
/// expected), or the stream error.
async fn raw_exchange(
    conn: &quinn::Connection,
    bytes: &[u8],
    finish: bool,
) -> Result<Option<Frame>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    if finish {
        send.finish().map_err(|e| e.to_string())?;
    }
    let data = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let mut dec = rpc::FrameDecoder::new(1 << 20);
    dec.push(&data);
    dec.next_frame().map_err(|e| e.to_string())
}

#[tokio::test]
async fn bad_frames_close_one_stream_and_nothing_else() {
    let a = founder();
    let b = enrol(&a);
    let server = start_server(&a, TEST);
    let conn = client(&b, TEST).connect(server.addr, None).await.unwrap();
    let bystander = client(&b, TEST).connect(server.addr, None).await.unwrap();

    let good = Frame::request(
        Ping::NAME,
        rpc::encode_body(&PingRequest { nonce: 1 }).unwrap(),
    )
    .encode(1 << 16)
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("too large", (1u32 << 30).to_be_bytes().to_vec(), false),
        ("truncated", good[..good.len() - 3].to_vec(), true),
        (
            "garbled version",
            {
                let mut g = good.to_vec();
                g[4] = 99;
                g
            },
            true,
        ),
        (
            "garbled kind",
            {
                let mut g = good.to_vec();
                g[5] = 200;
                g
            },
            true,
        ),
        (
            "not a request",
            Frame::new(FrameKind::Item, Bytes::new())
                .encode(1 << 16)
                .unwrap()
                .to_vec(),
            true,
        ),
        (
            "body not the request type",
            Frame::request(
                Ping::NAME,
                Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
            )
            .encode(1 << 16)
            .unwrap()
            .to_vec(),
            true,
        ),
        ("short length", vec![0, 0], true),
    ];
    for (what, bytes, finish) in cases {
        match raw_exchange(&conn.conn, &bytes, finish).await {
            Ok(Some(f)) => {
                assert_eq!(f.kind, FrameKind::Error, "{what}: {f:?}");
                let fault: rpc::RpcFault = rpc::decode_body(&f.body).unwrap();
                assert!(
                    matches!(fault.code, ErrorCode::BadFrame | ErrorCode::BadRequest),
                    "{what}: {fault:?}"
                );
            }
            other => panic!("{what}: expected an Error frame, got {other:?}"),
        }
        // The same connection and a bystander connection both still work.
        rpc::call::<Ping>(&conn, &PingRequest { nonce: 2 }, &limits())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        rpc::call::<Ping>(&bystander, &PingRequest { nonce: 3 }, &limits())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // A stream that never sends a whole frame is dropped after the frame timeout.
    let silent = raw_exchange(&conn.conn, &[0, 0, 0, 9, 1], false).await;
    assert!(
        matches!(silent, Ok(Some(ref f)) if f.kind == FrameKind::Error),
        "{silent:?}"
    );

    // Random garbage, many times, over fresh streams: the server keeps serving.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..200 {
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = raw_exchange(&conn.conn, &bytes, true).await;
    }
    rpc::call::<Ping>(&conn, &PingRequest { nonce: 4 }, &limits())
        .await
        .unwrap();
    rpc::call::<Ping>(&bystander, &PingRequest { nonce: 5 }, &limits())
        .await
        .unwrap();
    assert!(server.metrics.bad_frames(TEST) >= 7);
}

/// The admission endpoint: a client without a certificate gets in when its pin matches the
/// mesh CA (or it has no pin), and is refused when the pin is another CA's; a member endpoint
/// still refuses such a client.
#[tokio::test]
async fn admission_endpoint_trusts_the_pinned_ca_only() {
    let mesh = founder();
    let other = founder();
    let cfg = TransportSection::default();
    let tls = MeshTls::new(&mesh.membership).unwrap();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let endpoint = MeshEndpoint::admission_server(loopback, &tls, &cfg).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let router = Arc::new(Router::new(
        ServiceSpec::ADMISSION,
        mesh.membership.node_id(),
    ));
    let metrics = RpcMetrics::register(&MetricsRegistry::new());
    let task = tokio::spawn(rpc::serve_anonymous(
        endpoint,
        router,
        Limits::default(),
        metrics,
        shutdown.clone(),
    ));
    let ping = PingRequest { nonce: 7 };
    let right = hyphae_core::transport::ca_pin(mesh.membership.ca_cert.as_ref());
    let wrong = hyphae_core::transport::ca_pin(other.membership.ca_cert.as_ref());
    for pin in [Some(right), None] {
        let client = MeshEndpoint::admission_client(pin, &cfg).unwrap();
        let conn = client.connect(addr, None).await.unwrap();
        assert_eq!(conn.peer, mesh.membership.node_id());
        let pong = rpc::call::<Ping>(&conn, &ping, &Limits::default())
            .await
            .unwrap();
        assert_eq!(pong.nonce, 7);
    }
    let client = MeshEndpoint::admission_client(Some(wrong), &cfg).unwrap();
    assert!(
        client.connect(addr, None).await.is_err(),
        "a server of another CA was trusted"
    );
    shutdown.cancel();
    task.await.unwrap();
}
