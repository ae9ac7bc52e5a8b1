//! Delivery directives (RFC 8216bis §6.2.5): `_HLS_msn`, `_HLS_part` and `_HLS_skip`, parsed
//! from an untrusted query string.
//!
//! Parameters that are not delivery directives (cache busters, tokens) are ignored, as are
//! unknown `_HLS_` names; a malformed or repeated directive, or `_HLS_part` without
//! `_HLS_msn`, is an error the HTTP layer answers with 400.

use crate::Error;

/// `_HLS_skip` (§6.2.5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Skip {
    /// A full playlist.
    #[default]
    No,
    /// `_HLS_skip=YES`: skip old media segments.
    Yes,
    /// `_HLS_skip=v2`: skip old media segments and date ranges. This origin writes no date
    /// ranges, so the same segments are skipped as for `YES`; the `EXT-X-SKIP` tag also
    /// carries an empty `RECENTLY-REMOVED-DATERANGES` list, REQUIRED by §4.4.5.2 when a client
    /// asks to skip date ranges (see [`crate::playlist::Rendition::render_skip`]).
    V2,
}

/// The delivery directives of one playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`: block until the playlist holds this media sequence number.
    pub msn: Option<u64>,
    /// `_HLS_part`: together with `msn`, block until this part exists.
    pub part: Option<u64>,
    /// `_HLS_skip`: ask for a delta update.
    pub skip: Skip,
}

impl Directives {
    /// Whether the request blocks (§6.2.5.2).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

const MAX_QUERY: usize = 4096;

fn number(value: &str, what: &'static str) -> Result<u64, Error> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadDirective(what));
    }
    value.parse().map_err(|_| Error::BadDirective(what))
}

fn set_once(slot: &mut Option<u64>, value: u64, repeated: &'static str) -> Result<(), Error> {
    match slot.replace(value) {
        Some(_) => Err(Error::BadDirective(repeated)),
        None => Ok(()),
    }
}

/// Parses a query string (without the `?`).
///
/// Errors: [`Error::BadDirective`] for a malformed number, an unknown `_HLS_skip` value, a
/// repeated directive, `_HLS_part` without `_HLS_msn`, or a query longer than 4 KiB.
pub fn parse(query: Option<&str>) -> Result<Directives, Error> {
    let mut d = Directives::default();
    let Some(query) = query else {
        return Ok(d);
    };
    if query.len() > MAX_QUERY {
        return Err(Error::BadDirective("query string too long"));
    }
    let mut skip_seen = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => {
                let n = number(value, "_HLS_msn is not a decimal integer")?;
                set_once(&mut d.msn, n, "_HLS_msn repeated")?;
            }
            "_HLS_part" => {
                let n = number(value, "_HLS_part is not a decimal integer")?;
                set_once(&mut d.part, n, "_HLS_part repeated")?;
            }
            "_HLS_skip" => {
                if skip_seen {
                    return Err(Error::BadDirective("_HLS_skip repeated"));
                }
                skip_seen = true;
                d.skip = match value {
                    "YES" => Skip::Yes,
                    "v2" => Skip::V2,
                    _ => return Err(Error::BadDirective("_HLS_skip is neither YES nor v2")),
                };
            }
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(Error::BadDirective("_HLS_part without _HLS_msn"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn directives() {
        assert_eq!(parse(None).unwrap(), Directives::default());
        assert_eq!(
            parse(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")).unwrap(),
            Directives {
                msn: Some(12),
                part: Some(3),
                skip: Skip::Yes
            }
        );
        assert_eq!(parse(Some("_HLS_skip=v2")).unwrap().skip, Skip::V2);
        assert_eq!(parse(Some("token=abc&_HLS_msn=1&&x")).unwrap().msn, Some(1));
        assert!(!parse(Some("_HLS_skip=YES")).unwrap().is_blocking());
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1e3",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=1&_HLS_part=2",
            "_HLS_skip=yes",
            "_HLS_skip=YES&_HLS_skip=YES",
            "_HLS_msn",
        ] {
            assert!(
                matches!(parse(Some(bad)), Err(Error::BadDirective(_))),
                "{bad}"
            );
        }
        assert!(parse(Some(&"a".repeat(5000))).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(q in ".{0,200}", msn in any::<u64>(), part in any::<u64>()) {
            let _ = parse(Some(&q));
            let d = parse(Some(&format!("_HLS_msn={msn}&_HLS_part={part}"))).unwrap();
            prop_assert_eq!((d.msn, d.part), (Some(msn), Some(part)));
        }
    }
}
