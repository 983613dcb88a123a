use super::*;

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn request_round_trip_is_seed_compatible() {
    let req = Request {
        argv: vec!["-t".into(), "a b".into(), "ünï".into(), String::new()],
        tty: false,
    };
    let frame = encode(&req).unwrap();
    assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes());
    // The seed's exact body shape: one key, "argv".
    let expected = serde_json::json!({"argv": ["-t", "a b", "ünï", ""]});
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&frame[4..]).unwrap(),
        expected
    );
    assert!(frame[4..].starts_with(br#"{"argv":"#));
    let body = split_frame(&frame).unwrap();
    assert_eq!(decode_request(body).unwrap(), req);
}

#[test]
fn empty_argv_is_valid() {
    assert_eq!(
        decode_request(br#"{"argv":[]}"#).unwrap().argv,
        Vec::<String>::new()
    );
}

#[test]
fn unknown_request_fields_are_ignored() {
    let req = decode_request(br#"{"argv":["x"],"future":1}"#).unwrap();
    assert_eq!(req.argv, vec!["x"]);
}

#[test]
fn reply_round_trip_and_seed_shape() {
    let frame = encode(&Reply {
        exit_code: 3,
        error: None,
    })
    .unwrap();
    assert_eq!(&frame[4..], br#"{"exit_code":3}"#);
    let reply = decode_reply(split_frame(&frame).unwrap()).unwrap();
    assert_eq!(reply.exit_code, 3);
    assert_eq!(reply.error, None);
}

#[test]
fn reply_with_error_round_trips() {
    let r = Reply {
        exit_code: 127,
        error: Some("no such file".into()),
    };
    assert_eq!(
        decode_reply(split_frame(&encode(&r).unwrap()).unwrap()).unwrap(),
        r
    );
}

#[test]
fn zero_length_is_rejected() {
    assert_eq!(body_length([0, 0, 0, 0]), Err(ProtocolError::Empty));
}

#[test]
fn oversize_length_is_rejected() {
    let n = (MAX_FRAME + 1) as u32;
    assert_eq!(
        body_length(n.to_be_bytes()),
        Err(ProtocolError::Oversize(MAX_FRAME + 1))
    );
    assert_eq!(
        body_length([0xff; 4]),
        Err(ProtocolError::Oversize(u32::MAX as usize))
    );
    assert_eq!(body_length((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
}

#[test]
fn encode_refuses_oversize_bodies() {
    let req = Request {
        argv: vec!["x".repeat(MAX_FRAME)],
        tty: false,
    };
    assert!(matches!(encode(&req), Err(ProtocolError::Oversize(_))));
}

#[test]
fn truncated_frames_are_rejected() {
    assert!(matches!(
        split_frame(&[0, 0]),
        Err(ProtocolError::Truncated {
            expected: 4,
            got: 2
        })
    ));
    let mut f = frame_of(br#"{"argv":[]}"#);
    f.pop();
    assert!(matches!(
        split_frame(&f),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut f = frame_of(br#"{"argv":[]}"#);
    f.push(b' ');
    assert!(matches!(split_frame(&f), Err(ProtocolError::Malformed(_))));
}

#[test]
fn non_json_is_rejected() {
    for body in [&b"argv"[..], b"{\"argv\":[", b"\xff\xfe", b""] {
        assert!(
            matches!(decode_request(body), Err(ProtocolError::Malformed(_))),
            "{body:?}"
        );
    }
}

#[test]
fn request_without_argv_is_rejected() {
    for body in [
        &br#"{}"#[..],
        br#"{"args":["x"]}"#,
        br#"[]"#,
        br#""argv""#,
        br#"null"#,
    ] {
        assert!(
            matches!(decode_request(body), Err(ProtocolError::Malformed(_))),
            "{body:?}"
        );
    }
}

#[test]
fn argv_must_be_an_array_of_strings() {
    for body in [
        &br#"{"argv":"ls"}"#[..],
        br#"{"argv":null}"#,
        br#"{"argv":{"0":"x"}}"#,
        br#"{"argv":["x",1]}"#,
        br#"{"argv":[["x"]]}"#,
        br#"{"argv":[null]}"#,
    ] {
        let err = decode_request(body).unwrap_err();
        assert!(
            matches!(err, ProtocolError::Malformed(_)),
            "{body:?}: {err}"
        );
    }
}

#[test]
fn nul_in_argument_is_rejected() {
    let err = decode_request(br#"{"argv":["a\u0000b"]}"#).unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

#[test]
fn reply_out_of_range_is_rejected() {
    assert!(decode_reply(br#"{"exit_code":256}"#).is_err());
    assert!(decode_reply(br#"{"exit_code":-1}"#).is_err());
    assert!(decode_reply(br#"{"code":0}"#).is_err());
    assert!(decode_reply(br#"{"exit_code":"0"}"#).is_err());
    assert_eq!(
        decode_reply(br#"{"exit_code":255}"#).unwrap().exit_code,
        255
    );
}

#[test]
fn signal_messages_only_allow_forwardable_signals() {
    assert_eq!(decode_signal(br#"{"signal":2}"#).unwrap().signal, 2);
    assert_eq!(decode_signal(br#"{"signal":15}"#).unwrap().signal, 15);
    assert!(decode_signal(br#"{"signal":9}"#).is_err());
    assert!(decode_signal(br#"{"signal":19}"#).is_err());
    assert!(decode_signal(br#"{"sig":2}"#).is_err());
    assert!(decode_signal(br#"{"argv":[]}"#).is_err());
}

#[test]
fn errors_name_what_is_wrong() {
    assert!(ProtocolError::WrongFdCount(1)
        .to_string()
        .contains("1 file descriptors"));
    assert!(ProtocolError::Oversize(5_000_000)
        .to_string()
        .contains("5000000"));
}
