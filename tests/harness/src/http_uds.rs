//! A tiny blocking HTTP/1.1 client over Unix domain sockets.
//!
//! Nodes expose `/status` and `/metrics` on `<state-dir>/run/node.sock`; the
//! harness needs simple GETs and the odd JSON PUT, so a hundred lines of std beats
//! pulling an async HTTP stack into every test. It sends `Connection: close`
//! and understands `Content-Length`, chunked transfer-encoding and
//! read-to-EOF bodies, which covers what hyper/axum emit.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};

/// Default overall deadline for one request: long enough for a busy debug
/// build, short enough that a hung (e.g. SIGSTOPped) node fails a test fast.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Header sections larger than this are treated as garbage, not HTTP.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A fully read HTTP response; bodies are small (status, metrics) so they
/// are kept in memory.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The reason phrase from the status line (may be empty).
    pub reason: String,
    /// Headers in the order received; names keep their original case.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing already removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8), for `/metrics` and error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, with the raw body in the error if it is not.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {} body is not JSON: {:?}",
                self.status,
                truncate(&self.text(), 500)
            )
        })
    }
}

/// `GET uri` on the Unix socket at `socket` with [`DEFAULT_TIMEOUT`].
pub fn uds_get(socket: impl AsRef<Path>, uri: &str) -> Result<HttpResponse> {
    uds_get_timeout(socket, uri, DEFAULT_TIMEOUT)
}

/// `GET uri` on the Unix socket at `socket`; `timeout` bounds the whole
/// exchange (connect, write, read), so a stopped server cannot hang a test.
pub fn uds_get_timeout(
    socket: impl AsRef<Path>,
    uri: &str,
    timeout: Duration,
) -> Result<HttpResponse> {
    let socket = socket.as_ref();
    let deadline = Instant::now() + timeout;
    get_inner(socket, uri, deadline)
        .with_context(|| format!("GET {uri} on unix socket {}", socket.display()))
}

/// `PUT uri` with a JSON `body` on the Unix socket at `socket` ([`DEFAULT_TIMEOUT`]): for
/// tests that must read right after a write, without a CLI process's start in between.
pub fn uds_put_json(
    socket: impl AsRef<Path>,
    uri: &str,
    body: &serde_json::Value,
) -> Result<HttpResponse> {
    let socket = socket.as_ref();
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let body = body.to_string();
    request(socket, "PUT", uri, Some(&body), deadline)
        .with_context(|| format!("PUT {uri} on unix socket {}", socket.display()))
}

fn get_inner(socket: &Path, uri: &str, deadline: Instant) -> Result<HttpResponse> {
    request(socket, "GET", uri, None, deadline)
}

fn request(
    socket: &Path,
    method: &str,
    uri: &str,
    json_body: Option<&str>,
    deadline: Instant,
) -> Result<HttpResponse> {
    let stream = connect(socket, deadline)?;
    let mut request = format!(
        "{method} {uri} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hyphae-harness\r\n\
         Accept: */*\r\nConnection: close\r\n"
    );
    match json_body {
        Some(body) => request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => request.push_str("\r\n"),
    }
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .context("setting write timeout")?;
    (&stream)
        .write_all(request.as_bytes())
        .context("sending request")?;
    let mut reader = BufReader::new(DeadlineReader {
        stream: &stream,
        deadline,
    });
    read_response(&mut reader)
}

/// Connects without ever blocking past `deadline`: a blocking `connect` on a
/// Unix socket waits forever once a stopped server's backlog is full.
fn connect(path: &Path, deadline: Instant) -> Result<UnixStream> {
    let addr = UnixAddr::new(path).context("socket path too long or invalid")?;
    loop {
        let fd: OwnedFd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("creating unix socket")?;
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream
                    .set_nonblocking(false)
                    .context("making socket blocking")?;
                return Ok(stream);
            }
            // Backlog full (server not accepting): retry until the deadline.
            Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => {
                if Instant::now() >= deadline {
                    bail!("connect timed out (server not accepting connections)");
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(anyhow!(e).context("connect")),
        }
    }
}

fn remaining(deadline: Instant) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("timed out");
    }
    Ok(left)
}

/// A reader that re-arms the socket read timeout before every read so the
/// deadline covers the whole response, not each individual read.
struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out reading response",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(io::ErrorKind::TimedOut, "timed out reading response")
            } else {
                e
            }
        })
    }
}

/// Parses a status line, headers and body from `r`.
fn read_response<R: BufRead>(r: &mut R) -> Result<HttpResponse> {
    let mut head_bytes = 0;
    let status_line = read_line(r, &mut head_bytes)?;
    if status_line.is_empty() {
        bail!("connection closed before a response was received");
    }
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line: {status_line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_string();

    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut head_bytes)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("malformed header line: {line:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = HttpResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    };

    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        resp.body = read_chunked(r)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .with_context(|| format!("bad Content-Length {len:?}"))?;
        let mut body = vec![0; len];
        r.read_exact(&mut body).context("reading body")?;
        resp.body = body;
    } else {
        r.read_to_end(&mut resp.body).context("reading body")?;
    }
    Ok(resp)
}

/// Reads one CRLF- (or LF-) terminated line without the terminator; returns
/// an empty string at EOF.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)
        .context("reading response head")?;
    *budget += buf.len();
    if *budget > MAX_HEAD_BYTES {
        bail!("response head exceeds {MAX_HEAD_BYTES} bytes");
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf).context("response head is not UTF-8")
}

/// Decodes a chunked body (RFC 9112 §7.1), discarding extensions/trailers.
fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut budget = 0;
    loop {
        let line = read_line(r, &mut budget)?;
        let size_str = line.split(';').next().unwrap_or_default().trim();
        if size_str.is_empty() {
            bail!("connection closed inside a chunked body");
        }
        let size = usize::from_str_radix(size_str, 16)
            .with_context(|| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            // Trailers, up to the terminating empty line (or EOF).
            loop {
                if read_line(r, &mut budget)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .context("reading chunk data")?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)
            .context("reading chunk terminator")?;
        if &crlf != b"\r\n" {
            bail!("chunk not terminated by CRLF");
        }
        budget = 0;
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<HttpResponse> {
        read_response(&mut io::Cursor::new(raw.as_bytes().to_vec()))
    }

    #[test]
    fn content_length_body() {
        let r =
            parse("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"ready\":true}\nEXTRA").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json().unwrap()["ready"], true);
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let raw = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                   Transfer-Encoding: chunked\r\n\r\n\
                   5;ext=1\r\n{\"rea\r\n9\r\ndy\":true}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = parse(raw).unwrap();
        assert_eq!(r.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(r.text(), "{\"ready\":true}");
    }

    #[test]
    fn read_to_eof_and_no_reason() {
        let r = parse("HTTP/1.0 503\r\n\r\nbusy").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.text().as_str()),
            (503, "", "busy")
        );
        assert!(!r.is_success());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
