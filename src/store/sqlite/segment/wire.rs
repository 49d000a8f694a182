//! The segment body written byte by byte, exactly as `postcard` lays out the serde
//! [`super::Body`] it is read back as: unsigned integers wider than a byte as LEB128 varints, a
//! signed one zigzag-encoded first, a `u8` as itself, an `Option` as a 0 or 1 byte before its
//! value, a text or a list as its length then its contents, an enum variant as its index,
//! and an address as its variant then its octets. Writing it here spares each event serde's
//! per-field calls; the tests hold it to `postcard`'s own output.

use std::net::IpAddr;

/// `value` as a LEB128 varint: seven bits a byte, low bits first, the top bit set on every
/// byte but the last.
pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A signed `value`, zigzag-encoded (0, -1, 1, -2, … as 0, 1, 2, 3, …) then as a varint.
pub(super) fn signed(out: &mut Vec<u8>, value: i64) {
    // Reinterpretation intended: the zigzag form of a two's-complement value.
    varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// A length or a list's size.
pub(super) fn len(out: &mut Vec<u8>, n: usize) {
    varint(out, n as u64);
}

/// A text: its length in bytes, then its bytes.
pub(super) fn text(out: &mut Vec<u8>, text: &str) {
    len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// An optional text.
pub(super) fn option_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            text(out, value);
        }
    }
}

/// An optional address: `IpAddr`'s variant (0 for IPv4, 1 for IPv6), then its octets.
pub(super) fn option_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        None => out.push(0),
        Some(IpAddr::V4(v4)) => {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.extend_from_slice(&[1, 1]);
            out.extend_from_slice(&v6.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
        postcard::to_stdvec(value).unwrap()
    }

    #[test]
    fn numbers_are_postcards() {
        let edges = [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for n in edges.into_iter().chain((0..64).map(|s| 1u64 << s)) {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out, postcard(&n), "{n}");
            if let Ok(small) = u16::try_from(n) {
                assert_eq!(out, postcard(&small), "{n} as u16");
            }
        }
        for n in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            i64::MAX,
            i64::MIN,
            1_717_228_800_000,
        ] {
            let mut out = Vec::new();
            signed(&mut out, n);
            assert_eq!(out, postcard(&n), "{n}");
        }
    }

    #[test]
    fn texts_and_addresses_are_postcards() {
        let long = "é".repeat(100);
        for value in [None, Some(""), Some("@A6X2OXx532x1x0"), Some(long.as_str())] {
            let mut out = Vec::new();
            option_text(&mut out, value);
            assert_eq!(out, postcard(&value), "{value:?}");
        }
        for ip in [
            None,
            Some("79.209.73.23"),
            Some("2001:db8::42"),
            Some("::ffff:1.2.3.4"),
        ] {
            let ip: Option<IpAddr> = ip.map(|ip| ip.parse().unwrap());
            let mut out = Vec::new();
            option_ip(&mut out, ip);
            assert_eq!(out, postcard(&ip), "{ip:?}");
        }
    }
}
