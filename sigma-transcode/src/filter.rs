//! Video processing: libavfilter graphs built from typed options.
//!
//! [`VideoProcessing`] lists what to do to the picture (deinterlace, crop, rotate, flip, mirror,
//! denoise, deblock, sharpen, auto-levels, pad to an aspect ratio, resize, frame-rate change).
//! [`VideoFilter`] turns it into a libavfilter graph: every filter argument is formatted from a
//! validated number here, never taken from user text, so a configuration cannot inject filters.
//!
//! The graph is a push/pull pair like the decoders: [`VideoFilter::push`] a [`Picture`],
//! [`VideoFilter::pull`] until `None`. Pictures are shared between threads (`Arc<Picture>`), so
//! they enter the graph with `av_buffersrc_write_frame`, which takes new references and leaves
//! the shared frame untouched (ffmpeg-next's `Source::add` would move the references out of a
//! frame other threads are reading). That call is the only `unsafe` in this module.
#![allow(unsafe_code)]

use crate::Error;
use crate::decode::Picture;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Write as _;

/// Largest picture the transcoder produces.
pub const MAX_WIDTH: u32 = 3840;
/// Largest picture the transcoder produces.
pub const MAX_HEIGHT: u32 = 2160;

/// A picture size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Pixels removed from each edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Crop {
    /// Columns removed on the left.
    pub left: u32,
    /// Rows removed at the top.
    pub top: u32,
    /// Columns removed on the right.
    pub right: u32,
    /// Rows removed at the bottom.
    pub bottom: u32,
}

/// A clockwise rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rotation {
    /// A quarter turn clockwise (width and height swap).
    #[serde(rename = "90")]
    Clockwise90,
    /// A half turn.
    #[serde(rename = "180")]
    Clockwise180,
    /// Three quarter turns clockwise, i.e. a quarter turn anticlockwise.
    #[serde(rename = "270")]
    Clockwise270,
}

/// A ratio of two positive integers (an aspect ratio or a frame rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    /// Numerator.
    pub num: u32,
    /// Denominator.
    pub den: u32,
}

impl Ratio {
    /// `num/den`.
    pub const fn new(num: u32, den: u32) -> Self {
        Ratio { num, den }
    }
    fn check(self, option: &'static str) -> Result<(), Error> {
        if self.num == 0 || self.den == 0 || self.num > 1_000_000 || self.den > 1_000_000 {
            return Err(Error::option(
                option,
                format!("{}/{} is not a ratio of 1..=1000000", self.num, self.den),
            ));
        }
        Ok(())
    }
}

/// What to do to every picture, in this order: deinterlace, crop, rotate, flip, mirror, denoise,
/// deblock, sharpen, auto-levels, pad to aspect, resize, frame rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoProcessing {
    /// Deinterlace every frame (libavfilter `bwdif`, one output frame per input frame).
    pub deinterlace: bool,
    /// Remove edges.
    pub crop: Option<Crop>,
    /// Rotate clockwise.
    pub rotate: Option<Rotation>,
    /// Flip upside down.
    pub flip: bool,
    /// Mirror left to right.
    pub mirror: bool,
    /// Denoise strength (`hqdn3d` luma spatial strength, 0–30; 4 is the usual default).
    pub denoise: Option<f32>,
    /// Remove block edges (libavfilter `deblock`, strong filter).
    pub deblock: bool,
    /// Sharpen amount (`unsharp` luma amount, 0–5; 1 is moderate).
    pub sharpen: Option<f32>,
    /// Stretch luma to the full range (libpostproc auto-levels).
    pub auto_levels: bool,
    /// Pad with black to this display aspect ratio (letterbox or pillarbox), centred.
    pub pad_to_aspect: Option<Ratio>,
    /// Scale to this size (at most 3840x2160, even numbers).
    pub resize: Option<Size>,
    /// Output frame rate (frames are dropped or repeated).
    pub frame_rate: Option<Ratio>,
}

fn even(v: u32) -> u32 {
    v & !1
}

impl VideoProcessing {
    /// Checks the options against a `width`x`height` input and returns the output size.
    pub fn output_size(&self, width: u32, height: u32) -> Result<Size, Error> {
        Ok(self.sizes(width, height)?.1)
    }

