//! The audio thread, when the ladder encodes audio: decodes the source AAC once, runs the audio
//! processing graph (libavfilter) and encodes with fdk-aac; every rendition's sink gets the same
//! frames. Reads the audio input queue [`Transcoder::push`](super::Transcoder::push) fills.

use super::sink::{SharedProducer, fail, push_to};
use super::{Events, TranscodeEvent};
use crate::Error;
use crate::audio::AudioFilter;
use crate::decode::AudioDecoder;
use sigma_core::bus::StreamError;
use sigma_core::{CodecConfig, Frame, TrackId, TrackInfo};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

#[cfg(feature = "fdk-aac")]
type AudioEncoder = crate::encode::AacEncoder;
#[cfg(not(feature = "fdk-aac"))]
type AudioEncoder = std::convert::Infallible;

pub(super) struct AudioWorker {
    pub(super) track: TrackInfo,
    source: TrackInfo,
    processing: crate::audio::AudioProcessing,
    encoder: AudioEncoder,
    pub(super) producers: Vec<SharedProducer>,
    pub(super) events: Option<Events>,
}

impl AudioWorker {
    #[cfg(feature = "fdk-aac")]
    pub(super) fn new(
        settings: &crate::encode::AacSettings,
        processing: crate::audio::AudioProcessing,
        source: &TrackInfo,
        out: crate::audio::AudioOutput,
    ) -> Result<Self, Error> {
        let encoder = crate::encode::AacEncoder::new(settings, out.rate, out.channels, TrackId(2))?;
        let track = TrackInfo::new(
            TrackId(2),
            out.rate,
            CodecConfig::Aac(encoder.config().clone()),
        )?;
        Ok(AudioWorker {
            track,
            source: source.clone(),
            processing,
            encoder,
            producers: Vec::new(),
            events: None,
        })
    }

    #[cfg(not(feature = "fdk-aac"))]
    pub(super) fn new(
        _: &crate::encode::AacSettings,
        _: crate::audio::AudioProcessing,
        _: &TrackInfo,
        _: crate::audio::AudioOutput,
    ) -> Result<Self, Error> {
        Err(Error::FeatureDisabled("fdk-aac"))
    }

    #[cfg(not(feature = "fdk-aac"))]
    pub(super) fn run(self, _rx: Receiver<Frame>) {
        match self.encoder {}
    }

    #[cfg(feature = "fdk-aac")]
    pub(super) fn run(mut self, rx: Receiver<Frame>) {
        let result = (|| -> Result<(), Error> {
            let CodecConfig::Aac(c) = self.source.codec() else {
                return Err(Error::Unsupported("the source audio is not AAC".into()));
            };
            let mut decoder = AudioDecoder::new(c, self.source.timescale(), self.source.id().0)?;
            let mut graph: Option<AudioFilter> = None;
            while let Ok(f) = rx.recv() {
                if let Err(e) = decoder.push(&f) {
                    self.report(&e);
                }
                self.drain(&mut decoder, &mut graph)?;
            }
            decoder.finish()?;
            self.drain(&mut decoder, &mut graph)?;
            if let Some(g) = &mut graph {
                g.finish()?;
                self.drain_graph(g)?;
            }
            self.encoder.finish()?;
            self.emit();
            Ok(())
        })();
        if let Err(e) = result {
            self.report(&e);
            let e: StreamError = Arc::new(e);
            for p in &self.producers {
                fail(p, e.clone());
            }
        }
    }

    fn report(&self, e: &Error) {
        if let Some(ev) = &self.events {
            ev.send(TranscodeEvent::DecodeError {
                track: self.source.id().0,
                message: e.to_string(),
            });
        }
    }

    #[cfg(feature = "fdk-aac")]
    fn drain(
        &mut self,
        decoder: &mut AudioDecoder,
        graph: &mut Option<AudioFilter>,
    ) -> Result<(), Error> {
        loop {
            let block = match decoder.pull() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.report(&e);
                    return Ok(());
                }
            };
            if graph.as_ref().is_none_or(|g| !g.accepts(&block)) {
                if let Some(old) = graph {
                    old.finish()?;
                    self.drain_graph(old)?;
                }
                *graph = Some(AudioFilter::new(
                    &self.processing,
                    crate::audio::AudioInput {
                        rate: block.rate(),
                        channels: block.channels(),
                        format: block.frame.format(),
                        timescale: self.source.timescale(),
                    },
                    block.pts(),
                )?);
            }
            if let Some(g) = graph {
                g.push(&block)?;
                self.drain_graph(g)?;
            }
        }
    }

    #[cfg(feature = "fdk-aac")]
    fn drain_graph(&mut self, g: &mut AudioFilter) -> Result<(), Error> {
        while let Some(b) = g.pull()? {
            self.encoder.push(&b)?;
            self.emit();
        }
        Ok(())
    }

    #[cfg(feature = "fdk-aac")]
    fn emit(&mut self) {
        while let Some(f) = self.encoder.pull() {
            for p in &self.producers {
                push_to(p, f.clone());
            }
        }
    }
}
