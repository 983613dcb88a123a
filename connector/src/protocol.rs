//! Frames and messages of the connector wire protocol (no I/O here).
//!
//! Every message is a frame: a 4-byte big-endian length followed by that many
//! bytes of JSON. The base protocol (compatible with the seed) has two
//! messages: the client's request `{"argv": [...]}`, sent in the same
//! `sendmsg()` as its three descriptors, and the server's reply
//! `{"exit_code": N}`. sdme adds one optional message, `{"signal": N}`, that a
//! client may send on the same connection after its request to forward a
//! signal; a server that does not know it simply never reads it. It also
//! adds two optional fields: `"error"` in replies and `"tty": true` in
//! requests (take the terminal as controlling terminal; absent = false).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Size of the big-endian length prefix.
pub const HEADER_LEN: usize = 4;
/// Largest accepted JSON body. An argv bigger than this is not a command line
/// any kernel would accept either (ARG_MAX is 2 MiB including environment).
pub const MAX_FRAME: usize = 1 << 20;
/// Descriptors carried by a request: stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 3;
/// Signals a client may forward; anything else is refused by the server.
pub const FORWARDED_SIGNALS: [i32; 6] = [1, 2, 3, 15, 10, 12]; // HUP INT QUIT TERM USR1 USR2

/// Exit code in the reply to a connection refused because the server (or
/// the peer's uid) already has as many sessions as allowed (EX_TEMPFAIL:
/// try again later).
pub const EXIT_BUSY: i32 = 75;

/// The client's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client's arguments without its own program name.
    pub argv: Vec<String>,
    /// sdme's addition: the client asks the command to take its stdin
    /// terminal as controlling terminal. Absent (seed clients, and sdme
    /// clients that do not ask) means no; never sent when false, so such a
    /// request is byte for byte the seed's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
}

/// The server's answer: the command's exit status (128+N when killed by
/// signal N). `error` is sdme's addition, set when the request was refused or
/// the command could not be started; clients that do not know it ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// sdme's optional follow-up message: deliver signal N to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalMessage {
    pub signal: i32,
}

/// Why a frame or message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The length prefix is larger than [`MAX_FRAME`].
    Oversize(usize),
    /// The length prefix is zero: there is no JSON to read.
    Empty,
    /// The peer closed the connection in the middle of a frame.
    Truncated { expected: usize, got: usize },
    /// The body is not JSON, or not the expected message.
    Malformed(String),
    /// The request did not carry exactly three descriptors.
    WrongFdCount(usize),
    /// The kernel dropped descriptors because the peer sent too many.
    FdsTruncated,
    /// The peer sent descriptors with a message that must carry none.
    UnexpectedFds(usize),
    /// The peer sent ancillary data other than descriptors.
    UnexpectedControl,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversize(n) => write!(f, "frame of {n} bytes exceeds the limit of {MAX_FRAME}"),
            Self::Empty => write!(f, "frame of length 0"),
            Self::Truncated { expected, got } => {
                write!(f, "connection closed after {got} of {expected} bytes")
            }
            Self::Malformed(why) => write!(f, "malformed message: {why}"),
            Self::WrongFdCount(n) => {
                write!(
                    f,
                    "request carried {n} file descriptors, expected {REQUEST_FDS}"
                )
            }
            Self::FdsTruncated => write!(f, "too many file descriptors (control data truncated)"),
            Self::UnexpectedFds(n) => write!(f, "{n} file descriptors sent outside the request"),
            Self::UnexpectedControl => write!(f, "ancillary data other than file descriptors"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Encodes one message as a frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let body = serde_json::to_vec(message).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtocolError::Oversize(body.len()));
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    // Cannot truncate: body.len() <= MAX_FRAME < u32::MAX.
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Validates a length prefix and returns the body length it announces.
pub fn body_length(header: [u8; HEADER_LEN]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(ProtocolError::Empty);
    }
    if len > MAX_FRAME {
        return Err(ProtocolError::Oversize(len));
    }
    Ok(len)
}

/// Decodes a whole frame held in memory (header and body, nothing more).
pub fn split_frame(frame: &[u8]) -> Result<&[u8], ProtocolError> {
    let header: [u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ProtocolError::Truncated {
            expected: HEADER_LEN,
            got: frame.len(),
        })?;
    let len = body_length(header)?;
    let body = &frame[HEADER_LEN..];
    if body.len() < len {
        return Err(ProtocolError::Truncated {
            expected: HEADER_LEN + len,
            got: frame.len(),
        });
    }
    if body.len() > len {
        return Err(ProtocolError::Malformed(format!(
            "{} bytes after the end of the frame",
            body.len() - len
        )));
    }
    Ok(body)
}

/// Parses a request body; every argument must be a string without NUL bytes,
/// and `tty`, when present, a boolean. Unknown fields are ignored.
pub fn decode_request(body: &[u8]) -> Result<Request, ProtocolError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::Malformed(format!("not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ProtocolError::Malformed("request is not a JSON object".into()))?;
    let tty = match object.get("tty") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ProtocolError::Malformed("\"tty\" is not a boolean".into()))?,
    };
    let argv = object
        .get("argv")
        .ok_or_else(|| ProtocolError::Malformed("request has no \"argv\"".into()))?
        .as_array()
        .ok_or_else(|| ProtocolError::Malformed("\"argv\" is not an array".into()))?;
    let mut out = Vec::with_capacity(argv.len());
    for (i, arg) in argv.iter().enumerate() {
        let s = arg
            .as_str()
            .ok_or_else(|| ProtocolError::Malformed(format!("argv[{i}] is not a string")))?;
        if s.contains('\0') {
            return Err(ProtocolError::Malformed(format!(
                "argv[{i}] contains a NUL byte"
            )));
        }
        out.push(s.to_owned());
    }
    Ok(Request { argv: out, tty })
}

/// Parses the server's reply.
pub fn decode_reply(body: &[u8]) -> Result<Reply, ProtocolError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::Malformed(format!("bad reply: {e}")))?;
    if !(0..=255).contains(&reply.exit_code) {
        return Err(ProtocolError::Malformed(format!(
            "exit code {} out of range 0-255",
            reply.exit_code
        )));
    }
    Ok(reply)
}

/// Parses a follow-up message; only forwardable signals are accepted.
pub fn decode_signal(body: &[u8]) -> Result<SignalMessage, ProtocolError> {
    let msg: SignalMessage = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::Malformed(format!("bad follow-up message: {e}")))?;
    if !FORWARDED_SIGNALS.contains(&msg.signal) {
        return Err(ProtocolError::Malformed(format!(
            "signal {} may not be forwarded",
            msg.signal
        )));
    }
    Ok(msg)
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
