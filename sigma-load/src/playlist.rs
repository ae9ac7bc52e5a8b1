//! The playlist reading a simulated viewer needs: which renditions a multivariant playlist
//! offers, and which segments and parts (with their media sequence numbers) a media playlist
//! lists. Pure: text in, a [`Playlist`] out.
//!
//! This is a lenient client-side reader (unknown tags are skipped, as players do), not a
//! validator: the strict checks live in sigma-llhls's own tests.

use std::fmt;

/// A playlist as a viewer sees it (RFC 8216bis §4.4).
#[derive(Clone, Debug, PartialEq)]
pub enum Playlist {
    /// A multivariant playlist (§4.4.6): the renditions to load.
    Multivariant(Multivariant),
    /// A media playlist (§4.4.3–4.4.5).
    Media(MediaPlaylist),
}

/// The renditions of a multivariant playlist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Multivariant {
    /// URIs after each `EXT-X-STREAM-INF`, in order.
    pub variants: Vec<String>,
    /// `URI`s of `EXT-X-MEDIA:TYPE=AUDIO` renditions, in order.
    pub audio: Vec<String>,
}

/// A segment listed with `EXTINF`.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Its media sequence number.
    pub msn: u64,
    /// Its URI as written.
    pub uri: String,
    /// `EXTINF` duration in seconds.
    pub duration: f64,
}

/// A partial segment listed with `EXT-X-PART` (§4.4.4.9).
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Media sequence number of its parent segment.
    pub msn: u64,
    /// Index within the parent segment, from 0.
    pub index: u64,
    /// Its URI as written.
    pub uri: String,
    /// Duration in seconds.
    pub duration: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
}

impl Part {
    /// `(msn, index)`, which orders parts.
    pub fn position(&self) -> (u64, u64) {
        (self.msn, self.index)
    }
}

/// What a viewer reads from a media playlist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`, in seconds.
    pub target_duration: f64,
    /// `EXT-X-PART-INF:PART-TARGET`, when the playlist has parts.
    pub part_target: Option<f64>,
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-DISCONTINUITY` tags in the playlist.
    pub discontinuities: u64,
    /// The last `EXT-X-MAP` URI.
    pub map: Option<String>,
    /// Complete segments, oldest first.
    pub segments: Vec<Segment>,
    /// Every listed part (of complete segments and of the open one), oldest first.
    pub parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT` URI.
    pub preload_hint: Option<String>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
    /// `EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
}

impl MediaPlaylist {
    /// Discontinuities since the stream began: the sequence number plus the tags listed.
    pub fn total_discontinuities(&self) -> u64 {
        self.discontinuity_sequence + self.discontinuities
    }

    /// The last listed part.
    pub fn last_part(&self) -> Option<&Part> {
        self.parts.last()
    }

    /// The last complete segment's sequence number.
    pub fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }

    /// The `_HLS_msn`/`_HLS_part` pair asking for the part after `last` (§6.2.5.2: a part index
    /// past the end of its segment means part 0 of the next one).
    pub fn next_part_after(last: (u64, u64)) -> (u64, u64) {
        (last.0, last.1 + 1)
    }
}

/// Why a playlist could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistError {
    /// 1-based line number (0 for the whole text).
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for PlaylistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "playlist line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for PlaylistError {}

/// Reads a playlist of either kind.
pub fn parse(text: &str) -> Result<Playlist, PlaylistError> {
    let err = |line: usize, reason: &str| PlaylistError {
        line,
        reason: reason.to_owned(),
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        _ => return Err(err(1, "first line is not #EXTM3U")),
    }
    if text.contains("#EXT-X-STREAM-INF") {
        return parse_multivariant(lines).map(Playlist::Multivariant);
    }
    parse_media(lines).map(Playlist::Media)
}

