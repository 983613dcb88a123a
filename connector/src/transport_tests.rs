use super::*;
use crate::protocol::{Reply, SignalMessage, MAX_FRAME};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

fn send_raw(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let n = sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(n, data.len());
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn protocol_error(r: Result<ReceivedRequest, RecvError>) -> ProtocolError {
    match r {
        Err(RecvError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn request_with_three_fds_round_trips() {
    let (a, b) = pair();
    let (p0, mut p1) = pair();
    let req = Request {
        argv: vec!["hello".into(), "world".into()],
        tty: false,
    };
    send_request(&a, [p0.as_fd(), p0.as_fd(), p0.as_fd()], &req).unwrap();
    let got = recv_request(&b, None).unwrap();
    assert_eq!(got.request, req);
    // The descriptors are live and close-on-exec.
    for fd in &got.stdio {
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
    let mut w = UnixStream::from(got.stdio[1].try_clone().unwrap());
    w.write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    p1.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"x");
}

#[test]
fn follow_up_message_is_not_consumed_with_the_request() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    let req = Request {
        argv: vec![],
        tty: false,
    };
    send_request(&a, [p0.as_fd(), p0.as_fd(), p0.as_fd()], &req).unwrap();
    send_message(&a, &SignalMessage { signal: 2 }).unwrap();
    assert_eq!(recv_request(&b, None).unwrap().request, req);
    let body = recv_plain_frame(&b, None).unwrap().unwrap();
    assert_eq!(protocol::decode_signal(&body).unwrap().signal, 2);
    drop(a);
    assert!(recv_plain_frame(&b, None).unwrap().is_none());
}

#[test]
fn request_without_fds_is_rejected() {
    let (a, b) = pair();
    send_raw(&a, &frame(br#"{"argv":[]}"#), &[]);
    assert_eq!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::WrongFdCount(0)
    );
}

#[test]
fn request_with_wrong_fd_count_is_rejected() {
    for n in [1usize, 2, 4, 8] {
        let (a, b) = pair();
        let (p0, _p1) = pair();
        let fds: Vec<_> = (0..n).map(|_| p0.as_fd()).collect();
        send_raw(&a, &frame(br#"{"argv":[]}"#), &fds);
        assert_eq!(
            protocol_error(recv_request(&b, None)),
            ProtocolError::WrongFdCount(n),
            "{n} fds"
        );
    }
}

#[test]
fn too_many_fds_for_the_buffer_are_rejected() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    let fds: Vec<_> = (0..12).map(|_| p0.as_fd()).collect();
    send_raw(&a, &frame(br#"{"argv":[]}"#), &fds);
    assert_eq!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::FdsTruncated
    );
}

#[test]
fn oversize_length_is_rejected_without_reading_the_body() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    send_raw(
        &a,
        &((MAX_FRAME + 1) as u32).to_be_bytes(),
        &[p0.as_fd(), p0.as_fd(), p0.as_fd()],
    );
    assert_eq!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::Oversize(MAX_FRAME + 1)
    );
}

#[test]
fn truncated_header_and_body_are_rejected() {
    let (a, b) = pair();
    send_raw(&a, &[0, 0], &[]);
    drop(a);
    assert!(matches!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::Truncated {
            expected: 4,
            got: 2
        }
    ));

    let (a, b) = pair();
    let (p0, _p1) = pair();
    let mut f = frame(br#"{"argv":["long"]}"#);
    f.truncate(f.len() - 3);
    send_raw(&a, &f, &[p0.as_fd(), p0.as_fd(), p0.as_fd()]);
    drop(a);
    assert!(matches!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::Truncated { .. }
    ));
}

#[test]
fn not_json_and_bad_argv_are_rejected() {
    for body in [
        &b"not json"[..],
        br#"{"nope":1}"#,
        br#"{"argv":[1,2]}"#,
        br#"{"argv":"x"}"#,
    ] {
        let (a, b) = pair();
        let (p0, _p1) = pair();
        send_raw(&a, &frame(body), &[p0.as_fd(), p0.as_fd(), p0.as_fd()]);
        assert!(matches!(
            protocol_error(recv_request(&b, None)),
            ProtocolError::Malformed(_)
        ));
    }
}

#[test]
fn immediate_close_is_reported_as_closed() {
    let (a, b) = pair();
    drop(a);
    assert!(matches!(recv_request(&b, None), Err(RecvError::Closed)));
}

#[test]
fn fds_outside_the_request_are_refused() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    send_raw(&a, &frame(br#"{"signal":2}"#), &[p0.as_fd()]);
    assert!(matches!(
        recv_plain_frame(&b, None),
        Err(RecvError::Protocol(ProtocolError::UnexpectedFds(1)))
    ));
}

#[test]
fn reply_is_a_plain_frame() {
    let (a, b) = pair();
    send_message(
        &a,
        &Reply {
            exit_code: 42,
            error: None,
        },
    )
    .unwrap();
    let body = recv_plain_frame(&b, None).unwrap().unwrap();
    assert_eq!(protocol::decode_reply(&body).unwrap().exit_code, 42);
}

#[test]
fn large_request_crosses_several_reads() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    let req = Request {
        argv: vec!["y".repeat(MAX_FRAME - 100)],
        tty: false,
    };
    let sender = std::thread::spawn(move || {
        send_request(&a, [p0.as_fd(), p0.as_fd(), p0.as_fd()], &req).unwrap();
        (a, p0)
    });
    let got = recv_request(&b, None).unwrap();
    assert_eq!(got.request.argv[0].len(), MAX_FRAME - 100);
    sender.join().unwrap();
}
