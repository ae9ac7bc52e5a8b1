//! CMAF box writing (ISO/IEC 14496-12 ISOBMFF, ISO/IEC 23000-19 CMAF): init segments and the
//! headers of CMAF chunks.
//!
//! Every function here is pure: plain configuration structs in, bytes out. Each box is written by
//! one function that reserves the size field, writes the body and back-patches the size, so there
//! is no separate size computation to drift out of sync.
//!
//! A chunk's payload is never copied: [`chunk_header`] returns `[styp] moof` plus the 8-byte
//! `mdat` header, and the caller sends the frames' own `Bytes` after it.

use crate::Error;
use bytes::Bytes;

/// Codec-specific part of a track's sample entry.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleEntry {
    /// `avc1` with its `avcC` (ISO/IEC 14496-15 §5.4.2.1).
    Avc {
        /// Coded width in pixels.
        width: u32,
        /// Coded height in pixels.
        height: u32,
        /// The `AVCDecoderConfigurationRecord`, written unchanged as the `avcC` body.
        avcc: Bytes,
    },
    /// `mp4a` with its `esds` (ISO/IEC 14496-14 §5.6).
    Aac {
        /// Output sampling rate in Hz.
        sample_rate: u32,
        /// Output channel count.
        channels: u8,
        /// The AudioSpecificConfig, written unchanged as the `DecoderSpecificInfo`.
        audio_specific_config: Bytes,
    },
}

/// Everything an init segment describes: one track, as CMAF requires.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackConfig {
    /// `track_ID` in `tkhd`, `trex` and every `tfhd`.
    pub track_id: u32,
    /// Media timescale (`mdhd`): ticks per second of every `tfdt` and sample duration.
    pub timescale: u32,
    /// The sample entry.
    pub entry: SampleEntry,
}

/// One sample of a chunk, as its `trun` entry describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfo {
    /// Duration in timescale ticks.
    pub duration: u32,
    /// Payload size in bytes.
    pub size: u32,
    /// A sync sample (an IDR picture, or any audio frame).
    pub sync: bool,
    /// `pts - dts` in ticks (signed: `trun` version 1).
    pub composition_offset: i32,
}

/// The header of one CMAF chunk (one `moof` with one `traf`, then the `mdat` header).
#[derive(Clone, Copy, Debug)]
pub struct ChunkHeader<'a> {
    /// `mfhd.sequence_number`; grows by one per chunk of the track.
    pub sequence_number: u32,
    /// The track's `track_ID`.
    pub track_id: u32,
    /// `tfdt.baseMediaDecodeTime`: decode time of the first sample in timescale ticks.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [SampleInfo],
    /// Starts a CMAF segment: a `styp` is written first.
    pub segment_start: bool,
}

/// `sample_flags` (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: `sample_depends_on = 2`.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on = 1`, `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Writes one box: reserves the 32-bit size, writes the type and body, back-patches the size.
fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box (a box with version and 24-bit flags, ISO/IEC 14496-12 §4.2).
fn write_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, kind, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(out);
    });
}

