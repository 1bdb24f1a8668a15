//! Garage (built from crates.io by `scripts/garage.sh`) as the object-store anchor: three
//! daemons, one per network namespace of the same harness cluster our nodes use, replication
//! factor 2 (one node may be lost, like our 2+1), one zone, a bucket and an access key made
//! with Garage's own CLI.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyphae_harness::Cluster;

/// Garage's S3 API port inside each namespace.
pub const S3_PORT: u16 = 3900;
const RPC_PORT: u16 = 3901;
/// The region name the S3 requests are signed for.
pub const REGION: &str = "garage";
/// The bucket the benchmark writes into.
pub const BUCKET: &str = "bench";

/// A running 3-node Garage cluster with a bucket and a key.
pub struct GarageCluster<'a> {
    cluster: &'a Cluster,
    garage: PathBuf,
    children: Vec<Child>,
    /// The S3 access key id.
    pub key_id: String,
    /// The S3 secret key.
    pub secret: String,
}

fn config_path(cluster: &Cluster, i: usize) -> PathBuf {
    cluster[i].state_dir().join("garage/garage.toml")
}

/// Garage's configuration for node `i`: LMDB metadata, replication 2, Garage's defaults for
/// fsync (`metadata_fsync`/`data_fsync` off) unless `fsync` is set.
fn config(cluster: &Cluster, i: usize, secret: &str, fsync: bool) -> String {
    let dir = cluster[i].state_dir().join("garage");
    let ip = cluster[i].ip();
    format!(
        "metadata_dir = \"{meta}\"\n\
         data_dir = \"{data}\"\n\
         db_engine = \"lmdb\"\n\
         replication_factor = 2\n\
         metadata_fsync = {fsync}\n\
         data_fsync = {fsync}\n\
         rpc_bind_addr = \"{ip}:{RPC_PORT}\"\n\
         rpc_public_addr = \"{ip}:{RPC_PORT}\"\n\
         rpc_secret = \"{secret}\"\n\
         [s3_api]\n\
         s3_region = \"{REGION}\"\n\
         api_bind_addr = \"{ip}:{S3_PORT}\"\n\
         root_domain = \".s3.garage\"\n",
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    )
}

impl<'a> GarageCluster<'a> {
    /// Starts one Garage daemon per namespace of `cluster`, connects them, applies a layout of
    /// three equal nodes in one zone and creates the bucket and key.
    pub fn start(cluster: &'a Cluster, garage: &Path, fsync: bool) -> Result<GarageCluster<'a>> {
        let version = Command::new(garage)
            .arg("--version")
            .output()
            .with_context(|| {
                format!("running {} (scripts/garage.sh builds it)", garage.display())
            })?;
        if !version.status.success() {
            bail!("{} --version failed", garage.display());
        }
        let secret = data_encoding::HEXLOWER.encode(&rand::random::<[u8; 32]>());
        let mut g = GarageCluster {
            cluster,
            garage: garage.to_path_buf(),
            children: Vec::new(),
            key_id: String::new(),
            secret: String::new(),
        };
        for i in 0..cluster.len() {
            let dir = cluster[i].state_dir().join("garage");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(config_path(cluster, i), config(cluster, i, &secret, fsync))?;
            let log = File::create(dir.join("garage.log"))?;
            let child = Command::new("ip")
                .args(["netns", "exec", cluster[i].netns()])
                .arg(garage)
                .arg("-c")
                .arg(config_path(cluster, i))
                .arg("server")
                .env("RUST_LOG", "garage=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting garage")?;
            g.children.push(child);
        }
        let ids = (0..cluster.len())
            .map(|i| g.retry_cli(i, &["node", "id", "-q"]))
            .collect::<Result<Vec<_>>>()?;
        for id in ids.iter().skip(1) {
            g.retry_cli(0, &["node", "connect", id.trim()])?;
        }
        for id in &ids {
            let short = id.trim().split('@').next().unwrap_or_default().to_string();
            g.retry_cli(0, &["layout", "assign", "-z", "dc1", "-c", "10G", &short])?;
        }
        g.retry_cli(0, &["layout", "apply", "--version", "1"])?;
        g.retry_cli(0, &["bucket", "create", BUCKET])?;
        let key = g.retry_cli(0, &["key", "create", "bench-key"])?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .ok_or_else(|| anyhow!("no {name:?} in `garage key create` output: {key}"))
        };
        g.key_id = field("Key ID:")?;
        g.secret = field("Secret key:")?;
        g.retry_cli(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                BUCKET,
                "--key",
                "bench-key",
            ],
        )?;
        Ok(g)
    }

    fn cli(&self, i: usize, args: &[&str]) -> Result<Output> {
        Ok(Command::new("ip")
            .args(["netns", "exec", self.cluster[i].netns()])
            .arg(&self.garage)
            .arg("-c")
            .arg(config_path(self.cluster, i))
            .args(args)
            .output()?)
    }

    /// Runs a Garage CLI command on node `i` until it succeeds (the daemon takes a moment to
    /// listen, the layout a moment to spread); returns its stdout.
    fn retry_cli(&self, i: usize, args: &[&str]) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.cli(i, args)?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if Instant::now() > deadline {
                bail!(
                    "garage {}: {}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The S3 endpoint of node `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{S3_PORT}", self.cluster[i].ip())
    }

    /// `garage --version`'s first line.
    pub fn version(&self) -> String {
        Command::new(&self.garage)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for GarageCluster<'_> {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
