//! QMP messages as they arrive on the socket, one JSON object per line: the greeting, command
//! answers (`return` or `error`, matched by `id`) and asynchronous events. Parsing is separate
//! from the socket so it can be tested and fuzzed without QEMU.

use serde::Deserialize;
use serde_json::Value;

/// One message from QEMU.
#[derive(Debug, Clone, PartialEq)]
pub enum QmpMessage {
    /// The first line after connecting: QEMU's version and capabilities.
    Greeting {
        /// `major.minor.micro`.
        version: String,
    },
    /// A command succeeded.
    Return {
        /// The command id we sent, if any.
        id: Option<u64>,
        /// The command's result (`{}` for most commands).
        value: Value,
    },
    /// A command failed.
    Error {
        /// The command id we sent, if any.
        id: Option<u64>,
        /// QEMU's error class (`GenericError`, `CommandNotFound`, ...).
        class: String,
        /// QEMU's explanation.
        desc: String,
    },
    /// An asynchronous event (`STOP`, `RESUME`, `SHUTDOWN`, `MIGRATION`, ...).
    Event {
        /// The event name.
        name: String,
        /// Its data, `null` when absent.
        data: Value,
    },
}

/// Why a line is not a QMP message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but none of the QMP message shapes.
    #[error("not a QMP message: {0}")]
    Shape(String),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "QMP")]
    qmp: Option<RawGreeting>,
    #[serde(rename = "return")]
    ret: Option<Value>,
    error: Option<RawError>,
    event: Option<String>,
    data: Option<Value>,
    id: Option<Value>,
}

#[derive(Deserialize)]
struct RawGreeting {
    version: RawVersion,
}

#[derive(Deserialize)]
struct RawVersion {
    qemu: RawTriple,
}

#[derive(Deserialize)]
struct RawTriple {
    major: u64,
    minor: u64,
    micro: u64,
}

#[derive(Deserialize)]
struct RawError {
    class: String,
    desc: String,
}

/// Parses one line from the QMP socket.
pub fn parse_message(line: &[u8]) -> Result<QmpMessage, WireError> {
    let raw: Raw = serde_json::from_slice(line)?;
    // Ids we send are numbers; anything else is not ours and counts as absent.
    let id = raw.id.as_ref().and_then(Value::as_u64);
    if let Some(g) = raw.qmp {
        let v = g.version.qemu;
        return Ok(QmpMessage::Greeting {
            version: format!("{}.{}.{}", v.major, v.minor, v.micro),
        });
    }
    if let Some(value) = raw.ret {
        return Ok(QmpMessage::Return { id, value });
    }
    if let Some(e) = raw.error {
        return Ok(QmpMessage::Error {
            id,
            class: e.class,
            desc: e.desc,
        });
    }
    if let Some(name) = raw.event {
        return Ok(QmpMessage::Event {
            name,
            data: raw.data.unwrap_or(Value::Null),
        });
    }
    Err(WireError::Shape(
        String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned(),
    ))
}

/// Encodes a command with its id as one line (with the trailing newline).
pub fn encode_command(id: u64, execute: &str, arguments: Option<&Value>) -> Vec<u8> {
    let mut v = serde_json::json!({ "execute": execute, "id": id });
    if let Some(a) = arguments {
        v["arguments"] = a.clone();
    }
    let mut line = v.to_string().into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greeting() {
        let line = br#"{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}}"#;
        assert_eq!(
            parse_message(line).unwrap(),
            QmpMessage::Greeting {
                version: "7.2.19".into()
            }
        );
    }

    #[test]
    fn return_error_event() {
        assert_eq!(
            parse_message(br#"{"return": {"status": "running", "running": true}, "id": 4}"#)
                .unwrap(),
            QmpMessage::Return {
                id: Some(4),
                value: json!({"status": "running", "running": true})
            }
        );
        assert_eq!(
            parse_message(br#"{"id": 5, "error": {"class": "GenericError", "desc": "nope"}}"#)
                .unwrap(),
            QmpMessage::Error {
                id: Some(5),
                class: "GenericError".into(),
                desc: "nope".into()
            }
        );
        assert_eq!(
            parse_message(br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#)
                .unwrap(),
            QmpMessage::Event {
                name: "STOP".into(),
                data: Value::Null
            }
        );
    }

    #[test]
    fn rubbish_is_an_error() {
        assert!(parse_message(b"{").is_err());
        assert!(parse_message(b"[1,2]").is_err());
        assert!(matches!(
            parse_message(br#"{"hello": 1}"#),
            Err(WireError::Shape(_))
        ));
        // A string id is not one of ours.
        assert_eq!(
            parse_message(br#"{"return": {}, "id": "x"}"#).unwrap(),
            QmpMessage::Return {
                id: None,
                value: json!({})
            }
        );
    }

    #[test]
    fn encoding_round_trips_through_serde() {
        let line = encode_command(7, "migrate", Some(&json!({"uri": "exec:cat"})));
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"execute": "migrate", "id": 7, "arguments": {"uri": "exec:cat"}})
        );
    }
}
