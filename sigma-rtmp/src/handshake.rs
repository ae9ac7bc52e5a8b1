//! The RTMP handshake (RTMP 1.0 §5.2), sans-IO, for both roles.
//!
//! Two flavours exist in the wild:
//! - the **plain** handshake of the spec: C0/S0 is the version byte (3), C1/S1 is 1,536 bytes of
//!   time, zero and random data, and C2/S2 echo the peer's C1/S1;
//! - the **digest** ("complex", Flash Player 9) handshake: C1 carries a non-zero version and an
//!   HMAC-SHA256 digest of itself, keyed with `"Genuine Adobe Flash Player 001"`, at an offset
//!   inside one of two 764-byte blocks (scheme 0: digest block first at byte 8, scheme 1: digest
//!   block at byte 772); the offset is the sum of the block's first four bytes modulo 728, plus
//!   4. The server answers with an S1 digested the same way with the
//!   `"Genuine Adobe Flash Media Server 001"` key, and an S2 whose last 32 bytes are an HMAC of
//!   the rest keyed with HMAC(full server key, client digest). Clients such as Flash, ffmpeg's
//!   player mode and some hardware encoders check this reply.
//!
//! The server validates the client digest at scheme 0 and then 1, answers with the digest reply
//! when one validates, and falls back to the plain echo when none does. C2 is not checked
//! (players disagree on what it should hold). The client sends a plain C1 unless asked for the
//! digest, and echoes S1 as C2 (ffmpeg's server checks exactly that).
//!
//! Randomness is passed in as a seed, so the handshake is deterministic under test.

use crate::Error;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1/S1/C2/S2 (RTMP 1.0 §5.2.3).
pub const PACKET_SIZE: usize = 1536;
/// The only RTMP version this crate speaks (RTMP 1.0 §5.2.2).
pub const RTMP_VERSION: u8 = 3;
const DIGEST_LEN: usize = 32;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes.
const FP_KEY: [u8; 62] = {
    let text = *b"Genuine Adobe Flash Player 001";
    let mut k = [0u8; 62];
    let mut i = 0;
    while i < 30 {
        k[i] = text[i];
        i += 1;
    }
    while i < 62 {
        k[i] = KEY_TAIL[i - 30];
        i += 1;
    }
    k
};
/// "Genuine Adobe Flash Media Server 001" followed by 32 constant bytes.
const FMS_KEY: [u8; 68] = {
    let text = *b"Genuine Adobe Flash Media Server 001";
    let mut k = [0u8; 68];
    let mut i = 0;
    while i < 36 {
        k[i] = text[i];
        i += 1;
    }
    while i < 68 {
        k[i] = KEY_TAIL[i - 36];
        i += 1;
    }
    k
};
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Version field our server puts in a digest S1 (what FMS 3.5 sends).
const SERVER_VERSION: u32 = 0x0305_0101;
/// Version field our client puts in a digest C1 (Flash Player 9.0.124.2, as ffmpeg sends).
const CLIENT_VERSION: u32 = 0x0900_7C02;

/// Which digest layout a C1/S1 uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Digest block at bytes 8..772 (the key block follows).
    Scheme0,
    /// Digest block at bytes 772..1536 (the key block comes first).
    Scheme1,
}

impl DigestScheme {
    fn offset(self, packet: &[u8]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        sum % 728 + base + 4
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; DIGEST_LEN],
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The digest of `packet` (1,536 bytes) at the scheme's offset, computed over every other byte.
fn packet_digest(packet: &[u8], scheme: DigestScheme, key: &[u8]) -> ([u8; DIGEST_LEN], usize) {
    let at = scheme.offset(packet);
    (hmac(key, &[&packet[..at], &packet[at + DIGEST_LEN..]]), at)
}

/// Finds which scheme's digest validates in `packet`, keyed with `key`.
pub fn find_digest(packet: &[u8], key: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    if packet.len() != PACKET_SIZE {
        return None;
    }
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|s| {
            let (d, at) = packet_digest(packet, s, key);
            (packet[at..at + DIGEST_LEN] == d).then_some((s, d))
        })
}

fn sign_packet(packet: &mut [u8], scheme: DigestScheme, key: &[u8]) -> [u8; DIGEST_LEN] {
    let (d, at) = packet_digest(packet, scheme, key);
    packet[at..at + DIGEST_LEN].copy_from_slice(&d);
    d
}

