//! Audio processing: gain, loudness normalisation, equaliser, fades, karaoke, channel layout and
//! sample-rate conversion, as one libavfilter graph built from typed options.
//!
//! The graph's last step always converts to interleaved signed 16-bit samples at the output
//! rate and layout, which is what the AAC encoder takes. Filter arguments are formatted from
//! validated numbers only.

use crate::Error;
use crate::decode::AudioBlock;
use crate::filter::{read_frame, write_frame};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

/// Output channel layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    /// One channel (stereo sources are downmixed).
    Mono,
    /// Two channels (mono is duplicated, surround is downmixed).
    Stereo,
}

impl Channels {
    /// Number of channels.
    pub fn count(self) -> u16 {
        match self {
            Channels::Mono => 1,
            Channels::Stereo => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Channels::Mono => "mono",
            Channels::Stereo => "stereo",
        }
    }
}

/// EBU R128 loudness normalisation targets (libavfilter `loudnorm`, single pass). The filter
/// looks 3 s ahead, so it adds 3 s of latency: leave it off for the ultra-low-latency mode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness target in LUFS, -70 to -5 (-23 for EBU R128 broadcast, -16 for web).
    pub integrated: f32,
    /// Maximum true peak in dBTP, -9 to 0.
    pub true_peak: f32,
    /// Loudness range target in LU, 1 to 20.
    pub range: f32,
}

/// One peaking equaliser band.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EqBand {
    /// Centre frequency in Hz (below half the sample rate).
    pub frequency: f32,
    /// Quality factor Q, 0.1 to 20 (larger is narrower).
    pub q: f32,
    /// Gain at the centre frequency in dB, -30 to 30.
    pub gain_db: f32,
}

/// A fade to silence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FadeOut {
    /// Start, in seconds after the first audio sample.
    pub start: f32,
    /// Length in seconds.
    pub duration: f32,
}

/// What to do to the sound, in this order: karaoke, equaliser, gain, loudness, fade-in,
/// fade-out, then channel layout and sample-rate conversion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioProcessing {
    /// Gain in dB, -60 to 40.
    pub gain_db: Option<f32>,
    /// Loudness normalisation.
    pub loudness: Option<Loudness>,
    /// Peaking equaliser bands (at most 16).
    pub equalizer: Vec<EqBand>,
    /// Fade in from silence over this many seconds from the first sample.
    pub fade_in: Option<f32>,
    /// Fade out to silence.
    pub fade_out: Option<FadeOut>,
    /// Remove what is identical in both channels (centre-panned vocals): left - right and
    /// right - left. Needs a stereo source.
    pub karaoke: bool,
    /// Output layout (default: the source's, surround downmixed to stereo).
    pub channels: Option<Channels>,
    /// Output sample rate in Hz (default: the source's). One of the AAC rates 8000–96000.
    pub sample_rate: Option<u32>,
}

const AAC_RATES: [u32; 12] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
];

