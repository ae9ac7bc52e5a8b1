//! Fuzzes the chunk stream decoder: any bytes give messages, "need more" or a typed error, never
//! a panic; memory held stays under the limits; and every decoded message re-encodes (at a chunk
//! size taken from the input) and decodes back to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sigma_rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, ControlMessage};

fuzz_target!(|data: &[u8]| {
    let limits = ChunkLimits {
        max_chunk_size: 1 << 16,
        max_message_len: 1 << 16,
        max_chunk_streams: 8,
        max_buffered_bytes: 1 << 17,
    };
    let mut dec = ChunkDecoder::new(limits);
    dec.set_zero_copy_max(data.first().map_or(0, |&b| usize::from(b) * 8));
    let mut input = BytesMut::new();
    let mut messages = Vec::new();
    let step = data.get(1).map_or(1, |&b| usize::from(b).max(1));
    'outer: for part in data.chunks(step) {
        input.extend_from_slice(part);
        loop {
            match dec.decode(&mut input) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= limits.max_message_len as usize);
                    messages.push(m);
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
            assert!(dec.buffered() <= limits.max_buffered_bytes);
        }
    }
    // Round trip of whatever was decoded.
    let chunk_size = u32::from(data.get(2).copied().unwrap_or(128)).max(1);
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    enc.encode(
        &ControlMessage::SetChunkSize(chunk_size).to_message(0),
        &mut out,
    );
    enc.set_chunk_size(chunk_size);
    let mut kept = Vec::new();
    for m in messages {
        // Control messages would change the decoder's state; skip them in the round trip.
        if m.type_id == 1 || m.type_id == 2 || m.csid < 2 {
            continue;
        }
        enc.encode(&m, &mut out);
        kept.push(m);
    }
    let mut dec = ChunkDecoder::new(ChunkLimits {
        max_chunk_streams: 65_600,
        ..limits
    });
    let first = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(first.type_id, 1);
    for m in kept {
        let got = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(got, m);
    }
    assert!(out.is_empty());
});