/// A small deterministic generator for the random parts of C1/S1 (which need not be secret).
struct Random(u64);

impl Random {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Answers C0/C1 with S0/S1/S2.
    Server,
    /// Sends C0/C1 first.
    Client {
        /// Send a digest C1 (Flash Player style) instead of a plain one.
        digest: bool,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Server: waiting for C0+C1. Client: waiting for S0+S1+S2.
    AwaitFirst,
    /// Server: waiting for C2.
    AwaitC2,
    Done,
}

/// How the handshake went, once it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The plain echo of RTMP 1.0 §5.2.
    Plain,
    /// The digest handshake, with the scheme the client used.
    Digest(DigestScheme),
}

/// The handshake state machine. Feed it input with [`Handshake::handle_input`], send what
/// [`Handshake::poll_transmit`] gives, until [`Handshake::is_done`]; the bytes left in the input
/// buffer then belong to the chunk stream.
pub struct Handshake {
    role: Role,
    state: State,
    out: BytesMut,
    /// Our C1 (client) or S1 (server), kept to recognise the echo and for digests.
    ours: Vec<u8>,
    flavour: Option<Flavour>,
}

impl Handshake {
    /// A server-side handshake; `seed` drives the random bytes of S1.
    pub fn server(seed: u64) -> Self {
        let mut ours = vec![0u8; PACKET_SIZE];
        Random(seed | 1).fill(&mut ours[8..]);
        Handshake {
            role: Role::Server,
            state: State::AwaitFirst,
            out: BytesMut::new(),
            ours,
            flavour: None,
        }
    }

