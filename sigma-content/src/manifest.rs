//! What an archive holds: its renditions, their init segments and every stored segment, as a
//! JSON manifest in the media store.
//!
//! While a broadcast is archived, the writer appends **journal** objects
//! (`{prefix}/journal/{n}.json`, each the records added since the previous one), every object
//! they name stored before them. When the broadcast ends, the whole [`Manifest`] is written as
//! `{prefix}/manifest.json` with `complete: true`. A reader takes the manifest if there is one,
//! else merges the journals in order ([`crate::archive::load`]): after a crash it gets every
//! segment stored up to the last journal, and no record names a missing object.

use serde::{Deserialize, Serialize};

/// The manifest format's version.
pub const VERSION: u32 = 1;

/// An archive's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`VERSION`].
    pub version: u32,
    /// Its renditions, in the order they appeared.
    pub renditions: Vec<RenditionInfo>,
    /// Its segments, in the order they were stored (per rendition, by `msn`).
    pub segments: Vec<SegmentRecord>,
    /// The broadcast ended and everything it left is listed.
    #[serde(default)]
    pub complete: bool,
}

/// `video` or `audio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
}

/// A rendition of the archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenditionInfo {
    /// Its name (`video`, `audio`, a ladder rung's name).
    pub name: String,
    /// Video or audio.
    pub kind: Kind,
    /// RFC 6381 codec string of its latest init.
    pub codec: String,
    /// Width and height (video).
    #[serde(default)]
    pub resolution: Option<(u32, u32)>,
    /// Frames per second (video, when known).
    #[serde(default)]
    pub frame_rate: Option<f64>,
    /// Channels (audio).
    #[serde(default)]
    pub channels: Option<u8>,
    /// Its init segments' generations, in order.
    pub inits: Vec<u64>,
}

/// A stored segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Its rendition's name.
    pub rendition: String,
    /// Its media sequence number in the live playlist (names its object).
    pub msn: u64,
    /// Seconds.
    pub duration: f64,
    /// Wall-clock time of its first sample, Unix ms.
    pub program_date_time: i64,
    /// It follows a discontinuity (a reconnect, a new configuration, or segments the archive
    /// lost).
    pub discontinuity: bool,
    /// The init generation it needs.
    pub init: u64,
    /// Bytes.
    pub size: u64,
    /// Each part's size and whether it starts with a sync sample.
    pub parts: Vec<(u64, bool)>,
}

impl SegmentRecord {
    /// Whether it starts with a sync sample.
    pub fn independent(&self) -> bool {
        self.parts.first().is_some_and(|p| p.1)
    }
}

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Manifest {
            version: VERSION,
            ..Manifest::default()
        }
    }

    /// Adds what a journal (or any later manifest) records: renditions it introduces or
    /// updates, and its segments after the ones held (a segment already held is skipped).
    pub fn merge(&mut self, later: Manifest) {
        for r in later.renditions {
            self.note_rendition(r);
        }
        for s in later.segments {
            let dup = self
                .segments
                .iter()
                .rev()
                .any(|x| x.rendition == s.rendition && x.msn == s.msn);
            if !dup {
                self.segments.push(s);
            }
        }
        self.complete |= later.complete;
    }

    /// Records a rendition or an update of one (its latest codec, a new init generation).
    pub fn note_rendition(&mut self, r: RenditionInfo) {
        match self.renditions.iter_mut().find(|x| x.name == r.name) {
            Some(x) => {
                let mut inits = std::mem::take(&mut x.inits);
                for g in &r.inits {
                    if !inits.contains(g) {
                        inits.push(*g);
                    }
                }
                *x = RenditionInfo { inits, ..r };
            }
            None => self.renditions.push(r),
        }
    }

    /// The segments of rendition `name`, in order.
    pub fn segments_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SegmentRecord> {
        self.segments.iter().filter(move |s| s.rendition == name)
    }

    /// The rendition named `name`.
    pub fn rendition(&self, name: &str) -> Option<&RenditionInfo> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// Seconds archived: the longest rendition's total (video's, normally).
    pub fn duration(&self) -> f64 {
        self.renditions
            .iter()
            .map(|r| self.segments_of(&r.name).map(|s| s.duration).sum::<f64>())
            .fold(0.0, f64::max)
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A manifest from JSON; `None` for anything else (a corrupt or foreign object).
    pub fn from_json(data: &[u8]) -> Option<Manifest> {
        serde_json::from_slice::<Manifest>(data)
            .ok()
            .filter(|m| m.version == VERSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(r: &str, msn: u64) -> SegmentRecord {
        SegmentRecord {
            rendition: r.into(),
            msn,
            duration: 2.0,
            program_date_time: 1_700_000_000_000 + msn as i64 * 2000,
            discontinuity: false,
            init: 1,
            size: 1000,
            parts: vec![(500, true), (500, false)],
        }
    }

    fn rend(name: &str, inits: &[u64]) -> RenditionInfo {
        RenditionInfo {
            name: name.into(),
            kind: Kind::Video,
            codec: "avc1.64001f".into(),
            resolution: Some((640, 360)),
            frame_rate: Some(30.0),
            channels: None,
            inits: inits.to_vec(),
        }
    }

    #[test]
    fn journals_merge_in_order_without_duplicates() {
        let mut m = Manifest::new();
        m.merge(Manifest {
            renditions: vec![rend("video", &[1])],
            segments: vec![seg("video", 0), seg("video", 1)],
            ..Manifest::new()
        });
        m.merge(Manifest {
            renditions: vec![rend("video", &[2])],
            segments: vec![seg("video", 1), seg("video", 2)],
            ..Manifest::new()
        });
        assert_eq!(m.renditions.len(), 1);
        assert_eq!(m.renditions[0].inits, [1, 2]);
        let msns: Vec<u64> = m.segments_of("video").map(|s| s.msn).collect();
        assert_eq!(msns, [0, 1, 2]);
        assert!((m.duration() - 6.0).abs() < 1e-9);
        assert!(!m.complete);
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    proptest! {
        /// Whatever bytes a manifest object holds, reading it never panics.
        #[test]
        fn any_bytes_read_or_refused(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::from_json(&data);
        }
    }
}
