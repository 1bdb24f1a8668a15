//! The gateway on a 3-node harness mesh, over HTTP/1.1, HTTP/2 and HTTP/3: only the public
//! routes answer without a login, the login and API tokens work on every node, malformed
//! requests get JSON errors and never take the service down, the namespace answers over the
//! API and DNS (`dig`), and the login is rate-limited.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use hyphae_harness::{wait_for, wait_until, Cluster, Node};
use support::data;
use support::https::{Client, Proto, ALL};

const PASSWORD: &str = "correct horse battery";
/// Small chunks so a file of a few hundred KiB spans several chunks.
/// A login budget that covers the test's own logins (3 per protocol per node), so the burst
/// at the end is what trips the limit.
const STORAGE: &str =
    "[storage]\nchunk_size = 65536\n[gateway]\nlogin_burst = 20\nlogin_per_minute = 30\n";

/// Waits until every node's chunkstore serves and has published itself as a storage node.
fn wait_storage(c: &Cluster) -> Result<()> {
    for n in c.nodes() {
        let sock = n.state_dir().join("run/chunkstore.sock");
        wait_until(Duration::from_secs(60), "chunkstore ready", || {
            Ok(hyphae_harness::uds_get(&sock, "/status").is_ok_and(|r| r.status == 200))
        })?;
    }
    wait_until(
        Duration::from_secs(60),
        "every storage node published",
        || {
            let sock = c[0].state_dir().join("run/coordinator.sock");
            let r = hyphae_harness::uds_get(&sock, "/kv/storage_nodes?prefix=")?;
            Ok(r.status == 200 && r.json()?["entries"].as_array().map(Vec::len) == Some(c.len()))
        },
    )
}

fn addr(n: &Node) -> SocketAddr {
    SocketAddr::new(n.ip().into(), 8443)
}

