//! The QMP client: one connection to one QEMU, commands sent one at a time (memrep never needs
//! two in flight), events kept for whoever asks. Every wait is bounded: a dead or wedged QEMU
//! gives an error, never a hang.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::{timeout, Instant};

use super::wire::{encode_command, parse_message, QmpMessage, WireError};

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be reached before the deadline.
    #[error("cannot connect to QMP socket {path}: {source}")]
    Connect {
        /// The socket.
        path: String,
        /// The last connect error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed, or QEMU closed it.
    #[error("QMP socket: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU closed the connection (it exited).
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// QEMU did not answer in time.
    #[error("QMP: no answer to {0} in time")]
    Timeout(String),
    /// A line that is not QMP.
    #[error("QMP: {0}")]
    Wire(#[from] WireError),
    /// QEMU refused a command.
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's explanation.
        desc: String,
    },
    /// An answer of an unexpected shape.
    #[error("QMP {0}: unexpected answer")]
    Unexpected(String),
}

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct QmpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// Events seen while waiting for answers, oldest first (bounded).
    events: VecDeque<(String, Value)>,
    /// QEMU's version from the greeting.
    pub version: String,
    /// How long one command may take.
    pub command_timeout: Duration,
}

impl QmpClient {
    /// Connects (retrying until `deadline` while QEMU creates the socket), reads the greeting
    /// and enters command mode.
    pub async fn connect(path: &Path, wait: Duration) -> Result<QmpClient, QmpError> {
        let deadline = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect {
                        path: path.display().to_string(),
                        source: e,
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (r, w) = stream.into_split();
        let mut client = QmpClient {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            events: VecDeque::new(),
            version: String::new(),
            command_timeout: Duration::from_secs(30),
        };
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        match timeout(left, client.read_message())
            .await
            .map_err(|_| QmpError::Timeout("greeting".into()))??
        {
            QmpMessage::Greeting { version } => client.version = version,
            _ => return Err(QmpError::Unexpected("greeting".into())),
        }
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    async fn read_message(&mut self) -> Result<QmpMessage, QmpError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self.reader.read_until(b'\n', &mut line).await?;
            if n == 0 {
                return Err(QmpError::Closed);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(parse_message(&line)?);
        }
    }

    /// Runs one command and returns its `return` value.
    pub async fn execute(&mut self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer
            .write_all(&encode_command(id, command, args.as_ref()))
            .await?;
        let limit = self.command_timeout;
        let wait = async {
            loop {
                match self.read_message().await? {
                    QmpMessage::Return { id: Some(i), value } if i == id => return Ok(value),
                    QmpMessage::Error {
                        id: Some(i),
                        class,
                        desc,
                    } if i == id => {
                        return Err(QmpError::Command {
                            command: command.to_string(),
                            class,
                            desc,
                        })
                    }
                    QmpMessage::Event { name, data } => {
                        if self.events.len() >= 256 {
                            self.events.pop_front();
                        }
                        self.events.push_back((name, data));
                    }
                    _ => {} // answers to ids that are not ours: ignore
                }
            }
        };
        timeout(limit, wait)
            .await
            .map_err(|_| QmpError::Timeout(command.to_string()))?
    }

    /// Takes the events seen so far.
    pub fn drain_events(&mut self) -> Vec<(String, Value)> {
        self.events.drain(..).collect()
    }

    /// Pauses the vCPUs.
    pub async fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).await.map(drop)
    }

    /// Resumes the vCPUs.
    pub async fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont", None).await.map(drop)
    }

    /// The run state (`running`, `paused`, `postmigrate`, `inmigrate`, ...).
    pub async fn status(&mut self) -> Result<String, QmpError> {
        let v = self.execute("query-status", None).await?;
        v.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| QmpError::Unexpected("query-status".into()))
    }

    /// Turns migration capabilities on or off.
    pub async fn set_capability(&mut self, name: &str, on: bool) -> Result<(), QmpError> {
        self.execute(
            "migrate-set-capabilities",
            Some(json!({"capabilities": [{"capability": name, "state": on}]})),
        )
        .await
        .map(drop)
    }

    /// Starts an outgoing migration to `uri`.
    pub async fn migrate(&mut self, uri: &str) -> Result<(), QmpError> {
        self.execute("migrate", Some(json!({ "uri": uri })))
            .await
            .map(drop)
    }

    /// Starts the incoming migration of a QEMU started with `-incoming defer`.
    pub async fn migrate_incoming(&mut self, uri: &str) -> Result<(), QmpError> {
        self.execute("migrate-incoming", Some(json!({ "uri": uri })))
            .await
            .map(drop)
    }

    /// The migration status (`active`, `completed`, `failed`, ...), `none` before any.
    pub async fn migration_status(&mut self) -> Result<String, QmpError> {
        let v = self.execute("query-migrate", None).await?;
        Ok(v.get("status")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string())
    }

    /// Waits until an outgoing migration completes (polling; QEMU 7.2 has no blocking form).
    /// "Completed" is reported a moment before the VM leaves the `finish-migrate` run state, and
    /// a `cont` in between is refused ("Migration is not finalized yet"), so this also waits for
    /// the run state to settle.
    pub async fn wait_migration(&mut self, limit: Duration) -> Result<(), QmpError> {
        let deadline = Instant::now() + limit;
        loop {
            match self.migration_status().await?.as_str() {
                "completed" if self.status().await? != "finish-migrate" => return Ok(()),
                "failed" | "cancelled" => {
                    return Err(QmpError::Command {
                        command: "migrate".into(),
                        class: "MigrationFailed".into(),
                        desc: "the device-state migration failed".into(),
                    })
                }
                _ if Instant::now() >= deadline => return Err(QmpError::Timeout("migrate".into())),
                _ => tokio::time::sleep(Duration::from_micros(500)).await,
            }
        }
    }

    /// Asks QEMU to exit.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None).await {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    /// A scripted peer speaking QMP's framing (a test of the client against the real wire
    /// format, not a stand-in for QEMU: the QEMU tests in tests/ use the real one).
    async fn peer(listener: UnixListener, answers: Vec<&'static str>) {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\r\n").await.unwrap();
        let mut buf = vec![0u8; 4096];
        for a in answers {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            s.write_all(a.as_bytes()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn commands_events_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(peer(
            listener,
            vec![
                "{\"return\": {}, \"id\": 1}\r\n",
                "{\"event\": \"STOP\", \"timestamp\": {}}\r\n{\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": 2}\r\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 3}\r\n",
            ],
        ));
        let mut c = QmpClient::connect(&path, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.version, "7.2.0");
        assert_eq!(c.status().await.unwrap(), "paused");
        assert_eq!(c.drain_events()[0].0, "STOP");
        assert!(matches!(c.cont().await, Err(QmpError::Command { .. })));
        server.await.unwrap();
        // The peer is gone: a clear error, not a hang.
        assert!(c.stop().await.is_err());
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = QmpClient::connect(&dir.path().join("none.sock"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, QmpError::Connect { .. }));
    }
}
