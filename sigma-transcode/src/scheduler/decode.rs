//! The decode thread: decodes each source picture once (libavcodec, frame-threaded), marks GOP
//! starts by the keyframe policy, applies the ladder's shared processing (a libavfilter graph)
//! and sends the same `Arc<Picture>` to every rendition's bounded queue. Reads from the input
//! queue [`Transcoder::push`](super::Transcoder::push) fills.

use super::Events;
use super::TranscodeEvent;
use super::input::VideoInputMsg;
use crate::Error;
use crate::decode::{DecoderOptions, Picture, VideoDecoder};
use crate::filter::{VideoFilter, VideoInput, VideoProcessing};
use crate::ladder::KeyframePolicy;
use sigma_core::{CodecConfig, StreamInfo, TrackId};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

pub(super) struct DecodeWorker {
    pub(super) decoder: VideoDecoder,
    pub(super) decoder_options: DecoderOptions,
    pub(super) avcc: bytes::Bytes,
    pub(super) timescale: u32,
    pub(super) track: TrackId,
    pub(super) processing: VideoProcessing,
    pub(super) graph: Option<VideoFilter>,
    pub(super) keyframes: KeyframePolicy,
    pub(super) next_keyframe: Option<i64>,
    pub(super) outputs: Vec<SyncSender<Arc<Picture>>>,
    pub(super) events: Events,
}

impl DecodeWorker {
    pub(super) fn run(mut self, rx: Receiver<VideoInputMsg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                VideoInputMsg::Frame(f) => {
                    if let Err(e) = self.decoder.push(&f) {
                        self.decode_error(&e);
                    }
                    self.drain();
                }
                VideoInputMsg::Reset => self.decoder.reset(),
                VideoInputMsg::Info(info) => self.new_info(&info),
            }
        }
        let _ = self.decoder.finish();
        self.drain();
        if let Some(g) = &mut self.graph {
            if g.finish().is_ok() {
                self.drain_graph();
            }
        }
        // Dropping the senders ends the rendition threads.
    }

    fn decode_error(&self, e: &Error) {
        self.events.send(TranscodeEvent::DecodeError {
            track: self.track.0,
            message: e.to_string(),
        });
    }

    fn new_info(&mut self, info: &StreamInfo) {
        let Some(t) = info.track(self.track) else {
            return;
        };
        let CodecConfig::H264(c) = t.codec() else {
            return;
        };
        if c.avcc() == &self.avcc {
            return;
        }
        let _ = self.decoder.finish();
        self.drain();
        match VideoDecoder::new(c, self.timescale, self.track.0, self.decoder_options) {
            Ok(d) => {
                self.decoder = d;
                self.avcc = c.avcc().clone();
            }
            Err(e) => self.decode_error(&e),
        }
    }

    fn drain(&mut self) {
        loop {
            match self.decoder.pull() {
                Ok(Some(p)) => self.picture(p),
                Ok(None) => break,
                Err(e) => {
                    self.decode_error(&e);
                    break;
                }
            }
        }
    }

    fn picture(&mut self, mut p: Picture) {
        if let KeyframePolicy::Every { seconds } = self.keyframes {
            let step = ((seconds * f64::from(self.timescale)).round() as i64).max(1);
            let key = match self.next_keyframe {
                None => true,
                Some(next) => p.pts() >= next,
            };
            if key {
                let base = self.next_keyframe.unwrap_or(p.pts());
                let mut next = base;
                while next <= p.pts() {
                    next += step;
                }
                self.next_keyframe = Some(next);
            }
            p.set_keyframe(key);
        }
        if self.processing.is_identity() {
            self.send(p);
            return;
        }
        let rebuild = self.graph.as_ref().is_none_or(|g| !g.accepts(&p));
        if rebuild {
            let input = VideoInput {
                width: p.width(),
                height: p.height(),
                format: p.format(),
                timescale: self.timescale,
            };
            match VideoFilter::new(&self.processing, input) {
                Ok(g) => self.graph = Some(g),
                Err(e) => {
                    self.decode_error(&e);
                    return;
                }
            }
        }
        if let Some(g) = &mut self.graph {
            if let Err(e) = g.push(&p) {
                self.decode_error(&e);
            }
        }
        self.drain_graph();
    }

    fn drain_graph(&mut self) {
        loop {
            let next = match &mut self.graph {
                Some(g) => g.pull(),
                None => return,
            };
            match next {
                Ok(Some(p)) => self.send(p),
                Ok(None) => return,
                Err(e) => {
                    self.decode_error(&e);
                    return;
                }
            }
        }
    }

    fn send(&self, p: Picture) {
        let p = Arc::new(p);
        for tx in &self.outputs {
            // A rendition that failed has hung up; the others go on.
            let _ = tx.send(p.clone());
        }
    }
}

