//! A strict reader of media playlists that checks the rules of RFC 8216bis this origin
//! promises, for tests and tools that watch a live origin (Sigma's own or another).
//!
//! Pure: text in, a [`ParsedPlaylist`] or the first broken rule out. It is stricter than a
//! player: an unknown tag, an empty line or a malformed attribute list is an error.
//! [`parse_media_playlist`] checks one playlist (§4.4.3.1 EXTINF against
//! EXT-X-TARGETDURATION, §4.4.4.9 PART-TARGET, §4.4.3.8 HOLD-BACK and PART-HOLD-BACK,
//! §4.4.3.8 CAN-SKIP-UNTIL, preload hints, versions); [`part_violations`] reports the parts
//! that break §4.4.4.9's 85 % rule; [`Watch`] follows one rendition across reloads and reports
//! what must hold between playlists (§6.2.1: a constant target duration, growing media
//! sequence numbers, segments that never change).
#![allow(missing_docs)]

use std::collections::BTreeMap;

/// (uri, duration, independent) of an `EXT-X-PART`.
pub type ParsedPart = (String, f64, bool);

/// A media playlist as the strict test parser understood it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedPlaylist {
    pub version: u64,
    pub target_duration: u64,
    pub part_target: Option<f64>,
    pub media_sequence: u64,
    pub skipped: u64,
    /// (uri, duration, parts) of complete segments.
    pub segments: Vec<(String, f64, Vec<ParsedPart>)>,
    /// Parts after the last complete segment.
    pub open_parts: Vec<ParsedPart>,
    pub preload_hint: Option<String>,
    pub reports: Vec<String>,
    pub maps: Vec<String>,
    pub discontinuities: usize,
    pub ended: bool,
    /// `EXT-X-PLAYLIST-TYPE` (`VOD` for a catch-up asset's playlists).
    pub playlist_type: Option<String>,
}

/// Splits an attribute list (RFC 8216bis §4.2) strictly.
pub fn attributes(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or(format!("no '=' in {rest:?}"))?;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("bad attribute name {key:?}"));
        }
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').ok_or("unterminated quoted string")?;
            (format!("\"{}\"", &q[..end]), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let v = &after[..end];
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(format!("bad value for {key}"));
            }
            (v.to_owned(), &after[end..])
        };
        if out.iter().any(|(k, _): &(String, String)| k == key) {
            return Err(format!("attribute {key} repeated"));
        }
        out.push((key.to_owned(), value));
        rest = match after.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err("trailing comma".into()),
            None if after.is_empty() => "",
            None => return Err(format!("junk after value: {after:?}")),
        };
    }
    Ok(out)
}

fn attr<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
    a.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
}

fn quoted(v: Option<&str>) -> Result<String, String> {
    let v = v.ok_or("missing attribute")?;
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
        .ok_or(format!("not quoted: {v}"))
}

fn float(v: Option<&str>) -> Result<f64, String> {
    let v = v.ok_or("missing number")?;
    if !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("not a decimal-floating-point: {v}"));
    }
    v.parse().map_err(|e| format!("{v}: {e}"))
}

