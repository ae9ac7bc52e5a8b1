//! AAC encoding with fdk-aac (through the safe `fdk-aac` crate; no `unsafe` here).

use super::{AacProfile, AacSettings};
use crate::Error;
use crate::audio::Channels;
use crate::decode::AudioBlock;
use bytes::Bytes;
use fdk_aac::enc as fdk;
use sigma_core::{AacConfig, Frame, TrackId};
use std::collections::VecDeque;

fn fail(reason: impl Into<String>) -> Error {
    Error::Encode {
        encoder: "fdk-aac",
        reason: reason.into(),
    }
}

/// An AAC encoder taking interleaved `s16` blocks (what [`AudioFilter`](crate::audio::AudioFilter)
/// produces) and producing raw AAC frames timestamped in ticks of the sample rate.
///
/// Frame `n` is stamped `first + n·frame_length − delay`, where `delay` is the encoder's
/// look-ahead, so each frame's time is that of the input it encodes (the first frames, which
/// hold the encoder's priming, start slightly before the first input sample).
pub struct AacEncoder {
    encoder: fdk::Encoder,
    config: AacConfig,
    rate: u32,
    channels: u16,
    frame_length: u32,
    delay: u32,
    first_pts: Option<i64>,
    samples_in: i64,
    frames_out: i64,
    out: VecDeque<Frame>,
    buf: Vec<u8>,
    track: TrackId,
}

impl AacEncoder {
    /// Opens an encoder for `rate` Hz audio with the given layout; output frames carry `track`.
    pub fn new(
        settings: &AacSettings,
        rate: u32,
        channels: Channels,
        track: TrackId,
    ) -> Result<Self, Error> {
        if !(8_000..=512_000).contains(&settings.bitrate) {
            return Err(Error::option(
                "audio.bitrate",
                format!("{} is outside 8000..=512000", settings.bitrate),
            ));
        }
        let params = fdk::EncoderParams {
            bit_rate: fdk::BitRate::Cbr(settings.bitrate),
            sample_rate: rate,
            transport: fdk::Transport::Raw,
            channels: match channels {
                Channels::Mono => fdk::ChannelMode::Mono,
                Channels::Stereo => fdk::ChannelMode::Stereo,
            },
            audio_object_type: match settings.profile {
                AacProfile::Lc => fdk::AudioObjectType::Mpeg4LowComplexity,
                AacProfile::HeAac => fdk::AudioObjectType::Mpeg4HeAac,
            },
        };
        let encoder = fdk::Encoder::new(params).map_err(|e| fail(e.to_string()))?;
        let info = encoder.info().map_err(|e| fail(e.to_string()))?;
        let size = (info.confSize as usize).min(info.confBuf.len());
        let asc = Bytes::copy_from_slice(&info.confBuf[..size]);
        let config = AacConfig::from_audio_specific_config(asc)?;
        Ok(AacEncoder {
            encoder,
            config,
            rate,
            channels: channels.count(),
            frame_length: info.frameLength.max(1),
            delay: info.nDelay,
            first_pts: None,
            samples_in: 0,
            frames_out: 0,
            out: VecDeque::new(),
            buf: vec![0; (info.maxOutBufBytes as usize).max(8192)],
            track,
        })
    }

    /// The AudioSpecificConfig the encoder writes.
    pub fn config(&self) -> &AacConfig {
        &self.config
    }

    /// The encoder's look-ahead in samples: the first frame starts this long before the first
    /// input sample.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    /// Samples per frame at the input rate.
    pub fn frame_length(&self) -> u32 {
        self.frame_length
    }

    /// Sample rate (the output track's timescale).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Encodes one block of interleaved `s16` samples at the encoder's rate and layout.
    pub fn push(&mut self, block: &AudioBlock) -> Result<(), Error> {
        use ffmpeg_next::format::{Sample, sample::Type};
        if block.frame.format() != Sample::I16(Type::Packed)
            || block.channels() != self.channels
            || block.rate() != self.rate
        {
            return Err(fail(format!(
                "block of {:?} {} ch {} Hz given to an s16 {} ch {} Hz encoder",
                block.frame.format(),
                block.channels(),
                block.rate(),
                self.channels,
                self.rate
            )));
        }
        if self.first_pts.is_none() {
            self.first_pts = Some(block.pts());
        }
        let n = block.samples() * usize::from(self.channels);
        let bytes = block.frame.data(0);
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .take(n)
            .map(|b| i16::from_ne_bytes([b[0], b[1]]))
            .collect();
        self.samples_in += block.samples() as i64;
        self.encode(&samples, None)
    }

    fn encode(&mut self, mut input: &[i16], end: Option<i64>) -> Result<(), Error> {
        let first = self.first_pts.unwrap_or(0);
        loop {
            let info = self
                .encoder
                .encode(input, &mut self.buf)
                .map_err(|e| fail(e.to_string()))?;
            input = input.get(info.input_consumed..).unwrap_or(&[]);
            if info.output_size > 0 {
                let pts =
                    first + self.frames_out * i64::from(self.frame_length) - i64::from(self.delay);
                self.frames_out += 1;
                if end.is_none_or(|e| pts < e) {
                    let data = Bytes::copy_from_slice(&self.buf[..info.output_size]);
                    self.out
                        .push_back(Frame::new(self.track, pts, pts, true, data));
                }
            } else if info.input_consumed == 0 {
                return Ok(());
            }
        }
    }

    /// Flushes the encoder's look-ahead at the end of the stream (it is fed silence, and only
    /// frames starting before the end of the real input are kept).
    pub fn finish(&mut self) -> Result<(), Error> {
        let Some(first) = self.first_pts else {
            return Ok(());
        };
        let end = first + self.samples_in;
        let pad = (self.delay + 2 * self.frame_length) as usize * usize::from(self.channels);
        self.encode(&vec![0; pad], Some(end))
    }

    /// The next encoded frame, if any.
    pub fn pull(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }
}
