//! Moving frames and descriptors over a unix stream socket.
//!
//! Requests are read with `recvmsg()` so that the three descriptors that
//! arrive with the first byte are collected (`MSG_CMSG_CLOEXEC`, so no child
//! ever inherits them by accident); every later read also uses `recvmsg()`
//! so that descriptors smuggled into any other message are received and
//! closed instead of piling up in the socket. A frame stops being read as
//! soon as it carries more descriptors than it may, so a peer cannot make
//! the reader hold an unbounded number of them.
//!
//! A receive may be given an absolute deadline: the whole frame (header,
//! body, descriptors) must have arrived by then, however the peer spaces its
//! bytes, so a client that drips one byte at a time is cut off.

use crate::protocol::{self, ProtocolError, Request, HEADER_LEN, REQUEST_FDS};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::Serialize;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

/// Room for more descriptors than a request may carry, so that "too many"
/// is reported as such rather than as a truncation.
const FD_ROOM: usize = 8;

/// A failure to receive a message.
#[derive(Debug)]
pub enum RecvError {
    /// The peer closed the connection before sending anything.
    Closed,
    /// The deadline passed before the whole frame had arrived (`got` bytes
    /// of it had).
    Deadline { got: usize },
    /// The socket failed.
    Io(io::Error),
    /// The peer sent something that is not a valid message.
    Protocol(ProtocolError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => write!(f, "connection closed before a message"),
            Self::Deadline { got: 0 } => write!(f, "nothing received before the deadline"),
            Self::Deadline { got } => {
                write!(
                    f,
                    "message incomplete at the deadline ({got} bytes received)"
                )
            }
            Self::Io(e) => write!(f, "{e}"),
            Self::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RecvError {}

impl From<ProtocolError> for RecvError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

/// A request with the client's stdin, stdout and stderr.
#[derive(Debug)]
pub struct ReceivedRequest {
    pub request: Request,
    pub stdio: [OwnedFd; REQUEST_FDS],
}

/// Sends the request and the three descriptors in one `sendmsg()`.
pub fn send_request(
    socket: impl AsFd,
    stdio: [BorrowedFd<'_>; REQUEST_FDS],
    request: &Request,
) -> io::Result<()> {
    let frame = protocol::encode(request).map_err(io::Error::other)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(REQUEST_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&stdio)) {
        return Err(io::Error::other(
            "control buffer too small for three descriptors",
        ));
    }
    let sent = loop {
        match sendmsg(
            &socket,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => break n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The descriptors went with the first byte; the rest is plain data.
    send_all(&socket, &frame[sent..])
}

/// Sends one message as a frame.
pub fn send_message<T: Serialize>(socket: impl AsFd, message: &T) -> io::Result<()> {
    let frame = protocol::encode(message).map_err(io::Error::other)?;
    send_all(&socket, &frame)
}

/// Sends one message as a frame without ever blocking: for refusals sent
/// from the accepting thread on a fresh connection, whose send buffer is
/// empty, so a short frame always fits; anything else is an error.
pub fn send_message_nowait<T: Serialize>(socket: impl AsFd, message: &T) -> io::Result<()> {
    let frame = protocol::encode(message).map_err(io::Error::other)?;
    loop {
        match rustix::net::send(&socket, &frame, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) if n == frame.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "only {n} of {} bytes could be sent",
                    frame.len()
                )))
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn send_all(socket: &impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::net::send(socket, data, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives a request: a frame with exactly three descriptors, complete by
/// `deadline` (`None`: no bound).
pub fn recv_request(
    socket: impl AsFd,
    deadline: Option<Instant>,
) -> Result<ReceivedRequest, RecvError> {
    let mut fds = Vec::new();
    let limit = FdLimit {
        max: REQUEST_FDS,
        error: ProtocolError::WrongFdCount,
    };
    let body = recv_frame(&socket, &mut fds, limit, deadline)?.ok_or(RecvError::Closed)?;
    let request = protocol::decode_request(&body)?;
    let stdio: [OwnedFd; REQUEST_FDS] = match fds.try_into() {
        Ok(stdio) => stdio,
        Err(fds) => return Err(ProtocolError::WrongFdCount(fds.len()).into()),
    };
    Ok(ReceivedRequest { request, stdio })
}

/// Receives one frame that must carry no descriptors, complete by `deadline`
/// (`None`: no bound); `None` on a clean end of stream between frames.
pub fn recv_plain_frame(
    socket: impl AsFd,
    deadline: Option<Instant>,
) -> Result<Option<Vec<u8>>, RecvError> {
    let mut fds = Vec::new();
    let limit = FdLimit {
        max: 0,
        error: ProtocolError::UnexpectedFds,
    };
    recv_frame(&socket, &mut fds, limit, deadline)
}

/// How many descriptors a frame may carry, and the error for more.
#[derive(Clone, Copy)]
struct FdLimit {
    max: usize,
    error: fn(usize) -> ProtocolError,
}

/// Reads exactly one frame (header, then exactly its body, never beyond, so
/// a follow-up message is left in the socket), collecting descriptors.
fn recv_frame(
    socket: &impl AsFd,
    fds: &mut Vec<OwnedFd>,
    limit: FdLimit,
    deadline: Option<Instant>,
) -> Result<Option<Vec<u8>>, RecvError> {
    let mut header = [0u8; HEADER_LEN];
    let got = recv_exact(socket, &mut header, fds, limit, deadline, 0)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(ProtocolError::Truncated {
            expected: HEADER_LEN,
            got,
        }
        .into());
    }
    let len = protocol::body_length(header)?;
    let mut body = vec![0u8; len];
    let got = recv_exact(socket, &mut body, fds, limit, deadline, HEADER_LEN)?;
    if got < len {
        return Err(ProtocolError::Truncated {
            expected: HEADER_LEN + len,
            got: HEADER_LEN + got,
        }
        .into());
    }
    Ok(Some(body))
}

/// Fills `buf` unless the peer closes first; returns how much was read.
/// `before` is how much of the frame was read earlier (for the error).
fn recv_exact(
    socket: &impl AsFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    limit: FdLimit,
    deadline: Option<Instant>,
    before: usize,
) -> Result<usize, RecvError> {
    let mut filled = 0;
    while filled < buf.len() {
        if let Some(deadline) = deadline {
            if !wait_readable(socket, deadline)? {
                return Err(RecvError::Deadline {
                    got: before + filled,
                });
            }
        }
        // Room for credentials too, so that unexpected ones are reported as
        // what they are rather than as a truncation.
        let mut space =
            [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_ROOM), ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf[filled..])];
        // With a deadline, poll() said readable; DONTWAIT keeps a spurious
        // wake-up from turning into an unbounded blocking read.
        let flags = match deadline {
            Some(_) => RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
            None => RecvFlags::CMSG_CLOEXEC,
        };
        let msg = match recvmsg(socket, &mut iov, &mut control, flags) {
            Ok(msg) => msg,
            Err(Errno::INTR | Errno::AGAIN) => continue,
            Err(e) => return Err(RecvError::Io(e.into())),
        };
        let mut other_control = false;
        for message in control.drain() {
            match message {
                RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
                // Only delivered to a socket with SO_PASSCRED, which sdme
                // never sets; refused rather than silently skipped.
                _ => other_control = true,
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            return Err(ProtocolError::FdsTruncated.into());
        }
        if other_control {
            return Err(ProtocolError::UnexpectedControl.into());
        }
        if fds.len() > limit.max {
            // Stop here: the descriptors received so far are closed when
            // the caller drops them, and nothing more is read.
            return Err((limit.error)(fds.len()).into());
        }
        if msg.bytes == 0 {
            break;
        }
        filled += msg.bytes;
    }
    Ok(filled)
}

/// Waits until `socket` is readable (or hung up); false when the deadline
/// passes first.
fn wait_readable(socket: &impl AsFd, deadline: Instant) -> Result<bool, RecvError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        let ts = Timespec::try_from(left).ok();
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => return Ok(true),
            Err(e) => return Err(RecvError::Io(e.into())),
        }
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