/// Parses a media playlist strictly, checking the rules of RFC 8216bis this origin promises.
pub fn parse_media_playlist(text: &str) -> Result<ParsedPlaylist, String> {
    let mut p = ParsedPlaylist::default();
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("first line is not #EXTM3U".into());
    }
    let mut seen = std::collections::HashSet::new();
    let mut parts: Vec<(String, f64, bool)> = Vec::new();
    let mut pending_inf: Option<f64> = None;
    let mut server_control = None;
    let mut media_started = false;
    for line in lines {
        if line.is_empty() {
            return Err("empty line".into());
        }
        if let Some(d) = pending_inf.take() {
            if line.starts_with('#') {
                return Err(format!("EXTINF not followed by a URI: {line}"));
            }
            p.segments
                .push((line.to_owned(), d, std::mem::take(&mut parts)));
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        let once = |seen: &mut std::collections::HashSet<String>| {
            if seen.insert(tag.to_owned()) {
                Ok(())
            } else {
                Err(format!("{tag} repeated"))
            }
        };
        let header = |started: bool| {
            if started {
                Err(format!("{tag} after the first segment"))
            } else {
                Ok(())
            }
        };
        match tag {
            "#EXT-X-VERSION" => {
                once(&mut seen)?;
                p.version = value.parse().map_err(|_| "bad version")?;
            }
            "#EXT-X-TARGETDURATION" => {
                once(&mut seen)?;
                header(media_started)?;
                p.target_duration = value.parse().map_err(|_| "bad target duration")?;
            }
            "#EXT-X-MEDIA-SEQUENCE" => {
                once(&mut seen)?;
                header(media_started)?;
                p.media_sequence = value.parse().map_err(|_| "bad media sequence")?;
            }
            "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                once(&mut seen)?;
                header(media_started)?;
                value
                    .parse::<u64>()
                    .map_err(|_| "bad discontinuity sequence")?;
            }
            "#EXT-X-SERVER-CONTROL" => {
                once(&mut seen)?;
                server_control = Some(attributes(value)?);
            }
            "#EXT-X-PART-INF" => {
                once(&mut seen)?;
                p.part_target = Some(float(attr(&attributes(value)?, "PART-TARGET"))?);
            }
            "#EXT-X-SKIP" => {
                once(&mut seen)?;
                header(media_started)?;
                let a = attributes(value)?;
                p.skipped = attr(&a, "SKIPPED-SEGMENTS")
                    .ok_or("no SKIPPED-SEGMENTS")?
                    .parse()
                    .map_err(|_| "bad skip")?;
            }
            "#EXT-X-MAP" => p.maps.push(quoted(attr(&attributes(value)?, "URI"))?),
            "#EXT-X-DISCONTINUITY" => p.discontinuities += 1,
            "#EXT-X-PROGRAM-DATE-TIME" => {
                let b = value.as_bytes();
                let ok = b.len() == 24
                    && b[4] == b'-'
                    && b[7] == b'-'
                    && b[10] == b'T'
                    && b[13] == b':'
                    && b[16] == b':'
                    && b[19] == b'.'
                    && b[23] == b'Z';
                if !ok {
                    return Err(format!("bad date {value}"));
                }
            }
            "#EXT-X-PART" => {
                media_started = true;
                let a = attributes(value)?;
                let uri = quoted(attr(&a, "URI"))?;
                let d = float(attr(&a, "DURATION"))?;
                let ind = match attr(&a, "INDEPENDENT") {
                    None => false,
                    Some("YES") => true,
                    Some(v) => return Err(format!("INDEPENDENT={v}")),
                };
                parts.push((uri, d, ind));
            }
            "#EXTINF" => {
                media_started = true;
                let d = value.strip_suffix(',').ok_or("EXTINF without comma")?;
                pending_inf = Some(float(Some(d))?);
            }
            "#EXT-X-PRELOAD-HINT" => {
                once(&mut seen)?;
                let a = attributes(value)?;
                if attr(&a, "TYPE") != Some("PART") {
                    return Err("preload hint type".into());
                }
                p.preload_hint = Some(quoted(attr(&a, "URI"))?);
            }
            "#EXT-X-RENDITION-REPORT" => {
                let a = attributes(value)?;
                attr(&a, "LAST-MSN")
                    .ok_or("no LAST-MSN")?
                    .parse::<u64>()
                    .map_err(|_| "LAST-MSN")?;
                if let Some(lp) = attr(&a, "LAST-PART") {
                    lp.parse::<u64>().map_err(|_| "LAST-PART")?;
                }
                p.reports.push(quoted(attr(&a, "URI"))?);
            }
            "#EXT-X-ENDLIST" => {
                once(&mut seen)?;
                p.ended = true;
            }
            "#EXT-X-PLAYLIST-TYPE" => {
                once(&mut seen)?;
                if value != "VOD" && value != "EVENT" {
                    return Err(format!("EXT-X-PLAYLIST-TYPE:{value}"));
                }
                p.playlist_type = Some(value.to_owned());
            }
            _ => return Err(format!("unknown line {line:?}")),
        }
    }
    if pending_inf.is_some() {
        return Err("EXTINF at the end".into());
    }
    p.open_parts = parts;
    for tag in [
        "#EXT-X-VERSION",
        "#EXT-X-TARGETDURATION",
        "#EXT-X-MEDIA-SEQUENCE",
    ] {
        if !seen.contains(tag) {
            return Err(format!("{tag} missing"));
        }
    }
    let td = p.target_duration as f64;
    for (uri, d, _) in &p.segments {
        if d.round() > td {
            return Err(format!("{uri}: EXTINF {d} above target {td}"));
        }
    }
    if p.playlist_type.as_deref() == Some("VOD") {
        // §4.4.3.5: a VOD playlist never changes, so it is complete; no live-only tags.
        if !p.ended {
            return Err("a VOD playlist without EXT-X-ENDLIST".into());
        }
        if server_control.is_some() || p.part_target.is_some() || p.preload_hint.is_some() {
            return Err("live-only tags in a VOD playlist".into());
        }
        if p.maps.is_empty() && !p.segments.is_empty() {
            return Err("no EXT-X-MAP".into());
        }
        return Ok(p);
    }
    let sc = server_control.ok_or("no EXT-X-SERVER-CONTROL")?;
    let hold_back = float(attr(&sc, "HOLD-BACK"))?;
    if hold_back < 3.0 * td {
        return Err(format!("HOLD-BACK {hold_back} < 3 x {td}"));
    }
    if float(attr(&sc, "CAN-SKIP-UNTIL"))? < 6.0 * td {
        return Err("CAN-SKIP-UNTIL below 6 target durations".into());
    }
    match p.part_target {
        Some(pt) => {
            let phb = float(attr(&sc, "PART-HOLD-BACK"))?;
            if phb + 1e-9 < 3.0 * pt {
                return Err(format!("PART-HOLD-BACK {phb} < 3 x {pt}"));
            }
            for (uri, d, _) in p
                .segments
                .iter()
                .flat_map(|s| s.2.iter())
                .chain(&p.open_parts)
            {
                if *d > pt + 1e-9 {
                    return Err(format!("part {uri} of {d} above PART-TARGET {pt}"));
                }
            }
            if !p.ended && p.preload_hint.is_none() {
                return Err("no preload hint".into());
            }
        }
        None => {
            if p.segments.iter().any(|s| !s.2.is_empty()) || !p.open_parts.is_empty() {
                return Err("parts without EXT-X-PART-INF".into());
            }
        }
    }
    if p.skipped > 0 && p.version < 9 {
        return Err("EXT-X-SKIP needs version 9".into());
    }
    if p.ended && p.preload_hint.is_some() {
        return Err("preload hint after the end".into());
    }
    if p.maps.is_empty() && !(p.segments.is_empty() && p.open_parts.is_empty()) {
        return Err("no EXT-X-MAP".into());
    }
    Ok(p)
}

