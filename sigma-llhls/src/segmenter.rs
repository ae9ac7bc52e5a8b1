//! The segmenter: frames in, CMAF init segments, parts (CMAF chunks) and segment ends out.
//!
//! Sans-IO: [`Segmenter::push`] takes a frame and the wall-clock time it was received (used only
//! for `EXT-X-PROGRAM-DATE-TIME`), [`Segmenter::pull`] hands out what is ready. It holds at most
//! one open part per track, one held-back sample per track and a bounded audio queue.
//!
//! Rules (RFC 8216bis §4.4.4.9, §4.4.3.1, §4.4.3.7, §6.2.1):
//! - **Segments** of the video track are cut at keyframes, at the first keyframe once the
//!   segment reached ~90 % of the target.
//! - **Segment limit** ([`Segmenter::set_segment_limit`]): every segment's duration rounded to
//!   the nearest second must stay ≤ `EXT-X-TARGETDURATION`, which must not change (§4.4.3.1,
//!   §6.2.1). With a limit set, a segment is cut before the sample that would make it reach the
//!   limit, keyframe or not (one sample earlier when the held-back sample's estimated duration
//!   says the next one would); the next segment then starts with a non-keyframe. A limit set
//!   while the open segment is already past it cuts before the next sample. The video limit is
//!   shortened by one audio frame so that the audio segments cut at the video's boundaries (up
//!   to one frame longer) stay under it too; an audio segment that still reaches the limit
//!   (irregular audio timestamps) is cut on its own, and that cut stands in for the video
//!   boundary its next sample reaches, so audio and video keep the same segment numbers (audio
//!   segments matching video segments begun before the limit was set just follow the video's
//!   cuts). Without a limit, a segment is force-cut at [`SegmenterConfig::max_segment`] (the
//!   longer of three targets and 20 s) or 16,384 samples so that a stream without keyframes
//!   cannot grow memory without bound; a first GOP shorter than that is kept whole, so the
//!   target duration fixed from it (see the origin) lets later GOPs of the same length start
//!   every segment with their keyframe.
//! - **Parts** are cut on the decode timeline: a part is closed as soon as the next sample would
//!   take it past the part target, so every part is at most the target and, when the sample
//!   duration is at most 15 % of the target, at least 85 % of it; the last part of a segment may
//!   be shorter.
//! - **Independent parts** (§4.4.4.9: `INDEPENDENT=YES` if the part "contains an independent
//!   frame"): a part is independent when it contains a sync sample anywhere. So that players
//!   (MSE needs a random access point first) can start at a part's beginning, a video part is
//!   closed just before a keyframe once it holds ≥ 85 % of the part target, making the keyframe
//!   start the next part. A keyframe arriving earlier in a part stays inside it: closing there
//!   would leave a part shorter than 85 % that is neither independent nor the last of its
//!   segment, which §4.4.4.9 does not allow.
//! - **Known limit — long samples**: when a track's samples last more than 15 % of the part
//!   target (video below ~20 fps with 0.334 s parts, e.g. a 5 fps screen capture), parts of
//!   whole samples cannot all reach 85 % of the target, and §4.4.4.9 has no exception that
//!   applies (only independent parts, gaps and the last part of a segment are exempt). The
//!   segmenter still cuts such parts (never splitting a sample), logs a warning once per track
//!   and reports it through [`Segmenter::part_rules_hold`].
//! - **Sample durations** come from the next sample's decode time: each track holds back one
//!   sample. At a flush (end, codec change, gap) the last duration is reused.
//! - **Audio** follows the video's segment boundaries: an audio sample starting at or after a
//!   video segment's first decode time starts the next audio segment. Audio is held until the
//!   video has reached its time (bounded by `max_audio_lead`), so a boundary is always known
//!   before the audio it splits. Audio parts are cut on the audio timeline with the same rules.
//! - **Timestamps** are made monotonic per track: a decode time that goes backwards or jumps
//!   forward by more than `max_timestamp_jump` is re-based to continue the track's timeline.
//! - **Codec changes** (a new [`StreamInfo`] whose codec differs for a track), a new
//!   [`StreamInfo`] generation with the same codecs (a restarted publisher), and
//!   [`Segmenter::discontinuity`] close every track's segment; the next segments carry
//!   `EXT-X-DISCONTINUITY` with a fresh program date-time, and a changed track gets a new init
//!   segment first.
//! - No sample is ever dropped or reordered.

use crate::Error;
use crate::cmaf::{self, ChunkHeader, SampleEntry, SampleInfo, TrackConfig};
use bytes::Bytes;
use sigma_core::{CodecConfig, Frame, MediaKind, StreamInfo, TrackId};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Segmenter settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Segment target duration.
    pub segment_target: Duration,
    /// Part target duration; `None` makes one part per segment.
    pub part_target: Option<Duration>,
    /// A decode-time step larger than this (or any step backwards) is re-based.
    pub max_timestamp_jump: Duration,
    /// How far audio may run ahead of video before it is segmented without waiting.
    pub max_audio_lead: Duration,
    /// Without a [segment limit](Segmenter::set_segment_limit), a segment with no keyframe
    /// to end it is cut here anyway (bounding memory for a stream without keyframes). It is
    /// longer than any keyframe interval an encoder is likely to use (OBS "auto" is 250
    /// frames, 8.3 s at 30 fps and 10.4 s at 24 fps) so that the first segment of a stream
    /// with long GOPs still ends at a keyframe and the target duration follows the GOP.
    pub max_segment: Duration,
}

/// The default [`SegmenterConfig::max_segment`] floor: 20 s.
pub const MAX_GOP: Duration = Duration::from_secs(20);

impl SegmenterConfig {
    /// Settings for a [`crate::Timing`], with 5 s jump and 2 s audio-lead limits and a forced
    /// cut at the longer of 3 segment targets and [`MAX_GOP`].
    pub fn from_timing(timing: crate::Timing) -> Self {
        let t = timing.sanitized();
        SegmenterConfig {
            segment_target: t.segment_target,
            part_target: t.part_target,
            max_timestamp_jump: Duration::from_secs(5),
            max_audio_lead: Duration::from_secs(2),
            max_segment: (t.segment_target * 3).max(MAX_GOP),
        }
    }
}

/// A new init segment for a track; parts that follow use it.
#[derive(Clone)]
pub struct InitSegment {
    /// The track.
    pub track: TrackId,
    /// Video or audio.
    pub kind: MediaKind,
    /// The [`StreamInfo::generation`] that introduced this configuration; names the init file.
    pub generation: u64,
    /// The codec configuration (for `CODECS`, `RESOLUTION`, ...).
    pub codec: CodecConfig,
    /// Media timescale.
    pub timescale: u32,
    /// `ftyp` + `moov`.
    pub data: Bytes,
}

/// What the first part of a segment says about its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStart {
    /// Wall-clock time of the segment's first sample (`EXT-X-PROGRAM-DATE-TIME`).
    pub program_date_time: SystemTime,
    /// The segment follows a discontinuity (`EXT-X-DISCONTINUITY`).
    pub discontinuity: bool,
    /// Generation of the init segment this segment needs (`EXT-X-MAP`).
    pub init_generation: u64,
}

/// A completed part: a CMAF chunk of one track.
#[derive(Clone)]
pub struct Part {
    /// The track.
    pub track: TrackId,
    /// Media sequence number of its segment.
    pub msn: u64,
    /// Index of the part in its segment, from 0.
    pub index: u32,
    /// Decode time of its first sample, in timescale ticks.
    pub start: u64,
    /// Duration in timescale ticks.
    pub duration: u64,
    /// The track's timescale.
    pub timescale: u32,
    /// It contains a sync sample (`INDEPENDENT=YES`, RFC 8216bis §4.4.4.9); for video, a part
    /// starts with its keyframe unless the keyframe came before the part reached 85 % of the
    /// part target (see the [module docs](self)).
    pub independent: bool,
    /// Number of samples.
    pub samples: u32,
    /// Set on the first part of a segment.
    pub segment_start: Option<SegmentStart>,
    /// `[styp] moof` + `mdat` header.
    pub header: Bytes,
    /// The samples' payloads, in order, as received (not copied).
    pub payload: Vec<Bytes>,
}

impl std::fmt::Debug for InitSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitSegment")
            .field("track", &self.track.0)
            .field("generation", &self.generation)
            .field("codec", &self.codec.codec_string())
            .field("len", &self.data.len())
            .finish()
    }
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("track", &self.track.0)
            .field("msn", &self.msn)
            .field("index", &self.index)
            .field("start", &self.start)
            .field("duration", &self.duration)
            .field("independent", &self.independent)
            .field("samples", &self.samples)
            .field("segment_start", &self.segment_start)
            .field("len", &self.len())
            .finish()
    }
}

impl Part {
    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.iter().map(Bytes::len).sum::<usize>()
    }
    /// Whether the part has no bytes (never true for a part the segmenter made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale)
    }
}

