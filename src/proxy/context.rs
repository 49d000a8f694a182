//! The request context: session id, remote addresses and the client IP every decision uses
//! (request ids are [`crate::request_id`]'s).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use compact_str::CompactString;
use http::HeaderMap;
use http::header::{COOKIE, HOST, HeaderName, TRANSFER_ENCODING};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::auth::canonical;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which of the request headers the gateway reads a request has, found in one pass over its
/// lines: a lookup hashes the name whether it is there or not, and most requests have none of
/// these but `Host`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present {
    pub cookie: bool,
    pub transfer_encoding: bool,
    pub forwarded_for: bool,
    /// The identity header the gateway sets, sent by the client.
    pub identity: bool,
    /// `Host` lines: 0, 1, or 2 for two or more.
    pub hosts: u8,
}

impl Present {
    /// The headers of `headers`, `identity` being the identity header's name.
    pub fn of(headers: &HeaderMap, identity: &HeaderName) -> Self {
        let mut present = Self::default();
        for name in headers.keys() {
            if *name == HOST {
                present.hosts = 1;
            } else if *name == COOKIE {
                present.cookie = true;
            } else if *name == TRANSFER_ENCODING {
                present.transfer_encoding = true;
            } else if *name == X_FORWARDED_FOR {
                present.forwarded_for = true;
            } else if name == identity {
                present.identity = true;
            }
        }
        // Each name once above: a second `Host` line is counted only if some name has more
        // than one line.
        if present.hosts == 1 && headers.len() != headers.keys_len() {
            present.hosts = if headers.get_all(HOST).iter().nth(1).is_some() {
                2
            } else {
                1
            };
        }
        present
    }
}
/// A short stable hash of the Bitbucket session cookie (6 base-36 characters), never the
/// cookie itself.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "BITBUCKETSESSIONID" || *name == "JSESSIONID")
        .map(|(_, value)| value)?;
    let digest = Sha256::digest(value.as_bytes());
    let mut n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 36u64.pow(6);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    Some(String::from_utf8(out.to_vec()).expect("ASCII"))
}

/// The remote addresses as Bitbucket logs them and the client IP derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `X-Forwarded-For` entries then the peer, comma separated; entries that are not IP
    /// addresses are written `unknown`, and beyond the last 16 entries, `...` stands for the
    /// rest. A lone IPv4 peer is held inline.
    pub addresses: CompactString,
    /// The right-most address not in `trusted_proxies`, or [`UNKNOWN_CLIENT`] when a
    /// trusted proxy forwarded an entry that is not an address.
    pub client_ip: IpAddr,
    /// The peer's address (IPv4-mapped addresses folded to IPv4).
    pub peer_ip: IpAddr,
    /// Whether the peer is one of `trusted_proxies`.
    pub peer_trusted: bool,
}

/// `X-Forwarded-For` entries written into a line, the last ones; earlier ones are shown as
/// `...`.
const MAX_LOGGED_ENTRIES: usize = 16;

/// The client address when a trusted proxy forwarded one that cannot be read: in no
/// allow-list of real networks.
pub(super) const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// One `X-Forwarded-For` entry: an address, or an address with a port as some proxies write
/// it (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn forwarded_ip(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    let ip = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(canonical(ip))
}

/// Appends `ip` as its `Display` writes it; an IPv4 address digit by digit, which costs a
/// tenth of the formatting machinery.
pub(super) fn push_ip(out: &mut CompactString, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        write!(out, "{ip}").expect("writing to memory");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let digits = [
            b'0' + octet / 100,
            b'0' + octet / 10 % 10,
            b'0' + octet % 10,
        ];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        out.push_str(std::str::from_utf8(&digits[skip..]).expect("ASCII digits"));
    }
}

thread_local! {
    /// The address this thread wrote last and its text: a connection's requests all come
    /// from one peer.
    static LAST_IP: RefCell<Option<(IpAddr, CompactString)>> = const { RefCell::new(None) };
}

