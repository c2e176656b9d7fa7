//! Just enough URL parsing for the URLs Istio checks (`jwksUri`, a WasmPlugin's `url`):
//! the scheme, the host and port, and the characters Go's `net/url` refuses.

/// The parts of a URL that the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    /// As written; `None` when the text has no `scheme:` prefix.
    pub scheme: Option<&'a str>,
    /// Empty when the URL has no `//authority` part.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Everything after the authority (path, query and fragment).
    pub rest: &'a str,
}

/// Parses `text` as Go's `url.Parse` would, reporting what it would refuse.
pub(crate) fn parse(text: &str) -> Result<Url<'_>, String> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    check_escapes(text)?;
    let (scheme, rest) = match split_scheme(text) {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let Some(after) = rest.strip_prefix("//") else {
        return Ok(Url {
            scheme,
            host: "",
            port: None,
            rest,
        });
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host_port = match authority.rsplit_once('@') {
        Some((user, host_port)) => {
            if let Some(c) = user.chars().find(|c| !user_char(*c)) {
                return Err(format!("invalid character {c:?} in the user part"));
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = split_host_port(host_port)?;
    Ok(Url {
        scheme,
        host,
        port,
        rest,
    })
}

/// `scheme:` at the start of `text`: a letter, then letters, digits, `+`, `-` or `.`.
pub(crate) fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let colon = text.find(':')?;
    let scheme = &text[..colon];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| (scheme, &text[colon + 1..]))
}

fn check_escapes(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(text.len());
                let escape = text.get(i..end).unwrap_or("%");
                return Err(format!(
                    "invalid escape {escape:?} (a % must be followed by two hex digits)"
                ));
            }
        }
    }
    Ok(())
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        let Some((ip, tail)) = inner.split_once(']') else {
            return Err(format!("unclosed '[' in host {host_port:?}"));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} is not an IPv6 address"));
        }
        match tail {
            "" => (ip, None),
            _ => match tail.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Err(format!("unexpected {tail:?} after the IPv6 address")),
            },
        }
    } else {
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        if let Some(c) = host.chars().find(|c| !host_char(*c)) {
            return Err(format!("invalid character {c:?} in host {host:?}"));
        }
        (host, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid port {p:?} (a number up to 65535)"))?,
        ),
    };
    Ok((host, port))
}

fn host_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '~'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | '%'
        )
        || !c.is_ascii()
}

fn user_char(c: char) -> bool {
    host_char(c) || c == ':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let u = parse("https://example.com:8443/.well-known/jwks.json").expect("parses");
        assert_eq!(u.scheme, Some("https"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.rest, "/.well-known/jwks.json");
        let u = parse("oci://user:pw@[::1]:5000/wasm:v1").expect("parses");
        assert_eq!((u.host, u.port), ("::1", Some(5000)));
        let u = parse("someuri").expect("parses");
        assert_eq!((u.scheme, u.host), (None, ""));
        let u = parse("file:///opt/plugin.wasm").expect("parses");
        assert_eq!(
            (u.scheme, u.host, u.rest),
            (Some("file"), "", "/opt/plugin.wasm")
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            "http://#%blah$#@",
            "http://a b/",
            "http://host:port/",
            "http://x/%zz",
            "http://[::1/",
            "http://h\n/",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(split_scheme("my-registry/x:v1"), None);
        assert_eq!(
            split_scheme("localhost:5000/x"),
            Some(("localhost", "5000/x"))
        );
    }
}
