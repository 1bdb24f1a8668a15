//! What the coordinator benchmark needs from a replicated key-value system, so that our
//! coordinator and etcd are driven by exactly the same measurement code.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use hyper::Method;

use crate::http_conn::HttpConn;

/// Where a client connects to reach one member.
#[derive(Debug, Clone)]
pub enum Target {
    /// A local Unix socket (our coordinator's local API on that member).
    Unix(PathBuf),
    /// A TCP address (etcd's client URL).
    Tcp(SocketAddr),
}

impl Target {
    /// Opens a keep-alive connection.
    pub async fn connect(&self) -> Result<HttpConn> {
        match self {
            Target::Unix(path) => HttpConn::unix(path).await,
            Target::Tcp(addr) => HttpConn::tcp(*addr).await,
        }
    }
}

/// One write, as the system's HTTP API spells it.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub method: Method,
    pub uri: String,
    pub body: Vec<u8>,
}

impl WriteRequest {
    /// Sends it; Ok(true) when the system acknowledged the write (2xx).
    pub async fn send(&self, conn: &mut HttpConn) -> Result<bool> {
        let (status, _) = conn
            .send(self.method.clone(), &self.uri, &self.body)
            .await?;
        Ok(status.is_success())
    }
}

/// A 3-member replicated key-value system under test.
pub trait KvSystem {
    /// Its name in the results.
    fn name(&self) -> &'static str;
    /// How many members it has.
    fn members(&self) -> usize;
    /// Where a client reaches `member`.
    fn target(&self, member: usize) -> Target;
    /// The write of `key = value`.
    fn put_request(&self, key: &str, value: &str) -> WriteRequest;
    /// The member that leads now, as the members report it (None while they disagree).
    fn leader(&self) -> impl std::future::Future<Output = Result<Option<usize>>>;
    /// Whether every member has applied the same log index (no write in flight): the steady
    /// state a failover is measured from.
    fn caught_up(&self) -> impl std::future::Future<Output = Result<bool>>;
    /// kill -9 of a member.
    fn kill(&mut self, member: usize) -> Result<()>;
    /// Starts a killed member again on its data; returns once its process serves.
    fn restart(&mut self, member: usize) -> Result<()>;
}
