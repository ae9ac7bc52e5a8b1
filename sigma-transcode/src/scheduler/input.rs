//! The caller's side of a [`Transcoder`]: [`push`](Transcoder::push),
//! [`gap`](Transcoder::gap) and [`set_info`](Transcoder::set_info), and the overload policy.
//! Runs on the caller's thread; it only sends to the bounded input queues of the decode and
//! audio threads (and pushes passthrough and copied frames to the rendition sinks).

use super::sink::push_to;
use super::{DropCause, Overload, TranscodeEvent, Transcoder};
use sigma_core::{Frame, MediaKind, StreamInfo};
use std::sync::Arc;
use std::sync::mpsc::TrySendError;

/// A message on the decode thread's input queue.
pub(super) enum VideoInputMsg {
    Frame(Frame),
    Info(Arc<StreamInfo>),
    Reset,
}

impl Transcoder {
    /// Feeds one source frame (video track: H.264 AVCC; audio track: raw AAC). Frames of
    /// tracks the source info does not list are ignored.
    pub fn push(&mut self, frame: Frame) {
        let Some(track) = self.info.track(frame.track()) else {
            return;
        };
        match track.kind() {
            MediaKind::Video if Some(track.id()) == self.info.primary_video().map(|t| t.id()) => {
                self.push_video(frame)
            }
            MediaKind::Video => {}
            MediaKind::Audio => {
                for p in &self.audio_copy {
                    push_to(p, frame.clone());
                }
                if let Some(tx) = &self.audio {
                    let sent = match self.overload {
                        Overload::Block => tx.send(frame).is_ok(),
                        Overload::Drop => !matches!(tx.try_send(frame), Err(TrySendError::Full(_))),
                    };
                    if !sent {
                        self.events.send(TranscodeEvent::SourceDropped {
                            frames: 1,
                            cause: DropCause::Overload,
                        });
                    }
                }
            }
        }
    }

    fn push_video(&mut self, frame: Frame) {
        if let Some(p) = &self.passthrough {
            push_to(p, frame.clone());
        }
        let Some(tx) = &self.video else { return };
        if let Some(info) = self.pending_info.take()
            && let Err(TrySendError::Full(VideoInputMsg::Info(info))) =
                tx.try_send(VideoInputMsg::Info(info))
        {
            // Still no room: this frame cannot go before the info does.
            self.pending_info = Some(info);
            self.dropping.get_or_insert(DropCause::Overload);
            self.dropped += 1;
            return;
        }
        if self.dropping.is_some() && !frame.is_keyframe() {
            self.dropped += 1;
            return;
        }
        match self.overload {
            Overload::Block => {
                let _ = tx.send(VideoInputMsg::Frame(frame));
            }
            Overload::Drop => match tx.try_send(VideoInputMsg::Frame(frame)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropping.get_or_insert(DropCause::Overload);
                    self.dropped += 1;
                    return;
                }
            },
        }
        if let Some(cause) = self.dropping.take() {
            self.report_dropped(cause);
        }
    }

    /// The source lost frames (a bus [`Gap`](sigma_core::bus::Event::Gap)): decoding restarts at the next
    /// keyframe.
    pub fn gap(&mut self, frames: u64) {
        self.events.send(TranscodeEvent::SourceDropped {
            frames,
            cause: DropCause::Gap,
        });
        if let Some(cause) = self.dropping.take() {
            self.report_dropped(cause);
        }
        self.dropping = Some(DropCause::Gap);
        if let Some(tx) = &self.video {
            let _ = tx.try_send(VideoInputMsg::Reset);
        }
    }

    /// New source stream info (a new generation): the video decoder is reopened if the avcC
    /// changed. Renditions keep their sizes and encoders. Never waits with
    /// [`Overload::Drop`]: when the queue is full the info goes ahead of the next frame.
    pub fn set_info(&mut self, info: Arc<StreamInfo>) {
        if let Some(tx) = &self.video {
            match self.overload {
                Overload::Block => {
                    let _ = tx.send(VideoInputMsg::Info(info.clone()));
                }
                Overload::Drop => {
                    if let Err(TrySendError::Full(_)) =
                        tx.try_send(VideoInputMsg::Info(info.clone()))
                    {
                        self.pending_info = Some(info.clone());
                    }
                }
            }
        }
        self.info = info;
    }

    pub(super) fn report_dropped(&mut self, cause: DropCause) {
        let frames = std::mem::take(&mut self.dropped);
        if frames > 0 {
            self.events
                .send(TranscodeEvent::SourceDropped { frames, cause });
        }
    }
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
mod tests {
    use super::super::tests::{short_source, video_pts};
    use super::super::{Options, Transcoder};
    use super::*;
    use crate::Ladder;
    use crate::encode::Preset;
    use sigma_core::TrackId;
    use sigma_core::bus::{self, Window};

    #[test]
    fn overload_drops_at_the_source_and_keeps_renditions_aligned() {
        let src = short_source(3.0);
        let mut ladder = Ladder::default_ladder();
        for r in &mut ladder.renditions {
            r.video.preset = Preset::Slow;
        }
        let options = Options {
            input_queue: 2,
            rendition_queue: 1,
            overload: Overload::Drop,
            window: Window {
                max_groups: 1000,
                max_frames: 100_000,
                max_bytes: 1 << 30,
            },
            ..Options::default()
        };
        let (mut t, outputs) = Transcoder::new(&ladder, &src.info, options).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        // Three times faster than real time (a stand-in for a CPU that cannot keep up).
        for f in &src.frames {
            if f.track() == TrackId(1) {
                std::thread::sleep(std::time::Duration::from_millis(11));
            }
            t.push(f.clone());
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        let dropped: u64 = events
            .iter()
            .filter_map(|e| match e {
                TranscodeEvent::SourceDropped {
                    frames,
                    cause: DropCause::Overload,
                } => Some(*frames),
                _ => None,
            })
            .sum();
        assert!(dropped > 0, "{events:?}");
        let mut seen = Vec::new();
        for c in &mut consumers {
            let mut frames = Vec::new();
            loop {
                match c.pull() {
                    Some(bus::Event::Frame(f)) => frames.push(f),
                    Some(bus::Event::Info(_)) => {}
                    Some(bus::Event::End) => break,
                    other => panic!("{other:?}"),
                }
            }
            seen.push(video_pts(&frames));
        }
        let total = src.video().count();
        let (all, keys) = &seen[0];
        assert!(
            all.len() < total,
            "{} of {total} pictures encoded",
            all.len()
        );
        assert!(
            !keys.is_empty() && keys[0] == all[0],
            "starts with a keyframe"
        );
        for s in &seen[1..] {
            assert_eq!(s, &seen[0], "every rendition dropped the same pictures");
        }
    }
}