fn gateway_serving(n: &Node) -> Result<bool> {
    let sock = n.state_dir().join("run/gateway.sock");
    Ok(hyphae_harness::uds_get(&sock, "/status")
        .ok()
        .and_then(|r| r.json().ok())
        .is_some_and(|v| v["serving"] == true))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Logs in on `n` and returns the cookie pair.
async fn login(client: &Client, proto: Proto, n: SocketAddr) -> Result<String> {
    let body = serde_json::json!({ "password": PASSWORD }).to_string();
    let a = client
        .request(
            proto,
            n,
            "POST",
            "/api/v1/login",
            &[("content-type", "application/json")],
            Bytes::from(body),
        )
        .await?;
    ensure!(
        a.status == 200,
        "{proto:?} login: {} {:?}",
        a.status,
        a.body
    );
    let cookie = a.header("set-cookie").context("no cookie")?;
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        ensure!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

fn error_code(a: &support::https::Answer) -> String {
    a.json()["error"]["code"]
        .as_str()
        .unwrap_or("<no JSON error>")
        .to_string()
}

#[test]
fn gateway_api_over_h1_h2_h3_on_a_three_node_mesh() -> Result<()> {
    let c = Cluster::builder()
        .nodes(3)
        .binary(env!("CARGO_BIN_EXE_hyphae"))
        .build()?;
    support::form_mesh_with(&c, 2, STORAGE)?;
    for n in c.nodes() {
        wait_until(Duration::from_secs(60), "gateway serving", || {
            gateway_serving(n)
        })?;
    }
    wait_storage(&c)?;
    let pw = c[0].state_dir().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n"))?;
    c[0].cli_ok(&["passwd", "--password-file", pw.to_str().unwrap_or_default()])?;
    // The client trusts only the web CA, as exported by a node (a bee or prince asks its
    // coordinator for the published one when it does not hold the key).
    let ca = support::export_web_ca(&c[2])?;
    let held = std::fs::read_to_string(c[0].state_dir().join("identity/web-ca.crt"))?;
    ensure!(
        ca.trim() == held.trim(),
        "exported web CA differs from the founder's"
    );
    let client = Client::new(&ca)?;
    // The Ed25519 mesh CA signs no gateway certificate any more.
    let mesh_ca = std::fs::read_to_string(c[0].state_dir().join("identity/ca.crt"))?;
    let mesh_client = Client::new(&mesh_ca)?;
    let token = c[1]
        .cli_ok(&["api-token", "create", "--name", "test"])?
        .stdout_trimmed()
        .to_string();
    let rt = rt();
    rt.block_on(async {
        for proto in ALL {
            let refused = mesh_client
                .request(proto, addr(&c[0]), "GET", "/healthz", &[], Bytes::new())
                .await;
            ensure!(
                refused.is_err(),
                "{proto:?}: a client trusting only the mesh CA accepted the gateway"
            );
        }
        for proto in ALL {
            for (i, n) in c.nodes().iter().enumerate() {
                let a = addr(n);
                let get = |path: &'static str, hdrs: Vec<(&'static str, String)>| {
                    let client = client.clone();
                    async move {
                        let h: Vec<(&str, &str)> =
                            hdrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        client
                            .request(proto, a, "GET", path, &h, Bytes::new())
                            .await
                    }
                };
                // Public: health. Refused: everything under /api without a login.
                let h = get("/healthz", vec![]).await?;
                ensure!(h.status == 200, "{proto:?} n{i} healthz {}", h.status);
                let expect_version = match proto {
                    Proto::H1 => http::Version::HTTP_11,
                    Proto::H2 => http::Version::HTTP_2,
                    Proto::H3 => http::Version::HTTP_3,
                };
                ensure!(
                    h.version == expect_version,
                    "{proto:?}: answered as {:?}",
                    h.version
                );
                if proto != Proto::H3 {
                    let alt = h.header("alt-svc").unwrap_or_default();
                    ensure!(alt.contains("h3=\":8443\""), "{proto:?} alt-svc {alt:?}");
                }
                for path in [
                    "/api/v1/status",
                    "/api/v1/nodes",
                    "/metrics",
                    "/api/v1/openapi.json",
                ] {
                    let r = get(path, vec![]).await?;
                    ensure!(
                        r.status == 401 && error_code(&r) == "unauthenticated",
                        "{proto:?} n{i} {path}: {} {:?}",
                        r.status,
                        r.body
                    );
                }
                let forged = get(
                    "/api/v1/status",
                    vec![("cookie", "hyphae_session=1.2.3".into())],
                )
                .await?;
                ensure!(forged.status == 401, "forged cookie accepted");
                // Wrong password, malformed JSON.
                let wrong = client
                    .request(
                        proto,
                        a,
                        "POST",
                        "/api/v1/login",
                        &[("content-type", "application/json")],
                        Bytes::from_static(br#"{"password":"nope nope"}"#),
                    )
                    .await?;
                ensure!(
                    wrong.status == 401 && error_code(&wrong) == "wrong_password",
                    "{:?}",
                    wrong.body
                );
                let bad = client
                    .request(
                        proto,
                        a,
                        "POST",
                        "/api/v1/login",
                        &[("content-type", "application/json")],
                        Bytes::from_static(b"{\"password\":"),
                    )
                    .await?;
                ensure!(
                    bad.status == 400 && error_code(&bad) == "malformed_json",
                    "{} {:?}",
                    bad.status,
                    bad.body
                );
                // Log in; the cookie from this node works on the next one too.
                let cookie = login(&client, proto, a).await?;
                let other = addr(&c[(i + 1) % 3]);
                for target in [a, other] {
                    let s = client
                        .request(
                            proto,
                            target,
                            "GET",
                            "/api/v1/status",
                            &[("cookie", &cookie)],
                            Bytes::new(),
                        )
                        .await?;
                    ensure!(
                        s.status == 200,
                        "{proto:?} status: {} {:?}",
                        s.status,
                        s.body
                    );
                    let v = s.json();
                    ensure!(
                        v["mesh_id"].is_string() && v["services"]["coordinator"]["ready"] == true,
                        "{v}"
                    );
                }
                let nodes = get("/api/v1/nodes", vec![("cookie", cookie.clone())]).await?;
                ensure!(
                    nodes.json()["nodes"].as_array().map(Vec::len) == Some(3),
                    "{:?}",
                    nodes.body
                );
                let session = get(
                    "/api/v1/session",
                    vec![("authorization", format!("Bearer {token}"))],
                )
                .await?;
                ensure!(session.json()["via"] == "token", "{:?}", session.body);
                // JSON errors for unknown routes and wrong methods; metrics aggregate.
                let missing = get("/api/v1/nope", vec![("cookie", cookie.clone())]).await?;
                ensure!(
                    missing.status == 404 && error_code(&missing) == "not_found",
                    "{:?}",
                    missing.body
                );
                let wrong_method = client
                    .request(
                        proto,
                        a,
                        "DELETE",
                        "/api/v1/status",
                        &[("cookie", &cookie)],
                        Bytes::new(),
                    )
                    .await?;
                ensure!(
                    wrong_method.status == 405 && error_code(&wrong_method) == "method_not_allowed",
                    "{} {:?}",
                    wrong_method.status,
                    wrong_method.body
                );
                let metrics = get("/metrics", vec![("cookie", cookie.clone())]).await?;
                let text = String::from_utf8_lossy(&metrics.body);
                // One document, every family once, samples labelled by service (`hyphae node`
                // shares one registry, so `node`), the coordinator's families included.
                ensure!(
                    metrics.status == 200
                        && text.ends_with("# EOF\n")
                        && text.matches("# EOF").count() == 1
                        && text.contains("service=\"node\"")
                        && text.contains("hyphae_rpc_"),
                    "metrics: {text}"
                );
                let mut types = std::collections::HashSet::new();
                for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
                    ensure!(types.insert(line.to_string()), "family repeated: {line}");
                }
                let openapi = get("/api/v1/openapi.json", vec![("cookie", cookie.clone())]).await?;
                ensure!(openapi.json()["openapi"] == "3.1.0", "openapi");
                // Server-Sent Events: the first nodes and status events arrive.
                let (code, text) = client
                    .read_until(
                        proto,
                        a,
                        "/api/v1/stream",
                        &[("cookie", &cookie)],
                        "event: status",
                    )
                    .await?;
                ensure!(
                    code == 200 && text.contains("event: nodes") && text.contains("event: status"),
                    "{proto:?} SSE: {code} {text:?}"
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;

    // Files: uploaded through one node, downloaded through another, on every protocol; Range.
    rt.block_on(async {
        let auth = format!("Bearer {token}");
        for (p, proto) in ALL.into_iter().enumerate() {
            let up = addr(&c[p % 3]);
            let down = addr(&c[(p + 1) % 3]);
            let bytes = data(300 * 1024 + 17 * p, p as u64 + 1);
            let path = format!("/api/v1/files/gw/{proto:?}/blob.bin");
            let put = client
                .request(
                    proto,
                    up,
                    "PUT",
                    &path,
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/octet-stream"),
                    ],
                    Bytes::from(bytes.clone()),
                )
                .await?;
            ensure!(
                put.status == 201,
                "{proto:?} put: {} {:?}",
                put.status,
                String::from_utf8_lossy(&put.body)
            );
            ensure!(put.json()["size"] == bytes.len(), "{:?}", put.body);
            for dproto in ALL {
                let got = client
                    .request(
                        dproto,
                        down,
                        "GET",
                        &path,
                        &[("authorization", &auth)],
                        Bytes::new(),
                    )
                    .await?;
                ensure!(
                    got.status == 200 && got.body.as_ref() == bytes.as_slice(),
                    "{proto:?}->{dproto:?} download: {} {} bytes",
                    got.status,
                    got.body.len()
                );
                let range = client
                    .request(
                        dproto,
                        down,
                        "GET",
                        &path,
                        &[("authorization", &auth), ("range", "bytes=70000-70099")],
                        Bytes::new(),
                    )
                    .await?;
                ensure!(
                    range.status == 206 && range.body.as_ref() == &bytes[70000..70100],
                    "{dproto:?} range: {} {:?}",
                    range.status,
                    range.header("content-range")
                );
                ensure!(
                    range
                        .header("content-range")
                        .is_some_and(|v| v.starts_with("bytes 70000-70099/")),
                    "content-range"
                );
            }
            let bad_range = client
                .request(
                    proto,
                    down,
                    "GET",
                    &path,
                    &[("authorization", &auth), ("range", "bytes=zz")],
                    Bytes::new(),
                )
                .await?;
            ensure!(
                bad_range.status == 416 && bad_range.json()["error"]["code"].is_string(),
                "bad range: {} {:?}",
                bad_range.status,
                bad_range.body
            );
        }
        let list = client
            .request(
                Proto::H2,
                addr(&c[2]),
                "GET",
                "/api/v1/files?prefix=gw/",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        ensure!(
            list.json()["files"].as_array().map(Vec::len) == Some(3),
            "{:?}",
            list.body
        );
        let stat = client
            .request(
                Proto::H2,
                addr(&c[0]),
                "GET",
                "/api/v1/stat/gw/H1/blob.bin",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        ensure!(
            stat.status == 200 && stat.json()["health"].is_string(),
            "{:?}",
            stat.body
        );
        let del = client
            .request(
                Proto::H3,
                addr(&c[1]),
                "DELETE",
                "/api/v1/files/gw/H1/blob.bin",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        ensure!(del.status == 200, "{:?}", del.body);
        let gone = client
            .request(
                Proto::H1,
                addr(&c[2]),
                "GET",
                "/api/v1/files/gw/H1/blob.bin",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        ensure!(
            gone.status == 404 && error_code(&gone) == "not_found",
            "{} {:?}",
            gone.status,
            gone.body
        );
        let storage = client
            .request(
                Proto::H1,
                addr(&c[2]),
                "GET",
                "/api/v1/storage",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        ensure!(
            storage.json()["capacity_bytes"].is_number(),
            "{:?}",
            storage.body
        );
        Ok::<_, anyhow::Error>(())
    })?;

    // Names: set through the API on n0, resolved by the API on n2 and by DNS on n1.
    rt.block_on(async {
        let a0 = addr(&c[0]);
        let cookie = login(&client, Proto::H2, a0).await?;
        // An election on a loaded machine can leave a write's outcome unknown (504, `timeout`):
        // the API says so and the client (here) sends the idempotent PUT again.
        let mut tries = 0;
        let put = loop {
            let put = client
                .request(
                    Proto::H2,
                    a0,
                    "PUT",
                    "/api/v1/names/wiki",
                    &[("cookie", &cookie), ("content-type", "application/json")],
                    Bytes::from_static(br#"{"target":"10.1.2.3"}"#),
                )
                .await?;
            tries += 1;
            if put.status == 504 && error_code(&put) == "timeout" && tries < 5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            break put;
        };
        ensure!(put.status == 200, "{:?}", put.body);
        let bad = client
            .request(
                Proto::H2,
                a0,
                "PUT",
                "/api/v1/names/hypermesh",
                &[("cookie", &cookie), ("content-type", "application/json")],
                Bytes::from_static(br#"{"target":"10.1.2.3"}"#),
            )
            .await?;
        ensure!(bad.status == 400, "built-in names are reserved");
        Ok::<_, anyhow::Error>(())
    })?;
    let a2 = addr(&c[2]);
    wait_for(Duration::from_secs(20), "wiki resolves on n2", || {
        rt.block_on(async {
            let cookie = login(&client, Proto::H3, a2).await?;
            let r = client
                .request(
                    Proto::H3,
                    a2,
                    "GET",
                    "/api/v1/resolve/wiki",
                    &[("cookie", &cookie)],
                    Bytes::new(),
                )
                .await?;
            Ok((r.status == 200 && r.json()["records"][0]["value"] == "10.1.2.3").then_some(()))
        })
    })?;
    wait_until(Duration::from_secs(30), "name set on n2", || {
        Ok(c[2]
            .cli(&["name", "set", "store", "chunkstore.services"])?
            .success())
    })?;
    let listed = c[0].cli_ok(&["name", "ls"])?;
    ensure!(listed.stdout.contains("wiki\t10.1.2.3"), "{listed}");

    let dig = |n: &Node, name: &str, ty: &str| -> Result<(String, String)> {
        let server = format!("@{}", c[1].ip());
        let out = n.exec(
            "dig",
            &[
                server.as_str(),
                "-p",
                "8053",
                "+tries=3",
                "+time=3",
                name,
                ty,
            ],
        )?;
        let short = n.exec(
            "dig",
            &[
                server.as_str(),
                "-p",
                "8053",
                "+short",
                "+tries=3",
                "+time=3",
                name,
                ty,
            ],
        )?;
        Ok((out.stdout.clone(), short.stdout.trim().to_string()))
    };
    let id2 = support::node_id(&c[2])?;
    let (_, short) = dig(&c[0], &format!("{id2}.nodes.hyphae.internal"), "A")?;
    ensure!(short == c[2].ip().to_string(), "node name: {short:?}");
    let (_, short) = dig(&c[0], "wiki.hyphae.internal", "A")?;
    ensure!(short == "10.1.2.3", "user name: {short:?}");
    // Each node's gateway registers its services once it is serving; on a loaded machine the
    // last registration can still be on its way.
    let mut short = String::new();
    wait_until(Duration::from_secs(30), "three coordinators in SRV", || {
        short = dig(&c[0], "coordinator.services.hyphae.internal", "SRV")?.1;
        Ok(short.lines().count() == 3)
    })
    .with_context(|| format!("service SRV: {short:?}"))?;
    ensure!(short.contains("7441"), "service SRV: {short:?}");
    let (_, short) = dig(&c[0], "gateway.services.hyphae.internal", "A")?;
    ensure!(short.lines().count() == 3, "service A: {short:?}");
    let (_, short) = dig(&c[0], "hypermesh.hyphae.internal", "A")?;
    let mut ips: Vec<String> = short.lines().map(str::to_string).collect();
    ips.sort();
    let mut want: Vec<String> = c.ips().iter().map(|i| i.to_string()).collect();
    want.sort();
    ensure!(ips == want, "built-in name: {ips:?}");
    let (full, _) = dig(&c[0], "nothing-here.hyphae.internal", "A")?;
    ensure!(full.contains("NXDOMAIN"), "unknown name: {full}");

    // The login is rate-limited per client address: a burst of wrong passwords ends in 429.
    rt.block_on(async {
        let a1 = addr(&c[1]);
        let mut limited = false;
        for _ in 0..40 {
            let r = client
                .request(
                    Proto::H1,
                    a1,
                    "POST",
                    "/api/v1/login",
                    &[("content-type", "application/json")],
                    Bytes::from_static(br#"{"password":"wrong wrong"}"#),
                )
                .await?;
            if r.status == 429 {
                ensure!(
                    error_code(&r) == "rate_limited" && r.header("retry-after").is_some(),
                    "{:?}",
                    r.body
                );
                limited = true;
                break;
            }
        }
        ensure!(limited, "no 429 after 40 wrong logins");
        Ok::<_, anyhow::Error>(())
    })?;
    // Nothing above took a gateway down.
    for n in c.nodes() {
        ensure!(
            gateway_serving(n)?,
            "{} gateway stopped:\n{}",
            n.name(),
            n.log_tail(40)
        );
    }
    Ok(())
}