/// A segment is complete: all its parts were output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEnd {
    /// The track.
    pub track: TrackId,
    /// Its media sequence number.
    pub msn: u64,
    /// Number of parts.
    pub parts: u32,
    /// Duration in timescale ticks.
    pub duration: u64,
    /// The track's timescale.
    pub timescale: u32,
}

/// What the segmenter produces, in order per track.
#[derive(Clone, Debug)]
pub enum Output {
    /// A new init segment (before the first part that uses it).
    Init(InitSegment),
    /// A completed part.
    Part(Part),
    /// A completed segment.
    SegmentEnd(SegmentEnd),
}

/// Samples per part and per segment beyond which a part/segment is closed regardless.
const MAX_PART_SAMPLES: usize = 4096;
const MAX_SEGMENT_SAMPLES: u64 = 16_384;

#[derive(Clone)]
struct Sample {
    dts: i64,
    cto: i32,
    sync: bool,
    data: Bytes,
    wall: SystemTime,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("dts", &self.dts)
            .field("cto", &self.cto)
            .field("sync", &self.sync)
            .field("len", &self.data.len())
            .finish()
    }
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    start: i64,
    parts: u32,
    samples: u64,
    start_info: SegmentStart,
}

#[derive(Default)]
struct OpenPart {
    start: i64,
    len: i64,
    samples: Vec<SampleInfo>,
    payload: Vec<Bytes>,
}

impl std::fmt::Debug for OpenPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPart")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("samples", &self.samples.len())
            .finish()
    }
}

#[derive(Debug)]
struct TrackState {
    id: TrackId,
    kind: MediaKind,
    timescale: u32,
    codec: CodecConfig,
    config: TrackConfig,
    init_generation: u64,
    part_ticks: i64,
    segment_ticks: i64,
    /// Forced cut without a limit ([`SegmenterConfig::max_segment`]).
    max_segment_ticks: i64,
    jump_ticks: i64,
    offset: Option<i64>,
    /// Output decode time of the newest sample received, and the step before it.
    last_in: Option<i64>,
    last_step: i64,
    /// Output decode time of the newest sample processed.
    last_dts: Option<i64>,
    last_duration: i64,
    pending: Option<Sample>,
    segment: Option<OpenSegment>,
    part: OpenPart,
    next_msn: u64,
    sequence: u32,
    discontinuity_next: bool,
    anchor: Option<(SystemTime, i64)>,
    /// End (decode time + duration) of the last sample added to a part.
    end: i64,
    /// A segment must end before reaching this duration (ticks).
    limit_ticks: Option<i64>,
    /// Segments up to this media sequence number are exempt from the limit (audio whose video
    /// segments began before the limit was set: the video's cuts end them).
    limit_exempt: Option<u64>,
    /// The last part closed was shorter than 85 % of the part target and not independent; it
    /// breaks §4.4.4.9 unless it turns out to be the last of its segment.
    short_pending: bool,
    /// Parts that broke the 85 % rule of §4.4.4.9.
    short_parts: u64,
    /// Video segments that had to start without a keyframe (a keyframe interval longer than
    /// the segment limit, or no keyframe within [`SegmenterConfig::max_segment`]).
    unaligned: u64,
}

