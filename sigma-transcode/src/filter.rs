//! Video processing: libavfilter graphs built from typed options.
//!
//! [`VideoProcessing`] lists what to do to the picture (deinterlace, crop, rotate, flip, mirror,
//! denoise, deblock, sharpen, auto-levels, pad to an aspect ratio, resize, frame-rate change).
//! [`VideoFilter`] turns it into a libavfilter graph: every filter argument is formatted from a
//! validated number here, never taken from user text, so a configuration cannot inject filters.
//!
//! The graph is a push/pull pair like the decoders: [`VideoFilter::push`] a [`Picture`],
//! [`VideoFilter::pull`] until `None`. Pictures are shared between threads (`Arc<Picture>`), so
//! they enter the graph as new references to the same buffers (`av_frame_clone`, no pixel copy)
//! through `av_buffersrc_write_frame`, which leaves the shared frame untouched (ffmpeg-next's
//! `Source::add` would move the references out of a frame other threads are reading). Frames
//! with negative line sizes (what `vflip` produces) are copied once into positive ones, which
//! ffmpeg-next's plane accessors and x264 need. Those three calls are the module's only
//! `unsafe`, each with its invariant stated.
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
    /// Stretch the levels to the full range, per frame (libavfilter `normalize` with linked
    /// channels, so colours keep their balance).
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
        if !(16..=16_384).contains(&width) || !(16..=16_384).contains(&height) {
            return Err(Error::Unsupported(format!(
                "a {width}x{height} picture (16x16 to 16384x16384 are processed)"
            )));
        }
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
            let (pw, ph) = if u64::from(w) * den < u64::from(h) * num {
                (u64::from(h) * num / den, u64::from(h))
            } else {
                (u64::from(w), u64::from(w) * den / num)
            };
            let (pw, ph) = ((pw + 1) & !1, (ph + 1) & !1);
            if pw > u64::from(MAX_WIDTH) * 4 || ph > u64::from(MAX_HEIGHT) * 4 {
                return Err(Error::option(
                    "pad_to_aspect",
                    format!("{pw}x{ph} is too large"),
                ));
            }
            (w, h) = (pw as u32, ph as u32);
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
            f.push("normalize=smoothing=0:independence=0".into());
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
        let frame = positive_strides(frame)?;
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