    /// The size after padding (if asked) and the final size.
    fn sizes(&self, width: u32, height: u32) -> Result<(Option<Size>, Size), Error> {
        let (mut w, mut h) = (width, height);
        if let Some(c) = self.crop {
            let cw = u64::from(c.left) + u64::from(c.right);
            let ch = u64::from(c.top) + u64::from(c.bottom);
            if cw + 16 > u64::from(w) || ch + 16 > u64::from(h) {
                return Err(Error::option(
                    "crop",
                    format!("{c:?} leaves less than 16x16 of a {w}x{h} picture"),
                ));
            }
            w = even(w - cw as u32);
            h = even(h - ch as u32);
        }
        if matches!(
            self.rotate,
            Some(Rotation::Clockwise90 | Rotation::Clockwise270)
        ) {
            std::mem::swap(&mut w, &mut h);
        }
        if let Some(d) = self.denoise
            && !(0.0..=30.0).contains(&d)
        {
            return Err(Error::option("denoise", format!("{d} is outside 0..=30")));
        }
        if let Some(s) = self.sharpen
            && !(0.0..=5.0).contains(&s)
        {
            return Err(Error::option("sharpen", format!("{s} is outside 0..=5")));
        }
        if let Some(a) = self.pad_to_aspect {
            a.check("pad_to_aspect")?;
            let (num, den) = (u64::from(a.num), u64::from(a.den));
            // w/h < num/den: pillarbox (wider); otherwise letterbox (taller).
            if u64::from(w) * den < u64::from(h) * num {
                w = (u64::from(h) * num / den) as u32;
            } else {
                h = (u64::from(w) * den / num) as u32;
            }
            w = (w + 1) & !1;
            h = (h + 1) & !1;
            if w > MAX_WIDTH * 4 || h > MAX_HEIGHT * 4 {
                return Err(Error::option(
                    "pad_to_aspect",
                    format!("{w}x{h} is too large"),
                ));
            }
        }
        let padded = self.pad_to_aspect.map(|_| Size {
            width: w,
            height: h,
        });
        if let Some(s) = self.resize {
            check_size("resize", s)?;
            (w, h) = (s.width, s.height);
        }
        if let Some(r) = self.frame_rate {
            r.check("frame_rate")?;
        }
        Ok((
            padded,
            Size {
                width: w,
                height: h,
            },
        ))
    }

    /// True when nothing is asked: pictures pass through unchanged.
    pub fn is_identity(&self) -> bool {
        *self == VideoProcessing::default()
    }

    /// The libavfilter chain for these options, built from validated numbers only.
    fn chain(&self, width: u32, height: u32) -> Result<String, Error> {
        let (padded, _) = self.sizes(width, height)?;
        let mut f: Vec<String> = Vec::new();
        if self.deinterlace {
            f.push("bwdif=mode=send_frame:parity=auto:deint=all".into());
        }
        if let Some(c) = self.crop {
            let w = even(width - c.left - c.right);
            let h = even(height - c.top - c.bottom);
            f.push(format!("crop=w={w}:h={h}:x={}:y={}:exact=1", c.left, c.top));
        }
        match self.rotate {
            Some(Rotation::Clockwise90) => f.push("transpose=dir=clock".into()),
            Some(Rotation::Clockwise180) => f.push("hflip,vflip".into()),
            Some(Rotation::Clockwise270) => f.push("transpose=dir=cclock".into()),
            None => {}
        }
        if self.flip {
            f.push("vflip".into());
        }
        if self.mirror {
            f.push("hflip".into());
        }
        if let Some(d) = self.denoise {
            f.push(format!("hqdn3d=luma_spatial={d:.3}"));
        }
        if self.deblock {
            f.push("deblock=filter=strong:block=8".into());
        }
        if let Some(s) = self.sharpen {
            f.push(format!("unsharp=lx=5:ly=5:la={s:.3}:cx=5:cy=5:ca=0"));
        }
        if self.auto_levels {
            f.push("pp=subfilters=al/f".into());
        }
        if let Some(p) = padded {
            f.push(format!(
                "pad=w={}:h={}:x=(ow-iw)/2:y=(oh-ih)/2:color=black",
                p.width, p.height
            ));
        }
        if let Some(s) = self.resize {
            f.push(format!(
                "scale=w={}:h={}:flags=bicubic,setsar=1",
                s.width, s.height
            ));
        }
        if let Some(r) = self.frame_rate {
            f.push(format!("fps=fps={}/{}", r.num, r.den));
        }
        f.push("format=pix_fmts=yuv420p".into());
        Ok(f.join(","))
    }
}

