use super::*;
use crate::protocol::{Reply, SignalMessage, MAX_FRAME};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

fn send_raw(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(32))];
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
    // More than the receive buffer holds (FD_ROOM plus the credentials'
    // room): the kernel truncates.
    let fds: Vec<_> = (0..32).map(|_| p0.as_fd()).collect();
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

#[test]
fn non_utf8_json_is_rejected() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    send_raw(
        &a,
        &frame(b"{\"argv\":[\"\xff\xfe\"]}"),
        &[p0.as_fd(), p0.as_fd(), p0.as_fd()],
    );
    assert!(matches!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::Malformed(_)
    ));
}

#[test]
fn descriptors_spread_over_segments_are_capped_at_three() {
    // Three with the header and three more with the body: refused as soon
    // as the count passes three, not collected until the frame ends.
    let (a, b) = pair();
    let (p0, _p1) = pair();
    let three = [p0.as_fd(), p0.as_fd(), p0.as_fd()];
    let body = br#"{"argv":[]}"#;
    send_raw(&a, &(body.len() as u32).to_be_bytes(), &three);
    send_raw(&a, &body[..1], &three);
    assert_eq!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::WrongFdCount(6)
    );
}

#[test]
fn credentials_sent_as_ancillary_data_do_not_reach_the_reader() {
    // Without SO_PASSCRED on the reader the kernel drops SCM_CREDENTIALS;
    // the request is read as if they were not there.
    let (a, b) = pair();
    let (p0, _p1) = pair();
    let fds = [p0.as_fd(), p0.as_fd(), p0.as_fd()];
    let mut space =
        vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3), ScmCredentials(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    assert!(
        control.push(SendAncillaryMessage::ScmCredentials(rustix::net::UCred {
            pid: rustix::process::getpid(),
            uid: rustix::process::getuid(),
            gid: rustix::process::getgid(),
        }))
    );
    let data = frame(br#"{"argv":["x"]}"#);
    sendmsg(&a, &[IoSlice::new(&data)], &mut control, SendFlags::empty()).unwrap();
    assert_eq!(recv_request(&b, None).unwrap().request.argv, ["x"]);
}

#[test]
fn credentials_delivered_as_ancillary_data_are_refused() {
    // Were the reader to set SO_PASSCRED, every message would carry
    // SCM_CREDENTIALS: not something a request may have.
    let (a, b) = pair();
    rustix::net::sockopt::set_socket_passcred(&b, true).unwrap();
    let (p0, _p1) = pair();
    send_raw(
        &a,
        &frame(br#"{"argv":[]}"#),
        &[p0.as_fd(), p0.as_fd(), p0.as_fd()],
    );
    assert_eq!(
        protocol_error(recv_request(&b, None)),
        ProtocolError::UnexpectedControl
    );
}

#[test]
fn a_dripped_request_fails_at_the_deadline() {
    let (a, b) = pair();
    let (p0, _p1) = pair();
    send_raw(
        &a,
        &100u32.to_be_bytes(),
        &[p0.as_fd(), p0.as_fd(), p0.as_fd()],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripping = std::sync::Arc::clone(&stop);
    let drip = std::thread::spawn(move || {
        let mut a = a;
        while !dripping.load(std::sync::atomic::Ordering::Relaxed) {
            if a.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_millis(300);
    let result = recv_request(&b, Some(deadline));
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drip.join().unwrap();
    match result {
        Err(RecvError::Deadline { got }) => assert!(got > HEADER_LEN, "{got}"),
        other => panic!("expected the deadline, got {other:?}"),
    }
    // Not before the deadline, and not long after it.
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_silent_peer_fails_at_the_deadline_and_a_prompt_one_does_not() {
    let (_a, b) = pair();
    let deadline = Instant::now() + std::time::Duration::from_millis(100);
    assert!(matches!(
        recv_request(&b, Some(deadline)),
        Err(RecvError::Deadline { got: 0 })
    ));
    let (a, b) = pair();
    let (p0, _p1) = pair();
    send_request(
        &a,
        [p0.as_fd(), p0.as_fd(), p0.as_fd()],
        &Request {
            argv: vec!["y".into()],
            tty: true,
        },
    )
    .unwrap();
    let got = recv_request(&b, Some(Instant::now() + std::time::Duration::from_secs(5))).unwrap();
    assert_eq!(got.request.argv, ["y"]);
    assert!(got.request.tty);
}