/// The parts of `p` that break §4.4.4.9's floor: a part that is neither `INDEPENDENT=YES`
/// nor the last of its segment lasts at least 85 % of PART-TARGET. The open segment's parts
/// are checked too, except its newest (which may turn out to be the last). One line each.
pub fn part_violations(p: &ParsedPlaylist) -> Vec<String> {
    let Some(pt) = p.part_target else {
        return Vec::new();
    };
    let floor = 0.85 * pt - 1e-9;
    let mut out = Vec::new();
    // A complete segment's last part is exempt; of the open segment, only its newest part
    // may still turn out to be the last.
    let complete = p.segments.iter().map(|s| s.2.as_slice());
    for parts in complete.chain(std::iter::once(p.open_parts.as_slice())) {
        let Some((_, but_last)) = parts.split_last() else {
            continue;
        };
        for (uri, d, independent) in but_last {
            if !independent && *d < floor {
                out.push(format!(
                    "part {uri} of {d} s is under 85 % of PART-TARGET {pt}"
                ));
            }
        }
    }
    out
}

/// Follows one rendition's playlists across reloads (§6.2.1, §6.2.2).
#[derive(Debug, Default)]
pub struct Watch {
    target_duration: Option<u64>,
    part_target: Option<f64>,
    last_msn: Option<u64>,
    /// Segment URI by media sequence number, with its EXTINF duration.
    seen: BTreeMap<u64, (String, f64)>,
    ended: bool,
    /// Playlists read.
    pub playlists: usize,
}

