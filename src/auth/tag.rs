//! The verifier's tag of a presented token: Poly1305 (RFC 8439) under a key drawn at random
//! when the verifier is made, known to no one and never written anywhere.
//!
//! Poly1305 is an almost-universal hash: for any two different messages of up to `L` 16-byte
//! blocks, chosen without knowing the key, the chance that they share a tag is at most about
//! `L * 2^-103`, so a tag found in a cache stands for the token that put it there. The tags
//! never leave the process, so nothing about the key can be learnt from them, and neither a
//! secret nor anything a secret could be recovered from without the key is kept.
//!
//! Written out here (the 64-bit "donna" arithmetic, as the `poly1305` crate's portable backend
//! has it) because a token is three blocks: the crate's vector backend spends several times
//! the arithmetic on setting up and finishing for so short a message. The tests compare it
//! with the crate on random keys and messages.

/// A tag: 16 bytes.
pub(super) type Tag = [u8; 16];

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;

/// A Poly1305 key, split for the arithmetic: `r` clamped in three limbs of 44, 44 and 42
/// bits, and `s`.
#[derive(Clone)]
pub(super) struct TagKey {
    r: [u64; 3],
    /// `r[1]` and `r[2]` times 20 (`5 * 4`: the reduction modulo 2^130 - 5 folded in).
    s1: u64,
    s2: u64,
    pad: [u64; 2],
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

/// One pass of carries from the middle limb: each limb keeps its low bits and hands the rest
/// up, the top limb's excess (a multiple of 2^130) coming back as 5 times itself.
fn carry((mut h0, mut h1, mut h2): (u64, u64, u64)) -> (u64, u64, u64) {
    let mut c = h1 >> 44;
    h1 &= MASK44;
    h2 += c;
    c = h2 >> 42;
    h2 &= MASK42;
    h0 += c * 5;
    c = h0 >> 44;
    h0 &= MASK44;
    h1 += c;
    (h0, h1, h2)
}

fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

impl TagKey {
    /// The key `r || s` of RFC 8439.
    pub(super) fn new(key: &[u8; 32]) -> Self {
        let t0 = le64(&key[0..8]);
        let t1 = le64(&key[8..16]);
        let r0 = t0 & 0x0ffc_0fff_ffff;
        let r1 = ((t0 >> 44) | (t1 << 20)) & 0x0fff_ffc0_ffff;
        let r2 = (t1 >> 24) & 0x000f_ffff_fc0f;
        Self {
            r: [r0, r1, r2],
            s1: r1 * 20,
            s2: r2 * 20,
            pad: [le64(&key[16..24]), le64(&key[24..32])],
        }
    }

    /// `h` with the block `t0 || t1` (and its top bit `high`, in the top limb) added, times
    /// `r`, partly carried.
    #[inline(always)]
    fn absorb(
        &self,
        (mut h0, mut h1, mut h2): (u64, u64, u64),
        t0: u64,
        t1: u64,
        high: u64,
    ) -> (u64, u64, u64) {
        let [r0, r1, r2] = self.r;
        let (s1, s2) = (self.s1, self.s2);
        h0 += t0 & MASK44;
        h1 += ((t0 >> 44) | (t1 << 20)) & MASK44;
        h2 += ((t1 >> 24) & MASK42) | high;

        let mul = |a: u64, b: u64| u128::from(a) * u128::from(b);
        let d0 = mul(h0, r0) + mul(h1, s2) + mul(h2, s1);
        let mut d1 = mul(h0, r1) + mul(h1, r0) + mul(h2, s2);
        let mut d2 = mul(h0, r2) + mul(h1, r1) + mul(h2, r0);

        // Each limb keeps its low bits; the carries (below 2^64) move up.
        let mut c = (d0 >> 44) as u64;
        h0 = (d0 as u64) & MASK44;
        d1 += u128::from(c);
        c = (d1 >> 44) as u64;
        h1 = (d1 as u64) & MASK44;
        d2 += u128::from(c);
        c = (d2 >> 42) as u64;
        h2 = (d2 as u64) & MASK42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= MASK44;
        h1 += c;
        (h0, h1, h2)
    }

