//! One rendition's bounded window of segments and parts, and pure playlist rendering.
//!
//! [`Rendition`] is sans-IO: it takes the [`Output`]s of a [`crate::Segmenter`] for one track,
//! keeps what the playlist lists plus what must stay available after it left the playlist
//! (RFC 8216bis §6.2.2), and renders media playlists (§4.4.3, §4.4.4, §4.4.5.3) including
//! delta updates (§6.2.5.1). [`render_multivariant`] renders the multivariant playlist
//! (§4.4.6).
//!
//! Memory is bounded by the mode: `playlist_segments` listed segments, as many again retained
//! for availability, and the init segments they use. Parts are views (`Bytes` clones) of the
//! same payloads as their segments, so keeping a part available costs no payload memory.

use crate::directive::Skip;
use crate::segmenter::{InitSegment, Output, Part, SegmentStart};
use crate::{Error, Timing};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

/// A part as the window keeps it.
#[derive(Clone)]
pub struct PartEntry {
    /// Duration in seconds.
    pub duration: f64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// `[styp] moof` + `mdat` header.
    pub header: Bytes,
    /// Sample payloads.
    pub payload: Arc<[Bytes]>,
}

impl std::fmt::Debug for PartEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartEntry")
            .field("duration", &self.duration)
            .field("independent", &self.independent)
            .field("len", &self.len())
            .finish()
    }
}

impl PartEntry {
    fn len(&self) -> usize {
        self.header.len() + self.payload.iter().map(Bytes::len).sum::<usize>()
    }
    fn chunks(&self, into: &mut Vec<Bytes>) {
        into.push(self.header.clone());
        into.extend(self.payload.iter().cloned());
    }
}

/// A segment as the window keeps it (complete or in progress).
#[derive(Clone, Debug)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// Duration in seconds (of the parts so far while in progress).
    pub duration: f64,
    /// Date, discontinuity and init of the segment.
    pub start: SegmentStart,
    /// Its parts, in order.
    pub parts: Vec<PartEntry>,
    /// Bytes in the segment.
    pub bytes: u64,
    /// `start.program_date_time` formatted once for rendering.
    date: String,
}

/// What a rendition report (`EXT-X-RENDITION-REPORT`, §4.4.5.4) says about a rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    /// The rendition's playlist URI relative to the playlist being rendered.
    pub uri: String,
    /// Media sequence number of its last segment (complete or with parts).
    pub last_msn: u64,
    /// Index of the last part of that segment, when the rendition has parts.
    pub last_part: Option<u32>,
}

/// How a request wants the playlist rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Render a delta update (`_HLS_skip=YES`, §6.2.5.1). `_HLS_skip=v2` needs
    /// [`Rendition::render_skip`].
    pub skip: bool,
}

/// Whether a blocking request (§6.2.5.2) can be answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The playlist holds what was asked for (or never will: the stream ended).
    Ready,
    /// Wait for more media.
    Wait,
}

/// Static description of a rendition: its name and URIs.
#[derive(Clone, Debug)]
pub struct RenditionConfig {
    /// The rendition's name; its playlist is `{name}.m3u8`.
    pub name: String,
    /// Prefix of init, segment and part URIs relative to the playlist, e.g. `video/1a2b/`.
    pub uri_prefix: String,
    /// Durations and window size.
    pub timing: Timing,
}

/// One rendition (one track): its bounded window and playlist state.
#[derive(Debug)]
pub struct Rendition {
    cfg: RenditionConfig,
    inits: VecDeque<InitSegment>,
    /// Complete segments, oldest first; the first `unlisted` are no longer in the playlist but
    /// still served.
    segments: VecDeque<SegmentEntry>,
    unlisted: usize,
    current: Option<SegmentEntry>,
    discontinuity_sequence: u64,
    max_segment: f64,
    /// `EXT-X-TARGETDURATION` once fixed (§6.2.1: it MUST NOT change).
    fixed_target: Option<u64>,
    ended: bool,
    version: u64,
}

/// The most complete segments a playlist lists, even when fewer would last less than
/// 3 target durations (see `Rendition::evict`).
const MAX_LISTED_SEGMENTS: usize = 1000;

/// Renders a duration in seconds with 5 decimals, as EXTINF and EXT-X-PART DURATION.
fn secs(out: &mut String, v: f64) {
    let _ = write!(out, "{v:.5}");
}