    /// A client-side handshake; C0+C1 are queued for sending at once.
    pub fn client(seed: u64, digest: bool) -> Self {
        let mut c1 = vec![0u8; PACKET_SIZE];
        Random(seed | 1).fill(&mut c1[8..]);
        if digest {
            c1[4..8].copy_from_slice(&CLIENT_VERSION.to_be_bytes());
            sign_packet(&mut c1, DigestScheme::Scheme0, &FP_KEY[..30]);
        }
        let mut out = BytesMut::with_capacity(1 + PACKET_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        Handshake {
            role: Role::Client { digest },
            state: State::AwaitFirst,
            out,
            ours: c1,
            flavour: None,
        }
    }

    /// True once this side has nothing more to receive; output may still be pending.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The flavour negotiated, once known.
    pub fn flavour(&self) -> Option<Flavour> {
        self.flavour
    }

    /// Bytes still needed before the next step (0 when done).
    pub fn needed(&self, buffered: usize) -> usize {
        let want = match (&self.role, &self.state) {
            (_, State::Done) => 0,
            (Role::Server, State::AwaitFirst) => 1 + PACKET_SIZE,
            (Role::Server, State::AwaitC2) => PACKET_SIZE,
            (Role::Client { .. }, _) => 1 + 2 * PACKET_SIZE,
        };
        want.saturating_sub(buffered)
    }

    /// Consumes handshake bytes from the front of `input`, leaving anything after the
    /// handshake in place. Returns `Ok(())` when it needs more bytes or is done.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), Error> {
        loop {
            match (self.role, &self.state) {
                (_, State::Done) => return Ok(()),
                (Role::Server, State::AwaitFirst) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    if input[0] != RTMP_VERSION {
                        return Err(Error::UnsupportedVersion(input[0]));
                    }
                    if input.len() < 1 + PACKET_SIZE {
                        return Ok(());
                    }
                    input.advance(1);
                    let c1 = input.split_to(PACKET_SIZE);
                    self.answer_c1(&c1);
                    self.state = State::AwaitC2;
                }
                (Role::Server, State::AwaitC2) => {
                    if input.len() < PACKET_SIZE {
                        return Ok(());
                    }
                    input.advance(PACKET_SIZE);
                    self.state = State::Done;
                }
                (Role::Client { digest }, State::AwaitFirst) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    if input[0] != RTMP_VERSION {
                        return Err(Error::UnsupportedVersion(input[0]));
                    }
                    if input.len() < 1 + 2 * PACKET_SIZE {
                        return Ok(());
                    }
                    input.advance(1);
                    let s1 = input.split_to(PACKET_SIZE);
                    input.advance(PACKET_SIZE); // S2: not checked, see module docs
                    self.answer_s1(&s1, digest)?;
                    self.state = State::Done;
                }
                (Role::Client { .. }, State::AwaitC2) => {
                    self.state = State::Done;
                }
            }
        }
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    fn answer_c1(&mut self, c1: &[u8]) {
        self.out.reserve(1 + 2 * PACKET_SIZE);
        self.out.put_u8(RTMP_VERSION);
        let client_version = u32::from_be_bytes([c1[4], c1[5], c1[6], c1[7]]);
        let found = if client_version != 0 {
            find_digest(c1, &FP_KEY[..30])
        } else {
            None
        };
        match found {
            Some((scheme, client_digest)) => {
                let mut s1 = std::mem::take(&mut self.ours);
                s1[0..4].copy_from_slice(&0u32.to_be_bytes());
                s1[4..8].copy_from_slice(&SERVER_VERSION.to_be_bytes());
                sign_packet(&mut s1, scheme, &FMS_KEY[..36]);
                self.out.put_slice(&s1);
                // S2: random bytes whose last 32 bytes sign the rest with a key derived from the
                // client's digest.
                let mut s2 = vec![0u8; PACKET_SIZE];
                Random(
                    u64::from_be_bytes([
                        s1[8], s1[9], s1[10], s1[11], s1[12], s1[13], s1[14], s1[15],
                    ]) | 1,
                )
                .fill(&mut s2);
                let key = hmac(&FMS_KEY, &[&client_digest]);
                let sig = hmac(&key, &[&s2[..PACKET_SIZE - DIGEST_LEN]]);
                s2[PACKET_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
                self.out.put_slice(&s2);
                self.ours = s1;
                self.flavour = Some(Flavour::Digest(scheme));
            }
            None => {
                self.out.put_slice(&self.ours);
                // S2 echoes C1 (RTMP 1.0 §5.2.4).
                self.out.put_slice(c1);
                self.flavour = Some(Flavour::Plain);
            }
        }
    }

    fn answer_s1(&mut self, s1: &[u8], digest: bool) -> Result<(), Error> {
        let server_version = u32::from_be_bytes([s1[4], s1[5], s1[6], s1[7]]);
        if digest && server_version != 0 {
            let Some((scheme, server_digest)) = find_digest(s1, &FMS_KEY[..36]) else {
                return Err(Error::InvalidDigest);
            };
            let mut c2 = vec![0u8; PACKET_SIZE];
            Random(0x5EED_C2C2).fill(&mut c2);
            let key = hmac(&FP_KEY, &[&server_digest]);
            let sig = hmac(&key, &[&c2[..PACKET_SIZE - DIGEST_LEN]]);
            c2[PACKET_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
            self.out.put_slice(&c2);
            self.flavour = Some(Flavour::Digest(scheme));
        } else {
            // C2 echoes S1 (RTMP 1.0 §5.2.4).
            self.out.put_slice(s1);
            self.flavour = Some(Flavour::Plain);
        }
        Ok(())
    }
}

/// Checks that `s2` is a valid digest answer to a client whose C1 carried `client_digest`
/// (used by tests and by clients that want to verify the server).
pub fn verify_server_s2(s2: &[u8], client_digest: &[u8; DIGEST_LEN]) -> bool {
    if s2.len() != PACKET_SIZE {
        return false;
    }
    let key = hmac(&FMS_KEY, &[client_digest]);
    hmac(&key, &[&s2[..PACKET_SIZE - DIGEST_LEN]]) == s2[PACKET_SIZE - DIGEST_LEN..]
}

/// The digest a client put into its C1, if any (keyed with the Flash Player key).
pub fn client_digest(c1: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    find_digest(c1, &FP_KEY[..30]).map(|(_, d)| d)
}

/// Whether `s1` carries a valid server digest.
pub fn server_digest(s1: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    find_digest(s1, &FMS_KEY[..36]).map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut client: Handshake, mut server: Handshake) -> (Handshake, Handshake, Vec<u8>) {
        let mut to_server = BytesMut::new();
        let mut to_client = BytesMut::new();
        let mut s1s2 = Vec::new();
        for _ in 0..4 {
            while let Some(b) = client.poll_transmit() {
                to_server.extend_from_slice(&b);
            }
            server.handle_input(&mut to_server).unwrap();
            while let Some(b) = server.poll_transmit() {
                s1s2.extend_from_slice(&b);
                to_client.extend_from_slice(&b);
            }
            client.handle_input(&mut to_client).unwrap();
        }
        (client, server, s1s2)
    }

    #[test]
    fn plain_handshake_echoes() {
        let (c, s, out) = run(Handshake::client(7, false), Handshake::server(9));
        assert!(c.is_done() && s.is_done());
        assert_eq!(s.flavour(), Some(Flavour::Plain));
        assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
        assert_eq!(out[0], 3);
    }

    #[test]
    fn digest_handshake_both_schemes() {
        let (c, s, out) = run(Handshake::client(7, true), Handshake::server(9));
        assert!(c.is_done() && s.is_done());
        assert_eq!(s.flavour(), Some(Flavour::Digest(DigestScheme::Scheme0)));
        assert_eq!(c.flavour(), Some(Flavour::Digest(DigestScheme::Scheme0)));
        // Scheme 1: build a C1 by hand, as some encoders do.
        let mut c1 = vec![0u8; PACKET_SIZE];
        Random(3).fill(&mut c1[8..]);
        c1[4..8].copy_from_slice(&0x0A00_2002u32.to_be_bytes());
        let digest = sign_packet(&mut c1, DigestScheme::Scheme1, &FP_KEY[..30]);
        assert_eq!(client_digest(&c1), Some(digest));
        let mut server = Handshake::server(1);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(&c1);
        server.handle_input(&mut input).unwrap();
        let reply = server.poll_transmit().unwrap();
        let s1 = &reply[1..1 + PACKET_SIZE];
        let s2 = &reply[1 + PACKET_SIZE..];
        assert_eq!(
            find_digest(s1, &FMS_KEY[..36]).map(|(s, _)| s),
            Some(DigestScheme::Scheme1)
        );
        assert!(verify_server_s2(s2, &digest));
        assert_eq!(
            server.flavour(),
            Some(Flavour::Digest(DigestScheme::Scheme1))
        );
        let _ = out;
    }

    #[test]
    fn bad_digest_falls_back_to_plain() {
        let mut c1 = vec![0u8; PACKET_SIZE];
        Random(3).fill(&mut c1[8..]);
        c1[4..8].copy_from_slice(&0x0900_7C02u32.to_be_bytes()); // version, but no digest
        let mut server = Handshake::server(1);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(&c1);
        input.put_slice(&[0xAA; PACKET_SIZE]); // C2
        input.put_slice(b"rest");
        server.handle_input(&mut input).unwrap();
        assert!(server.is_done());
        assert_eq!(server.flavour(), Some(Flavour::Plain));
        let reply = server.poll_transmit().unwrap();
        assert_eq!(&reply[1 + PACKET_SIZE..], &c1[..], "S2 echoes C1");
        assert_eq!(
            &input[..],
            b"rest",
            "bytes after C2 are left for the chunk layer"
        );
    }

    #[test]
    fn wrong_version_is_an_error_and_partial_input_is_not() {
        let mut s = Handshake::server(1);
        let mut input = BytesMut::from(&[3u8, 0, 0][..]);
        s.handle_input(&mut input).unwrap();
        assert_eq!(s.needed(input.len()), 1 + PACKET_SIZE - 3);
        let mut bad = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(
            Handshake::server(1).handle_input(&mut bad),
            Err(Error::UnsupportedVersion(b'G'))
        ));
    }

    #[test]
    fn client_rejects_forged_server_digest() {
        let mut c = Handshake::client(5, true);
        let _ = c.poll_transmit();
        let mut input = BytesMut::new();
        input.put_u8(3);
        let mut s1 = vec![7u8; PACKET_SIZE];
        s1[4..8].copy_from_slice(&SERVER_VERSION.to_be_bytes());
        input.put_slice(&s1);
        input.put_slice(&[0u8; PACKET_SIZE]);
        assert!(matches!(
            c.handle_input(&mut input),
            Err(Error::InvalidDigest)
        ));
    }
}