impl Watch {
    /// Checks the next playlist of the rendition (already parsed): the target duration and
    /// part target never change, the media sequence never goes back, a segment once listed
    /// keeps its URI and duration, nothing follows an `EXT-X-ENDLIST`. `Err` names the rule.
    pub fn push(&mut self, p: &ParsedPlaylist) -> Result<(), String> {
        self.playlists += 1;
        if let Some(td) = self.target_duration
            && td != p.target_duration
        {
            return Err(format!(
                "EXT-X-TARGETDURATION changed from {td} to {} (6.2.1)",
                p.target_duration
            ));
        }
        self.target_duration = Some(p.target_duration);
        if let Some(pt) = self.part_target
            && Some(pt) != p.part_target
        {
            return Err(format!(
                "PART-TARGET changed from {pt} to {:?}",
                p.part_target
            ));
        }
        self.part_target = p.part_target;
        let first = p.media_sequence + p.skipped;
        let last = first + p.segments.len() as u64;
        if let Some(prev) = self.last_msn
            && last < prev
        {
            return Err(format!("media sequence went back from {prev} to {last}"));
        }
        if self.ended && !p.ended {
            return Err("a playlist after EXT-X-ENDLIST lost it".into());
        }
        self.ended |= p.ended;
        self.last_msn = Some(last);
        for (i, (uri, d, _)) in p.segments.iter().enumerate() {
            let msn = first + i as u64;
            match self.seen.get(&msn) {
                Some((u, old)) if u != uri || (old - d).abs() > 1e-6 => {
                    return Err(format!(
                        "segment {msn} changed from {u} ({old}) to {uri} ({d})"
                    ));
                }
                Some(_) => {}
                None => {
                    self.seen.insert(msn, (uri.clone(), *d));
                }
            }
        }
        // Bounded: keep what a playlist window can list.
        while self.seen.len() > 4096 {
            self.seen.pop_first();
        }
        Ok(())
    }

    /// The target duration seen, once a playlist was read.
    pub fn target_duration(&self) -> Option<u64> {
        self.target_duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.002,HOLD-BACK=6.0\n\
        #EXT-X-PART-INF:PART-TARGET=0.334\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init.mp4\"\n";

    fn playlist(parts: &[(f64, bool)], td: u64) -> String {
        let mut s = HEAD
            .replace("TARGETDURATION:2", &format!("TARGETDURATION:{td}"))
            .replace("UNTIL=12.0", &format!("UNTIL={}.0", 6 * td))
            .replace("HOLD-BACK=6.0", &format!("HOLD-BACK={}.0", 3 * td));
        let total: f64 = parts.iter().map(|p| p.0).sum();
        for (i, (d, ind)) in parts.iter().enumerate() {
            let ind = if *ind { ",INDEPENDENT=YES" } else { "" };
            s.push_str(&format!(
                "#EXT-X-PART:DURATION={d:.3},URI=\"p{i}.m4s\"{ind}\n"
            ));
        }
        s.push_str(&format!("#EXTINF:{total:.5},\nseg-7.m4s\n"));
        s.push_str("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"next.m4s\"\n");
        s
    }

    #[test]
    fn short_parts_are_reported_unless_independent_or_last() {
        let ok =
            parse_media_playlist(&playlist(&[(0.2, true), (0.3, false), (0.1, false)], 2)).unwrap();
        assert!(part_violations(&ok).is_empty());
        let bad =
            parse_media_playlist(&playlist(&[(0.3, true), (0.2, false), (0.3, false)], 2)).unwrap();
        let v = part_violations(&bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("p1.m4s"));
    }

    #[test]
    fn a_changed_target_duration_or_segment_is_caught_across_reloads() {
        let mut w = Watch::default();
        let a = parse_media_playlist(&playlist(&[(0.3, true)], 2)).unwrap();
        w.push(&a).unwrap();
        w.push(&a).unwrap();
        let b = parse_media_playlist(&playlist(&[(0.3, true)], 3)).unwrap();
        assert!(w.push(&b).unwrap_err().contains("TARGETDURATION"));
        let mut w = Watch::default();
        w.push(&a).unwrap();
        let c = parse_media_playlist(&playlist(&[(0.3, true), (0.3, false)], 2)).unwrap();
        assert!(w.push(&c).unwrap_err().contains("segment 7 changed"));
    }
}