/// `ip` as text (inline, for any address), remembered for the next request from it.
pub(super) fn ip_text(ip: IpAddr) -> CompactString {
    LAST_IP.with_borrow_mut(|last| match last {
        Some((known, text)) if *known == ip => text.clone(),
        _ => {
            let mut text = CompactString::default();
            push_ip(&mut text, ip);
            *last = Some((ip, text.clone()));
            text
        }
    })
}

/// Reads `X-Forwarded-For` and the peer address. Only entries added by trusted proxies are
/// believed: walking from the peer leftwards, the first address that is not a trusted proxy
/// is the client.
pub fn remote(
    headers: &HeaderMap,
    present: &Present,
    peer: SocketAddr,
    trusted: &[IpNet],
) -> Remote {
    let peer_ip = canonical(peer.ip());
    // Entry by entry, from the raw bytes: one unreadable entry (which the client may have
    // written) must not hide the entries a trusted proxy appended after it.
    let forwarded: Vec<Option<IpAddr>> = present
        .forwarded_for
        .then(|| headers.get_all(X_FORWARDED_FOR))
        .into_iter()
        .flatten()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
        .map(forwarded_ip)
        .collect();

    let addresses = if forwarded.is_empty() {
        ip_text(peer_ip)
    } else {
        let mut addresses = CompactString::default();
        // The entries nearest the peer are the ones proxies added; a client can send thousands.
        let skipped = forwarded.len().saturating_sub(MAX_LOGGED_ENTRIES);
        if skipped > 0 {
            addresses.push_str("...,");
        }
        for entry in &forwarded[skipped..] {
            match entry {
                Some(ip) => {
                    push_ip(&mut addresses, *ip);
                    addresses.push(',');
                }
                None => addresses.push_str("unknown,"),
            }
        }
        push_ip(&mut addresses, peer_ip);
        addresses
    };

    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client_ip = peer_ip;
    let peer_trusted = is_trusted(&peer_ip);
    if peer_trusted {
        for entry in forwarded.iter().rev() {
            match entry {
                Some(ip) => {
                    client_ip = *ip;
                    if !is_trusted(ip) {
                        break;
                    }
                }
                // A trusted proxy passed on an entry that is not an address: the client is
                // unknown. It is never the proxy itself, which an allow-list may well contain.
                None => {
                    client_ip = UNKNOWN_CLIENT;
                    break;
                }
            }
        }
    }
    Remote {
        addresses,
        client_ip,
        peer_ip,
        peer_trusted,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// What `remote` is told of `h`.
    fn present(h: &HeaderMap) -> Present {
        Present::of(h, &HeaderName::from_static("x-ausername"))
    }

    #[test]
    fn present_headers_are_found_in_one_pass() {
        let mut h = HeaderMap::new();
        let identity = HeaderName::from_static("x-ausername");
        assert_eq!(Present::of(&h, &identity), Present::default());
        h.append(HOST, HeaderValue::from_static("a"));
        h.append("x-ausername", HeaderValue::from_static("eve"));
        h.append(COOKIE, HeaderValue::from_static("a=b"));
        assert_eq!(
            Present::of(&h, &identity),
            Present {
                cookie: true,
                identity: true,
                hosts: 1,
                ..Present::default()
            }
        );
        for _ in 0..3 {
            h.append(HOST, HeaderValue::from_static("b"));
        }
        h.append(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        assert_eq!(
            Present::of(&h, &identity),
            Present {
                cookie: true,
                transfer_encoding: true,
                forwarded_for: true,
                identity: true,
                hosts: 2,
            }
        );
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn bitbucket_address_list() {
        let h = headers(&["79.209.73.23"]);
        let r = remote(
            &h,
            &present(&h),
            "100.120.0.11:5000".parse().unwrap(),
            &nets(&["100.64.0.0/10"]),
        );
        assert_eq!(r.addresses, "79.209.73.23,100.120.0.11");
        assert_eq!(r.client_ip, "79.209.73.23".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&["10.0.0.1"]);
        let r = remote(
            &h,
            &present(&h),
            "203.0.113.9:5000".parse().unwrap(),
            &nets(&["100.64.0.0/10"]),
        );
        assert_eq!(r.client_ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(r.addresses, "10.0.0.1,203.0.113.9");
    }

    #[test]
    fn prepended_entries_are_not_believed() {
        // The client wrote 10.0.0.1 itself; the trusted proxy appended the real address.
        let h = headers(&["10.0.0.1, 198.51.100.7"]);
        let r = remote(
            &h,
            &present(&h),
            "100.64.0.2:1".parse().unwrap(),
            &nets(&["100.64.0.0/10"]),
        );
        assert_eq!(r.client_ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(r.addresses, "10.0.0.1,198.51.100.7,100.64.0.2");
    }

    #[test]
    fn chains_of_trusted_proxies_and_garbage() {
        let trusted = nets(&["100.64.0.0/10", "127.0.0.1/32"]);
        let h = headers(&["2001:db8::1", "100.64.0.5"]);
        let r = remote(&h, &present(&h), "127.0.0.1:1".parse().unwrap(), &trusted);
        assert_eq!(r.client_ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        let h = headers(&["<script>x", "100.64.0.5"]);
        let r = remote(&h, &present(&h), "127.0.0.1:1".parse().unwrap(), &trusted);
        assert_eq!(
            r.client_ip, UNKNOWN_CLIENT,
            "never the trusted proxy's own address"
        );
        assert_eq!(r.addresses, "unknown,100.64.0.5,127.0.0.1");
        let r = remote(
            &HeaderMap::new(),
            &Present::default(),
            "[::ffff:10.1.2.3]:1".parse().unwrap(),
            &trusted,
        );
        assert_eq!(r.client_ip, "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_unreadable_entry_hides_nothing_a_trusted_proxy_appended() {
        let trusted = nets(&["127.0.0.2/32"]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 203.0.113.5").unwrap(),
        );
        let r = remote(&h, &present(&h), "127.0.0.2:1".parse().unwrap(), &trusted);
        assert_eq!(r.client_ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(r.addresses, "unknown,203.0.113.5,127.0.0.2");
    }

    #[test]
    fn only_the_last_entries_are_logged() {
        let many = vec!["198.51.100.1"; 1000].join(",");
        let h = headers(&[&many, "203.0.113.5"]);
        let r = remote(
            &h,
            &present(&h),
            "127.0.0.2:1".parse().unwrap(),
            &nets(&["127.0.0.2/32"]),
        );
        let expected = format!("...,{}203.0.113.5,127.0.0.2", "198.51.100.1,".repeat(15));
        assert_eq!(r.addresses, expected);
        assert_eq!(r.client_ip, "203.0.113.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn entries_with_ports_are_addresses() {
        let trusted = nets(&["127.0.0.2/32"]);
        for (entry, client) in [
            ("203.0.113.5:40123", "203.0.113.5"),
            ("[2001:db8::7]:443", "2001:db8::7"),
        ] {
            let h = headers(&[entry]);
            let r = remote(&h, &present(&h), "127.0.0.2:1".parse().unwrap(), &trusted);
            assert_eq!(r.client_ip, client.parse::<IpAddr>().unwrap(), "{entry}");
        }
    }

    #[test]
    fn session_ids_hash_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(session_id(&h), None);
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=b; BITBUCKETSESSIONID=abc123"),
        );
        let id = session_id(&h).unwrap();
        assert_eq!(id.len(), 6);
        assert!(!id.contains("abc123"));
        let mut other = HeaderMap::new();
        other.insert(COOKIE, HeaderValue::from_static("JSESSIONID=abc123"));
        assert_eq!(session_id(&other), Some(id));
    }
}