/// `vflip` (and so flip and 180° rotation) hands out frames with negative line sizes, which
/// ffmpeg-next's plane accessors and x264 cannot take: such a frame is copied into a fresh one.
fn positive_strides(frame: ff::frame::Video) -> Result<ff::frame::Video, Error> {
    // SAFETY: reads the line sizes of a live frame we own.
    let negative = unsafe { (*frame.as_ptr()).linesize.iter().any(|&l| l < 0) };
    if !negative {
        return Ok(frame);
    }
    let mut copy = ff::frame::Video::new(frame.format(), frame.width(), frame.height());
    // SAFETY: both frames are live, of the same format and size; `copy` owns freshly
    // allocated buffers with positive line sizes and `frame` is only read.
    let ret = unsafe { ff::ffi::av_frame_copy(copy.as_mut_ptr(), frame.as_ptr()) };
    if ret < 0 {
        return Err(Error::ffmpeg("copying a flipped frame")(ff::Error::from(
            ret,
        )));
    }
    copy.set_pts(frame.pts());
    Ok(copy)
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

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK: u8 = 16;
    const WHITE: u8 = 235;

    use crate::fixture::picture;

    /// Black with a white 2x2 marker at (`mx`, `my`).
    fn marker(w: u32, h: u32, mx: u32, my: u32) -> Picture {
        picture(w, h, 0, true, |x, y| {
            if (mx..mx + 2).contains(&x) && (my..my + 2).contains(&y) {
                WHITE
            } else {
                BLACK
            }
        })
    }

    fn run(processing: &VideoProcessing, input: &[Picture]) -> Vec<Picture> {
        let first = &input[0];
        let mut f = VideoFilter::new(
            processing,
            VideoInput {
                width: first.width(),
                height: first.height(),
                format: first.format(),
                timescale: 90_000,
            },
        )
        .unwrap();
        let mut out = Vec::new();
        for p in input {
            f.push(p).unwrap();
            while let Some(o) = f.pull().unwrap() {
                out.push(o);
            }
        }
        f.finish().unwrap();
        while let Some(o) = f.pull().unwrap() {
            out.push(o);
        }
        out
    }

    fn one(processing: VideoProcessing, input: Picture) -> Picture {
        let mut out = run(&processing, &[input]);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    /// Where the marker is: the top-left of the bright pixels.
    fn find_marker(p: &Picture) -> (u32, u32) {
        for y in 0..p.height() {
            for x in 0..p.width() {
                if p.luma(x, y).unwrap() > 128 {
                    return (x, y);
                }
            }
        }
        panic!("no marker in {p:?}");
    }

    fn luma_stats(p: &Picture) -> (u8, u8, f64) {
        let (mut lo, mut hi, mut sum) = (255u8, 0u8, 0f64);
        for y in 0..p.height() {
            for x in 0..p.width() {
                let v = p.luma(x, y).unwrap();
                lo = lo.min(v);
                hi = hi.max(v);
                sum += f64::from(v);
            }
        }
        (lo, hi, sum / f64::from(p.width() * p.height()))
    }

    #[test]
    fn rotate_swaps_size_and_moves_a_known_pixel() {
        let (w, h, mx, my) = (64, 32, 4, 2);
        let rot = |r| VideoProcessing {
            rotate: Some(r),
            ..Default::default()
        };
        let p = one(rot(Rotation::Clockwise90), marker(w, h, mx, my));
        assert_eq!((p.width(), p.height()), (h, w));
        // Clockwise: (x, y) → (h-1-y, x); the 2x2 marker's top-left is then (h-2-y, x).
        assert_eq!(find_marker(&p), (h - 2 - my, mx));
        let p = one(rot(Rotation::Clockwise180), marker(w, h, mx, my));
        assert_eq!((p.width(), p.height()), (w, h));
        assert_eq!(find_marker(&p), (w - 2 - mx, h - 2 - my));
        let p = one(rot(Rotation::Clockwise270), marker(w, h, mx, my));
        assert_eq!((p.width(), p.height()), (h, w));
        assert_eq!(find_marker(&p), (my, w - 2 - mx));
    }

    #[test]
    fn flip_and_mirror_move_the_pixel() {
        let (w, h, mx, my) = (64, 32, 4, 2);
        let p = one(
            VideoProcessing {
                flip: true,
                ..Default::default()
            },
            marker(w, h, mx, my),
        );
        assert_eq!(find_marker(&p), (mx, h - 2 - my));
        let p = one(
            VideoProcessing {
                mirror: true,
                ..Default::default()
            },
            marker(w, h, mx, my),
        );
        assert_eq!(find_marker(&p), (w - 2 - mx, my));
    }

    #[test]
    fn crop_removes_edges() {
        let p = one(
            VideoProcessing {
                crop: Some(Crop {
                    left: 8,
                    top: 4,
                    right: 16,
                    bottom: 2,
                }),
                ..Default::default()
            },
            marker(64, 32, 20, 10),
        );
        assert_eq!((p.width(), p.height()), (40, 26));
        assert_eq!(find_marker(&p), (12, 6));
        let too_much = VideoProcessing {
            crop: Some(Crop {
                left: 40,
                right: 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            too_much.output_size(64, 32),
            Err(Error::InvalidOption { option: "crop", .. })
        ));
    }

    #[test]
    fn pillarbox_and_letterbox_add_black_bars_of_the_right_size() {
        let grey = |w, h| picture(w, h, 0, true, |_, _| 128);
        let to_16_9 = VideoProcessing {
            pad_to_aspect: Some(Ratio::new(16, 9)),
            ..Default::default()
        };
        // Black is luma 16 in video range.
        // 1:1 → 16:9: 64x64 becomes 114x64; the picture starts on an even column (4:2:0
        // chroma), so the bars are 24 and 26 columns wide.
        let p = one(to_16_9.clone(), grey(64, 64));
        assert_eq!((p.width(), p.height()), (114, 64));
        for y in [0, 32, 63] {
            assert_eq!(p.luma(0, y), Some(BLACK), "left bar");
            assert_eq!(p.luma(23, y), Some(BLACK), "left bar edge");
            assert_eq!(p.luma(24, y), Some(128), "picture");
            assert_eq!(p.luma(87, y), Some(128), "picture");
            assert_eq!(p.luma(88, y), Some(BLACK), "right bar");
            assert_eq!(p.luma(113, y), Some(BLACK), "right bar");
        }
        // 8:3 → 16:9: 128x48 becomes 128x72 with 12-row bars top and bottom.
        let p = one(to_16_9, grey(128, 48));
        assert_eq!((p.width(), p.height()), (128, 72));
        for x in [0, 64, 127] {
            assert_eq!(p.luma(x, 0), Some(BLACK), "top bar");
            assert_eq!(p.luma(x, 11), Some(BLACK), "top bar");
            assert_eq!(p.luma(x, 12), Some(128), "picture");
            assert_eq!(p.luma(x, 59), Some(128), "picture");
            assert_eq!(p.luma(x, 60), Some(BLACK), "bottom bar");
            assert_eq!(p.luma(x, 71), Some(BLACK), "bottom bar");
        }
    }

    #[test]
    fn resize_scales_and_refuses_beyond_4k() {
        let p = one(
            VideoProcessing {
                resize: Some(Size {
                    width: 32,
                    height: 16,
                }),
                ..Default::default()
            },
            marker(64, 32, 20, 10),
        );
        assert_eq!((p.width(), p.height()), (32, 16));
        let (x, y) = find_marker(&p);
        assert!((9..=11).contains(&x) && (4..=6).contains(&y), "{x},{y}");
        for (w, h) in [(3842, 2160), (3840, 2162), (31, 16), (8, 8)] {
            let big = VideoProcessing {
                resize: Some(Size {
                    width: w,
                    height: h,
                }),
                ..Default::default()
            };
            assert!(big.output_size(64, 32).is_err(), "{w}x{h}");
        }
        let max = VideoProcessing {
            resize: Some(Size {
                width: 3840,
                height: 2160,
            }),
            ..Default::default()
        };
        assert!(max.output_size(64, 32).is_ok());
    }

    /// Mean absolute difference between vertically adjacent luma rows.
    fn combing(p: &Picture) -> f64 {
        let mut sum = 0.0;
        for y in 1..p.height() {
            for x in 0..p.width() {
                sum +=
                    (f64::from(p.luma(x, y).unwrap()) - f64::from(p.luma(x, y - 1).unwrap())).abs();
            }
        }
        sum / f64::from(p.width() * (p.height() - 1))
    }

    #[test]
    fn deinterlace_removes_combing() {
        // Two fields of a moving edge: even lines have the edge at x=20, odd lines at x=28.
        let frames: Vec<Picture> = (0..4)
            .map(|i| {
                picture(64, 32, i * 3000, i == 0, move |x, y| {
                    let edge = 20 + (i as u32) * 4 + if y % 2 == 1 { 8 } else { 0 };
                    if x < edge { WHITE } else { BLACK }
                })
            })
            .collect();
        let before = combing(&frames[1]);
        let out = run(
            &VideoProcessing {
                deinterlace: true,
                ..Default::default()
            },
            &frames,
        );
        assert_eq!(out.len(), frames.len(), "one frame out per frame in");
        let after = combing(&out[1]);
        assert!(after < before * 0.6, "combing {before:.1} → {after:.1}");
    }

    /// Deterministic pseudo-random noise in -amp..=amp.
    fn noise(x: u32, y: u32, i: u32, amp: i32) -> i32 {
        let mut v =
            x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ i.wrapping_mul(83_492_791);
        v ^= v >> 13;
        v = v.wrapping_mul(0x5bd1_e995);
        v ^= v >> 15;
        (v % (2 * amp as u32 + 1)) as i32 - amp
    }

    fn variance(p: &Picture) -> f64 {
        let (_, _, mean) = luma_stats(p);
        let mut s = 0.0;
        for y in 0..p.height() {
            for x in 0..p.width() {
                s += (f64::from(p.luma(x, y).unwrap()) - mean).powi(2);
            }
        }
        s / f64::from(p.width() * p.height())
    }

    #[test]
    fn denoise_lowers_noise() {
        let frames: Vec<Picture> = (0..6)
            .map(|i| {
                picture(64, 64, i64::from(i) * 3000, i == 0, move |x, y| {
                    (128 + noise(x, y, i, 24)) as u8
                })
            })
            .collect();
        let out = run(
            &VideoProcessing {
                denoise: Some(20.0),
                ..Default::default()
            },
            &frames,
        );
        let before = variance(&frames[5]);
        let after = variance(&out[5]);
        assert!(after < before * 0.6, "variance {before:.1} → {after:.1}");
    }

    #[test]
    fn sharpen_steepens_edges() {
        // A soft horizontal ramp from 60 to 190 over 16 columns.
        let soft = picture(64, 32, 0, true, |x, _| {
            (60 + (x.saturating_sub(24).min(16) * 130 / 16)) as u8
        });
        let p = one(
            VideoProcessing {
                sharpen: Some(2.0),
                ..Default::default()
            },
            soft,
        );
        let (lo, hi, _) = luma_stats(&p);
        // Unsharp masking overshoots on both sides of the ramp.
        assert!(lo < 55 && hi > 195, "range {lo}..{hi}");
    }

    #[test]
    fn deblock_smooths_block_edges() {
        // 8x8 blocks alternating between 120 and 128: a typical low-bitrate blocking artefact.
        let blocky = picture(64, 64, 0, true, |x, y| {
            if ((x / 8) + (y / 8)) % 2 == 0 {
                120
            } else {
                128
            }
        });
        let edge_step = |p: &Picture| {
            let mut s = 0.0;
            for y in 0..64 {
                for bx in 1..8 {
                    let x = bx * 8;
                    s += (f64::from(p.luma(x, y).unwrap()) - f64::from(p.luma(x - 1, y).unwrap()))
                        .abs();
                }
            }
            s
        };
        let before = edge_step(&blocky);
        let p = one(
            VideoProcessing {
                deblock: true,
                ..Default::default()
            },
            blocky,
        );
        let after = edge_step(&p);
        assert!(after < before * 0.75, "block edges {before} → {after}");
    }

    #[test]
    fn auto_levels_stretch_a_narrow_range() {
        let dull = picture(64, 64, 0, true, |x, y| (100 + (x + y) * 50 / 126) as u8);
        let (lo0, hi0, _) = luma_stats(&dull);
        let p = one(
            VideoProcessing {
                auto_levels: true,
                ..Default::default()
            },
            dull,
        );
        let (lo, hi, _) = luma_stats(&p);
        assert!(
            u32::from(hi - lo) > u32::from(hi0 - lo0) * 3 / 2,
            "{lo0}..{hi0} → {lo}..{hi}"
        );
    }

    #[test]
    fn frame_rate_change_halves_frames_and_keeps_keyframe_times() {
        // 2 s at 30 fps, keyframes at 0 and 1 s; to 15 fps.
        let frames: Vec<Picture> = (0..60)
            .map(|i| picture(32, 32, i * 3000, i % 30 == 0, |_, _| 128))
            .collect();
        let out = run(
            &VideoProcessing {
                frame_rate: Some(Ratio::new(15, 1)),
                ..Default::default()
            },
            &frames,
        );
        assert!((29..=31).contains(&out.len()), "{} frames", out.len());
        assert!(out.windows(2).all(|w| w[1].pts() - w[0].pts() == 6000));
        let keys: Vec<i64> = out
            .iter()
            .filter(|p| p.is_keyframe())
            .map(|p| p.pts())
            .collect();
        assert_eq!(keys, [0, 90_000]);
    }

    proptest::proptest! {
        /// Any options on any input size: an error or a sane size, never a panic, and the
        /// chain is built from the same validated numbers.
        #[test]
        fn options_never_panic(
            w in 0u32..20_000, h in 0u32..20_000,
            crop in proptest::option::of((0u32..20_000, 0u32..20_000, 0u32..20_000, 0u32..20_000)),
            rot in 0u8..4,
            aspect in proptest::option::of((0u32..2_000_000, 0u32..2_000_000)),
            resize in proptest::option::of((0u32..10_000, 0u32..10_000)),
            denoise in proptest::option::of(-100f32..100.0),
        ) {
            let p = VideoProcessing {
                crop: crop.map(|(left, top, right, bottom)| Crop { left, top, right, bottom }),
                rotate: [None, Some(Rotation::Clockwise90), Some(Rotation::Clockwise180),
                    Some(Rotation::Clockwise270)][rot as usize],
                pad_to_aspect: aspect.map(|(num, den)| Ratio { num, den }),
                resize: resize.map(|(width, height)| Size { width, height }),
                denoise,
                ..Default::default()
            };
            if let Ok(out) = p.output_size(w, h) {
                proptest::prop_assert!(out.width >= 1 && out.height >= 1);
                proptest::prop_assert!(out.width <= 16_384 && out.height <= 16_384);
                proptest::prop_assert!(p.chain(w, h).is_ok());
            }
        }
    }

    #[test]
    fn a_picture_of_another_size_is_an_error_not_a_crash() {
        let mut f = VideoFilter::new(
            &VideoProcessing::default(),
            VideoInput {
                width: 64,
                height: 32,
                format: ff::format::Pixel::YUV420P,
                timescale: 90_000,
            },
        )
        .unwrap();
        assert!(matches!(
            f.push(&marker(32, 32, 0, 0)),
            Err(Error::Unsupported(_))
        ));
    }
}