    /// The tag of `message`.
    pub(super) fn tag(&self, message: &[u8]) -> Tag {
        let mut h = (0u64, 0u64, 0u64);
        // Whole blocks are read in place; only a last, shorter one is copied (and padded).
        let mut blocks = message.chunks_exact(16);
        for block in &mut blocks {
            // A whole block has its 2^128 bit set.
            h = self.absorb(h, le64(&block[..8]), le64(&block[8..]), 1 << 40);
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            // A last, shorter block is padded with a 1 byte.
            let mut block = [0u8; 16];
            block[..rest.len()].copy_from_slice(rest);
            block[rest.len()] = 1;
            h = self.absorb(h, le64(&block[..8]), le64(&block[8..]), 0);
        }
        let (mut h0, mut h1, mut h2) = h;

        // Fully carried, then reduced modulo 2^130 - 5 without a branch on the value.
        (h0, h1, h2) = carry(carry((h0, h1, h2)));

        let mut g0 = h0 + 5;
        let mut c = g0 >> 44;
        g0 &= MASK44;
        let mut g1 = h1 + c;
        c = g1 >> 44;
        g1 &= MASK44;
        let mut g2 = h2.wrapping_add(c).wrapping_sub(1 << 42);

        // h - p when that is not negative (g2's top bit clear), else h.
        let keep_g = (g2 >> 63).wrapping_sub(1);
        g0 &= keep_g;
        g1 &= keep_g;
        g2 &= keep_g;
        let keep_h = !keep_g;
        h0 = (h0 & keep_h) | g0;
        h1 = (h1 & keep_h) | g1;
        h2 = (h2 & keep_h) | g2;

        // Plus s, modulo 2^128.
        let [t0, t1] = self.pad;
        h0 += t0 & MASK44;
        c = h0 >> 44;
        h0 &= MASK44;
        h1 += (((t0 >> 44) | (t1 << 20)) & MASK44) + c;
        c = h1 >> 44;
        h1 &= MASK44;
        h2 += ((t1 >> 24) & MASK42) + c;
        h2 &= MASK42;

        let low = h0 | (h1 << 44);
        let high = (h1 >> 20) | (h2 << 24);
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&low.to_le_bytes());
        tag[8..].copy_from_slice(&high.to_le_bytes());
        tag
    }
}

#[cfg(test)]
mod tests {
    use poly1305::Poly1305;
    use poly1305::universal_hash::KeyInit;
    use rand::{Rng, RngCore, SeedableRng};

    use super::TagKey;

    /// RFC 8439, section 2.5.2.
    #[test]
    fn the_rfc_example() {
        let key: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        let tag = TagKey::new(&key).tag(b"Cryptographic Forum Research Group");
        let expected: [u8; 16] = [
            0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
            0x27, 0xa9,
        ];
        assert_eq!(tag, expected);
    }

    /// The same tags as the `poly1305` crate, on random keys and messages, and on the edges of
    /// the arithmetic (every bit set, in the key and the message).
    #[test]
    fn the_tags_of_the_poly1305_crate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a9);
        let check = |key: &[u8; 32], message: &[u8]| {
            let theirs: [u8; 16] = Poly1305::new(key.into()).compute_unpadded(message).into();
            assert_eq!(
                TagKey::new(key).tag(message),
                theirs,
                "key {key:?}, message {message:?}"
            );
        };
        for _ in 0..5_000 {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            let mut message = vec![0u8; rng.gen_range(0..100)];
            if rng.gen_bool(0.2) {
                message.fill(0xff);
            } else {
                rng.fill_bytes(&mut message);
            }
            check(&key, &message);
        }
        for len in 0..80 {
            check(&[0xff; 32], &vec![0xff; len]);
            check(&[0; 32], &vec![0xff; len]);
            check(&[0xff; 32], &vec![0; len]);
        }
    }
}