pub(crate) fn check_size(option: &'static str, s: Size) -> Result<(), Error> {
    if s.width < 16
        || s.height < 16
        || s.width > MAX_WIDTH
        || s.height > MAX_HEIGHT
        || s.width % 2 == 1
        || s.height % 2 == 1
    {
        return Err(Error::option(
            option,
            format!(
                "{}x{} is not an even size between 16x16 and {MAX_WIDTH}x{MAX_HEIGHT}",
                s.width, s.height
            ),
        ));
    }
    Ok(())
}

/// Sends `frame` into a buffer source without taking its references away.
pub(crate) fn write_frame(
    graph: &mut ff::filter::Graph,
    name: &str,
    frame: Option<&ff::Frame>,
) -> Result<(), Error> {
    let mut ctx = graph.get(name).ok_or(Error::Ffmpeg {
        what: "finding the filter graph input",
        source: ff::Error::FilterNotFound,
    })?;
    // SAFETY: `ctx` is a live buffer-source context owned by `graph`, borrowed mutably for the
    // call. `av_buffersrc_write_frame` only reads `frame` (it makes new references to its
    // buffers); a null frame signals end of stream.
    let ret = unsafe {
        let f = frame.map_or(std::ptr::null(), |f| f.as_ptr());
        ff::ffi::av_buffersrc_write_frame(ctx.as_mut_ptr(), f)
    };
    if ret < 0 {
        return Err(Error::Ffmpeg {
            what: "feeding the filter graph",
            source: ff::Error::from(ret),
        });
    }
    Ok(())
}

/// Reads one frame from a buffer sink: `Ok(false)` when none is ready or the graph is drained.
pub(crate) fn read_frame(
    graph: &mut ff::filter::Graph,
    name: &str,
    frame: &mut ff::Frame,
) -> Result<bool, Error> {
    let mut ctx = graph.get(name).ok_or(Error::Ffmpeg {
        what: "finding the filter graph output",
        source: ff::Error::FilterNotFound,
    })?;
    match ctx.sink().frame(frame) {
        Ok(()) => Ok(true),
        Err(ff::Error::Eof) => Ok(false),
        Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => Ok(false),
        Err(e) => Err(Error::ffmpeg("reading the filter graph")(e)),
    }
}

/// The input a [`VideoFilter`] expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoInput {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format of the decoded pictures.
    pub format: ff::format::Pixel,
    /// Ticks per second of picture timestamps.
    pub timescale: u32,
}

/// A libavfilter graph applying [`VideoProcessing`] to pictures of one size and format.
///
/// Keyframe marks survive the graph: the first output picture at or after a marked input's time
/// is marked, so a frame-rate change still starts GOPs at the source's keyframe times.
pub struct VideoFilter {
    graph: ff::filter::Graph,
    input: VideoInput,
    output: Size,
    out_time_base: ff::Rational,
    pending_keyframes: VecDeque<i64>,
}