fn parse_multivariant<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Multivariant, PlaylistError> {
    let mut m = Multivariant::default();
    let mut want_uri: Option<usize> = None;
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        if let Some(at) = want_uri {
            if line.starts_with('#') {
                return Err(PlaylistError {
                    line: at,
                    reason: "EXT-X-STREAM-INF not followed by a URI".into(),
                });
            }
            m.variants.push(line.to_owned());
            want_uri = None;
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-STREAM-INF" => want_uri = Some(n),
            "#EXT-X-MEDIA" => {
                let a = attributes(value);
                if attr(&a, "TYPE") == Some("AUDIO") {
                    if let Some(uri) = attr(&a, "URI") {
                        m.audio.push(uri.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(at) = want_uri {
        return Err(PlaylistError {
            line: at,
            reason: "EXT-X-STREAM-INF at the end".into(),
        });
    }
    if m.variants.is_empty() {
        return Err(PlaylistError {
            line: 0,
            reason: "multivariant playlist without variants".into(),
        });
    }
    Ok(m)
}

fn parse_media<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<MediaPlaylist, PlaylistError> {
    let mut p = MediaPlaylist::default();
    let mut target = None;
    let mut pending_inf: Option<(usize, f64)> = None;
    // Sequence number of the next segment to be listed, and the part index within it.
    let mut next_msn: Option<u64> = None;
    let mut next_index = 0u64;
    for (n, line) in lines {
        let bad = |reason: String| PlaylistError { line: n, reason };
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            let (_, duration) = pending_inf
                .take()
                .ok_or_else(|| bad(format!("URI without EXTINF: {line:?}")))?;
            let msn = *next_msn.get_or_insert(p.media_sequence);
            p.segments.push(Segment {
                msn,
                uri: line.to_owned(),
                duration,
            });
            next_msn = Some(msn + 1);
            next_index = 0;
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad(format!("{tag}: bad number {v:?}")))
        };
        let integer = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| bad(format!("{tag}: bad integer {v:?}")))
        };
        match tag {
            "#EXT-X-TARGETDURATION" => target = Some(number(value)?),
            "#EXT-X-MEDIA-SEQUENCE" => p.media_sequence = integer(value)?,
            "#EXT-X-DISCONTINUITY-SEQUENCE" => p.discontinuity_sequence = integer(value)?,
            "#EXT-X-DISCONTINUITY" => p.discontinuities += 1,
            "#EXT-X-ENDLIST" => p.ended = true,
            "#EXT-X-MAP" => {
                let a = attributes(value);
                let uri = attr(&a, "URI").ok_or_else(|| bad("EXT-X-MAP without URI".into()))?;
                p.map = Some(uri.to_owned());
            }
            "#EXT-X-PART-INF" => {
                let a = attributes(value);
                let t = attr(&a, "PART-TARGET").ok_or_else(|| bad("no PART-TARGET".into()))?;
                p.part_target = Some(number(t)?);
            }
            "#EXT-X-SERVER-CONTROL" => {
                p.can_block_reload = attr(&attributes(value), "CAN-BLOCK-RELOAD") == Some("YES");
            }
            "#EXT-X-SKIP" => {
                let a = attributes(value);
                let skipped = attr(&a, "SKIPPED-SEGMENTS")
                    .ok_or_else(|| bad("no SKIPPED-SEGMENTS".into()))?;
                next_msn = Some(p.media_sequence + integer(skipped)?);
            }
            "#EXTINF" => {
                let d = value.split(',').next().unwrap_or("");
                pending_inf = Some((n, number(d)?));
            }
            "#EXT-X-PART" => {
                let a = attributes(value);
                let uri = attr(&a, "URI").ok_or_else(|| bad("EXT-X-PART without URI".into()))?;
                let duration =
                    number(attr(&a, "DURATION").ok_or_else(|| bad("no DURATION".into()))?)?;
                let msn = *next_msn.get_or_insert(p.media_sequence);
                p.parts.push(Part {
                    msn,
                    index: next_index,
                    uri: uri.to_owned(),
                    duration,
                    independent: attr(&a, "INDEPENDENT") == Some("YES"),
                });
                next_index += 1;
            }
            "#EXT-X-PRELOAD-HINT" => {
                let a = attributes(value);
                if attr(&a, "TYPE") == Some("PART") {
                    p.preload_hint = attr(&a, "URI").map(str::to_owned);
                }
            }
            _ => {}
        }
    }
    if let Some((at, _)) = pending_inf {
        return Err(PlaylistError {
            line: at,
            reason: "EXTINF at the end".into(),
        });
    }
    p.target_duration = target.ok_or(PlaylistError {
        line: 0,
        reason: "no EXT-X-TARGETDURATION".into(),
    })?;
    Ok(p)
}

/// Splits an attribute list (§4.2) leniently: `KEY=value` or `KEY="quoted, value"`, quotes
/// removed.
fn attributes(list: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some((key, after)) = rest.split_once('=') {
        let (value, after) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push((key.trim(), value));
        rest = after.strip_prefix(',').unwrap_or(after);
        if after.is_empty() {
            break;
        }
    }
    out
}

fn attr<'a>(a: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like sigma-llhls's ultra-low output (a blocking-reload answer).
    const LLHLS: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6.0,PART-HOLD-BACK=1.002
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI=\"video/e1/init-1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T01:30:00.000Z
#EXTINF:2.00000,
video/e1/seg-41.m4s
#EXT-X-PART:DURATION=0.33333,URI=\"video/e1/part-42.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"video/e1/part-42.1.m4s\"
#EXTINF:0.66666,
video/e1/seg-42.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"video/e1/init-2.mp4\"
#EXT-X-PART:DURATION=0.33333,URI=\"video/e1/part-43.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.30000,URI=\"video/e1/part-43.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video/e1/part-43.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=43,LAST-PART=1
";

    // Shaped like nginx-rtmp's `hls on` output.
    const PLAIN: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-TARGETDURATION:2
#EXT-X-DISCONTINUITY
#EXTINF:1.000,
7.ts
#EXTINF:1.001,
8.ts
#EXTINF:0.999,
9.ts
";

    fn media(text: &str) -> MediaPlaylist {
        match parse(text).unwrap() {
            Playlist::Media(m) => m,
            other => panic!("not a media playlist: {other:?}"),
        }
    }

    #[test]
    fn ll_hls_parts_get_their_parent_msn_and_index() {
        let p = media(LLHLS);
        assert_eq!(p.target_duration, 2.0);
        assert_eq!(p.part_target, Some(0.334));
        assert!(p.can_block_reload);
        assert_eq!(
            p.segments
                .iter()
                .map(|s| (s.msn, s.uri.as_str()))
                .collect::<Vec<_>>(),
            [(41, "video/e1/seg-41.m4s"), (42, "video/e1/seg-42.m4s")]
        );
        let parts: Vec<_> = p
            .parts
            .iter()
            .map(|x| (x.position(), x.uri.as_str(), x.independent))
            .collect();
        assert_eq!(
            parts,
            [
                ((42, 0), "video/e1/part-42.0.m4s", true),
                ((42, 1), "video/e1/part-42.1.m4s", false),
                ((43, 0), "video/e1/part-43.0.m4s", true),
                ((43, 1), "video/e1/part-43.1.m4s", false),
            ]
        );
        assert_eq!(p.parts[3].duration, 0.3);
        assert_eq!(p.map.as_deref(), Some("video/e1/init-2.mp4"));
        assert_eq!(p.preload_hint.as_deref(), Some("video/e1/part-43.2.m4s"));
        assert_eq!(p.total_discontinuities(), 3);
        assert_eq!(p.last_msn(), Some(42));
        assert!(!p.ended);
        assert_eq!(
            MediaPlaylist::next_part_after(p.last_part().unwrap().position()),
            (43, 2)
        );
    }

    #[test]
    fn plain_hls_segments_count_from_media_sequence() {
        let p = media(PLAIN);
        assert_eq!(p.part_target, None);
        assert!(p.parts.is_empty());
        assert!(!p.can_block_reload);
        let msns: Vec<_> = p.segments.iter().map(|s| (s.msn, s.duration)).collect();
        assert_eq!(msns, [(7, 1.0), (8, 1.001), (9, 0.999)]);
        assert_eq!(p.total_discontinuities(), 1);
        assert!(p.map.is_none());
    }

    #[test]
    fn ended_and_skipped_playlists() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
                    #EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXTINF:2.0,\ns15.m4s\n#EXT-X-ENDLIST\n";
        let p = media(text);
        assert!(p.ended);
        assert_eq!(p.segments[0].msn, 15);
    }

    #[test]
    fn multivariant_lists_video_variants_and_audio_renditions() {
        let text = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=2800000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"aud\"
video.m3u8
";
        assert_eq!(
            parse(text).unwrap(),
            Playlist::Multivariant(Multivariant {
                variants: vec!["video.m3u8".into()],
                audio: vec!["audio.m3u8".into()],
            })
        );
    }

    #[test]
    fn refusals_name_the_line() {
        assert_eq!(parse("<html>").unwrap_err().line, 1);
        let e = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:x,\ns.ts\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1,\n").unwrap_err();
        assert_eq!((e.line, e.reason.as_str()), (3, "EXTINF at the end"));
        let e = parse("#EXTM3U\n#EXTINF:1,\ns.ts\n").unwrap_err();
        assert_eq!(e.reason, "no EXT-X-TARGETDURATION");
        let e = parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
