//! Fuzzes the RTMP handshake (both roles): any bytes, split anywhere, give progress or an error,
//! never a panic; a finished server handshake consumed exactly C0+C1+C2 and answered with exactly
//! S0+S1+S2, leaving the rest for the chunk layer.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sigma_rtmp::handshake::{Handshake, PACKET_SIZE};

fuzz_target!(|data: &[u8]| {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) * 16)
        .min(data.len());
    for client in [false, true] {
        let mut h = if client {
            Handshake::client(1, data.len().is_multiple_of(2))
        } else {
            Handshake::server(1)
        };
        let mut input = BytesMut::new();
        let mut out = 0usize;
        let mut fed = 0usize;
        let mut failed = false;
        for part in [&data[..split], &data[split..]] {
            input.extend_from_slice(part);
            fed += part.len();
            if h.handle_input(&mut input).is_err() {
                failed = true;
                break;
            }
            while let Some(b) = h.poll_transmit() {
                out += b.len();
            }
        }
        if failed {
            continue;
        }
        let consumed = fed - input.len();
        if h.is_done() {
            // Both roles: C0+C1+C2 (or S0+S1+S2) in, S0+S1+S2 (or C0+C1+C2) out.
            assert_eq!(consumed, 1 + 2 * PACKET_SIZE);
            assert_eq!(out, 1 + 2 * PACKET_SIZE);
        } else {
            assert!(consumed <= 1 + PACKET_SIZE);
        }
    }
});
