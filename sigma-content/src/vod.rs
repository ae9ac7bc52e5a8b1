//! Catch-up VOD playlists, rendered from an archive's [`Manifest`]: the live's own CMAF
//! segments and inits, listed as `EXT-X-PLAYLIST-TYPE:VOD` with `EXT-X-ENDLIST`, no re-encode.
//!
//! Pure: a manifest in, playlist text out. URIs are relative to the playlist and equal to the
//! objects' keys under the archive's prefix (`{rendition}.m3u8`, `{rendition}/init-{g}.mp4`,
//! `{rendition}/{msn}.m4s`), so a server maps `/v/{playback_id}/{path}` to `{prefix}/{path}`.

use crate::manifest::{Kind, Manifest, SegmentRecord};
use sigma_llhls::playlist::{AudioMedia, Variant, format_date, render_multivariant};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// The target duration shared by every rendition: the longest segment, rounded (at least 1).
pub fn target_duration(m: &Manifest) -> u64 {
    m.segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Peak and average bits per second of a rendition's segments.
fn bandwidth<'a>(segments: impl Iterator<Item = &'a SegmentRecord>) -> Option<(u64, u64)> {
    let (mut peak, mut bits, mut secs) = (0.0f64, 0.0f64, 0.0f64);
    for s in segments {
        if s.duration <= 0.0 {
            continue;
        }
        let b = s.size as f64 * 8.0;
        // A segment shorter than a second (at a discontinuity) does not set the peak.
        if s.duration >= 1.0 {
            peak = peak.max(b / s.duration);
        }
        bits += b;
        secs += s.duration;
    }
    if secs <= 0.0 {
        return None;
    }
    let avg = bits / secs;
    Some((peak.max(avg).ceil() as u64, avg.ceil() as u64))
}

/// The multivariant playlist: a variant per video rendition with the first audio rendition as
/// its audio group, or the audio alone for an audio-only archive. `None` when nothing was
/// archived.
pub fn multivariant(m: &Manifest) -> Option<String> {
    let audio = m
        .renditions
        .iter()
        .find(|r| r.kind == Kind::Audio && m.segments_of(&r.name).next().is_some());
    let audio_bw = audio.and_then(|a| bandwidth(m.segments_of(&a.name)));
    let variants: Vec<Variant> = m
        .renditions
        .iter()
        .filter(|r| r.kind == Kind::Video)
        .filter_map(|r| {
            let (peak, avg) = bandwidth(m.segments_of(&r.name))?;
            let (ap, aa) = audio_bw.unwrap_or((0, 0));
            let mut codecs = vec![r.codec.clone()];
            codecs.extend(audio.map(|a| a.codec.clone()));
            Some(Variant {
                uri: format!("{}.m3u8", r.name),
                bandwidth: peak + ap,
                average_bandwidth: Some(avg + aa),
                codecs,
                resolution: r.resolution,
                frame_rate: r.frame_rate,
                audio_group: audio.map(|_| "audio".to_owned()),
            })
        })
        .collect();
    if variants.is_empty() {
        let a = audio?;
        let (peak, avg) = audio_bw?;
        let only = Variant {
            uri: format!("{}.m3u8", a.name),
            bandwidth: peak,
            average_bandwidth: Some(avg),
            codecs: vec![a.codec.clone()],
            resolution: None,
            frame_rate: None,
            audio_group: None,
        };
        return Some(render_multivariant(&[only], &[], &[]));
    }
    let media: Vec<AudioMedia> = audio
        .map(|a| AudioMedia {
            uri: format!("{}.m3u8", a.name),
            group: "audio".into(),
            name: a.name.clone(),
            channels: a.channels.unwrap_or(2),
            default: true,
        })
        .into_iter()
        .collect();
    Some(render_multivariant(&variants, &media, &[]))
}

/// The VOD media playlist of rendition `name`; `None` for an unknown rendition or one with no
/// segment.
pub fn media_playlist(m: &Manifest, name: &str) -> Option<String> {
    m.rendition(name)?;
    let mut segs = m.segments_of(name).peekable();
    let first = segs.peek()?.msn;
    let td = target_duration(m);
    let mut out = String::with_capacity(256 + 96 * m.segments.len());
    out.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
    out.push_str("#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    let mut init = None;
    let mut started = false;
    for s in segs {
        if started && s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if init != Some(s.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{name}/init-{}.mp4\"", s.init);
            init = Some(s.init);
        }
        if !started || s.discontinuity {
            let at =
                UNIX_EPOCH + Duration::from_millis(u64::try_from(s.program_date_time).unwrap_or(0));
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_date(at));
        }
        started = true;
        let _ = writeln!(out, "#EXTINF:{:.5},\n{name}/{}.m4s", s.duration, s.msn);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Some(out)
}

/// What a path under an asset's playback id names, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VodPath {
    /// `index.m3u8`.
    Multivariant,
    /// `{rendition}.m3u8`.
    Media(String),
    /// `{rendition}/init-{g}.mp4` or `{rendition}/{msn}.m4s`: an object under the prefix.
    Object(String),
}