fn check_range(option: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), Error> {
    if !(lo..=hi).contains(&v) {
        return Err(Error::option(option, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

/// The input an [`AudioFilter`] expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioInput {
    /// Samples per second.
    pub rate: u32,
    /// Number of channels.
    pub channels: u16,
    /// Sample format of the decoded blocks.
    pub format: ff::format::Sample,
    /// Ticks per second of block timestamps.
    pub timescale: u32,
}

/// What an [`AudioFilter`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioOutput {
    /// Samples per second.
    pub rate: u32,
    /// Layout.
    pub channels: Channels,
}

impl AudioProcessing {
    /// Checks the options against a source of `rate` Hz with `channels` channels and returns
    /// the output format.
    pub fn output(&self, rate: u32, channels: u16) -> Result<AudioOutput, Error> {
        if let Some(g) = self.gain_db {
            check_range("gain_db", g, -60.0, 40.0)?;
        }
        if let Some(l) = self.loudness {
            check_range("loudness.integrated", l.integrated, -70.0, -5.0)?;
            check_range("loudness.true_peak", l.true_peak, -9.0, 0.0)?;
            check_range("loudness.range", l.range, 1.0, 20.0)?;
        }
        if self.equalizer.len() > 16 {
            return Err(Error::option("equalizer", "more than 16 bands"));
        }
        let out_rate = self.sample_rate.unwrap_or(rate);
        if !AAC_RATES.contains(&out_rate) {
            return Err(Error::option(
                "sample_rate",
                format!("{out_rate} Hz is not an AAC sample rate"),
            ));
        }
        for b in &self.equalizer {
            check_range(
                "equalizer.frequency",
                b.frequency,
                10.0,
                rate as f32 / 2.0 - 1.0,
            )?;
            check_range("equalizer.q", b.q, 0.1, 20.0)?;
            check_range("equalizer.gain_db", b.gain_db, -30.0, 30.0)?;
        }
        if let Some(d) = self.fade_in {
            check_range("fade_in", d, 0.0, 3600.0)?;
        }
        if let Some(f) = self.fade_out {
            check_range("fade_out.start", f.start, 0.0, 1e7)?;
            check_range("fade_out.duration", f.duration, 0.0, 3600.0)?;
        }
        if self.karaoke && channels != 2 {
            return Err(Error::option(
                "karaoke",
                format!("needs a stereo source, not {channels} channels"),
            ));
        }
        let out_channels = self.channels.unwrap_or(if channels == 1 {
            Channels::Mono
        } else {
            Channels::Stereo
        });
        Ok(AudioOutput {
            rate: out_rate,
            channels: out_channels,
        })
    }

    fn chain(&self, input: &AudioInput, first_pts: i64) -> Result<String, Error> {
        let out = self.output(input.rate, input.channels)?;
        let start = first_pts as f64 / f64::from(input.timescale.max(1));
        let mut f: Vec<String> = Vec::new();
        if self.karaoke {
            f.push("pan=stereo|c0=c0-c1|c1=c1-c0".into());
        }
        for b in &self.equalizer {
            f.push(format!(
                "equalizer=f={:.3}:t=q:w={:.4}:g={:.3}",
                b.frequency, b.q, b.gain_db
            ));
        }
        if let Some(g) = self.gain_db {
            f.push(format!("volume=volume={g:.4}dB"));
        }
        if let Some(l) = self.loudness {
            f.push(format!(
                "loudnorm=I={:.2}:TP={:.2}:LRA={:.2}",
                l.integrated, l.true_peak, l.range
            ));
        }
        if let Some(d) = self.fade_in {
            f.push(format!("afade=t=in:st={start:.6}:d={d:.6}"));
        }
        if let Some(o) = self.fade_out {
            f.push(format!(
                "afade=t=out:st={:.6}:d={:.6}",
                start + f64::from(o.start),
                o.duration
            ));
        }
        f.push(format!(
            "aformat=sample_fmts=s16:channel_layouts={}:sample_rates={}",
            out.channels.name(),
            out.rate
        ));
        Ok(f.join(","))
    }
}

/// A libavfilter graph applying [`AudioProcessing`]; outputs interleaved `s16` blocks whose
/// timestamps are in ticks of the output sample rate.
pub struct AudioFilter {
    graph: ff::filter::Graph,
    input: AudioInput,
    output: AudioOutput,
    out_time_base: ff::Rational,
}

impl AudioFilter {
    /// Builds the graph; `first_pts` (input ticks) anchors the fades.
    pub fn new(
        processing: &AudioProcessing,
        input: AudioInput,
        first_pts: i64,
    ) -> Result<Self, Error> {
        crate::decode::init();
        let output = processing.output(input.rate, input.channels)?;
        let chain = processing.chain(&input, first_pts)?;
        let layout = ff::ChannelLayout::default(i32::from(input.channels));
        let args = format!(
            "time_base=1/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            input.timescale,
            input.rate,
            input.format.name(),
            layout.bits()
        );
        let mut graph = ff::filter::Graph::new();
        let abuffer = ff::filter::find("abuffer").ok_or(Error::Ffmpeg {
            what: "finding the abuffer filter",
            source: ff::Error::FilterNotFound,
        })?;
        let sink = ff::filter::find("abuffersink").ok_or(Error::Ffmpeg {
            what: "finding the abuffersink filter",
            source: ff::Error::FilterNotFound,
        })?;
        graph
            .add(&abuffer, "in", &args)
            .map_err(Error::ffmpeg("adding the audio buffer source"))?;
        graph
            .add(&sink, "out", "")
            .map_err(Error::ffmpeg("adding the audio buffer sink"))?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&chain))
            .map_err(Error::ffmpeg("parsing the audio filter chain"))?;
        graph
            .validate()
            .map_err(Error::ffmpeg("configuring the audio filter graph"))?;
        let out_time_base = graph
            .get("out")
            .map(|mut c| c.sink().time_base())
            .unwrap_or(ff::Rational::new(1, output.rate as i32));
        Ok(AudioFilter {
            graph,
            input,
            output,
            out_time_base,
        })
    }

    /// What the graph produces.
    pub fn output(&self) -> AudioOutput {
        self.output
    }

    /// True when `block` matches the input this graph was built for.
    pub fn accepts(&self, block: &AudioBlock) -> bool {
        block.rate() == self.input.rate
            && block.channels() == self.input.channels
            && block.frame.format() == self.input.format
    }

    /// Feeds one block.
    pub fn push(&mut self, block: &AudioBlock) -> Result<(), Error> {
        if !self.accepts(block) {
            return Err(Error::Unsupported(format!(
                "a {} Hz {}-channel block entered a graph built for {} Hz {} channels",
                block.rate(),
                block.channels(),
                self.input.rate,
                self.input.channels
            )));
        }
        let mut frame = crate::filter::CloneRef::clone_ref(&block.frame);
        frame.set_pts(Some(block.pts()));
        write_frame(&mut self.graph, "in", Some(&frame))
    }

    /// Signals the end of the input; [`pull`](Self::pull) then drains the graph.
    pub fn finish(&mut self) -> Result<(), Error> {
        write_frame(&mut self.graph, "in", None)
    }

    /// The next processed block (interleaved `s16`), if one is ready.
    pub fn pull(&mut self) -> Result<Option<AudioBlock>, Error> {
        let mut frame = ff::frame::Audio::empty();
        if !read_frame(&mut self.graph, "out", &mut frame)? {
            return Ok(None);
        }
        let tb = self.out_time_base;
        let pts = sigma_core::time::rescale(
            frame
                .pts()
                .unwrap_or(0)
                .saturating_mul(i64::from(tb.numerator())),
            tb.denominator().max(1) as u32,
            self.output.rate,
        );
        Ok(Some(AudioBlock::new(frame, pts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::format::Sample;
    use ff::format::sample::Type;
    use std::f32::consts::PI;

    const RATE: u32 = 48_000;

    /// `seconds` of planar float audio, `signal(channel, t)` at each sample time `t`.
    fn blocks(channels: u16, seconds: f32, signal: impl Fn(usize, f32) -> f32) -> Vec<AudioBlock> {
        let per_block = 1024usize;
        let total = (seconds * RATE as f32) as usize;
        let layout = ff::ChannelLayout::default(i32::from(channels));
        (0..total / per_block)
            .map(|b| {
                let mut f = ff::frame::Audio::new(Sample::F32(Type::Planar), per_block, layout);
                f.set_rate(RATE);
                for ch in 0..usize::from(channels) {
                    let plane = f.plane_mut::<f32>(ch);
                    for (i, v) in plane.iter_mut().enumerate().take(per_block) {
                        *v = signal(ch, (b * per_block + i) as f32 / RATE as f32);
                    }
                }
                AudioBlock::new(f, (b * per_block) as i64)
            })
            .collect()
    }

    /// Runs the graph; returns each output channel's samples and the output rate.
    fn run(p: &AudioProcessing, input: &[AudioBlock]) -> (Vec<Vec<f32>>, u32) {
        let first = &input[0];
        let mut f = AudioFilter::new(
            p,
            AudioInput {
                rate: first.rate(),
                channels: first.channels(),
                format: first.frame.format(),
                timescale: RATE,
            },
            first.pts(),
        )
        .unwrap();
        let ch = usize::from(f.output().channels.count());
        let mut out = vec![Vec::new(); ch];
        let mut rate = 0;
        let mut take = |b: AudioBlock| {
            assert_eq!(b.frame.format(), Sample::I16(Type::Packed));
            rate = b.rate();
            for (c, o) in out.iter_mut().enumerate() {
                o.extend(b.channel_f32(c));
            }
        };
        for b in input {
            f.push(b).unwrap();
            while let Some(o) = f.pull().unwrap() {
                take(o);
            }
        }
        f.finish().unwrap();
        while let Some(o) = f.pull().unwrap() {
            take(o);
        }
        (out, rate)
    }

    fn rms_db(x: &[f32]) -> f32 {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
        10.0 * ms.max(1e-12).log10()
    }

    /// Level of the `freq` component (dB, amplitude 1.0 = 0 dB), by correlation.
    fn tone_db(x: &[f32], freq: f32, rate: u32) -> f32 {
        let (mut re, mut im) = (0f32, 0f32);
        for (i, v) in x.iter().enumerate() {
            let ph = 2.0 * PI * freq * i as f32 / rate as f32;
            re += v * ph.cos();
            im += v * ph.sin();
        }
        let amp = 2.0 * (re * re + im * im).sqrt() / x.len() as f32;
        20.0 * amp.max(1e-9).log10()
    }

    fn sine(freq: f32, amp: f32) -> impl Fn(usize, f32) -> f32 {
        move |_, t| amp * (2.0 * PI * freq * t).sin()
    }

    #[test]
    fn gain_raises_rms_by_the_asked_db() {
        let input = blocks(2, 1.0, sine(440.0, 0.1));
        let (plain, _) = run(&AudioProcessing::default(), &input);
        let (loud, _) = run(
            &AudioProcessing {
                gain_db: Some(6.0),
                ..Default::default()
            },
            &input,
        );
        let d = rms_db(&loud[0]) - rms_db(&plain[0]);
        assert!((d - 6.0).abs() < 0.2, "gain {d:.2} dB");
        let (quiet, _) = run(
            &AudioProcessing {
                gain_db: Some(-12.0),
                ..Default::default()
            },
            &input,
        );
        let d = rms_db(&quiet[1]) - rms_db(&plain[1]);
        assert!((d + 12.0).abs() < 0.2, "gain {d:.2} dB");
    }

    #[test]
    fn loudness_normalisation_brings_a_quiet_tone_up_to_target() {
        // A 1 kHz tone at -36 dBFS RMS, normalised to -16 LUFS.
        let input = blocks(2, 8.0, sine(1000.0, 0.0224));
        let (out, _) = run(
            &AudioProcessing {
                loudness: Some(Loudness {
                    integrated: -16.0,
                    true_peak: -1.0,
                    range: 7.0,
                }),
                ..Default::default()
            },
            &input,
        );
        let before = rms_db(&blocks(2, 1.0, sine(1000.0, 0.0224))[0].channel_f32(0));
        // Past loudnorm's 3 s look-ahead: measure the last 3 s.
        let tail = &out[0][out[0].len() - 3 * RATE as usize..];
        let after = rms_db(tail);
        // BS.1770 loudness sums the channels' power (+3 dB for two equal channels) and its
        // K-weighting is within 1 dB of flat at 1 kHz: each channel should sit ~3 dB under
        // the -16 LUFS target.
        assert!(
            (after + 19.0).abs() < 1.5,
            "{before:.1} dBFS → {after:.1} dBFS"
        );
    }

    #[test]
    fn equaliser_band_lifts_only_its_frequency() {
        let input = blocks(1, 1.0, |_, t| {
            0.1 * (2.0 * PI * 200.0 * t).sin() + 0.1 * (2.0 * PI * 3000.0 * t).sin()
        });
        let (out, rate) = run(
            &AudioProcessing {
                equalizer: vec![EqBand {
                    frequency: 3000.0,
                    q: 1.0,
                    gain_db: 12.0,
                }],
                ..Default::default()
            },
            &input,
        );
        let x = &out[0][4800..];
        let low = tone_db(x, 200.0, rate);
        let high = tone_db(x, 3000.0, rate);
        assert!((low + 20.0).abs() < 1.0, "200 Hz at {low:.1} dB");
        assert!((high + 8.0).abs() < 1.5, "3 kHz at {high:.1} dB (was -20)");
    }

    #[test]
    fn fade_in_starts_silent_and_fade_out_ends_silent() {
        let input = blocks(2, 3.0, sine(440.0, 0.5));
        let (out, _) = run(
            &AudioProcessing {
                fade_in: Some(1.0),
                fade_out: Some(FadeOut {
                    start: 1.5,
                    duration: 0.5,
                }),
                ..Default::default()
            },
            &input,
        );
        let ms = |a: usize, b: usize| rms_db(&out[0][a * 48..b * 48]);
        assert!(ms(0, 10) < -50.0, "first 10 ms at {:.1} dB", ms(0, 10));
        assert!(ms(400, 600) < ms(900, 1000) - 3.0, "rising");
        assert!(
            (ms(1000, 1400) - rms_db(&[0.5, -0.5]) + 3.0).abs() < 0.5,
            "full level"
        );
        assert!(
            ms(2050, 2900) < -80.0,
            "silent after fade-out: {:.1}",
            ms(2050, 2900)
        );
    }

    #[test]
    fn karaoke_cancels_the_centre_and_keeps_the_sides() {
        // 440 Hz centred (same in both channels), 1 kHz only on the left.
        let input = blocks(2, 1.0, |ch, t| {
            0.2 * (2.0 * PI * 440.0 * t).sin()
                + if ch == 0 {
                    0.2 * (2.0 * PI * 1000.0 * t).sin()
                } else {
                    0.0
                }
        });
        let (out, rate) = run(
            &AudioProcessing {
                karaoke: true,
                ..Default::default()
            },
            &input,
        );
        let centre = tone_db(&out[0], 440.0, rate);
        let side = tone_db(&out[0], 1000.0, rate);
        assert!(centre < -60.0, "centre at {centre:.1} dB");
        assert!(
            (side - 20.0 * 0.2f32.log10()).abs() < 1.0,
            "side at {side:.1} dB"
        );
        let mono = blocks(1, 0.1, sine(440.0, 0.1));
        let p = AudioProcessing {
            karaoke: true,
            ..Default::default()
        };
        assert!(matches!(
            p.output(mono[0].rate(), 1),
            Err(Error::InvalidOption {
                option: "karaoke",
                ..
            })
        ));
    }

    #[test]
    fn channel_layout_and_sample_rate_conversion() {
        let input = blocks(2, 1.0, sine(440.0, 0.3));
        let (out, rate) = run(
            &AudioProcessing {
                channels: Some(Channels::Mono),
                sample_rate: Some(44_100),
                ..Default::default()
            },
            &input,
        );
        assert_eq!((out.len(), rate), (1, 44_100));
        let n = out[0].len() as f32;
        assert!(
            (n - 44_100.0 * 1024.0 * 46.0 / 48_000.0).abs() < 200.0,
            "{n} samples"
        );
        // The tone survives at the same pitch and level.
        let x = &out[0][2000..];
        assert!((tone_db(x, 440.0, 44_100) - 20.0 * 0.3f32.log10()).abs() < 1.0);
        let (up, _) = run(
            &AudioProcessing {
                channels: Some(Channels::Stereo),
                ..Default::default()
            },
            &blocks(1, 0.2, sine(440.0, 0.3)),
        );
        assert_eq!(up.len(), 2);
        assert!(matches!(
            AudioProcessing {
                sample_rate: Some(12_345),
                ..Default::default()
            }
            .output(RATE, 2),
            Err(Error::InvalidOption {
                option: "sample_rate",
                ..
            })
        ));
    }
}