/// Formats a wall-clock time as `EXT-X-PROGRAM-DATE-TIME` wants it (ISO 8601, UTC, ms).
pub fn format_date(t: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(t)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

impl Rendition {
    /// An empty rendition.
    pub fn new(cfg: RenditionConfig) -> Self {
        let mut cfg = cfg;
        cfg.timing = cfg.timing.sanitized();
        Rendition {
            cfg,
            inits: VecDeque::new(),
            segments: VecDeque::new(),
            unlisted: 0,
            current: None,
            discontinuity_sequence: 0,
            max_segment: 0.0,
            fixed_target: None,
            ended: false,
            version: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RenditionConfig {
        &self.cfg
    }

    /// Grows by one on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The newest init segment, if any.
    pub fn latest_init(&self) -> Option<&InitSegment> {
        self.inits.back()
    }

    /// Whether the stream ended (`EXT-X-ENDLIST`).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Takes one segmenter output for this rendition's track.
    pub fn push(&mut self, output: Output) {
        match output {
            Output::Init(init) => {
                self.inits.retain(|i| i.generation != init.generation);
                self.inits.push_back(init);
            }
            Output::Part(part) => self.push_part(part),
            Output::SegmentEnd(end) => {
                if let Some(mut seg) = self.current.take() {
                    seg.duration = end.duration as f64 / f64::from(end.timescale.max(1));
                    self.max_segment = self.max_segment.max(seg.duration);
                    self.segments.push_back(seg);
                    self.evict();
                }
            }
        }
        self.version += 1;
    }

    fn push_part(&mut self, part: Part) {
        let entry = PartEntry {
            duration: part.seconds(),
            independent: part.independent,
            header: part.header,
            payload: part.payload.into(),
        };
        if let Some(start) = part.segment_start {
            // A new segment; an unterminated previous one (should not happen) is completed.
            if let Some(prev) = self.current.take() {
                self.max_segment = self.max_segment.max(prev.duration);
                self.segments.push_back(prev);
            }
            self.current = Some(SegmentEntry {
                msn: part.msn,
                duration: 0.0,
                date: format_date(start.program_date_time),
                start,
                parts: Vec::new(),
                bytes: 0,
            });
        }
        if let Some(cur) = &mut self.current {
            cur.duration += entry.duration;
            cur.bytes += entry.len() as u64;
            cur.parts.push(entry);
        }
    }

    /// Marks the end of the stream; the playlist gets `EXT-X-ENDLIST`.
    pub fn end(&mut self) {
        if let Some(seg) = self.current.take() {
            self.segments.push_back(seg);
            self.evict();
        }
        self.ended = true;
        self.version += 1;
    }

    /// Removes the oldest segments from the playlist beyond `playlist_segments`, and drops
    /// removed ones once they are no longer served.
    ///
    /// §6.2.2: a segment MUST NOT be removed from a live playlist if that leaves less than
    /// 3 target durations listed; segments can be shorter than the target (cut at ~90 % of it,
    /// or early at a discontinuity), so the playlist keeps more than `playlist_segments` when
    /// needed, up to [`MAX_LISTED_SEGMENTS`] (a bound on memory and rendering for a stream of
    /// pathologically short segments).
    fn evict(&mut self) {
        let listed_max = self.cfg.timing.playlist_segments;
        let min_listed = 3.0 * self.target_duration() as f64;
        let mut listed_duration: f64 = self.listed().map(|s| s.duration).sum();
        while self.segments.len() - self.unlisted > listed_max {
            let oldest = &self.segments[self.unlisted];
            if listed_duration - oldest.duration < min_listed
                && self.segments.len() - self.unlisted <= MAX_LISTED_SEGMENTS
            {
                break;
            }
            if oldest.start.discontinuity {
                self.discontinuity_sequence += 1;
            }
            listed_duration -= oldest.duration;
            self.unlisted += 1;
        }
        // Removed segments stay available for their duration plus the playlist's (§6.2.2):
        // as many as the playlist lists, plus one.
        let retained = listed_max.max(self.segments.len() - self.unlisted) + 1;
        while self.unlisted > retained {
            self.segments.pop_front();
            self.unlisted -= 1;
        }
        let oldest_gen = self
            .segments
            .front()
            .or(self.current.as_ref())
            .map(|s| s.start.init_generation);
        if let Some(g) = oldest_gen {
            while self.inits.len() > 1 && self.inits.front().is_some_and(|i| i.generation < g) {
                self.inits.pop_front();
            }
        }
    }

    /// `EXT-X-TARGETDURATION`: the value fixed by [`fix_target_duration`](Self::fix_target_duration)
    /// once it was called, else the [measured](Self::measured_target_duration) one. HOLD-BACK,
    /// CAN-SKIP-UNTIL, part listing and part retention derive from it, so they stay constant
    /// once it is fixed.
    pub fn target_duration(&self) -> u64 {
        self.fixed_target
            .unwrap_or_else(|| self.measured_target_duration())
    }

    /// The segment target, or, when a publisher's keyframe interval made a segment longer,
    /// that segment's duration plus 0.25 s of headroom, rounded to the nearest second
    /// (§4.4.3.1). The headroom lets keyframe intervals that vary a little (a variable frame
    /// rate with a keyframe every N frames) stay keyframe-aligned under the target duration
    /// fixed from the first segment (see docs/llhls.md, "GOP policy").
    pub fn measured_target_duration(&self) -> u64 {
        let target = self.cfg.timing.segment_target.as_secs_f64().ceil() as u64;
        let longest = if self.max_segment > target as f64 {
            (self.max_segment + 0.25 + 0.5).floor() as u64
        } else {
            0
        };
        target.max(longest).max(1)
    }

    /// Fixes `EXT-X-TARGETDURATION` to `td` seconds (at least 1) for the rest of the
    /// rendition's life (RFC 8216bis §6.2.1: the value MUST NOT change; §6.2.4: every rendition
    /// of a stream has the same). The first call wins; later calls are ignored.
    ///
    /// The caller makes sure no segment's rounded duration exceeds it (the segmenter's segment
    /// limit); the rendition does not cut segments itself.
    pub fn fix_target_duration(&mut self, td: u64) {
        if self.fixed_target.is_none() {
            self.fixed_target = Some(td.max(1));
            self.version += 1;
        }
    }

    fn part_target(&self) -> Option<f64> {
        self.cfg.timing.part_target.map(|p| p.as_secs_f64())
    }

    /// Listed complete segments, oldest first.
    fn listed(&self) -> impl DoubleEndedIterator<Item = &SegmentEntry> + Clone {
        self.segments.iter().skip(self.unlisted)
    }

    /// Number of media segments the playlist lists or has parts of.
    pub fn is_empty(&self) -> bool {
        self.segments.len() == self.unlisted && self.current.is_none()
    }

    /// Whether the playlist lists at least one complete segment.
    pub fn has_segment(&self) -> bool {
        self.segments.len() > self.unlisted
    }

    /// The last segment of the playlist and, with parts, the index of its last part.
    pub fn last(&self) -> Option<(u64, Option<u32>)> {
        let with_parts = self.part_target().is_some();
        let seg = self
            .current
            .as_ref()
            .filter(|c| !c.parts.is_empty())
            .or(self.segments.back())?;
        let last_part = (seg.parts.len() as u32).checked_sub(1);
        Some((seg.msn, if with_parts { last_part } else { None }))
    }

    /// This rendition as another rendition's playlist reports it.
    pub fn report(&self) -> Option<RenditionReport> {
        let (last_msn, last_part) = self.last()?;
        Some(RenditionReport {
            uri: format!("{}.m3u8", self.cfg.name),
            last_msn,
            last_part,
        })
    }

    /// The part the playlist hints (`EXT-X-PRELOAD-HINT`, §4.4.5.3) as (msn, part index): the
    /// next part of the segment in progress, or part 0 of the next segment. `None` without
    /// parts or after the end.
    pub fn preload_hint(&self) -> Option<(u64, u64)> {
        if self.ended || self.part_target().is_none() {
            return None;
        }
        Some(match &self.current {
            Some(c) => (c.msn, c.parts.len() as u64),
            None => (self.last_complete_msn().map_or(0, |m| m + 1), 0),
        })
    }

    fn last_complete_msn(&self) -> Option<u64> {
        self.segments.back().map(|s| s.msn)
    }

    /// Decides a blocking request for segment `msn` (and part `part`), §6.2.5.2.
    ///
    /// Once the stream ended the answer is always [`Readiness::Ready`] (the directives are
    /// ignored). Errors: [`Error::TooFarAhead`] when `msn` is beyond the last segment plus two
    /// or `part` beyond the Advance Part Limit; [`Error::BadDirective`] for `_HLS_part` on a
    /// rendition without parts.
    pub fn readiness(&self, msn: u64, part: Option<u64>) -> Result<Readiness, Error> {
        // §6.2.5.2: a server MUST ignore _HLS_msn and _HLS_part once the playlist has
        // EXT-X-ENDLIST, so an ended playlist is ready whatever was asked.
        if self.ended {
            return Ok(Readiness::Ready);
        }
        let part_target = self.part_target();
        if part.is_some() && part_target.is_none() {
            return Err(Error::BadDirective("_HLS_part on a playlist without parts"));
        }
        let (last_msn, last_part) = match self.last() {
            Some((m, p)) => (Some(m), p),
            None => (None, None),
        };
        let limit_msn = last_msn.map_or(1, |m| m.saturating_add(2));
        if msn > limit_msn {
            return Err(Error::TooFarAhead { msn, part });
        }
        let complete = self.last_complete_msn();
        let Some(p) = part else {
            return Ok(if complete.is_some_and(|c| c >= msn) {
                Readiness::Ready
            } else {
                Readiness::Wait
            });
        };
        // Segment msn complete: the part exists, or it is beyond the segment's last part and
        // stands for part 0 of the next segment (§6.2.5.2).
        let (msn, p) = match self.segments.iter().find(|s| s.msn == msn) {
            Some(seg) if p < seg.parts.len() as u64 => return Ok(Readiness::Ready),
            Some(_) => (msn + 1, 0),
            None if complete.is_some_and(|c| msn <= c) => return Ok(Readiness::Ready),
            None => (msn, p),
        };
        if let Some(cur) = self.current.as_ref().filter(|c| c.msn == msn)
            && p < cur.parts.len() as u64
        {
            return Ok(Readiness::Ready);
        }
        if complete.is_some_and(|c| msn <= c) {
            return Ok(Readiness::Ready);
        }
        // Advance Part Limit: 3 / PART-TARGET parts when the target is below one second, else 3.
        let pt = part_target.unwrap_or(1.0);
        let limit = if pt < 1.0 { 3.0 / pt } else { 3.0 };
        let per_segment = (self.cfg.timing.segment_target.as_secs_f64() / pt).ceil();
        let (lm, lp) = (
            last_msn.unwrap_or(0) as f64,
            last_part.map_or(-1.0, f64::from),
        );
        let ahead = (msn as f64 - lm) * per_segment + p as f64 - lp;
        if ahead > limit {
            return Err(Error::TooFarAhead { msn, part: Some(p) });
        }
        Ok(Readiness::Wait)
    }

    /// Whether a complete segment starting `start_from_end` seconds before the playlist's end
    /// lists its parts. RFC 8216bis §6.2.2: EXT-X-PART tags SHOULD be removed once they are more
    /// than 3 target durations from the end. A segment lists all its parts or none, so every
    /// listed part begins within 3 target durations of the end and a part list always starts
    /// at part 0 (players number parts by their position in the list). Parts are listed for
    /// between 3 target durations less one segment and 3 target durations.
    fn lists_parts(&self, start_from_end: f64) -> bool {
        start_from_end <= 3.0 * self.target_duration() as f64 + 1e-9
    }

    /// Whether the part files of a complete segment ending `end_from_end` seconds before the
    /// playlist's end are still served: while its end is within 6 target durations, i.e. its
    /// start within 6 target durations plus its duration. §6.2.2: a part MUST stay available
    /// for 3 target durations after its EXT-X-PART tag left the playlist, which happens once
    /// its segment's start is more than 3 target durations from the end.
    fn serves_parts(&self, end_from_end: f64) -> bool {
        end_from_end < 6.0 * self.target_duration() as f64
    }

    fn duration_after(&self, msn: u64) -> f64 {
        let mut d = self.current.as_ref().map_or(0.0, |c| c.duration);
        for s in self.segments.iter().rev() {
            if s.msn <= msn {
                break;
            }
            d += s.duration;
        }
        d
    }

    /// The init segment of generation `generation`, if still kept.
    pub fn init(&self, generation: u64) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|i| i.generation == generation)
            .map(|i| i.data.clone())
    }

    /// The chunks of a complete segment, if still kept.
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        let seg = self.segments.iter().find(|s| s.msn == msn)?;
        let mut v = Vec::with_capacity(seg.parts.iter().map(|p| p.payload.len() + 1).sum());
        for p in &seg.parts {
            p.chunks(&mut v);
        }
        Some(v)
    }

    /// The complete segment `msn` for the archive tee, if still kept: its metadata and its
    /// bytes (shared with the window, not copied).
    pub fn archived_segment(
        &self,
        msn: u64,
        rendition: &std::sync::Arc<str>,
        kind: sigma_core::MediaKind,
    ) -> Option<crate::archive::ArchivedSegment> {
        let seg = self.segments.iter().rev().find(|s| s.msn == msn)?;
        let mut chunks = Vec::with_capacity(seg.parts.iter().map(|p| p.payload.len() + 1).sum());
        for p in &seg.parts {
            p.chunks(&mut chunks);
        }
        Some(crate::archive::ArchivedSegment {
            rendition: rendition.clone(),
            kind,
            msn,
            duration: seg.duration,
            program_date_time: seg.start.program_date_time,
            discontinuity: seg.start.discontinuity,
            init_generation: seg.start.init_generation,
            parts: seg
                .parts
                .iter()
                .map(|p| (p.len() as u64, p.independent))
                .collect(),
            chunks,
        })
    }

    /// The chunks of a part, if it exists and is still served.
    pub fn part(&self, msn: u64, index: u64) -> Option<Vec<Bytes>> {
        let seg = match &self.current {
            Some(c) if c.msn == msn => c,
            _ => {
                let seg = self.segments.iter().find(|s| s.msn == msn)?;
                if !self.serves_parts(self.duration_after(msn)) {
                    return None;
                }
                seg
            }
        };
        let part = seg.parts.get(usize::try_from(index).ok()?)?;
        let mut v = Vec::with_capacity(part.payload.len() + 1);
        part.chunks(&mut v);
        Some(v)
    }

    /// Bits per second: the peak and the average over the listed complete segments (over the
    /// segment in progress while there is none: a partial segment's rate is not its peak).
    pub fn bandwidth(&self) -> Option<(u64, u64)> {
        let (mut peak, mut bits, mut secs) = (0.0f64, 0.0f64, 0.0f64);
        let measured: Vec<&SegmentEntry> = if self.has_segment() {
            self.listed().collect()
        } else {
            self.current.iter().collect()
        };
        for s in measured {
            if s.duration > 0.0 {
                peak = peak.max(s.bytes as f64 * 8.0 / s.duration);
                bits += s.bytes as f64 * 8.0;
                secs += s.duration;
            }
        }
        (secs > 0.0).then(|| (peak.ceil() as u64, (bits / secs).ceil() as u64))
    }

    /// Renders the media playlist (§4.4.3–4.4.5) with reports on `others`.
    ///
    /// `opts.skip` cannot tell `_HLS_skip=v2` from `YES`; [`render_skip`](Self::render_skip)
    /// can.
    pub fn render(&self, opts: RenderOptions, others: &[RenditionReport]) -> String {
        let skip = if opts.skip { Skip::Yes } else { Skip::No };
        self.render_skip(skip, others)
    }

    /// Renders the media playlist (§4.4.3–4.4.5) with reports on `others`, as a delta update
    /// (§6.2.5.1) when `skip` asks for one and the stream has not ended.
    ///
    /// `EXT-X-VERSION` is the lowest the playlist needs (§6.2.1, §8): 6 for `EXT-X-MAP` without
    /// `EXT-X-I-FRAMES-ONLY` (also covering floating-point EXTINF, version 3), 9 when it
    /// carries `EXT-X-SKIP`. Parts, preload hints, rendition reports and server control need no
    /// particular version.
    ///
    /// [`Skip::V2`] asks to skip date ranges too. This origin writes no `EXT-X-DATERANGE` (and
    /// does not advertise CAN-SKIP-DATERANGES), so nothing more is skipped, but §4.4.5.2 makes
    /// `RECENTLY-REMOVED-DATERANGES` REQUIRED on the `EXT-X-SKIP` of such an update: it is
    /// written empty (the list MAY be empty). The version stays 9: version 10 is needed only by
    /// an `EXT-X-SKIP` that replaces `EXT-X-DATERANGE` tags (§8), and this one replaces none.
    pub fn render_skip(&self, skip: Skip, others: &[RenditionReport]) -> String {
        let mut out = String::with_capacity(4096);
        let td = self.target_duration();
        let tdf = td as f64;
        let part_target = self.part_target();
        let prefix = &self.cfg.uri_prefix;
        let skip_until = 6.0 * tdf;

        // Delta update: skip the oldest listed segments that start more than CAN-SKIP-UNTIL
        // before the end of the playlist (§6.2.5.1).
        let mut skipped = 0usize;
        if skip != Skip::No && !self.ended {
            let mut from_end = self.current.as_ref().map_or(0.0, |c| c.duration);
            let listed: Vec<&SegmentEntry> = self.listed().collect();
            let mut keep = 0;
            for s in listed.iter().rev() {
                if from_end >= skip_until {
                    break;
                }
                from_end += s.duration;
                keep += 1;
            }
            skipped = listed.len() - keep;
        }

        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if skipped > 0 { 9 } else { 6 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
        let _ = write!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until:.1}"
        );
        if let Some(pt) = part_target {
            let _ = write!(out, ",PART-HOLD-BACK={:.3}", 3.0 * pt);
        }
        let _ = writeln!(out, ",HOLD-BACK={:.1}", 3.0 * tdf);
        if let Some(pt) = part_target {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={pt:.3}");
        }
        let first_msn = self
            .listed()
            .next()
            .or(self.current.as_ref())
            .map_or(0, |s| s.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
        // §6.2.2: a playlist that removes segments and lists an EXT-X-DISCONTINUITY MUST carry
        // EXT-X-DISCONTINUITY-SEQUENCE; writing it always (0 included) is the simplest rule
        // that never misses that case.
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );
        if skipped > 0 {
            let _ = write!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
            if skip == Skip::V2 {
                out.push_str(",RECENTLY-REMOVED-DATERANGES=\"\"");
            }
            out.push('\n');
        }

        // Seconds from each listed segment's end to the playlist's end.
        let total_after: Vec<f64> = {
            let mut v = Vec::new();
            let mut acc = self.current.as_ref().map_or(0.0, |c| c.duration);
            for s in self.listed().rev() {
                v.push(acc);
                acc += s.duration;
            }
            v.reverse();
            v
        };
        let mut map_gen: Option<u64> = None;
        let shown = self
            .listed()
            .skip(skipped)
            .zip(total_after.iter().skip(skipped));
        for (seg, &after) in shown {
            let parts = part_target.is_some() && self.lists_parts(after + seg.duration);
            self.render_segment(&mut out, seg, &mut map_gen, parts, true);
        }
        if let Some(cur) = &self.current {
            self.render_segment(&mut out, cur, &mut map_gen, part_target.is_some(), false);
        }
        if self.ended {
            let _ = writeln!(out, "#EXT-X-ENDLIST");
        } else if let Some((msn, index)) = self.preload_hint() {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{prefix}part-{msn}.{index}.m4s\""
            );
        }
        for r in others {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                r.uri, r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
        out
    }

    fn render_segment(
        &self,
        out: &mut String,
        seg: &SegmentEntry,
        map_gen: &mut Option<u64>,
        parts: bool,
        complete: bool,
    ) {
        let prefix = &self.cfg.uri_prefix;
        let msn = seg.msn;
        if seg.start.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if *map_gen != Some(seg.start.init_generation) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{prefix}init-{}.mp4\"",
                seg.start.init_generation
            );
            *map_gen = Some(seg.start.init_generation);
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", seg.date);
        if parts {
            for (i, p) in seg.parts.iter().enumerate() {
                out.push_str("#EXT-X-PART:DURATION=");
                secs(out, p.duration);
                let _ = write!(out, ",URI=\"{prefix}part-{msn}.{i}.m4s\"");
                if p.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if complete {
            out.push_str("#EXTINF:");
            secs(out, seg.duration);
            let _ = writeln!(out, ",\n{prefix}seg-{msn}.m4s");
        }
    }
}