fn rendition_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses a path under an asset's playback id (untrusted); `None` for anything that is not one
/// of its playlists or media objects.
pub fn parse_path(path: &str) -> Option<VodPath> {
    if path == "index.m3u8" {
        return Some(VodPath::Multivariant);
    }
    if let Some(r) = path.strip_suffix(".m3u8") {
        return rendition_name(r).then(|| VodPath::Media(r.to_owned()));
    }
    let (r, file) = path.split_once('/')?;
    if !rendition_name(r) {
        return None;
    }
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match file.strip_prefix("init-") {
        Some(rest) => rest.strip_suffix(".mp4").is_some_and(number),
        None => file.strip_suffix(".m4s").is_some_and(number),
    };
    ok.then(|| VodPath::Object(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RenditionInfo;
    use proptest::prelude::*;
    use sigma_llhls::conformance::parse_media_playlist;

    fn manifest() -> Manifest {
        let mut m = Manifest::new();
        m.renditions = vec![
            RenditionInfo {
                name: "video".into(),
                kind: Kind::Video,
                codec: "avc1.64001f".into(),
                resolution: Some((640, 360)),
                frame_rate: Some(30.0),
                channels: None,
                inits: vec![1, 2],
            },
            RenditionInfo {
                name: "audio".into(),
                kind: Kind::Audio,
                codec: "mp4a.40.2".into(),
                resolution: None,
                frame_rate: None,
                channels: Some(2),
                inits: vec![1],
            },
        ];
        for (r, n) in [("video", 6u64), ("audio", 6)] {
            for msn in 0..n {
                m.segments.push(SegmentRecord {
                    rendition: r.into(),
                    msn,
                    duration: if msn == 2 { 1.2 } else { 2.0 },
                    program_date_time: 1_700_000_000_000 + msn as i64 * 2000,
                    discontinuity: msn == 3,
                    init: if r == "video" && msn >= 3 { 2 } else { 1 },
                    size: 250_000,
                    parts: vec![(125_000, true), (125_000, false)],
                });
            }
        }
        m
    }

    #[test]
    fn media_playlists_are_strict_vod() {
        let m = manifest();
        let text = media_playlist(&m, "video").unwrap();
        let p = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.playlist_type.as_deref(), Some("VOD"));
        assert!(p.ended);
        assert_eq!(p.segments.len(), 6);
        assert_eq!(p.discontinuities, 1);
        assert_eq!(p.maps, ["video/init-1.mp4", "video/init-2.mp4"]);
        assert_eq!(p.segments[0].0, "video/0.m4s");
        assert_eq!(p.target_duration, 2);
        let total: f64 = p.segments.iter().map(|s| s.1).sum();
        assert!((total - m.duration()).abs() < 1e-3);
        assert!(media_playlist(&m, "nope").is_none());
    }

    #[test]
    fn multivariant_lists_video_with_its_audio() {
        let text = multivariant(&manifest()).unwrap();
        assert!(text.contains("TYPE=AUDIO,GROUP-ID=\"audio\""), "{text}");
        assert!(text.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{text}");
        assert!(text.contains("RESOLUTION=640x360"), "{text}");
        assert!(text.contains("\nvideo.m3u8\n"), "{text}");
        // 250 kB segments: the 1.2 s one sets the peak (1.67 Mbit/s per rendition), 11.2 s in
        // all the average; the variant carries video and audio together.
        assert!(
            text.contains("BANDWIDTH=3333334,AVERAGE-BANDWIDTH=2142858,"),
            "{text}"
        );
        assert!(multivariant(&Manifest::new()).is_none());
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("index.m3u8"), Some(VodPath::Multivariant));
        assert_eq!(
            parse_path("video.m3u8"),
            Some(VodPath::Media("video".into()))
        );
        assert_eq!(
            parse_path("video/12.m4s"),
            Some(VodPath::Object("video/12.m4s".into()))
        );
        assert_eq!(
            parse_path("audio/init-3.mp4"),
            Some(VodPath::Object("audio/init-3.mp4".into()))
        );
        for bad in [
            "",
            "../x.m3u8",
            "video/../../x.m4s",
            "video/x.m4s",
            "video/1.mp4",
            "manifest.json",
            "journal/00000001.json",
            "video/init-.mp4",
            "a/b/1.m4s",
            ".m3u8",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Whatever a viewer asks for, an accepted path is a playlist or a media object and
        /// never leaves the archive's prefix.
        #[test]
        fn parsed_paths_stay_inside(path in "[a-z0-9./_-]{0,40}") {
            if let Some(VodPath::Object(p)) = parse_path(&path) {
                prop_assert!(!p.contains(".."));
                prop_assert!(p.ends_with(".m4s") || p.ends_with(".mp4"));
                prop_assert!(crate::store::Key::new(p.as_str()).is_ok());
            }
        }
    }
}
