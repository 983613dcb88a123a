//! Moving frames and descriptors over a unix stream socket.
//!
//! Requests are read with `recvmsg()` so that the three descriptors that
//! arrive with the first byte are collected (close-on-exec, so no child ever
//! inherits them by accident); every later read also uses `recvmsg()` so that
//! descriptors smuggled into any other message are received and closed
//! instead of piling up in the socket.

use crate::protocol::{self, ProtocolError, Request, HEADER_LEN, REQUEST_FDS};
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

/// Room for more descriptors than a request may carry, so that "too many"
/// is reported as such rather than as a truncation.
const FD_ROOM: usize = 8;

/// A failure to receive a message.
#[derive(Debug)]
pub enum RecvError {
    /// The peer closed the connection before sending anything.
    Closed,
    /// The socket failed (including a receive timeout).
    Io(io::Error),
    /// The peer sent something that is not a valid message.
    Protocol(ProtocolError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => write!(f, "connection closed before a message"),
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

/// Receives a request: a frame with exactly three descriptors.
pub fn recv_request(socket: impl AsFd) -> Result<ReceivedRequest, RecvError> {
    let mut fds = Vec::new();
    let body = recv_frame(&socket, &mut fds)?.ok_or(RecvError::Closed)?;
    let request = protocol::decode_request(&body)?;
    let stdio: [OwnedFd; REQUEST_FDS] = match fds.try_into() {
        Ok(stdio) => stdio,
        Err(fds) => return Err(ProtocolError::WrongFdCount(fds.len()).into()),
    };
    Ok(ReceivedRequest { request, stdio })
}

/// Receives one frame that must carry no descriptors; `None` on a clean end
/// of stream between frames.
pub fn recv_plain_frame(socket: impl AsFd) -> Result<Option<Vec<u8>>, RecvError> {
    let mut fds = Vec::new();
    let frame = recv_frame(&socket, &mut fds)?;
    if !fds.is_empty() {
        return Err(ProtocolError::UnexpectedFds(fds.len()).into());
    }
    Ok(frame)
}

/// Reads exactly one frame (header, then exactly its body, never beyond, so
/// a follow-up message is left in the socket), collecting descriptors.
fn recv_frame(socket: &impl AsFd, fds: &mut Vec<OwnedFd>) -> Result<Option<Vec<u8>>, RecvError> {
    let mut header = [0u8; HEADER_LEN];
    let got = recv_exact(socket, &mut header, fds)?;
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
    let got = recv_exact(socket, &mut body, fds)?;
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
fn recv_exact(
    socket: &impl AsFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<usize, RecvError> {
    let mut filled = 0;
    while filled < buf.len() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_ROOM))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf[filled..])];
        let msg = match recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(msg) => msg,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(RecvError::Io(e.into())),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            return Err(ProtocolError::FdsTruncated.into());
        }
        if msg.bytes == 0 {
            break;
        }
        filled += msg.bytes;
    }
    Ok(filled)
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
