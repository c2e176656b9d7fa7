use super::*;

fn vec16(body: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A ClientHello handshake message (no record header) with `extensions`.
fn hello_message(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.extend_from_slice(&[32]);
    body.extend_from_slice(&[9; 32]); // session id
    body.extend_from_slice(&vec16(&[0x13, 0x01, 0x13, 0x02])); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend_from_slice(&kind.to_be_bytes());
        exts.extend_from_slice(&vec16(data));
    }
    body.extend_from_slice(&vec16(&exts));
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut msg = vec![HANDSHAKE_CLIENT_HELLO, len[1], len[2], len[3]];
    msg.extend_from_slice(&body);
    msg
}

fn sni_extension(name: &str) -> (u16, Vec<u8>) {
    let mut entry = vec![NAME_TYPE_HOST_NAME];
    entry.extend_from_slice(&vec16(name.as_bytes()));
    (EXTENSION_SERVER_NAME, vec16(&entry))
}

/// `message` split into records of at most `max` bytes of payload each.
fn records(message: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in message.chunks(max) {
        out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&vec16(chunk));
    }
    out
}

#[test]
fn finds_the_server_name() {
    let alpn = (16, vec16(&[2, b'h', b'2']));
    let wire = records(
        &hello_message(&[alpn, sni_extension("A.Example.com")]),
        16_384,
    );
    assert_eq!(parse(&wire), Hello::Complete(Some("a.example.com".into())));
    let mut with_more = wire.clone();
    with_more.extend_from_slice(b"application data that follows");
    assert_eq!(
        parse(&with_more),
        Hello::Complete(Some("a.example.com".into()))
    );
}

#[test]
fn a_hello_without_sni_is_complete_without_a_name() {
    let wire = records(&hello_message(&[(16, vec16(&[2, b'h', b'2']))]), 16_384);
    assert_eq!(parse(&wire), Hello::Complete(None));
}

#[test]
fn a_hello_split_across_records_is_put_back_together() {
    let message = hello_message(&[sni_extension("split.example.com")]);
    let wire = records(&message, 10);
    assert_eq!(
        parse(&wire),
        Hello::Complete(Some("split.example.com".into()))
    );
}

#[test]
fn every_prefix_of_a_hello_asks_for_more() {
    let wire = records(&hello_message(&[sni_extension("a.example.com")]), 40);
    for end in 0..wire.len() {
        assert_eq!(
            parse(&wire[..end]),
            Hello::Incomplete,
            "prefix of {end} bytes"
        );
    }
}

#[test]
fn other_protocols_are_not_tls() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
    assert_eq!(parse(b"G"), Hello::NotTls);
    assert_eq!(parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Hello::NotTls);
    // A handshake record that carries a ServerHello.
    assert_eq!(parse(&[22, 3, 3, 0, 4, 2, 0, 0, 0]), Hello::NotTls);
    assert_eq!(parse(&[22, 3, 3, 0, 40, 2]), Hello::NotTls);
    // An oversized record.
    assert_eq!(parse(&[22, 3, 1, 0xff, 0xff]), Hello::NotTls);
}

#[test]
fn malformed_hellos_are_refused_without_panicking() {
    let good = records(&hello_message(&[sni_extension("a.example.com")]), 16_384);
    // Corrupt every byte past the record header in turn, and lie about lengths.
    for i in 5..good.len() {
        for value in [0u8, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] = value;
            let _ = parse(&bad);
        }
    }
    // A host name with a slash or a space is no DNS name.
    for name in ["a/b.example.com", "a b", ""] {
        let wire = records(&hello_message(&[sni_extension(name)]), 16_384);
        assert_eq!(parse(&wire), Hello::NotTls, "{name:?}");
    }
}

#[test]
fn a_hello_claiming_more_than_the_limit_is_refused() {
    let len = u32::try_from(MAX_HELLO + 1).unwrap().to_be_bytes();
    let wire = records(
        &[HANDSHAKE_CLIENT_HELLO, len[1], len[2], len[3], 3, 3],
        16_384,
    );
    assert_eq!(parse(&wire), Hello::NotTls);
}