/// Where a track's segments are cut.
enum Cut<'a> {
    /// At keyframes once the target is reached (video); each cut's start time is recorded for
    /// the audio.
    Keyframe(&'a mut VecDeque<(i64, u32)>),
    /// At the video's boundaries (audio with video).
    Boundaries(&'a mut VecDeque<(i64, u32)>),
    /// At any sample once the target is reached (audio-only streams).
    Duration,
}

/// The segment limit for an `EXT-X-TARGETDURATION` of `td` seconds: a segment whose duration
/// rounds to at most `td` is shorter than `td` + 0.5 s (§4.4.3.1), so `td` + 0.5 s − 1 ms.
pub fn segment_limit_for(td: u64) -> Duration {
    Duration::from_secs(td) + Duration::from_millis(499)
}

fn ticks(d: Duration, timescale: u32) -> i64 {
    let t = d.as_nanos() * u128::from(timescale) / 1_000_000_000;
    t.min(i64::MAX as u128 / 8) as i64
}

/// `a/ta < b/tb` compared exactly.
fn time_lt(a: i64, ta: u32, b: i64, tb: u32) -> bool {
    i128::from(a) * i128::from(tb) < i128::from(b) * i128::from(ta)
}

/// Records a video segment start for the audio (bounded).
fn record(boundaries: &mut VecDeque<(i64, u32)>, t: i64, timescale: u32) {
    if boundaries.len() >= MAX_BOUNDARIES {
        boundaries.pop_front();
    }
    boundaries.push_back((t, timescale));
}

/// Drops the boundaries a sample at `dts` has reached; whether there were any.
fn cross(boundaries: &mut VecDeque<(i64, u32)>, dts: i64, timescale: u32) -> bool {
    let mut crossed = false;
    while boundaries
        .front()
        .is_some_and(|&(t, ts)| !time_lt(dts, timescale, t, ts))
    {
        boundaries.pop_front();
        crossed = true;
    }
    crossed
}

fn track_config(id: TrackId, timescale: u32, codec: &CodecConfig) -> Result<TrackConfig, Error> {
    let entry = match codec {
        CodecConfig::H264(h) => SampleEntry::Avc {
            width: h.width(),
            height: h.height(),
            avcc: h.avcc().clone(),
        },
        CodecConfig::Aac(a) => SampleEntry::Aac {
            sample_rate: a.output_sample_rate(),
            channels: a.channels(),
            audio_specific_config: a.audio_specific_config().clone(),
        },
        other => return Err(Error::UnsupportedCodec(other.codec_string())),
    };
    Ok(TrackConfig {
        track_id: id.0,
        timescale,
        entry,
    })
}

impl TrackState {
    fn new(
        cfg: &SegmenterConfig,
        info: &sigma_core::TrackInfo,
        generation: u64,
    ) -> Result<(Self, Bytes), Error> {
        let config = track_config(info.id(), info.timescale(), info.codec())?;
        let init = cmaf::init_segment(&config)?;
        let ts = info.timescale();
        Ok((
            TrackState {
                id: info.id(),
                kind: info.kind(),
                timescale: ts,
                codec: info.codec().clone(),
                config,
                init_generation: generation,
                part_ticks: cfg
                    .part_target
                    .map_or(i64::MAX / 4, |p| ticks(p, ts).max(1)),
                segment_ticks: ticks(cfg.segment_target, ts).max(1),
                max_segment_ticks: ticks(cfg.max_segment.max(cfg.segment_target), ts).max(1),
                jump_ticks: ticks(cfg.max_timestamp_jump, ts).max(1),
                offset: None,
                last_in: None,
                last_step: 0,
                last_dts: None,
                last_duration: 0,
                pending: None,
                segment: None,
                part: OpenPart::default(),
                next_msn: 0,
                sequence: 0,
                discontinuity_next: false,
                anchor: None,
                end: 0,
                limit_ticks: None,
                limit_exempt: None,
                short_pending: false,
                short_parts: 0,
                unaligned: 0,
            },
            init,
        ))
    }

    /// Maps an input decode time onto this track's monotonic output timeline (at arrival, so
    /// queued samples are covered too).
    fn rebase(&mut self, dts: i64) -> i64 {
        let offset = *self.offset.get_or_insert(if dts < 0 { -dts } else { 0 });
        let mut out = dts.saturating_add(offset);
        match self.last_in {
            Some(last) if out <= last || out.saturating_sub(last) > self.jump_ticks => {
                let step = if self.last_step > 0 {
                    self.last_step
                } else {
                    1
                };
                let target = last.saturating_add(step);
                self.offset = Some(offset.saturating_add(target.saturating_sub(out)));
                out = target;
            }
            Some(last) => self.last_step = out - last,
            None if out < 0 => {
                self.offset = Some(offset.saturating_sub(out));
                out = 0;
            }
            None => {}
        }
        self.last_in = Some(out);
        out
    }

    fn add(&mut self, s: Sample, duration: i64) -> Result<(), Error> {
        let duration32 = u32::try_from(duration).map_err(|_| Error::FieldOverflow {
            what: "sample duration",
            value: i128::from(duration),
        })?;
        let size = u32::try_from(s.data.len()).map_err(|_| Error::FieldOverflow {
            what: "sample size",
            value: s.data.len() as i128,
        })?;
        if self.segment.is_none() {
            let anchor = *self.anchor.get_or_insert((s.wall, s.dts));
            let since = Duration::from_nanos(
                ((s.dts - anchor.1).max(0) as u128 * 1_000_000_000 / u128::from(self.timescale))
                    .min(u128::from(u64::MAX)) as u64,
            );
            let msn = self.next_msn;
            self.next_msn += 1;
            self.segment = Some(OpenSegment {
                msn,
                start: s.dts,
                parts: 0,
                samples: 0,
                start_info: SegmentStart {
                    program_date_time: anchor.0 + since,
                    discontinuity: std::mem::take(&mut self.discontinuity_next),
                    init_generation: self.init_generation,
                },
            });
        }
        if let Some(seg) = &mut self.segment {
            seg.samples += 1;
        }
        if self.part.samples.is_empty() {
            self.part.start = s.dts;
        }
        self.part.len += duration;
        self.end = s.dts.saturating_add(duration);
        self.part.samples.push(SampleInfo {
            duration: duration32,
            size,
            sync: s.sync,
            composition_offset: s.cto,
        });
        self.part.payload.push(s.data);
        Ok(())
    }

    fn close_part(&mut self, segment_end: bool, out: &mut VecDeque<Output>) -> Result<(), Error> {
        let Some(seg) = &mut self.segment else {
            return Ok(());
        };
        if !self.part.samples.is_empty() {
            let part = std::mem::take(&mut self.part);
            let index = seg.parts;
            let header = cmaf::chunk_header(&ChunkHeader {
                sequence_number: self.sequence,
                track_id: self.config.track_id,
                base_decode_time: part.start.max(0) as u64,
                samples: &part.samples,
                segment_start: index == 0,
            })?;
            self.sequence = self.sequence.wrapping_add(1);
            seg.parts += 1;
            let independent = part.samples.iter().any(|s| s.sync);
            // §4.4.4.9: a part shorter than 85 % of the target must be independent or the last
            // of its segment. Whether it was the last is known when the next part closes.
            if std::mem::take(&mut self.short_pending) {
                self.short_parts += 1;
                if self.short_parts == 1 {
                    tracing::warn!(
                        track = self.id.0,
                        sample_ms =
                            self.last_duration.saturating_mul(1000) / i64::from(self.timescale),
                        part_target_ms =
                            self.part_ticks.saturating_mul(1000) / i64::from(self.timescale),
                        "parts shorter than 85% of the part target (RFC 8216bis 4.4.4.9): \
                         samples last more than 15% of it or timestamps are irregular"
                    );
                }
            }
            self.short_pending = !segment_end
                && !independent
                && part.len.saturating_mul(100) < self.part_ticks.saturating_mul(85);
            out.push_back(Output::Part(Part {
                track: self.id,
                msn: seg.msn,
                index,
                start: part.start.max(0) as u64,
                duration: part.len as u64,
                timescale: self.timescale,
                independent,
                samples: part.samples.len() as u32,
                segment_start: (index == 0).then(|| seg.start_info.clone()),
                header,
                payload: part.payload,
            }));
        }
        if segment_end && let Some(seg) = self.segment.take() {
            // The segment's last part may be short.
            self.short_pending = false;
            out.push_back(Output::SegmentEnd(SegmentEnd {
                track: self.id,
                msn: seg.msn,
                parts: seg.parts,
                duration: self.end.saturating_sub(seg.start).max(0) as u64,
                timescale: self.timescale,
            }));
        }
        Ok(())
    }
}

impl TrackState {
    /// Takes the next sample: gives the held-back one its duration, places it, decides cuts.
    fn process(
        &mut self,
        n: Sample,
        mut cut: Cut<'_>,
        out: &mut VecDeque<Output>,
    ) -> Result<(), Error> {
        let ts = self.timescale;
        let Some(p) = self.pending.take() else {
            if let Cut::Boundaries(b) = cut {
                cross(b, n.dts, ts);
            }
            self.last_dts = Some(n.dts);
            self.pending = Some(n);
            return Ok(());
        };
        let duration = n.dts - p.dts;
        // The segment must end before reaching the limit: `p` would take it there (a limit set
        // mid-segment, or `p` lasting longer than estimated below), so `p` starts the next one.
        if let Some((limit, start)) = self.limit_of_segment()
            && n.dts.saturating_sub(start) >= limit
        {
            self.close_part(true, out)?;
            self.note_cut(p.sync);
            match &mut cut {
                Cut::Keyframe(b) => record(b, p.dts, ts),
                // This audio segment stands in for the video segment whose start `p` covers.
                Cut::Boundaries(b) => {
                    cross(b, n.dts, ts);
                }
                Cut::Duration => {}
            }
        }
        if !self.part.samples.is_empty()
            && (self.part.len + duration > self.part_ticks
                || self.part.samples.len() >= MAX_PART_SAMPLES)
        {
            self.close_part(false, out)?;
        }
        self.add(p, duration)?;
        let (start, samples) = self
            .segment
            .as_ref()
            .map_or((n.dts, 0), |s| (s.start, s.samples));
        let elapsed = n.dts - start;
        let reached = elapsed.saturating_mul(10) >= self.segment_ticks.saturating_mul(9);
        // `n` would take the segment to the limit if it lasts as long as `p`.
        let limited = self
            .limit_ticks
            .is_some_and(|l| elapsed.saturating_add(duration) >= l);
        let wanted = match &mut cut {
            Cut::Keyframe(_) => (n.sync && reached) || limited,
            Cut::Duration => reached || limited,
            Cut::Boundaries(b) => cross(b, n.dts, ts),
        };
        let forced = elapsed >= self.max_segment_ticks || samples >= MAX_SEGMENT_SAMPLES;
        if wanted || forced {
            self.close_part(true, out)?;
            self.note_cut(n.sync);
            if let Cut::Keyframe(b) = cut {
                record(b, n.dts, ts);
            }
        } else if self.part.len + duration > self.part_ticks {
            // The next sample would not fit: publish the part now rather than one sample later.
            self.close_part(false, out)?;
        } else if self.kind == MediaKind::Video
            && n.sync
            && self.part.len.saturating_mul(100) >= self.part_ticks.saturating_mul(85)
        {
            // The part is long enough to end here: let the keyframe start the next one.
            self.close_part(false, out)?;
        }
        self.last_duration = duration;
        self.last_dts = Some(n.dts);
        self.pending = Some(n);
        Ok(())
    }

    /// Adds the held-back sample with an estimated duration and closes the segment.
    fn flush(&mut self, cut: Cut<'_>, out: &mut VecDeque<Output>) -> Result<(), Error> {
        if let Some(p) = self.pending.take() {
            let duration = if self.last_duration > 0 {
                self.last_duration
            } else {
                (i64::from(self.timescale) / 30).max(1)
            };
            if let Some((limit, start)) = self.limit_of_segment()
                && p.dts.saturating_add(duration).saturating_sub(start) >= limit
            {
                self.close_part(true, out)?;
                self.note_cut(p.sync);
                if let Cut::Keyframe(b) = cut {
                    record(b, p.dts, self.timescale);
                }
            }
            self.add(p, duration)?;
            self.last_duration = duration;
        }
        self.close_part(true, out)
    }

    /// Records that the next video segment starts with a non-keyframe sample; warns once.
    fn note_cut(&mut self, next_is_sync: bool) {
        if self.kind != MediaKind::Video || next_is_sync {
            return;
        }
        self.unaligned += 1;
        if self.unaligned == 1 {
            tracing::warn!(
                track = self.id.0,
                limit_ms = self
                    .limit_ticks
                    .map(|l| l.saturating_mul(1000) / i64::from(self.timescale)),
                "the publisher's keyframe interval is longer than the stream's target duration \
                 allows: a segment was cut between keyframes (players joining at it wait for \
                 the next keyframe); set the encoder's keyframe interval to the latency mode's \
                 or transcode the stream"
            );
        }
    }

    /// The open segment's limit and start, if it has a limit.
    fn limit_of_segment(&self) -> Option<(i64, i64)> {
        let seg = self.segment.as_ref()?;
        let limit = self.limit_ticks?;
        match self.limit_exempt {
            Some(m) if seg.msn <= m => None,
            _ => Some((limit, seg.start)),
        }
    }

    /// An audio frame's duration rounded up to the track's tick (zero for other codecs).
    fn frame_duration(&self) -> Duration {
        let CodecConfig::Aac(a) = &self.codec else {
            return Duration::ZERO;
        };
        let ts = u64::from(self.timescale);
        let ticks =
            (u64::from(a.frame_samples()) * ts).div_ceil(u64::from(a.output_sample_rate().max(1)));
        Duration::from_nanos(
            u64::try_from((u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(ts)))
                .unwrap_or(u64::MAX),
        )
    }

    fn sample(&mut self, frame: Frame, now: SystemTime) -> Sample {
        let dts = self.rebase(frame.dts());
        let cto = frame
            .composition_offset()
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        Sample {
            dts,
            cto,
            sync: frame.is_keyframe() || self.kind == MediaKind::Audio,
            data: frame.into_data(),
            wall: now,
        }
    }
}

/// Frames of one stream in; init segments, parts and segment ends of its primary video track
/// and first audio track out. See the [module docs](self) for the rules.
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    info: Option<Arc<StreamInfo>>,
    video: Option<TrackState>,
    audio: Option<TrackState>,
    /// Audio samples waiting for the video to reach their time.
    audio_queue: VecDeque<Sample>,
    /// Video segment start times the audio has not reached yet: (ticks, timescale).
    boundaries: VecDeque<(i64, u32)>,
    /// Decode time of the newest video sample: (ticks, timescale).
    watermark: Option<(i64, u32)>,
    out: VecDeque<Output>,
    ignored: u64,
    /// See [`Segmenter::set_segment_limit`].
    limit: Option<Duration>,
}

