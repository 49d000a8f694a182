//! The top-level `node_id`, validated, or derived from the host name: the node in request ids
//! and audit events.

use sha2::{Digest, Sha256};

use super::ConfigError;
use super::validate::bad;

/// `node_id` as written (an error names the value), or derived from the host name.
pub(super) fn validate(node_id: Option<String>) -> Result<String, ConfigError> {
    Ok(match node_id {
        // As documented, and as the default is: 6-7 upper-case base-36 characters, so a
        // request id's lower-case `x` separators stay unambiguous.
        Some(id)
            if (6..=7).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) =>
        {
            id
        }
        Some(id) => {
            return Err(bad(
                "node_id",
                id,
                "expected 6 or 7 upper-case letters and digits (base 36), such as A6X2OX",
            ));
        }
        None => default_node_id(&host_name()),
    })
}

/// The host name, from the kernel where it can be read.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A stable 6–7 character upper-case base-36 id derived from the host name.
pub(crate) fn default_node_id(host: &str) -> String {
    let digest = Sha256::digest(host.as_bytes());
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]).max(36u32.pow(5));
    let mut out = Vec::new();
    while n > 0 {
        out.push(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}