#[cfg(all(test, feature = "x264", feature = "fdk-aac"))]
mod tests {
    use super::super::tests::{drain, fixture, short_source, test_options, transcode, video_pts};
    use super::super::{TranscodeEvent, Transcoder};
    use crate::Ladder;
    use crate::filter::{Rotation, Size};
    use crate::ladder::{Conditions, Rendition};
    use sigma_core::{Frame, StreamInfo, TrackId};

    #[test]
    fn corrupt_frames_are_events_not_crashes() {
        let mut src = short_source(2.0);
        let mut n = 0;
        for f in &mut src.frames {
            if f.track() != TrackId(1) {
                continue;
            }
            n += 1;
            let bad: Option<&'static [u8]> = match n {
                // A NAL length far past the payload.
                10 => Some(&[0, 0, 0xff, 0xff, 0x41, 0x9a, 0x00]),
                // Noise as a slice.
                11 => Some(&[0, 0, 0, 8, 0x41, 0xff, 0x13, 0x77, 0x00, 0xde, 0xad, 0xbe]),
                // Empty.
                12 => Some(&[]),
                _ => None,
            };
            if let Some(bad) = bad {
                *f = Frame::new(
                    f.track(),
                    f.dts(),
                    f.pts(),
                    f.is_keyframe(),
                    bytes::Bytes::from_static(bad),
                );
            }
        }
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.truncate(2);
        let (mut t, outputs) = Transcoder::new(&ladder, &src.info, test_options()).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &src.frames {
            t.push(f.clone());
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, TranscodeEvent::DecodeError { track: 1, .. })),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, TranscodeEvent::RenditionFailed { .. }))
        );
        let a = video_pts(&drain(&mut consumers[0]));
        let b = video_pts(&drain(&mut consumers[1]));
        assert!(
            a.0.len() > src.video().count() / 2,
            "{} pictures",
            a.0.len()
        );
        assert_eq!(a, b, "both renditions got the same pictures");
    }

    #[test]
    fn source_resolution_change_mid_stream() {
        let a = short_source(1.0);
        let b = fixture::read_mp4(&fixture::ffmpeg_source_480p());
        // B starts one frame after A's last picture, in both decode and presentation order.
        let offset = a.video().map(|f| f.pts()).max().unwrap() + 3000
            - b.video().map(|f| f.dts()).min().unwrap();
        let mut ladder = Ladder::default_ladder();
        ladder.renditions.remove(0);
        let (mut t, outputs) = Transcoder::new(&ladder, &a.info, test_options()).unwrap();
        let mut consumers: Vec<_> = outputs
            .renditions
            .iter()
            .map(|r| r.subscriber.subscribe())
            .collect();
        for f in &a.frames {
            t.push(f.clone());
        }
        let b_info = StreamInfo::new(2, b.info.tracks().to_vec()).unwrap();
        t.set_info(b_info.clone());
        for f in b.video() {
            t.push(f.clone().shifted(offset));
        }
        t.finish().unwrap();
        let events: Vec<_> = outputs.events.try_iter().collect();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                TranscodeEvent::DecodeError { .. } | TranscodeEvent::RenditionFailed { .. }
            )),
            "{events:?}"
        );
        let total = a.video().count() + b.video().count();
        for (r, c) in outputs.renditions.iter().zip(&mut consumers) {
            let frames = drain(c);
            assert_eq!(video_pts(&frames).0.len(), total, "{}", r.name);
            let file = fixture::tmp_dir().join(format!("switch-{}.flv", r.name));
            fixture::write_flv(&file, &r.info, &frames);
            let probe = fixture::probe_video(&file);
            assert_eq!(probe.len(), total);
            assert!(
                probe
                    .iter()
                    .all(|p| (p.width, p.height) == (r.size.width, r.size.height)),
                "{}: size kept across the switch",
                r.name
            );
        }
    }

    #[test]
    fn shared_processing_rotates_before_the_renditions() {
        let src = short_source(0.5);
        let mut ladder = Ladder::default_ladder();
        ladder.processing.rotate = Some(Rotation::Clockwise90);
        ladder.renditions = vec![Rendition {
            name: "portrait".into(),
            height: 640,
            width: None,
            frame_rate: None,
            video: crate::encode::H264Settings {
                bitrate_kbps: 800,
                ..Default::default()
            },
            conditions: Conditions::default(),
        }];
        let (outs, _) = transcode(&ladder, &src);
        assert_eq!(
            outs[0].0.size,
            Size {
                width: 360,
                height: 640
            }
        );
        let dir = fixture::tmp_dir();
        let file = dir.join("portrait.flv");
        fixture::write_flv(&file, &outs[0].0.info, &outs[0].1);
        let probe = fixture::probe_video(&file);
        assert_eq!(probe.len(), src.video().count());
        assert!(probe.iter().all(|p| (p.width, p.height) == (360, 640)));
    }
}