impl VideoFilter {
    /// Builds the graph for `processing` on pictures described by `input`.
    pub fn new(processing: &VideoProcessing, input: VideoInput) -> Result<Self, Error> {
        crate::decode::init();
        let output = processing.output_size(input.width, input.height)?;
        let chain = processing.chain(input.width, input.height)?;
        let mut graph = ff::filter::Graph::new();
        let mut args = String::new();
        let _ = write!(
            args,
            "video_size={}x{}:pix_fmt={}:time_base=1/{}:pixel_aspect=1/1",
            input.width,
            input.height,
            ff::ffi::AVPixelFormat::from(input.format) as i32,
            input.timescale
        );
        let buffer = ff::filter::find("buffer").ok_or(Error::Ffmpeg {
            what: "finding the buffer filter",
            source: ff::Error::FilterNotFound,
        })?;
        let sink = ff::filter::find("buffersink").ok_or(Error::Ffmpeg {
            what: "finding the buffersink filter",
            source: ff::Error::FilterNotFound,
        })?;
        graph
            .add(&buffer, "in", &args)
            .map_err(Error::ffmpeg("adding the video buffer source"))?;
        graph
            .add(&sink, "out", "")
            .map_err(Error::ffmpeg("adding the video buffer sink"))?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&chain))
            .map_err(Error::ffmpeg("parsing the video filter chain"))?;
        graph
            .validate()
            .map_err(Error::ffmpeg("configuring the video filter graph"))?;
        let out_time_base = graph
            .get("out")
            .map(|mut c| c.sink().time_base())
            .unwrap_or(ff::Rational::new(1, input.timescale as i32));
        Ok(VideoFilter {
            graph,
            input,
            output,
            out_time_base,
            pending_keyframes: VecDeque::new(),
        })
    }

    /// The size of every output picture.
    pub fn output_size(&self) -> Size {
        self.output
    }

    /// The input this graph was built for; a picture of another size or format needs a new
    /// graph.
    pub fn input(&self) -> VideoInput {
        self.input
    }

    /// True when `picture` matches the input this graph was built for.
    pub fn accepts(&self, picture: &Picture) -> bool {
        picture.width() == self.input.width
            && picture.height() == self.input.height
            && picture.format() == self.input.format
    }

    /// Feeds one picture. Pictures of another size or format are an [`Error::Unsupported`]
    /// (build a new graph for them).
    pub fn push(&mut self, picture: &Picture) -> Result<(), Error> {
        if !self.accepts(picture) {
            return Err(Error::Unsupported(format!(
                "a {}x{} picture entered a graph built for {}x{}",
                picture.width(),
                picture.height(),
                self.input.width,
                self.input.height
            )));
        }
        if picture.is_keyframe() {
            self.pending_keyframes.push_back(picture.pts());
            if self.pending_keyframes.len() > 64 {
                self.pending_keyframes.pop_front();
            }
        }
        let mut frame = picture.frame.clone_ref();
        frame.set_pts(Some(picture.pts()));
        write_frame(&mut self.graph, "in", Some(&frame))
    }

    /// Signals the end of the input; [`pull`](Self::pull) then drains the graph.
    pub fn finish(&mut self) -> Result<(), Error> {
        write_frame(&mut self.graph, "in", None)
    }

    /// The next output picture, if one is ready.
    pub fn pull(&mut self) -> Result<Option<Picture>, Error> {
        let mut frame = ff::frame::Video::empty();
        if !read_frame(&mut self.graph, "out", &mut frame)? {
            return Ok(None);
        }
        let tb = self.out_time_base;
        let pts = frame.pts().unwrap_or(0);
        let pts = sigma_core::time::rescale(
            pts.saturating_mul(i64::from(tb.numerator())),
            tb.denominator().max(1) as u32,
            self.input.timescale,
        );
        let mut keyframe = false;
        while self.pending_keyframes.front().is_some_and(|&k| k <= pts) {
            self.pending_keyframes.pop_front();
            keyframe = true;
        }
        Ok(Some(Picture::new(frame, pts, keyframe)))
    }
}

/// Extension: a new reference to the same buffers (no pixel copy).
pub(crate) trait CloneRef {
    fn clone_ref(&self) -> Self;
}

macro_rules! clone_ref {
    ($t:ty) => {
        impl CloneRef for $t {
            fn clone_ref(&self) -> Self {
                // SAFETY: av_frame_clone makes a new AVFrame referencing the same refcounted buffers
                // and only reads `self`; the result is owned by the returned wrapper (freed on drop).
                // A null result (out of memory) yields an empty frame, which the graph rejects.
                unsafe {
                    let p = ff::ffi::av_frame_clone(self.as_ptr());
                    if p.is_null() {
                        <$t>::empty()
                    } else {
                        <$t>::wrap(p)
                    }
                }
            }
        }
    };
}

clone_ref!(ff::frame::Video);
clone_ref!(ff::frame::Audio);