/// A variant stream of the multivariant playlist (`EXT-X-STREAM-INF`, §4.4.6.2).
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Media playlist URI.
    pub uri: String,
    /// Peak bits per second (video plus audio).
    pub bandwidth: u64,
    /// Average bits per second, when measured.
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codecs of every track the variant plays (video and audio).
    pub codecs: Vec<String>,
    /// Width and height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
    /// The audio group it plays with.
    pub audio_group: Option<String>,
}

/// An audio rendition of a group (`EXT-X-MEDIA:TYPE=AUDIO`, §4.4.6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioMedia {
    /// Media playlist URI.
    pub uri: String,
    /// `GROUP-ID`.
    pub group: String,
    /// `NAME`.
    pub name: String,
    /// Output channels.
    pub channels: u8,
    /// The group's default rendition.
    pub default: bool,
}

/// Renders a multivariant playlist (§4.4.6).
///
/// None of its tags and attributes needs a protocol version above 1 (§8), so `EXT-X-VERSION`
/// is written only with audio renditions: 4, which §8 allows for `EXT-X-MEDIA` and the `AUDIO`
/// attribute so that older clients do not play the video without its audio.
///
/// `notes` become comment lines (`# …`, ignored by players, RFC 8216bis §4.1), e.g. why a
/// rendition of a ladder was left out; line breaks in a note are replaced by spaces.
pub fn render_multivariant(variants: &[Variant], audio: &[AudioMedia], notes: &[String]) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("#EXTM3U\n");
    if !audio.is_empty() || variants.iter().any(|v| v.audio_group.is_some()) {
        out.push_str("#EXT-X-VERSION:4\n");
    }
    // No EXT-X-INDEPENDENT-SEGMENTS (§4.4.2.1): a segment is cut between keyframes when the
    // publisher's keyframe interval grows past the fixed target duration, so the claim that
    // every segment decodes on its own could become false after this playlist was fetched.
    for note in notes {
        let one_line: String = note
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "# {one_line}");
    }
    for a in audio {
        let yes = if a.default { "YES" } else { "NO" };
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\",DEFAULT={yes},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}\"",
            a.group, a.name, a.channels, a.uri
        );
    }
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
        }
        let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fr) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fr:.3}");
        }
        if let Some(g) = &v.audio_group {
            let _ = write!(out, ",AUDIO=\"{g}\"");
        }
        let _ = writeln!(out, "\n{}", v.uri);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, AUDIO, VIDEO};
    use crate::segmenter::{Segmenter, SegmenterConfig};
    use crate::{LatencyMode, Output};
    use std::time::{Duration, UNIX_EPOCH};

    /// Video and audio renditions fed from a synthetic stream on a fixed clock.
    pub(crate) fn fed(
        mode: LatencyMode,
        seconds: u32,
        gop: u32,
        end: bool,
    ) -> (Rendition, Rendition) {
        fed_with(mode.timing(), seconds, gop, end, |_| {})
    }

    /// [`fed`] with any timing; `prepare` sees each rendition before the first frame.
    fn fed_with(
        timing: Timing,
        seconds: u32,
        gop: u32,
        end: bool,
        prepare: impl Fn(&mut Rendition),
    ) -> (Rendition, Rendition) {
        let mk = |name: &str| {
            let mut r = Rendition::new(RenditionConfig {
                name: name.into(),
                uri_prefix: format!("{name}/p1/"),
                timing,
            });
            prepare(&mut r);
            r
        };
        let (mut v, mut a) = (mk("video"), mk("audio"));
        let mut s = Segmenter::new(SegmenterConfig::from_timing(timing));
        s.set_info(fixture::synthetic_info(1)).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut route = |s: &mut Segmenter| {
            while let Some(o) = s.pull() {
                let track = match &o {
                    Output::Init(i) => i.track,
                    Output::Part(p) => p.track,
                    Output::SegmentEnd(e) => e.track,
                };
                if track == VIDEO {
                    v.push(o)
                } else if track == AUDIO {
                    a.push(o)
                }
            }
        };
        for f in fixture::synthetic_frames(seconds, gop) {
            let secs = if f.track() == VIDEO {
                f.dts() as f64 / 90_000.0
            } else {
                f.dts() as f64 / 48_000.0
            };
            s.push(f, t0 + Duration::from_secs_f64(secs)).unwrap();
            route(&mut s);
        }
        if end {
            s.finish().unwrap();
            route(&mut s);
            v.end();
            a.end();
        }
        (v, a)
    }

    fn golden(name: &str, text: &str) {
        let path = format!("{}/testdata/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("SIGMA_BLESS").is_some() {
            std::fs::create_dir_all(format!("{}/testdata/golden", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(text, want, "{name} differs from the golden file");
    }

    #[test]
    fn golden_playlists() {
        for mode in [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow] {
            let (v, a) = fed(mode, 95, 60, false);
            let reports = [a.report().unwrap()];
            let text = v.render(RenderOptions::default(), &reports);
            fixture::parse_media_playlist(&text)
                .unwrap_or_else(|e| panic!("{mode:?}: {e}\n{text}"));
            golden(&format!("{}-video.m3u8", mode.name()), &text);
            let text = a.render(RenderOptions::default(), &[v.report().unwrap()]);
            fixture::parse_media_playlist(&text)
                .unwrap_or_else(|e| panic!("{mode:?}: {e}\n{text}"));
            golden(&format!("{}-audio.m3u8", mode.name()), &text);
            let delta = v.render(RenderOptions { skip: true }, &reports);
            let p =
                fixture::parse_media_playlist(&delta).unwrap_or_else(|e| panic!("{e}\n{delta}"));
            assert!(
                p.skipped > 0,
                "{mode:?}: a long playlist skips in a delta update"
            );
            golden(&format!("{}-video-delta.m3u8", mode.name()), &delta);
        }
        let (v, a) = fed(LatencyMode::UltraLow, 9, 60, true);
        let text = v.render(RenderOptions::default(), &[a.report().unwrap()]);
        let p = fixture::parse_media_playlist(&text).unwrap();
        assert!(p.ended && p.preload_hint.is_none());
        golden("ultra-low-video-ended.m3u8", &text);
    }

    #[test]
    fn ultra_low_playlist_lists_parts_for_three_target_durations() {
        let (v, a) = fed(LatencyMode::UltraLow, 40, 60, false);
        let p = fixture::parse_media_playlist(
            &v.render(RenderOptions::default(), &[a.report().unwrap()]),
        )
        .unwrap();
        assert_eq!(p.target_duration, 2);
        assert_eq!(p.segments.len(), 15, "playlist_segments of ultra-low");
        // 1.67 s in progress: segments starting within 6 s of the end are the last 2 complete
        // ones (3.67 s and 5.67 s); the one before starts 7.67 s from the end.
        let with_parts = p.segments.iter().filter(|s| !s.2.is_empty()).count();
        assert_eq!(with_parts, 2);
        assert!(
            p.segments.iter().rev().take(2).all(|s| s.2[0].2),
            "first part independent"
        );
        // Parts of older listed segments are still served (3 target durations longer).
        let (msn, _) = v.last().unwrap();
        assert!(v.part(msn - 4, 0).is_some());
        assert!(v.part(msn - 8, 0).is_none());
        assert!(v.segment(msn - 8).is_some());
        // Reports name the other rendition.
        assert_eq!(p.reports, ["audio.m3u8"]);
        let hint = p.preload_hint.unwrap();
        let (m, last) = v.last().unwrap();
        assert_eq!(hint, format!("video/p1/part-{m}.{}.m4s", last.unwrap() + 1));
    }

    /// Seconds from the start of the first listed part to the end of the playlist, asserting
    /// that the segments listing parts are the last ones and list all their parts from part 0.
    fn listed_parts_span(p: &fixture::ParsedPlaylist) -> f64 {
        let first = p.segments.iter().position(|s| !s.2.is_empty());
        let with_parts = first.map_or(&p.segments[..0], |i| &p.segments[i..]);
        for (uri, d, parts) in with_parts {
            assert!(parts[0].0.ends_with(".0.m4s"), "{uri}: parts from part 0");
            let sum: f64 = parts.iter().map(|x| x.1).sum();
            assert!((sum - d).abs() < 1e-3, "{uri}: all parts listed");
        }
        with_parts
            .iter()
            .flat_map(|s| &s.2)
            .chain(&p.open_parts)
            .map(|x| x.1)
            .sum()
    }

    #[test]
    fn parts_are_listed_only_within_three_target_durations_and_served_three_more() {
        // §6.2.2: EXT-X-PART tags SHOULD leave the playlist once more than 3 target durations
        // from its end, and MUST stay downloadable for 3 target durations after that.
        let runs: Vec<(Rendition, fixture::ParsedPlaylist)> = (30..=52)
            .map(|secs| {
                let (v, a) = fed(LatencyMode::UltraLow, secs, 60, false);
                let text = v.render(RenderOptions::default(), &[a.report().unwrap()]);
                let p = fixture::parse_media_playlist(&text).unwrap();
                (v, p)
            })
            .collect();
        let listing = |p: &fixture::ParsedPlaylist| -> Vec<String> {
            p.segments
                .iter()
                .filter(|s| !s.2.is_empty())
                .map(|s| s.0.clone())
                .collect()
        };
        for (i, (_, p)) in runs.iter().enumerate() {
            let td = p.target_duration as f64;
            let span = listed_parts_span(p);
            assert!(
                span <= 3.0 * td + 1e-6,
                "parts listed {span} s from the end"
            );
            // Players need parts of the last segments: at least 3 target durations less one
            // segment are listed.
            assert!(span > 3.0 * td - 2.0, "parts listed for only {span} s");
            // A segment whose parts left the playlist one second ago is still served 3 target
            // durations (6 s) later.
            if i >= 1 && i + 6 < runs.len() {
                for uri in listing(&runs[i - 1].1) {
                    if listing(p).contains(&uri) {
                        continue;
                    }
                    let msn: u64 = uri
                        .trim_start_matches("video/p1/seg-")
                        .trim_end_matches(".m4s")
                        .parse()
                        .unwrap();
                    assert!(runs[i + 6].0.part(msn, 0).is_some(), "{uri}");
                }
            }
        }
    }

    #[test]
    fn playlist_lasts_at_least_three_target_durations() {
        // 1.8 s GOPs in 2 s segments: 3 segments last 5.4 s < 3 × 2 s, so 4 are listed.
        let timing = Timing {
            segment_target: Duration::from_secs(2),
            part_target: None,
            playlist_segments: 3,
        };
        for secs in 20..24 {
            let (v, a) = fed_with(timing, secs, 54, false, |_| {});
            assert_eq!(v.target_duration(), 2);
            let text = v.render(RenderOptions::default(), &[a.report().unwrap()]);
            let p = fixture::parse_media_playlist(&text).unwrap();
            let total: f64 = p.segments.iter().map(|s| s.1).sum();
            assert!(total >= 6.0, "{secs}: {total} s listed\n{text}");
            assert_eq!(p.segments.len(), 4, "{secs}: no more than needed\n{text}");
        }
        // Segments as long as the target: playlist_segments is enough.
        let (v, _) = fed_with(timing, 20, 60, false, |_| {});
        assert_eq!(v.listed().count(), 3);
    }

    #[test]
    fn a_gop_driven_target_duration_keeps_headroom() {
        // 72-frame GOPs (2.4 s) in ultra-low (2 s target): 2.4 s + 0.25 s rounds to 3, so a
        // later GOP up to 3.499 s still starts its segment with a keyframe. A GOP at the target
        // (60 frames, 2 s) keeps the target.
        let (v, _) = fed(LatencyMode::UltraLow, 20, 72, false);
        assert_eq!(v.measured_target_duration(), 3);
        let (v, _) = fed(LatencyMode::UltraLow, 20, 60, false);
        assert_eq!(v.measured_target_duration(), 2);
    }

    #[test]
    fn a_fixed_target_duration_never_changes() {
        // Low mode targets 1 s, but 2 s GOPs make 2 s segments: the measured value grows.
        let (v, _) = fed(LatencyMode::Low, 20, 60, false);
        assert_eq!((v.target_duration(), v.measured_target_duration()), (2, 2));
        let mut empty = Rendition::new(RenditionConfig {
            name: "video".into(),
            uri_prefix: String::new(),
            timing: LatencyMode::Low.timing(),
        });
        assert_eq!(empty.target_duration(), 1);
        let version = empty.version();
        empty.fix_target_duration(0);
        assert_eq!(empty.target_duration(), 1, "at least 1");
        assert!(empty.version() > version, "a change re-renders");

        // Fixed before the first segment, it stays whatever is measured later.
        let (mut v, a) = fed_with(LatencyMode::UltraLow.timing(), 40, 60, false, |r| {
            r.fix_target_duration(3)
        });
        v.fix_target_duration(5);
        assert_eq!((v.target_duration(), v.measured_target_duration()), (3, 2));
        let text = v.render(RenderOptions::default(), &[a.report().unwrap()]);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        assert!(
            text.contains("CAN-SKIP-UNTIL=18.0,PART-HOLD-BACK=1.002,HOLD-BACK=9.0\n"),
            "{text}"
        );
        // Parts are listed for 3 × 3 s.
        let p = fixture::parse_media_playlist(&text).unwrap();
        let span = listed_parts_span(&p);
        assert!(span > 7.0 && span <= 9.0, "{span}");
        // The Advance Part Limit follows the part target only.
        let (msn, part) = v.last().unwrap();
        let part = u64::from(part.unwrap());
        assert_eq!(v.readiness(msn, Some(part + 8)), Ok(Readiness::Wait));
        assert!(v.readiness(msn, Some(part + 9)).is_err());
    }

    #[test]
    fn a_part_target_that_is_not_whole_milliseconds_is_rounded() {
        // 0.3334 s would be printed 0.333 while 10-frame parts of 0.3333 s fit it.
        let timing = Timing {
            part_target: Some(Duration::from_secs_f64(0.3334)),
            ..LatencyMode::UltraLow.timing()
        };
        let (v, a) = fed_with(timing, 12, 60, false, |_| {});
        let text = v.render(RenderOptions::default(), &[a.report().unwrap()]);
        assert!(text.contains("PART-HOLD-BACK=0.999,"), "{text}");
        let p = fixture::parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.part_target, Some(0.333));
    }

    #[test]
    fn versions_are_the_lowest_needed() {
        let (v, a) = fed(LatencyMode::UltraLow, 40, 60, false);
        let reports = [a.report().unwrap()];
        // EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs 6 (§4.4.4.5).
        let full = fixture::parse_media_playlist(&v.render_skip(Skip::No, &reports)).unwrap();
        assert_eq!(full.version, 6);
        // EXT-X-SKIP needs 9 (§8).
        let delta = fixture::parse_media_playlist(&v.render_skip(Skip::Yes, &reports)).unwrap();
        assert_eq!((delta.version, delta.skipped > 0), (9, true));
        // Without parts too.
        let (n, _) = fed(LatencyMode::Normal, 20, 60, false);
        let p = fixture::parse_media_playlist(&n.render_skip(Skip::No, &[])).unwrap();
        assert_eq!(p.version, 6);
    }

    #[test]
    fn a_v2_delta_update_lists_recently_removed_date_ranges() {
        let (v, a) = fed(LatencyMode::UltraLow, 40, 60, false);
        let reports = [a.report().unwrap()];
        let skip_line = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("#EXT-X-SKIP:"))
                .map(str::to_owned)
        };
        let yes = v.render_skip(Skip::Yes, &reports);
        let v2 = v.render_skip(Skip::V2, &reports);
        // §4.4.5.2: REQUIRED when the client asked to skip date ranges; MAY be empty (this
        // origin writes none). Nothing else differs.
        assert_eq!(
            skip_line(&v2).unwrap(),
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=9,RECENTLY-REMOVED-DATERANGES=\"\""
        );
        assert_eq!(skip_line(&yes).unwrap(), "#EXT-X-SKIP:SKIPPED-SEGMENTS=9");
        assert_eq!(
            v2.replace(",RECENTLY-REMOVED-DATERANGES=\"\"", ""),
            yes,
            "otherwise the same as YES"
        );
        let p = fixture::parse_media_playlist(&v2).unwrap();
        assert_eq!((p.version, p.skipped), (9, 9));
        assert_eq!(v.render(RenderOptions { skip: true }, &reports), yes);
        // §6.2.5.1: _HLS_skip is ignored once the playlist has EXT-X-ENDLIST.
        let (e, _) = fed(LatencyMode::UltraLow, 40, 60, true);
        assert_eq!(e.render_skip(Skip::V2, &[]), e.render_skip(Skip::No, &[]));
    }

    #[test]
    fn discontinuity_sequence_is_always_written() {
        let (v, a) = fed(LatencyMode::UltraLow, 40, 60, false);
        let reports = [a.report().unwrap()];
        for skip in [Skip::No, Skip::Yes] {
            let text = v.render_skip(skip, &reports);
            assert!(
                text.contains("#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"),
                "{text}"
            );
        }
        let (v, _) = fed(LatencyMode::Normal, 3, 60, false);
        assert!(
            v.render_skip(Skip::No, &[])
                .contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n")
        );
    }

    #[test]
    fn window_is_bounded() {
        let (v, _) = fed(LatencyMode::UltraLow, 120, 60, false);
        // 15 listed + 16 retained, whatever the stream length.
        assert!(v.segments.len() <= 31, "{}", v.segments.len());
        let (first, _) = (v.segments.front().unwrap().msn, 0);
        assert!(v.segment(first).is_some());
        assert!(v.segment(first - 1).is_none());
        assert_eq!(v.inits.len(), 1);
    }

    #[test]
    fn readiness_follows_the_blocking_rules() {
        let (v, _) = fed(LatencyMode::UltraLow, 9, 60, false);
        let (msn, part) = v.last().unwrap();
        let part = u64::from(part.unwrap());
        assert_eq!(v.readiness(msn, Some(part)), Ok(Readiness::Ready));
        assert_eq!(v.readiness(msn, Some(part + 1)), Ok(Readiness::Wait));
        assert_eq!(v.readiness(msn - 1, None), Ok(Readiness::Ready));
        assert_eq!(v.readiness(msn, None), Ok(Readiness::Wait));
        // A part index past the last part of a complete segment means part 0 of the next.
        assert_eq!(v.readiness(msn - 1, Some(99)), Ok(Readiness::Ready));
        assert_eq!(v.readiness(msn + 1, Some(0)), Ok(Readiness::Wait));
        assert_eq!(v.readiness(msn + 2, None), Ok(Readiness::Wait));
        assert!(matches!(
            v.readiness(msn + 3, None),
            Err(Error::TooFarAhead { .. })
        ));
        // Advance Part Limit: 3 / 0.334 s = 8.98 parts.
        assert_eq!(v.readiness(msn, Some(part + 8)), Ok(Readiness::Wait));
        assert!(matches!(
            v.readiness(msn, Some(part + 9)),
            Err(Error::TooFarAhead { .. })
        ));
        assert!(matches!(
            v.readiness(msn + 2, Some(5)),
            Err(Error::TooFarAhead { .. })
        ));
        // The hinted part is the next one of the segment in progress.
        assert_eq!(v.preload_hint(), Some((msn, part + 1)));
        let (n, _) = fed(LatencyMode::Normal, 20, 60, false);
        assert!(matches!(
            n.readiness(0, Some(0)),
            Err(Error::BadDirective(_))
        ));
        assert_eq!(n.preload_hint(), None, "no parts");
        // §6.2.5.2: _HLS_msn and _HLS_part are ignored once the playlist has EXT-X-ENDLIST.
        let (n, _) = fed(LatencyMode::Normal, 20, 60, true);
        assert_eq!(n.readiness(0, Some(0)), Ok(Readiness::Ready));
        assert_eq!(n.readiness(999, Some(99)), Ok(Readiness::Ready));
        let (e, _) = fed(LatencyMode::UltraLow, 9, 60, true);
        assert_eq!(e.readiness(999, Some(99)), Ok(Readiness::Ready));
        assert_eq!(e.preload_hint(), None, "ended");
    }

    #[test]
    fn multivariant_lists_codecs_resolution_and_audio_group() {
        let text = render_multivariant(
            &[Variant {
                uri: "video.m3u8".into(),
                bandwidth: 2_500_000,
                average_bandwidth: Some(2_000_000),
                codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
                audio_group: Some("audio".into()),
            }],
            &[AudioMedia {
                uri: "audio.m3u8".into(),
                group: "audio".into(),
                name: "audio".into(),
                channels: 2,
                default: true,
            }],
            &["720p skipped: source is smaller\nthan 720p".to_string()],
        );
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:4\n\
             # 720p skipped: source is smaller than 720p\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n\
             video.m3u8\n"
        );
        for line in text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(t, _)| t.starts_with("#EXT-X-") && *t != "#EXT-X-VERSION")
        {
            fixture::attributes(line.1).unwrap();
        } // Without EXT-X-MEDIA nothing needs a version above 1 (§8): no EXT-X-VERSION.
        let video_only = render_multivariant(
            &[Variant {
                uri: "video.m3u8".into(),
                bandwidth: 1_000_000,
                average_bandwidth: None,
                codecs: vec!["avc1.64001f".into()],
                resolution: None,
                frame_rate: None,
                audio_group: None,
            }],
            &[],
            &[],
        );
        assert_eq!(
            video_only,
            "#EXTM3U\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS=\"avc1.64001f\"\nvideo.m3u8\n"
        );
    }

    #[test]
    fn bandwidth_is_measured_over_complete_segments() {
        let (v, _) = fed(LatencyMode::UltraLow, 31, 60, false);
        let (peak, avg) = v.bandwidth().unwrap();
        let mut rates = Vec::new();
        let (mut bits, mut secs) = (0.0, 0.0);
        for seg in v.listed() {
            let b: usize = v.segment(seg.msn).unwrap().iter().map(Bytes::len).sum();
            rates.push(b as f64 * 8.0 / seg.duration);
            bits += b as f64 * 8.0;
            secs += seg.duration;
        }
        let want_peak = rates.iter().cloned().fold(0.0, f64::max).ceil() as u64;
        assert_eq!(peak, want_peak);
        assert_eq!(avg, (bits / secs).ceil() as u64);
        assert!(peak >= avg && avg > 0);
    }

    #[test]
    fn dates_are_iso8601_utc_with_milliseconds() {
        assert_eq!(
            format_date(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use crate::fixture::{self, VIDEO};
    use crate::segmenter::{Segmenter, SegmenterConfig};
    use crate::{LatencyMode, Output};
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever the input, every playlist rendered along the way parses strictly, and media
        /// sequence numbers only grow.
        #[test]
        fn playlists_always_parse(
            frames in fixture::arb_stream(),
            mode in prop::sample::select(vec![LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow]),
            breaks in prop::collection::vec(0usize..2000, 0..3),
            render_every in 5usize..60,
        ) {
            let timing = Timing { playlist_segments: 4, ..mode.timing() };
            let mk = |name: &str| Rendition::new(RenditionConfig {
                name: name.into(),
                uri_prefix: format!("{name}/e/"),
                timing,
            });
            let (mut v, mut a) = (mk("video"), mk("audio"));
            let mut s = Segmenter::new(SegmenterConfig::from_timing(timing));
            s.set_info(fixture::synthetic_info(1)).unwrap();
            let (mut last_seq, mut last_msn) = ([0u64; 2], [0u64; 2]);
            for (i, f) in frames.into_iter().enumerate() {
                if breaks.contains(&i) {
                    s.discontinuity().unwrap();
                }
                s.push(f, UNIX_EPOCH + Duration::from_millis(i as u64 * 10)).unwrap();
                while let Some(o) = s.pull() {
                    let t = match &o {
                        Output::Init(x) => x.track,
                        Output::Part(x) => x.track,
                        Output::SegmentEnd(x) => x.track,
                    };
                    if t == VIDEO { v.push(o) } else { a.push(o) }
                }
                if i % render_every == 0 {
                    for (k, (r, other)) in [(&v, &a), (&a, &v)].into_iter().enumerate() {
                        let reports: Vec<_> = other.report().into_iter().collect();
                        for skip in [false, true] {
                            let text = r.render(RenderOptions { skip }, &reports);
                            let p = fixture::parse_media_playlist(&text)
                                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                            prop_assert!(p.media_sequence >= last_seq[k]);
                            last_seq[k] = p.media_sequence;
                        }
                        if let Some((m, _)) = r.last() {
                            prop_assert!(m >= last_msn[k]);
                            last_msn[k] = m;
                        }
                    }
                }
            }
        }
    }
}
