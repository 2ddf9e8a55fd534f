//! What `ferrocorn_pass` accepts, checked before nginx's URL parser so a
//! mistake is reported with the directive's name and the reason.

/// Why a `ferrocorn_pass` target is refused before nginx parses it.
#[derive(Debug, PartialEq, Eq)]
pub enum PassError {
    Empty,
    NoSocketPath,
    Variables,
    Scheme,
    BadPort,
    UnbracketedIpv6,
}

impl PassError {
    pub fn reason(&self) -> &'static str {
        match self {
            PassError::Empty => "the address is empty",
            PassError::NoSocketPath => "the socket path after \"unix:\" is missing",
            PassError::Variables => "variables are not supported",
            PassError::Scheme => "expected unix:/path, host:port or an upstream name, not a URL",
            PassError::BadPort => "the port must be a number from 1 to 65535",
            PassError::UnbracketedIpv6 => "an IPv6 address must be written as [addr]:port",
        }
    }
}

/// Checks the forms `ferrocorn_pass` accepts: `unix:/path`, `host:port`,
/// `[ipv6]:port`, or the name of an `upstream {}` block (no port).
/// nginx's own URL parser still runs afterwards and catches the rest.
pub fn check_pass_target(v: &[u8]) -> Result<(), PassError> {
    if v.is_empty() {
        return Err(PassError::Empty);
    }
    if v.contains(&b'$') {
        return Err(PassError::Variables);
    }
    if v.windows(3).any(|w| w == b"://") {
        return Err(PassError::Scheme);
    }
    if v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"unix:") {
        return if v.len() == 5 {
            Err(PassError::NoSocketPath)
        } else {
            Ok(())
        };
    }
    let port = if v[0] == b'[' {
        let close = v
            .iter()
            .position(|&c| c == b']')
            .ok_or(PassError::UnbracketedIpv6)?;
        match &v[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err(PassError::UnbracketedIpv6),
        }
    } else {
        match v.iter().filter(|&&c| c == b':').count() {
            0 => None,
            1 => {
                let colon = v.iter().position(|&c| c == b':').expect("one colon");
                if colon == 0 {
                    return Err(PassError::Empty);
                }
                Some(&v[colon + 1..])
            }
            _ => return Err(PassError::UnbracketedIpv6),
        }
    };
    match port {
        None => Ok(()),
        Some(p) if is_port(p) => Ok(()),
        Some(_) => Err(PassError::BadPort),
    }
}

fn is_port(p: &[u8]) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|n| (1..=65535).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_targets() {
        for ok in [
            &b"unix:/run/ferrocorn.sock"[..],
            b"UNIX:/tmp/x.sock",
            b"127.0.0.1:9000",
            b"localhost:8000",
            b"[::1]:9000",
            b"backend",
            b"app_servers",
        ] {
            assert_eq!(
                check_pass_target(ok),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    #[test]
    fn refused_targets_say_why() {
        let cases: [(&[u8], PassError); 10] = [
            (b"", PassError::Empty),
            (b"unix:", PassError::NoSocketPath),
            (b"http://127.0.0.1:9000", PassError::Scheme),
            (b"$backend", PassError::Variables),
            (b"127.0.0.1:", PassError::BadPort),
            (b"127.0.0.1:0", PassError::BadPort),
            (b"127.0.0.1:65536", PassError::BadPort),
            (b"127.0.0.1:http", PassError::BadPort),
            (b"::1:9000", PassError::UnbracketedIpv6),
            (b":9000", PassError::Empty),
        ];
        for (v, want) in cases {
            assert_eq!(
                check_pass_target(v),
                Err(want),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(
            check_pass_target(b"[::1]9000"),
            Err(PassError::UnbracketedIpv6)
        );
    }
}