const MAX_BOUNDARIES: usize = 64;

impl Segmenter {
    /// A segmenter with no tracks yet; call [`set_info`](Self::set_info) first.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            info: None,
            video: None,
            audio: None,
            audio_queue: VecDeque::new(),
            boundaries: VecDeque::new(),
            watermark: None,
            out: VecDeque::new(),
            ignored: 0,
            limit: None,
        }
    }

    /// Sets the segment duration limit: with `Some(limit)`, every segment ends before its
    /// duration reaches `limit`, cut before a non-keyframe sample if need be (the next segment
    /// then does not start with a keyframe). For `EXT-X-TARGETDURATION` `TD` (which must not
    /// change, RFC 8216bis §6.2.1, and which every segment's duration rounded to the nearest
    /// second must not exceed, §4.4.3.1), use [`segment_limit_for`]`(TD)`. It may be set at
    /// any time: an open segment already past the limit ends before the next sample. `None`
    /// (the default) cuts only at keyframes (and force-cuts at
    /// [`SegmenterConfig::max_segment`]).
    pub fn set_segment_limit(&mut self, limit: Option<Duration>) {
        if limit == self.limit {
            return;
        }
        // The audio segments matching video segments that began before now follow the video's
        // cuts; cutting them on their own as well would shift the audio's segment numbers.
        if let (Some(v), Some(a)) = (&self.video, self.audio.as_mut()) {
            a.limit_exempt = v
                .segment
                .as_ref()
                .map(|s| s.msn)
                .or_else(|| v.next_msn.checked_sub(1));
        }
        self.limit = limit;
        self.apply_limit();
    }

    /// The segment duration limit in force.
    pub fn segment_limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Whether every part produced so far follows RFC 8216bis §4.4.4.9's 85 % rule: each part
    /// that is neither independent nor the last of its segment lasts at least 85 % of the part
    /// target. It becomes `false` (for good) when a track's samples last more than 15 % of the
    /// part target, or its timestamps are irregular; see the [module docs](self).
    pub fn part_rules_hold(&self) -> bool {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .all(|t| t.short_parts == 0)
    }

    /// Video segments so far that start without a keyframe because the publisher's keyframe
    /// interval outgrew the segment limit (or exceeded [`SegmenterConfig::max_segment`]).
    /// Such a segment decodes only after its predecessor from that GOP's keyframe; LL-HLS
    /// players join at independent parts instead, others wait for the next keyframe.
    pub fn unaligned_segments(&self) -> u64 {
        self.video.as_ref().map_or(0, |v| v.unaligned)
    }

    /// Gives each track its limit in ticks. The video's is one audio frame shorter, so that the
    /// audio segments cut at its boundaries (at most one frame longer) stay under the limit.
    fn apply_limit(&mut self) {
        let margin = match (&self.video, &self.audio) {
            (Some(_), Some(a)) => a.frame_duration(),
            _ => Duration::ZERO,
        };
        if let Some(v) = self.video.as_mut() {
            v.limit_ticks = self
                .limit
                .map(|l| ticks(l.saturating_sub(margin), v.timescale).max(1));
        }
        if let Some(a) = self.audio.as_mut() {
            a.limit_ticks = self.limit.map(|l| ticks(l, a.timescale).max(1));
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// Frames dropped because their track is neither the primary video nor the first audio
    /// track (such tracks are not packaged).
    pub fn ignored_frames(&self) -> u64 {
        self.ignored
    }

    /// Sets the stream's tracks. A track whose codec or timescale changed gets a new init
    /// segment; if any packaged track changed after media started, every track's segment is
    /// closed and the next ones start with a discontinuity.
    ///
    /// Errors: [`Error::UnsupportedCodec`] for a codec CMAF packaging does not support here;
    /// the previous tracks stay in force.
    pub fn set_info(&mut self, info: Arc<StreamInfo>) -> Result<(), Error> {
        let video = info.primary_video().cloned();
        let audio = info
            .tracks()
            .iter()
            .find(|t| t.kind() == MediaKind::Audio)
            .cloned();
        let same = |state: &Option<TrackState>, t: &Option<sigma_core::TrackInfo>| match (state, t)
        {
            (Some(s), Some(t)) => {
                s.id == t.id() && s.timescale == t.timescale() && &s.codec == t.codec()
            }
            (None, None) => true,
            _ => false,
        };
        let video_same = same(&self.video, &video);
        let audio_same = same(&self.audio, &audio);
        if video_same && audio_same {
            // Same codecs under a new generation: the producer restarted the stream (a
            // publisher reconnecting within its grace period, with a fresh encoder and clock).
            // No new init is needed, but the timeline restarts: close the segments and re-anchor
            // the program date-time behind an EXT-X-DISCONTINUITY.
            let restarted = self
                .info
                .as_ref()
                .is_some_and(|old| old.generation() != info.generation());
            let started = self.video.as_ref().is_some_and(|t| t.last_in.is_some())
                || self.audio.as_ref().is_some_and(|t| t.last_in.is_some());
            self.info = Some(info);
            if restarted && started {
                self.discontinuity()?;
            }
            return Ok(());
        }
        // Build the new states first so an unsupported codec leaves everything as it was.
        let generation = info.generation();
        let new_video = match (&video, video_same) {
            (Some(t), false) => Some(TrackState::new(&self.cfg, t, generation)?),
            _ => None,
        };
        let new_audio = match (&audio, audio_same) {
            (Some(t), false) => Some(TrackState::new(&self.cfg, t, generation)?),
            _ => None,
        };
        let started = self.video.as_ref().is_some_and(|t| t.last_in.is_some())
            || self.audio.as_ref().is_some_and(|t| t.last_in.is_some());
        if started {
            self.discontinuity()?;
        }
        for (slot, new, present) in [
            (&mut self.video, new_video, video.is_some()),
            (&mut self.audio, new_audio, audio.is_some()),
        ] {
            if let Some((mut state, init)) = new {
                if let Some(old) = slot.take() {
                    state.next_msn = old.next_msn;
                    state.sequence = old.sequence;
                    state.short_parts = old.short_parts;
                    state.unaligned = old.unaligned;
                    state.discontinuity_next = true;
                }
                self.out.push_back(Output::Init(InitSegment {
                    track: state.id,
                    kind: state.kind,
                    generation,
                    codec: state.codec.clone(),
                    timescale: state.timescale,
                    data: init,
                }));
                *slot = Some(state);
            } else if !present {
                *slot = None;
            }
        }
        if self.video.is_none() {
            self.watermark = None;
            self.boundaries.clear();
        }
        self.apply_limit();
        self.info = Some(info);
        Ok(())
    }

    /// Takes one frame received at wall-clock time `now`.
    ///
    /// Errors: [`Error::UnknownTrack`] when no stream info describes the frame's track (the
    /// frame is not used); [`Error::FieldOverflow`] for a sample too large for a `trun`.
    pub fn push(&mut self, frame: Frame, now: SystemTime) -> Result<(), Error> {
        let id = frame.track();
        if self.info.as_ref().is_none_or(|i| i.track(id).is_none()) {
            return Err(Error::UnknownTrack(id));
        }
        if let Some(v) = self.video.as_mut().filter(|v| v.id == id) {
            let s = v.sample(frame, now);
            let ts = v.timescale;
            let dts = s.dts;
            v.process(s, Cut::Keyframe(&mut self.boundaries), &mut self.out)?;
            self.watermark = Some((dts, ts));
            self.release_audio(false)
        } else if let Some(a) = self.audio.as_mut().filter(|a| a.id == id) {
            let s = a.sample(frame, now);
            if self.video.is_some() {
                self.audio_queue.push_back(s);
                self.release_audio(false)
            } else {
                a.process(s, Cut::Duration, &mut self.out)
            }
        } else {
            self.ignored += 1;
            Ok(())
        }
    }

    /// Segments queued audio the video has caught up with (or all of it with `all`), and the
    /// oldest audio when the queue runs more than `max_audio_lead` ahead.
    fn release_audio(&mut self, all: bool) -> Result<(), Error> {
        let Some(a) = self.audio.as_mut() else {
            self.audio_queue.clear();
            return Ok(());
        };
        let lead = ticks(self.cfg.max_audio_lead, a.timescale);
        while let Some(front) = self.audio_queue.front() {
            let back = self.audio_queue.back().map_or(front.dts, |b| b.dts);
            let ready = all
                || back - front.dts > lead
                || self
                    .watermark
                    .is_some_and(|(w, ts)| !time_lt(w, ts, front.dts, a.timescale));
            if !ready {
                break;
            }
            let Some(s) = self.audio_queue.pop_front() else {
                break;
            };
            a.process(s, Cut::Boundaries(&mut self.boundaries), &mut self.out)?;
        }
        Ok(())
    }

    /// Closes every track's segment (adding held-back samples with an estimated duration);
    /// the next segments start with `EXT-X-DISCONTINUITY`. Call it after a gap in the input.
    pub fn discontinuity(&mut self) -> Result<(), Error> {
        self.close_all(true)
    }

    /// Ends the stream: everything held is segmented and every segment closed.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.close_all(false)
    }

    fn close_all(&mut self, discontinuity: bool) -> Result<(), Error> {
        // Video first: a limit cut of its last sample is a boundary for the queued audio.
        if let Some(v) = self.video.as_mut() {
            v.flush(Cut::Keyframe(&mut self.boundaries), &mut self.out)?;
        }
        self.release_audio(true)?;
        if let Some(a) = self.audio.as_mut() {
            let cut = match self.video {
                Some(_) => Cut::Boundaries(&mut self.boundaries),
                None => Cut::Duration,
            };
            a.flush(cut, &mut self.out)?;
        }
        self.boundaries.clear();
        for t in [self.video.as_mut(), self.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            if discontinuity && t.last_in.is_some() {
                t.discontinuity_next = true;
                t.anchor = None;
            }
        }
        Ok(())
    }

    /// The next output, if any.
    pub fn pull(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatencyMode;
    use crate::fixture::{self, AUDIO, VIDEO};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::UNIX_EPOCH;

    /// Everything a run produced, by track.
    #[derive(Default)]
    struct Run {
        inits: Vec<InitSegment>,
        parts: BTreeMap<TrackId, Vec<Part>>,
        ends: BTreeMap<TrackId, Vec<SegmentEnd>>,
        order: Vec<(TrackId, u64, Option<u32>)>,
        /// [`Segmenter::part_rules_hold`] after the last `take`.
        rules_hold: bool,
        /// [`Segmenter::unaligned_segments`] after the last `take`.
        unaligned: u64,
        /// Segments of each track that may exceed the limit because they were open (or
        /// ended) before it was set.
        limit_exempt: usize,
    }

    impl Run {
        fn take(&mut self, s: &mut Segmenter) {
            self.rules_hold = s.part_rules_hold();
            self.unaligned = s.unaligned_segments();
            while let Some(o) = s.pull() {
                match o {
                    Output::Init(i) => self.inits.push(i),
                    Output::Part(p) => {
                        self.order.push((p.track, p.msn, Some(p.index)));
                        self.parts.entry(p.track).or_default().push(p);
                    }
                    Output::SegmentEnd(e) => {
                        self.order.push((e.track, e.msn, None));
                        self.ends.entry(e.track).or_default().push(e);
                    }
                }
            }
        }

        /// Segment bytes (concatenated parts) by msn.
        fn segments(&self, track: TrackId) -> BTreeMap<u64, Vec<u8>> {
            let mut m: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            for p in &self.parts[&track] {
                let seg = m.entry(p.msn).or_default();
                seg.extend_from_slice(&p.header);
                for b in &p.payload {
                    seg.extend_from_slice(b);
                }
            }
            m
        }
    }

    fn run(cfg: SegmenterConfig, info: Arc<StreamInfo>, frames: &[Frame]) -> Run {
        run_limited(cfg, info, frames, None, 0)
    }

    /// Like [`run`], with the segment limit set before frame `at`.
    fn run_limited(
        cfg: SegmenterConfig,
        info: Arc<StreamInfo>,
        frames: &[Frame],
        limit: Option<Duration>,
        at: usize,
    ) -> Run {
        let mut s = Segmenter::new(cfg);
        let mut r = Run::default();
        s.set_info(info).unwrap();
        for (i, f) in frames.iter().enumerate() {
            if i == at {
                s.set_segment_limit(limit);
                r.limit_exempt = r.ends.get(&VIDEO).map_or(0, Vec::len) + usize::from(i > 0);
            }
            s.push(f.clone(), UNIX_EPOCH + Duration::from_millis(i as u64))
                .unwrap();
            r.take(&mut s);
        }
        s.finish().unwrap();
        r.take(&mut s);
        r
    }

    fn ultra_low() -> SegmenterConfig {
        SegmenterConfig::from_timing(LatencyMode::UltraLow.timing())
    }

    #[test]
    fn capture_round_trips_through_the_mp4_crate() {
        let (info, frames) = fixture::capture();
        let r = run(ultra_low(), info.clone(), &frames);
        assert_eq!(r.inits.len(), 2);
        for track in [VIDEO, AUDIO] {
            let init = r.inits.iter().find(|i| i.track == track).unwrap();
            let (id, ts, t) = fixture::read_init(&init.data);
            assert_eq!((id, ts), (track.0, info.track(track).unwrap().timescale()));
            let stsd = &t.tracks()[&id].trak.mdia.minf.stbl.stsd;
            match info.track(track).unwrap().codec() {
                CodecConfig::H264(h) => {
                    let avc1 = stsd.avc1.as_ref().expect("avc1");
                    assert_eq!(u32::from(avc1.width), h.width());
                    assert_eq!(
                        avc1.avcc.sequence_parameter_sets[0].bytes,
                        h.sps()[0].to_vec()
                    );
                    assert_eq!(
                        avc1.avcc.picture_parameter_sets[0].bytes,
                        h.pps()[0].to_vec()
                    );
                }
                CodecConfig::Aac(a) => {
                    let mp4a = stsd.mp4a.as_ref().expect("mp4a");
                    assert_eq!(mp4a.channelcount, u16::from(a.channels()));
                    let d = &mp4a.esds.as_ref().unwrap().es_desc.dec_config.dec_specific;
                    assert_eq!(d.profile, a.object_type());
                }
                _ => unreachable!(),
            }
            let media: Vec<u8> = r.segments(track).into_values().flatten().collect();
            let got = fixture::read_fragments(&media);
            let want: Vec<&Frame> = frames.iter().filter(|f| f.track() == track).collect();
            assert_eq!(got.len(), want.len(), "track {track}: every sample, once");
            let shift = got[0].dts as i64 - want[0].dts();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.data, w.data(), "sample {i} payload");
                assert_eq!(g.dts as i64 - shift, w.dts(), "sample {i} dts");
                assert_eq!(i64::from(g.cto), w.composition_offset(), "sample {i} cto");
                assert_eq!(g.sync, w.is_keyframe(), "sample {i} sync");
                if let Some(next) = want.get(i + 1) {
                    assert_eq!(
                        i64::from(g.duration),
                        next.dts() - w.dts(),
                        "sample {i} dur"
                    );
                }
            }
        }
    }

    #[test]
    fn b_frames_keep_their_composition_offsets() {
        let (info, frames) = fixture::capture();
        let r = run(ultra_low(), info, &frames);
        let media: Vec<u8> = r.segments(VIDEO).into_values().flatten().collect();
        let got = fixture::read_fragments(&media);
        // x264 with -bf 3: negative-free but varying offsets, and B-frames (pts < next dts).
        let ctos: std::collections::BTreeSet<i32> = got.iter().map(|s| s.cto).collect();
        assert!(ctos.len() >= 3, "offsets {ctos:?}");
        // Presentation order recovered from dts + cto is a permutation of a regular grid.
        let mut pts: Vec<i64> = got
            .iter()
            .map(|s| s.dts as i64 + i64::from(s.cto))
            .collect();
        pts.sort();
        for w in pts.windows(2) {
            assert_eq!(w[1] - w[0], 3000, "30 fps presentation grid");
        }
    }

    /// Runs ffprobe on a file and returns its packet list as (stream, pts, dts, size, flags).
    fn ffprobe_packets(path: &std::path::Path) -> Vec<String> {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_packets", "-show_entries"])
            .arg("packet=codec_type,pts,dts,duration,size,flags")
            .args(["-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs (scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn ffprobe_reads_segments_and_concatenated_parts_alike() {
        let (info, frames) = fixture::capture();
        let r = run(ultra_low(), info, &frames);
        let dir = std::env::temp_dir().join(format!("sigma-llhls-ffprobe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for track in [VIDEO, AUDIO] {
            let init = &r.inits.iter().find(|i| i.track == track).unwrap().data;
            let segments = r.segments(track);
            let (&msn, seg) = segments.iter().nth(1).unwrap();
            let mut whole = init.to_vec();
            whole.extend_from_slice(seg);
            let mut parts = init.to_vec();
            let mut n = 0;
            for p in r.parts[&track].iter().filter(|p| p.msn == msn) {
                n += 1;
                parts.extend_from_slice(&p.header);
                for b in &p.payload {
                    parts.extend_from_slice(b);
                }
            }
            assert!(track == AUDIO || n > 1, "a segment of several parts");
            let (a, b) = (
                dir.join(format!("seg{track}.mp4")),
                dir.join(format!("parts{track}.mp4")),
            );
            std::fs::write(&a, &whole).unwrap();
            std::fs::write(&b, &parts).unwrap();
            let (pa, pb) = (ffprobe_packets(&a), ffprobe_packets(&b));
            assert!(pa.len() > 10, "{pa:?}");
            assert_eq!(pa, pb);
            let want = frames.iter().filter(|f| f.track() == track).count();
            // The whole stream decodes to as many packets as were pushed.
            let mut all = init.to_vec();
            for s in segments.values() {
                all.extend_from_slice(s);
            }
            let c = dir.join(format!("all{track}.mp4"));
            std::fs::write(&c, &all).unwrap();
            let pc = ffprobe_packets(&c);
            assert_eq!(pc.len(), want, "{track}");
            if track == VIDEO {
                // Keyframe flags survive and every segment starts with one.
                assert!(pa[0].contains('K'), "{}", pa[0]);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Checks the structural rules on a run of `frames` pushed unchanged, without a segment
    /// limit.
    fn check_rules(r: &Run, cfg: &SegmenterConfig, frames: &[Frame]) {
        check_rules_limited(r, cfg, frames, None);
    }

    /// Checks the structural rules on a run whose segment limit was `limit` (from the start, or
    /// set mid-stream: the segments ending before it was set are exempt from the limit).
    fn check_rules_limited(
        r: &Run,
        cfg: &SegmenterConfig,
        frames: &[Frame],
        limit: Option<Duration>,
    ) {
        assert!(r.rules_hold, "part_rules_hold");
        for (&track, parts) in &r.parts {
            let ts = parts[0].timescale;
            let target = cfg.part_target.map(|p| ticks(p, ts));
            let ends = &r.ends[&track];
            // Media sequence numbers grow by one; parts are numbered from 0 in each segment.
            let mut expected = (parts[0].msn, 0u32);
            let mut seg_parts: Vec<&Part> = Vec::new();
            let mut e = ends.iter();
            let mut samples = 0usize;
            // Per segment: (duration, first sample's duration, last sample's duration, first
            // sample is a sync sample).
            let mut segs: Vec<(u64, u32, u32, bool)> = Vec::new();
            for p in parts {
                if p.msn != expected.0 {
                    assert_eq!(p.msn, expected.0 + 1, "msn grows by one");
                    expected = (p.msn, 0);
                }
                assert_eq!(p.index, expected.1);
                expected.1 += 1;
                assert_eq!(p.index == 0, p.segment_start.is_some());
                samples += p.samples as usize;
                seg_parts.push(p);
                if let Some(t) = target {
                    assert!(p.duration as i64 <= t, "part {} > target {t}", p.duration);
                }
                // §4.4.4.9: INDEPENDENT=YES if and only if the part contains a sync sample;
                // a video keyframe starts its part unless the part was under 85 % before it.
                let mut bytes = p.header.to_vec();
                for b in &p.payload {
                    bytes.extend_from_slice(b);
                }
                let got = fixture::read_fragments(&bytes);
                assert_eq!(got.len(), p.samples as usize);
                assert_eq!(p.independent, got.iter().any(|s| s.sync), "{p:?}");
                if let Some(t) = target.filter(|_| track == VIDEO) {
                    let mut before = 0i64;
                    for (i, s) in got.iter().enumerate() {
                        if s.sync && i > 0 {
                            assert!(
                                before * 100 < t * 85,
                                "keyframe {i} of {p:?} could have started a part"
                            );
                        }
                        before += i64::from(s.duration);
                    }
                }
                if seg_parts.len() == 1 {
                    segs.push((0, got[0].duration, 0, got[0].sync));
                }
                if let Some(last) = segs.last_mut() {
                    last.2 = got.last().unwrap().duration;
                }
                if seg_parts.len() as u32
                    == ends.iter().find(|x| x.msn == p.msn).map_or(0, |x| x.parts)
                {
                    let end = e.next().unwrap();
                    assert_eq!(end.msn, p.msn);
                    let total: u64 = seg_parts.iter().map(|p| p.duration).sum();
                    assert_eq!(end.duration, total, "segment = its parts");
                    if let Some(last) = segs.last_mut() {
                        last.0 = total;
                    }
                    if let Some(t) = target {
                        for q in &seg_parts[..seg_parts.len() - 1] {
                            assert!(
                                q.duration as i64 * 100 >= t * 85,
                                "part {} < 85% of {t} (not last of segment)",
                                q.duration
                            );
                        }
                    }
                    if track == VIDEO && limit.is_none() {
                        assert!(
                            seg_parts[0].independent && segs.last().unwrap().3,
                            "segment {} starts with a keyframe",
                            end.msn
                        );
                    }
                    seg_parts.clear();
                }
            }
            assert!(seg_parts.is_empty(), "every segment ended");
            if let Some(limit) = limit {
                let under =
                    |d: u64| u128::from(d) * 1_000_000_000 < limit.as_nanos() * u128::from(ts);
                for (i, s) in segs.iter().enumerate().skip(r.limit_exempt) {
                    assert!(under(s.0), "{track} segment {i} lasts {} ≥ {limit:?}", s.0);
                    if track == VIDEO && !s.3 && i > 0 {
                        // Cut without a keyframe only when the previous segment was about
                        // to reach the limit (less one audio frame).
                        let prev = segs[i - 1];
                        let near = prev.0 + u64::from(prev.2.max(s.1));
                        let margin = Duration::from_nanos(21_333_334);
                        assert!(
                            !under(near + ticks(margin, ts) as u64 + 1),
                            "segment {i} starts without a keyframe needlessly"
                        );
                    }
                }
            }
            if limit.is_some() && track == AUDIO && r.parts.contains_key(&VIDEO) {
                // Audio stays cut at the video's boundaries: no audio segment reached the limit
                // on its own (the video's limit leaves room for one audio frame).
                let vstarts: BTreeMap<u64, f64> = r.parts[&VIDEO]
                    .iter()
                    .filter(|p| p.index == 0)
                    .map(|p| (p.msn, p.start as f64 / f64::from(p.timescale)))
                    .collect();
                // (An exempt audio segment may have been cut on its own, so the one after it
                // can start a frame early.)
                let exempt = r.limit_exempt + usize::from(r.limit_exempt > 0);
                for a in parts.iter().filter(|p| p.index == 0).skip(exempt) {
                    let at = a.start as f64 / f64::from(a.timescale);
                    // Audio running past the video's end may need a segment of its own.
                    let Some(&vt) = vstarts.get(&a.msn) else {
                        assert!(vstarts.keys().all(|&m| m < a.msn), "{a:?}");
                        continue;
                    };
                    assert!(
                        at >= vt - 1e-9 && at - vt < 1024.0 / 48_000.0,
                        "audio segment {} at {at} vs video {vt}",
                        a.msn
                    );
                }
            }
            assert_eq!(
                samples,
                frames.iter().filter(|f| f.track() == track).count()
            );
            // Payloads in order, none lost.
            let got: Vec<&Bytes> = parts.iter().flat_map(|p| p.payload.iter()).collect();
            let want: Vec<&Bytes> = frames
                .iter()
                .filter(|f| f.track() == track)
                .map(|f| f.data())
                .collect();
            assert!(got == want, "track {track} payload order");
        }
    }

    #[test]
    fn capture_follows_part_and_segment_rules_in_every_mode() {
        let (info, frames) = fixture::capture();
        for mode in [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow] {
            let cfg = SegmenterConfig::from_timing(mode.timing());
            let r = run(cfg, info.clone(), &frames);
            check_rules(&r, &cfg, &frames);
            let n = r.ends[&VIDEO].len();
            let expect = match mode {
                LatencyMode::Normal => 1, // 6 s of input, one 6 s segment
                LatencyMode::Low => 6,    // 1 s GOPs
                LatencyMode::UltraLow => 3,
            };
            assert_eq!(n, expect, "{mode:?}");
            // Audio segments line up with video segments.
            assert_eq!(r.ends[&AUDIO].len(), n, "{mode:?}");
        }
    }

    #[test]
    fn audio_segments_start_at_video_segment_boundaries() {
        let frames = fixture::synthetic_frames(10, 30);
        let cfg = ultra_low();
        let r = run(cfg, fixture::synthetic_info(1), &frames);
        check_rules(&r, &cfg, &frames);
        let v = &r.parts[&VIDEO];
        let a = &r.parts[&AUDIO];
        for vs in v.iter().filter(|p| p.index == 0) {
            let as_ = a.iter().find(|p| p.index == 0 && p.msn == vs.msn).unwrap();
            let vt = vs.start as f64 / 90_000.0;
            let at = as_.start as f64 / 48_000.0;
            assert!(
                at >= vt - 1e-9 && at - vt < 1024.0 / 48_000.0,
                "{vt} vs {at}"
            );
        }
    }

    #[test]
    fn codec_change_writes_a_new_init_and_a_discontinuity() {
        let frames = fixture::synthetic_frames(6, 30);
        let mut s = Segmenter::new(ultra_low());
        let mut r = Run::default();
        s.set_info(fixture::synthetic_info(1)).unwrap();
        let half = frames.len() / 2;
        let half = half + frames[half..].iter().position(|f| f.is_keyframe()).unwrap();
        for f in &frames[..half] {
            s.push(f.clone(), UNIX_EPOCH).unwrap();
        }
        // Same generation, same codecs: nothing happens.
        s.set_info(fixture::synthetic_info(1)).unwrap();
        r.take(&mut s);
        assert_eq!(r.inits.len(), 2);
        let v =
            sigma_core::H264Config::from_avcc(fixture::core_testdata("x264_baseline_360p25.avcc"))
                .unwrap();
        let old = fixture::synthetic_info(1);
        let info = StreamInfo::new(
            2,
            vec![
                sigma_core::TrackInfo::new(VIDEO, 90_000, CodecConfig::H264(v)).unwrap(),
                old.track(AUDIO).unwrap().clone(),
            ],
        )
        .unwrap();
        s.set_info(info).unwrap();
        for f in &frames[half..] {
            s.push(f.clone(), UNIX_EPOCH).unwrap();
        }
        s.finish().unwrap();
        r.take(&mut s);
        assert_eq!(r.inits.len(), 3);
        assert_eq!(r.inits[2].generation, 2);
        assert_eq!(r.inits[2].track, VIDEO);
        check_rules(&r, &ultra_low(), &frames);
        for track in [VIDEO, AUDIO] {
            let firsts: Vec<&SegmentStart> = r.parts[&track]
                .iter()
                .filter_map(|p| p.segment_start.as_ref())
                .collect();
            let disc: Vec<bool> = firsts.iter().map(|s| s.discontinuity).collect();
            assert_eq!(disc.iter().filter(|d| **d).count(), 1, "{track}: {disc:?}");
            let after = firsts.iter().position(|s| s.discontinuity).unwrap();
            let want_gen = if track == VIDEO { 2 } else { 1 };
            assert_eq!(firsts[after].init_generation, want_gen);
        }
    }

    #[test]
    fn restarted_publisher_gets_a_discontinuity_and_a_fresh_program_date_time() {
        let frames = fixture::synthetic_frames(6, 30);
        let mut s = Segmenter::new(ultra_low());
        let mut r = Run::default();
        s.set_info(fixture::synthetic_info(1)).unwrap();
        let half = frames.len() / 2;
        let half = half + frames[half..].iter().position(|f| f.is_keyframe()).unwrap();
        for f in &frames[..half] {
            s.push(f.clone(), UNIX_EPOCH).unwrap();
        }
        // The same codecs under a new generation, and the wall clock 10 s later than the
        // media timeline says (the publisher was away).
        s.set_info(fixture::synthetic_info(2)).unwrap();
        let later = UNIX_EPOCH + Duration::from_secs(10);
        for f in &frames[half..] {
            s.push(f.clone(), later).unwrap();
        }
        s.finish().unwrap();
        r.take(&mut s);
        assert_eq!(r.inits.len(), 2, "no new init for unchanged codecs");
        check_rules(&r, &ultra_low(), &frames);
        for track in [VIDEO, AUDIO] {
            let firsts: Vec<&SegmentStart> = r.parts[&track]
                .iter()
                .filter_map(|p| p.segment_start.as_ref())
                .collect();
            let after = firsts.iter().position(|s| s.discontinuity);
            let after = after.unwrap_or_else(|| panic!("{track}: no discontinuity"));
            assert_eq!(firsts.iter().filter(|s| s.discontinuity).count(), 1);
            assert!(
                firsts[after].program_date_time >= later,
                "{track}: program date-time not re-anchored"
            );
            assert!(firsts[after - 1].program_date_time < later);
        }
    }

    #[test]
    fn timestamp_jumps_are_rebased_without_losing_samples() {
        let mut frames = fixture::synthetic_frames(6, 30);
        // Publisher restarts its clock at 3 s (both tracks jump back), then jumps ahead 1 h.
        for f in frames.iter_mut() {
            let secs = match f.track() {
                VIDEO => f.dts() as f64 / 90_000.0,
                _ => f.dts() as f64 / 48_000.0,
            };
            let ts: i64 = if f.track() == VIDEO { 90_000 } else { 48_000 };
            if secs >= 4.5 {
                *f = f.clone().shifted(3600 * ts);
            } else if secs >= 3.0 {
                *f = f.clone().shifted(-3 * ts);
            }
        }
        let cfg = ultra_low();
        let r = run(cfg, fixture::synthetic_info(1), &frames);
        check_rules(&r, &cfg, &frames);
        for parts in r.parts.values() {
            for w in parts.windows(2) {
                assert_eq!(
                    w[0].start + w[0].duration,
                    w[1].start,
                    "continuous timeline"
                );
            }
        }
    }

    /// Found by `llhls_segmenter`: audio queued behind the video had its timestamps re-based
    /// only when segmented, so a backwards step while queued produced a negative duration.
    #[test]
    fn queued_audio_going_backwards_is_rebased_on_arrival() {
        let mut s = Segmenter::new(ultra_low());
        s.set_info(fixture::synthetic_info(1)).unwrap();
        let f = |t, dts, key| Frame::new(t, dts, dts, key, Bytes::from_static(b"x"));
        s.push(f(AUDIO, 4883, true), UNIX_EPOCH).unwrap();
        s.push(f(AUDIO, -24282, true), UNIX_EPOCH).unwrap();
        s.push(f(VIDEO, 0, true), UNIX_EPOCH).unwrap();
        s.push(f(VIDEO, 3000, false), UNIX_EPOCH).unwrap();
        s.finish().unwrap();
        let mut r = Run::default();
        r.take(&mut s);
        assert_eq!(r.parts[&AUDIO].iter().map(|p| p.samples).sum::<u32>(), 2);
        assert_eq!(r.parts[&VIDEO].iter().map(|p| p.samples).sum::<u32>(), 2);
    }

    #[test]
    fn debug_prints_lengths_not_payloads() {
        let frames: Vec<Frame> = fixture::synthetic_frames(3, 30);
        let r = run(ultra_low(), fixture::synthetic_info(1), &frames);
        let part = &r.parts[&VIDEO][0];
        let text = format!("{part:?} {:?}", r.inits[0]);
        assert!(text.contains("len"), "{text}");
        assert!(
            !text.contains("xxxx") && !text.contains("video 0"),
            "{text}"
        );
        let mut s = Segmenter::new(ultra_low());
        s.set_info(fixture::synthetic_info(1)).unwrap();
        s.push(frames[0].clone(), UNIX_EPOCH).unwrap();
        assert!(!format!("{s:?}").contains("xxxx"));
    }

    #[test]
    fn unknown_tracks_are_errors_not_panics() {
        let mut s = Segmenter::new(ultra_low());
        let f = Frame::new(TrackId(9), 0, 0, true, Bytes::new());
        assert_eq!(
            s.push(f.clone(), UNIX_EPOCH),
            Err(Error::UnknownTrack(TrackId(9)))
        );
        s.set_info(fixture::synthetic_info(1)).unwrap();
        assert_eq!(s.push(f, UNIX_EPOCH), Err(Error::UnknownTrack(TrackId(9))));
    }

    /// Video alone at `step` ticks per frame, a keyframe every `gop` frames; payload `v{i}`.
    fn video_only(step: i64, count: u32, gop: u32) -> Vec<Frame> {
        (0..count)
            .map(|i| {
                let t = i64::from(i) * step;
                Frame::new(VIDEO, t, t, i % gop == 0, Bytes::from(format!("v{i}")))
            })
            .collect()
    }

    /// The part holding the payload `name`, and the payload's position in it.
    fn part_with<'a>(r: &'a Run, track: TrackId, name: &str) -> (&'a Part, usize) {
        r.parts[&track]
            .iter()
            .find_map(|p| {
                let i = p
                    .payload
                    .iter()
                    .position(|b| b.as_ref() == name.as_bytes())?;
                Some((p, i))
            })
            .unwrap()
    }

    #[test]
    fn segment_limit_cuts_long_gops_before_the_target_duration_is_exceeded() {
        // 4 s GOPs against a 2 s target: keyframe cuts alone make 4 s segments.
        let frames = fixture::synthetic_frames(13, 120);
        let cfg = ultra_low();
        let plain = run(cfg, fixture::synthetic_info(1), &frames);
        assert!(
            plain.ends[&VIDEO]
                .iter()
                .all(|e| e.duration == 4 * 90_000 || e.msn == 3)
        );
        let limit = segment_limit_for(2);
        let r = run_limited(cfg, fixture::synthetic_info(1), &frames, Some(limit), 0);
        check_rules_limited(&r, &cfg, &frames, Some(limit));
        for track in [VIDEO, AUDIO] {
            for e in &r.ends[&track] {
                let secs = e.duration as f64 / f64::from(e.timescale);
                assert!(secs.round() <= 2.0, "{track}: {e:?}");
            }
        }
        // Video: 2.4667 s (74 frames) per segment, the last frame before 2.5 s less one AAC
        // frame; the second segment starts without a keyframe.
        assert_eq!(r.ends[&VIDEO][0].duration, 74 * 3000);
        let second = r.parts[&VIDEO].iter().find(|p| p.msn == 1).unwrap();
        assert_eq!(
            second.payload[0],
            frames
                .iter()
                .filter(|f| f.track() == VIDEO)
                .nth(74)
                .unwrap()
                .data()
        );
        assert!(!second.independent);
        assert!(r.unaligned > 0, "cuts between keyframes are counted");
        assert_eq!(plain.unaligned, 0);
        assert_eq!(r.ends[&AUDIO].len(), r.ends[&VIDEO].len());
    }

    #[test]
    fn a_long_first_gop_stays_one_segment_in_every_mode() {
        // OBS's "auto" keyframe interval: 250 frames, 8.33 s at 30 fps. Before the target
        // duration is fixed (no limit yet) the first segment must end at the second keyframe,
        // not be force-cut between keyframes at three segment targets (3 s in `low`).
        let frames = fixture::synthetic_frames(30, 250);
        for mode in [LatencyMode::Low, LatencyMode::UltraLow, LatencyMode::Normal] {
            let cfg = SegmenterConfig::from_timing(mode.timing());
            let r = run(cfg, fixture::synthetic_info(1), &frames);
            check_rules(&r, &cfg, &frames);
            let video = &r.ends[&VIDEO];
            assert!(video.len() >= 3, "{mode:?}: {video:?}");
            for e in &video[..video.len() - 1] {
                assert_eq!(e.duration, 250 * 3000, "{mode:?}: {e:?}");
            }
            for p in r.parts[&VIDEO].iter().filter(|p| p.index == 0) {
                assert!(
                    p.independent,
                    "{mode:?}: segment {} starts without a keyframe",
                    p.msn
                );
            }
            assert_eq!(r.unaligned, 0, "{mode:?}");
        }
    }

    #[test]
    fn the_held_back_sample_fits_its_part_at_the_end_too() {
        // Audio-only, ultra-low: 15 AAC frames fill 0.320 s of a 0.334 s part. Whatever the
        // last step before the end, the sample flushed at the end may not push its part past
        // PART-TARGET: `process` already closed any part the held-back sample would overfill,
        // since it predicts with the same duration `flush` reuses.
        let info = fixture::synthetic_info(1);
        let info = StreamInfo::new(1, vec![info.track(AUDIO).unwrap().clone()]).unwrap();
        let cfg = ultra_low();
        let target = ticks(cfg.part_target.unwrap(), 48_000) as u64;
        for n in 10..50u32 {
            for last_gap in [1i64, 2, 3] {
                let mut frames: Vec<Frame> = (0..n)
                    .map(|i| {
                        let t = i64::from(i) * 1024;
                        Frame::new(AUDIO, t, t, true, Bytes::from_static(b"aac"))
                    })
                    .collect();
                let t = i64::from(n - 1) * 1024 + last_gap * 1024;
                frames.push(Frame::new(AUDIO, t, t, true, Bytes::from_static(b"aac")));
                let r = run(cfg, info.clone(), &frames);
                for p in &r.parts[&AUDIO] {
                    assert!(p.duration <= target, "n {n} gap {last_gap}: {p:?}");
                }
            }
        }
    }

    #[test]
    fn segment_limit_leaves_keyframe_cuts_at_the_target_alone() {
        let frames = fixture::synthetic_frames(10, 60);
        let cfg = ultra_low();
        let plain = run(cfg, fixture::synthetic_info(1), &frames);
        let r = run_limited(
            cfg,
            fixture::synthetic_info(1),
            &frames,
            Some(segment_limit_for(2)),
            0,
        );
        check_rules(&r, &cfg, &frames);
        for track in [VIDEO, AUDIO] {
            assert_eq!(r.ends[&track], plain.ends[&track], "{track}");
        }
    }

    #[test]
    fn segment_limit_set_mid_segment_cuts_before_the_next_sample() {
        // One 10 s GOP; the limit arrives when the video is at 3 s, past it already.
        let frames = fixture::synthetic_frames(10, 300);
        let cfg = ultra_low();
        let at = frames
            .iter()
            .position(|f| f.track() == VIDEO && f.dts() >= 3 * 90_000)
            .unwrap();
        let limit = segment_limit_for(2);
        let r = run_limited(cfg, fixture::synthetic_info(1), &frames, Some(limit), at);
        check_rules_limited(&r, &cfg, &frames, Some(limit));
        // The held-back frame at 2.9667 s starts the next segment.
        assert_eq!(r.ends[&VIDEO][0].duration, 3 * 90_000 - 3000);
        assert!(r.ends[&VIDEO].len() >= 4);
        assert_eq!(r.ends[&AUDIO].len(), r.ends[&VIDEO].len());
    }

    #[test]
    fn segment_limit_applies_to_audio_only_streams() {
        let info = fixture::synthetic_info(1);
        let info = StreamInfo::new(1, vec![info.track(AUDIO).unwrap().clone()]).unwrap();
        let frames: Vec<Frame> = fixture::synthetic_frames(6, 30)
            .into_iter()
            .filter(|f| f.track() == AUDIO)
            .collect();
        let cfg = ultra_low();
        // Below the 90 % of the target where audio-only segments are cut otherwise.
        let limit = Duration::from_millis(1200);
        let r = run_limited(cfg, info, &frames, Some(limit), 0);
        check_rules_limited(&r, &cfg, &frames, Some(limit));
        assert!(r.ends[&AUDIO].len() >= 5);
    }

    #[test]
    fn segment_limit_holds_for_audio_with_a_gap_across_a_video_boundary() {
        // Audio missing from 3.5 s to 4.6 s: the frame before the gap lasts 1.1 s, so the
        // audio segment cut at the video's 2 s and 4 s boundaries would last 2.6 s.
        let frames: Vec<Frame> = fixture::synthetic_frames(10, 60)
            .into_iter()
            .filter(|f| f.track() == VIDEO || !(168_000..220_800).contains(&f.dts()))
            .collect();
        let cfg = ultra_low();
        let limit = segment_limit_for(2);
        let r = run_limited(cfg, fixture::synthetic_info(1), &frames, Some(limit), 0);
        // (The 1.1 s frame cannot fit a part: check_rules does not apply.)
        for track in [VIDEO, AUDIO] {
            for e in &r.ends[&track] {
                let secs = e.duration as f64 / f64::from(e.timescale);
                assert!(secs < limit.as_secs_f64(), "{track}: {e:?}");
            }
        }
        // The audio segment cut early stands in for the next video segment: counts still match.
        assert_eq!(r.ends[&AUDIO].len(), r.ends[&VIDEO].len());
        let audio: u32 = r.parts[&AUDIO].iter().map(|p| p.samples).sum();
        assert_eq!(
            audio as usize,
            frames.iter().filter(|f| f.track() == AUDIO).count()
        );
    }

    #[test]
    fn a_part_containing_a_keyframe_is_independent() {
        // 25 fps: parts of 8 frames; the keyframe at 1 s (frame 25) is the second sample of
        // the part 24..32, too early to close the part before it (§4.4.4.9's 85 % rule).
        let frames = video_only(3600, 100, 25);
        let cfg = ultra_low();
        let r = run(cfg, fixture::synthetic_info(1), &frames);
        check_rules(&r, &cfg, &frames);
        let (part, i) = part_with(&r, VIDEO, "v25");
        assert_eq!(i, 1);
        assert!(part.independent, "{part:?}");
    }

    #[test]
    fn a_keyframe_starts_a_part_when_the_part_before_is_long_enough() {
        // 50 fps: parts of 16 frames (0.32 s); the keyframe at frame 47 comes when the part
        // 32.. holds 15 frames (0.30 s, ≥ 85 % of 0.334 s), so it closes there.
        let frames = video_only(1800, 150, 47);
        let cfg = ultra_low();
        let r = run(cfg, fixture::synthetic_info(1), &frames);
        check_rules(&r, &cfg, &frames);
        let (part, i) = part_with(&r, VIDEO, "v47");
        assert_eq!(i, 0, "{part:?}");
        assert!(part.independent);
        let (before, _) = part_with(&r, VIDEO, "v46");
        assert_eq!((before.samples, before.independent), (15, false));
    }

    #[test]
    fn samples_longer_than_15_percent_of_the_part_target_are_reported() {
        // A 5 fps screen capture: 0.2 s frames against 0.334 s parts make 0.2 s parts.
        let cfg = ultra_low();
        let r = run(cfg, fixture::synthetic_info(1), &video_only(18_000, 40, 10));
        assert!(!r.rules_hold);
        assert!(r.parts[&VIDEO].iter().all(|p| p.samples == 1));
        // 30 fps is fine.
        let r = run(cfg, fixture::synthetic_info(1), &video_only(3000, 120, 30));
        assert!(r.rules_hold);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_streams_follow_the_rules(frames in fixture::arb_stream()) {
            let cfg = ultra_low();
            let r = run(cfg, fixture::synthetic_info(1), &frames);
            check_rules(&r, &cfg, &frames);
        }

        #[test]
        fn random_streams_follow_the_rules_under_a_segment_limit(
            frames in fixture::arb_stream(),
            at in any::<usize>(),
        ) {
            // GOPs of up to 80 frames of up to 42 ms exceed the 2.499 s limit; it is set at a
            // random point, possibly mid-segment.
            let cfg = ultra_low();
            let limit = segment_limit_for(2);
            let at = at % frames.len();
            let r = run_limited(cfg, fixture::synthetic_info(1), &frames, Some(limit), at);
            check_rules_limited(&r, &cfg, &frames, Some(limit));
        }
    }
}