/// Writes an MPEG-4 descriptor (ISO/IEC 14496-1 §7.2.2.1) with a 4-byte size field, patched.
fn write_descriptor(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let start = out.len();
    out.extend_from_slice(&[0x80, 0x80, 0x80, 0]);
    body(out);
    let size = out.len() - start - 4;
    // Four 7-bit groups hold up to 2^28 - 1; our descriptors are tiny (the ASC is bounded below).
    let size = size.min((1 << 28) - 1) as u32;
    out[start] = 0x80 | ((size >> 21) & 0x7f) as u8;
    out[start + 1] = 0x80 | ((size >> 14) & 0x7f) as u8;
    out[start + 2] = 0x80 | ((size >> 7) & 0x7f) as u8;
    out[start + 3] = (size & 0x7f) as u8;
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn matrix(out: &mut Vec<u8>) {
    for v in UNITY_MATRIX {
        u32be(out, v);
    }
}

/// Writes an init segment: `ftyp` (CMAF brands) and `moov` with one track and `mvex`/`trex`
/// (ISO/IEC 23000-19 §7.3.1, ISO/IEC 14496-12 §8.8.1).
///
/// Errors: [`Error::FieldOverflow`] when an `AudioSpecificConfig` is too long for an `esds`
/// descriptor.
pub fn init_segment(track: &TrackConfig) -> Result<Bytes, Error> {
    if let SampleEntry::Aac {
        audio_specific_config,
        ..
    } = &track.entry
        && audio_specific_config.len() > 0xffff
    {
        return Err(Error::FieldOverflow {
            what: "AudioSpecificConfig length",
            value: audio_specific_config.len() as i128,
        });
    }
    let mut out = Vec::with_capacity(1024);
    write_box(&mut out, b"ftyp", |out| {
        out.extend_from_slice(b"cmfc"); // major brand: CMAF track (ISO/IEC 23000-19 §7.2)
        u32be(out, 0);
        for brand in [b"cmfc", b"iso6", b"mp41"] {
            out.extend_from_slice(brand);
        }
    });
    write_box(&mut out, b"moov", |out| {
        write_full_box(out, b"mvhd", 0, 0, |out| {
            u32be(out, 0); // creation_time
            u32be(out, 0); // modification_time
            u32be(out, 1000); // timescale
            u32be(out, 0); // duration: unknown (fragmented)
            u32be(out, 0x0001_0000); // rate 1.0
            u16be(out, 0x0100); // volume 1.0
            out.extend_from_slice(&[0; 10]);
            matrix(out);
            out.extend_from_slice(&[0; 24]); // pre_defined
            u32be(out, track.track_id.saturating_add(1)); // next_track_ID
        });
        write_trak(out, track);
        write_box(out, b"mvex", |out| {
            write_full_box(out, b"trex", 0, 0, |out| {
                u32be(out, track.track_id);
                u32be(out, 1); // default_sample_description_index
                u32be(out, 0); // default_sample_duration
                u32be(out, 0); // default_sample_size
                u32be(out, 0); // default_sample_flags
            });
        });
    });
    Ok(Bytes::from(out))
}

fn write_trak(out: &mut Vec<u8>, track: &TrackConfig) {
    let (is_video, width, height) = match &track.entry {
        SampleEntry::Avc { width, height, .. } => (true, *width, *height),
        SampleEntry::Aac { .. } => (false, 0, 0),
    };
    write_box(out, b"trak", |out| {
        // flags: track_enabled | track_in_movie | track_in_preview
        write_full_box(out, b"tkhd", 0, 7, |out| {
            u32be(out, 0);
            u32be(out, 0);
            u32be(out, track.track_id);
            u32be(out, 0); // reserved
            u32be(out, 0); // duration
            out.extend_from_slice(&[0; 8]);
            u16be(out, 0); // layer
            u16be(out, 0); // alternate_group
            u16be(out, if is_video { 0 } else { 0x0100 }); // volume
            u16be(out, 0);
            matrix(out);
            u32be(out, width.min(0xffff) << 16);
            u32be(out, height.min(0xffff) << 16);
        });
        write_box(out, b"mdia", |out| {
            write_full_box(out, b"mdhd", 0, 0, |out| {
                u32be(out, 0);
                u32be(out, 0);
                u32be(out, track.timescale);
                u32be(out, 0);
                u16be(out, 0x55c4); // language "und"
                u16be(out, 0);
            });
            write_full_box(out, b"hdlr", 0, 0, |out| {
                u32be(out, 0);
                out.extend_from_slice(if is_video { b"vide" } else { b"soun" });
                out.extend_from_slice(&[0; 12]);
                out.extend_from_slice(if is_video {
                    b"VideoHandler\0".as_slice()
                } else {
                    b"SoundHandler\0".as_slice()
                });
            });
            write_box(out, b"minf", |out| {
                if is_video {
                    write_full_box(out, b"vmhd", 0, 1, |out| out.extend_from_slice(&[0; 8]));
                } else {
                    write_full_box(out, b"smhd", 0, 0, |out| out.extend_from_slice(&[0; 4]));
                }
                write_box(out, b"dinf", |out| {
                    write_full_box(out, b"dref", 0, 0, |out| {
                        u32be(out, 1);
                        write_full_box(out, b"url ", 0, 1, |_| {}); // self-contained
                    });
                });
                write_box(out, b"stbl", |out| {
                    write_full_box(out, b"stsd", 0, 0, |out| {
                        u32be(out, 1);
                        write_sample_entry(out, &track.entry, track.track_id);
                    });
                    write_full_box(out, b"stts", 0, 0, |out| u32be(out, 0));
                    write_full_box(out, b"stsc", 0, 0, |out| u32be(out, 0));
                    write_full_box(out, b"stsz", 0, 0, |out| {
                        u32be(out, 0);
                        u32be(out, 0);
                    });
                    write_full_box(out, b"stco", 0, 0, |out| u32be(out, 0));
                });
            });
        });
    });
}

fn write_sample_entry(out: &mut Vec<u8>, entry: &SampleEntry, track_id: u32) {
    match entry {
        SampleEntry::Avc {
            width,
            height,
            avcc,
        } => write_box(out, b"avc1", |out| {
            out.extend_from_slice(&[0; 6]);
            u16be(out, 1); // data_reference_index
            out.extend_from_slice(&[0; 16]); // pre_defined, reserved, pre_defined[3]
            u16be(out, (*width).min(0xffff) as u16);
            u16be(out, (*height).min(0xffff) as u16);
            u32be(out, 0x0048_0000); // 72 dpi
            u32be(out, 0x0048_0000);
            u32be(out, 0);
            u16be(out, 1); // frame_count
            out.extend_from_slice(&[0; 32]); // compressorname
            u16be(out, 0x0018); // depth
            u16be(out, 0xffff); // pre_defined = -1
            write_box(out, b"avcC", |out| out.extend_from_slice(avcc));
        }),
        SampleEntry::Aac {
            sample_rate,
            channels,
            audio_specific_config,
        } => write_box(out, b"mp4a", |out| {
            out.extend_from_slice(&[0; 6]);
            u16be(out, 1);
            out.extend_from_slice(&[0; 8]);
            u16be(out, u16::from(*channels));
            u16be(out, 16); // samplesize
            u32be(out, 0);
            // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0 (the
            // decoder takes the rate from the AudioSpecificConfig).
            u32be(
                out,
                if *sample_rate <= 0xffff {
                    sample_rate << 16
                } else {
                    0
                },
            );
            write_full_box(out, b"esds", 0, 0, |out| {
                write_descriptor(out, 0x03, |out| {
                    u16be(out, track_id.min(0xffff) as u16); // ES_ID
                    out.push(0); // no dependsOn, URL or OCR stream
                    write_descriptor(out, 0x04, |out| {
                        out.push(0x40); // objectTypeIndication: MPEG-4 Audio
                        out.push(0x15); // streamType 5 (audio) << 2 | reserved 1
                        out.extend_from_slice(&[0; 3]); // bufferSizeDB
                        u32be(out, 0); // maxBitrate
                        u32be(out, 0); // avgBitrate
                        write_descriptor(out, 0x05, |out| {
                            out.extend_from_slice(audio_specific_config)
                        });
                    });
                    write_descriptor(out, 0x06, |out| out.push(0x02)); // SLConfig: MP4
                });
            });
        }),
    }
}

/// Size of `[styp] moof` plus the `mdat` header for `samples` samples; a capacity hint.
fn header_capacity(samples: usize) -> usize {
    32 + 8 + 16 + 8 + 16 + 20 + 20 + samples * 16 + 8
}

/// Writes the header of one CMAF chunk: a `styp` when the chunk starts a segment, then `moof`
/// (`mfhd`, `traf` with `tfhd` (default-base-is-moof), version-1 `tfdt`, version-1 `trun`
/// with per-sample duration, size, flags and signed composition offset; ISO/IEC 14496-12
/// §8.8.4–8.8.8, §8.8.12), then the 8-byte `mdat` header sized for the samples' payloads,
/// which the caller sends unchanged after these bytes.
///
/// Errors: [`Error::FieldOverflow`] when the payload does not fit a 32-bit `mdat` or the
/// `trun` data offset.
pub fn chunk_header(chunk: &ChunkHeader<'_>) -> Result<Bytes, Error> {
    let payload: u64 = chunk.samples.iter().map(|s| u64::from(s.size)).sum();
    let mdat_size = payload + 8;
    if mdat_size > u64::from(u32::MAX) {
        return Err(Error::FieldOverflow {
            what: "mdat size",
            value: i128::from(mdat_size),
        });
    }
    let mut out = Vec::with_capacity(header_capacity(chunk.samples.len()));
    if chunk.segment_start {
        write_box(&mut out, b"styp", |out| {
            out.extend_from_slice(b"cmfs"); // CMAF segment (ISO/IEC 23000-19 §7.3.3)
            u32be(out, 0);
            for brand in [b"cmfs", b"cmff", b"cmfl", b"msdh"] {
                out.extend_from_slice(brand);
            }
        });
    }
    let moof_start = out.len();
    let mut data_offset_at = 0;
    write_box(&mut out, b"moof", |out| {
        write_full_box(out, b"mfhd", 0, 0, |out| u32be(out, chunk.sequence_number));
        write_box(out, b"traf", |out| {
            // 0x020000: default-base-is-moof; data offsets are relative to this moof.
            write_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32be(out, chunk.track_id));
            write_full_box(out, b"tfdt", 1, 0, |out| u64be(out, chunk.base_decode_time));
            // 0x001: data-offset, 0x100: duration, 0x200: size, 0x400: flags, 0x800: CTO.
            write_full_box(out, b"trun", 1, 0x0f01, |out| {
                u32be(out, chunk.samples.len() as u32);
                data_offset_at = out.len();
                u32be(out, 0); // data_offset, patched below
                for s in chunk.samples {
                    u32be(out, s.duration);
                    u32be(out, s.size);
                    u32be(
                        out,
                        if s.sync {
                            SYNC_SAMPLE_FLAGS
                        } else {
                            NON_SYNC_SAMPLE_FLAGS
                        },
                    );
                    out.extend_from_slice(&s.composition_offset.to_be_bytes());
                }
            });
        });
    });
    // The first sample starts right after the mdat header that follows the moof.
    let data_offset = (out.len() - moof_start + 8) as u64;
    if data_offset > i32::MAX as u64 {
        return Err(Error::FieldOverflow {
            what: "trun data_offset",
            value: i128::from(data_offset),
        });
    }
    out[data_offset_at..data_offset_at + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
    u32be(&mut out, mdat_size as u32);
    out.extend_from_slice(b"mdat");
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(mut data: &[u8]) -> Vec<([u8; 4], usize)> {
        let mut v = Vec::new();
        while data.len() >= 8 {
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = data[4..8].try_into().unwrap();
            v.push((kind, size));
            if size < 8 || size > data.len() {
                break;
            }
            data = &data[size..];
        }
        v
    }

    #[test]
    fn chunk_header_sizes_and_offsets_are_consistent() {
        let samples = [
            SampleInfo {
                duration: 3000,
                size: 100,
                sync: true,
                composition_offset: 6000,
            },
            SampleInfo {
                duration: 3000,
                size: 50,
                sync: false,
                composition_offset: -3000,
            },
        ];
        let h = chunk_header(&ChunkHeader {
            sequence_number: 7,
            track_id: 1,
            base_decode_time: 1 << 40,
            samples: &samples,
            segment_start: true,
        })
        .unwrap();
        let b = boxes(&h);
        assert_eq!(&b[0].0, b"styp");
        assert_eq!(&b[1].0, b"moof");
        assert_eq!(&b[2].0, b"mdat");
        assert_eq!(
            b[2].1,
            8 + 150,
            "mdat size covers the payload sent after the header"
        );
        assert_eq!(b[0].1 + b[1].1 + 8, h.len());
        // data_offset = moof size + mdat header.
        let moof = &h[b[0].1..b[0].1 + b[1].1];
        let trun = moof.windows(4).position(|w| w == b"trun").unwrap() - 4;
        let off = u32::from_be_bytes(moof[trun + 16..trun + 20].try_into().unwrap());
        assert_eq!(off as usize, b[1].1 + 8);
        assert_eq!(moof[trun + 8], 1, "trun version 1 for signed offsets");
        let tfdt = moof.windows(4).position(|w| w == b"tfdt").unwrap() - 4;
        assert_eq!(moof[tfdt + 8], 1, "64-bit tfdt");
        assert_eq!(
            u64::from_be_bytes(moof[tfdt + 12..tfdt + 20].try_into().unwrap()),
            1 << 40
        );
    }

    #[test]
    fn mid_segment_chunk_has_no_styp() {
        let h = chunk_header(&ChunkHeader {
            sequence_number: 1,
            track_id: 2,
            base_decode_time: 0,
            samples: &[],
            segment_start: false,
        })
        .unwrap();
        assert_eq!(&boxes(&h)[0].0, b"moof");
    }

    #[test]
    fn init_segment_box_tree() {
        let init = init_segment(&TrackConfig {
            track_id: 2,
            timescale: 48000,
            entry: SampleEntry::Aac {
                sample_rate: 48000,
                channels: 2,
                audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
            },
        })
        .unwrap();
        let b = boxes(&init);
        assert_eq!(
            b.iter().map(|b| &b.0).collect::<Vec<_>>(),
            [b"ftyp", b"moov"]
        );
        assert_eq!(b[0].1 + b[1].1, init.len());
        for needle in [b"mvex", b"trex", b"mp4a", b"esds", b"smhd"] {
            assert!(init.windows(4).any(|w| w == needle), "{needle:?}");
        }
    }
}
