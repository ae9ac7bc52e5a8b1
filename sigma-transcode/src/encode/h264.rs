//! A safe wrapper over libx264 (through `x264-sys`).
//!
//! The `x264` crate cannot force an IDR picture at a given input (needed to align keyframes
//! across renditions) nor set VBV or HRD options, so this module talks to libx264 through the
//! same `x264-sys` bindings that crate uses. Every `unsafe` call is here, each with the
//! invariant it relies on; the public surface is safe.
#![allow(unsafe_code)]

use super::{H264Settings, Profile, RateControl};
use crate::Error;
use crate::decode::Picture;
use bytes::{BufMut, Bytes, BytesMut};
use ffmpeg_next as ff;
use sigma_core::{Frame, H264Config, TrackId};
use std::collections::VecDeque;
use std::ffi::CString;
use std::mem::MaybeUninit;
use x264_sys as sys;

fn fail(reason: impl Into<String>) -> Error {
    Error::Encode {
        encoder: "x264",
        reason: reason.into(),
    }
}

/// Owned `x264_param_t`.
struct Params(sys::x264_param_t);

impl Params {
    fn preset(preset: &str, tune: Option<&str>) -> Result<Self, Error> {
        let preset_c = CString::new(preset).map_err(|_| fail("preset name"))?;
        let tune_c = tune
            .map(CString::new)
            .transpose()
            .map_err(|_| fail("tune name"))?;
        let mut raw = MaybeUninit::<sys::x264_param_t>::uninit();
        // SAFETY: x264_param_default_preset fully initialises the struct it is given (it calls
        // x264_param_default first) and only reads the two NUL-terminated names.
        let ret = unsafe {
            sys::x264_param_default_preset(
                raw.as_mut_ptr(),
                preset_c.as_ptr(),
                tune_c.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            )
        };
        if ret < 0 {
            return Err(fail(format!("unknown preset {preset} / tune {tune:?}")));
        }
        // SAFETY: initialised by the successful call above.
        Ok(Params(unsafe { raw.assume_init() }))
    }

    /// Sets one option by its x264 command-line name (`x264_param_parse`).
    fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let n = CString::new(name).map_err(|_| fail("option name"))?;
        let v = CString::new(value).map_err(|_| fail("option value"))?;
        // SAFETY: `self.0` is an initialised parameter struct; both strings are NUL-terminated
        // and outlive the call, which copies what it keeps.
        let ret = unsafe { sys::x264_param_parse(&mut self.0, n.as_ptr(), v.as_ptr()) };
        if ret != 0 {
            return Err(fail(format!("option {name}={value} refused ({ret})")));
        }
        Ok(())
    }

    fn apply_profile(&mut self, profile: Profile) -> Result<(), Error> {
        let p = CString::new(profile.name()).map_err(|_| fail("profile name"))?;
        // SAFETY: as in `set`.
        let ret = unsafe { sys::x264_param_apply_profile(&mut self.0, p.as_ptr()) };
        if ret < 0 {
            return Err(fail(format!("profile {} refused", profile.name())));
        }
        Ok(())
    }
}

/// An open `x264_t`, closed on drop.
struct Handle(*mut sys::x264_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from x264_encoder_open and is closed exactly once, here.
        unsafe { sys::x264_encoder_close(self.0) }
    }
}

/// An open libx264 encoder producing AVCC frames (4-byte NAL lengths) with timestamps in the
/// input pictures' timescale.
pub struct H264Encoder {
    raw: Handle,
    width: u32,
    height: u32,
    config: H264Config,
    out: VecDeque<Frame>,
    track: TrackId,
    /// Pictures in, for the "delayed frames" accounting at the end.
    pushed: u64,
}

// SAFETY: an x264_t handle has no thread affinity; this wrapper gives access to it only through
// `&mut self`, so it is never used from two threads at once.
unsafe impl Send for H264Encoder {}

impl H264Encoder {
    /// Opens an encoder for `width`x`height` pictures with timestamps in ticks of `timescale`;
    /// output frames carry `track`.
    pub fn new(
        settings: &H264Settings,
        width: u32,
        height: u32,
        timescale: u32,
        track: TrackId,
    ) -> Result<Self, Error> {
        crate::filter::check_size("size", crate::filter::Size { width, height })?;
        if settings.bitrate_kbps < 16 || settings.bitrate_kbps > 200_000 {
            return Err(Error::option(
                "bitrate_kbps",
                format!("{} is outside 16..=200000", settings.bitrate_kbps),
            ));
        }
        let tune = settings.zerolatency.then_some("zerolatency");
        let mut p = Params::preset(settings.preset.name(), tune)?;
        let rate = settings.bitrate_kbps.to_string();
        let buffer = settings
            .buffer_kbits
            .unwrap_or(settings.bitrate_kbps)
            .to_string();
        p.set("bitrate", &rate)?;
        p.set("vbv-maxrate", &rate)?;
        p.set("vbv-bufsize", &buffer)?;
        if settings.rate_control == RateControl::Cbr {
            p.set("nal-hrd", "cbr")?;
            p.set("filler", "1")?;
        }
        // GOPs start only where the ladder forces an IDR.
        p.set("keyint", "infinite")?;
        p.set("scenecut", "0")?;
        p.set("open-gop", "0")?;
        p.set("repeat-headers", "0")?;
        p.set("annexb", "0")?;
        p.set("threads", &settings.threads.to_string())?;
        if let Some(b) = settings.bframes {
            p.set("bframes", &b.min(16).to_string())?;
        }
        let fr = settings.frame_rate;
        if fr.num == 0 || fr.den == 0 {
            return Err(Error::option("frame_rate", "zero"));
        }
        p.set("fps", &format!("{}/{}", fr.num, fr.den))?;
        p.0.i_log_level = sys::X264_LOG_ERROR as i32;
        p.0.i_width = width as i32;
        p.0.i_height = height as i32;
        p.0.i_csp = sys::X264_CSP_I420 as i32;
        // With variable-frame-rate input x264 holds one picture back to learn its duration; the
        // ultra-low-latency mode cannot afford it and rate-controls on the nominal frame rate.
        p.0.b_vfr_input = i32::from(!settings.zerolatency);
        p.0.i_timebase_num = 1;
        p.0.i_timebase_den = timescale;
        p.apply_profile(settings.profile)?;
        // SAFETY: `p.0` is a complete parameter set; x264_encoder_open copies it.
        let raw = unsafe { sys::x264_encoder_open(&mut p.0) };
        if raw.is_null() {
            return Err(fail("x264_encoder_open refused the settings"));
        }
        let raw = Handle(raw);
        let config = headers(&raw)?;
        Ok(H264Encoder {
            raw,
            width,
            height,
            config,
            out: VecDeque::new(),
            track,
            pushed: 0,
        })
    }

    /// The avcC built from the SPS and PPS this encoder writes.
    pub fn config(&self) -> &H264Config {
        &self.config
    }

    /// Picture size the encoder takes.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// The encoder's SPS and PPS as sigma-core configuration.
fn headers(raw: &Handle) -> Result<H264Config, Error> {
    let mut nals: *mut sys::x264_nal_t = std::ptr::null_mut();
    let mut count = 0;
    // SAFETY: `self.raw` is open; x264 sets `nals` to an array of `count` NAL descriptors
    // valid until the next call on this encoder, which happens after we copied them.
    let ret = unsafe { sys::x264_encoder_headers(raw.0, &mut nals, &mut count) };
    if ret < 0 || nals.is_null() {
        return Err(fail("x264_encoder_headers failed"));
    }
    let mut sps = None;
    let mut pps = None;
    for i in 0..count.max(0) as usize {
        // SAFETY: i < count, see above; payloads are `i_payload` bytes each.
        let nal = unsafe { &*nals.add(i) };
        let bytes =
            unsafe { std::slice::from_raw_parts(nal.p_payload, nal.i_payload.max(0) as usize) };
        // With annexb=0 each payload starts with a 4-byte length.
        let body = bytes.get(4..).unwrap_or(&[]).to_vec();
        match nal.i_type {
            7 => sps = Some(body),
            8 => pps = Some(body),
            _ => {}
        }
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err(fail("headers without SPS and PPS"));
    };
    Ok(H264Config::from_avcc(avcc(&sps, &pps)?)?)
}

impl H264Encoder {
    /// Encodes one picture; `force_idr` starts a GOP on it (the ladder passes the picture's
    /// keyframe mark). The picture must be YUV 4:2:0 of the encoder's size.
    pub fn push(&mut self, picture: &Picture, force_idr: bool) -> Result<(), Error> {
        if (picture.width(), picture.height()) != (self.width, self.height)
            || picture.format() != ff::format::Pixel::YUV420P
        {
            return Err(fail(format!(
                "picture {}x{} {:?} given to a {}x{} yuv420p encoder",
                picture.width(),
                picture.height(),
                picture.format(),
                self.width,
                self.height
            )));
        }
        let mut pic = MaybeUninit::<sys::x264_picture_t>::uninit();
        // SAFETY: x264_picture_init initialises every field.
        let mut pic = unsafe {
            sys::x264_picture_init(pic.as_mut_ptr());
            pic.assume_init()
        };
        pic.i_pts = picture.pts();
        pic.i_type = if force_idr {
            sys::X264_TYPE_IDR as i32
        } else {
            sys::X264_TYPE_AUTO as i32
        };
        pic.img.i_csp = sys::X264_CSP_I420 as i32;
        pic.img.i_plane = 3;
        for i in 0..3 {
            let plane = picture.plane(i);
            let stride = picture.stride(i);
            let rows = if i == 0 {
                self.height as usize
            } else {
                self.height.div_ceil(2) as usize
            };
            let cols = if i == 0 {
                self.width as usize
            } else {
                self.width.div_ceil(2) as usize
            };
            if stride < cols || plane.len() < stride * rows {
                return Err(fail("picture plane smaller than its size"));
            }
            pic.img.i_stride[i] = stride as i32;
            // x264 only reads input planes (it copies them into its own frames).
            pic.img.plane[i] = plane.as_ptr() as *mut u8;
        }
        self.pushed += 1;
        self.encode(Some(&mut pic))
    }

    fn encode(&mut self, pic: Option<&mut sys::x264_picture_t>) -> Result<(), Error> {
        let mut nals: *mut sys::x264_nal_t = std::ptr::null_mut();
        let mut count = 0;
        let mut out = MaybeUninit::<sys::x264_picture_t>::zeroed();
        let pic_in = pic.map_or(std::ptr::null_mut(), |p| p as *mut _);
        // SAFETY: `self.raw` is open. `pic_in` is null (flush) or a picture whose planes point
        // into a frame borrowed for this call and checked above to be large enough. On return
        // `nals` describes `count` NAL units laid out back to back in x264's buffer, `ret`
        // bytes in all, valid until the next call; we copy them before returning.
        let ret = unsafe {
            sys::x264_encoder_encode(self.raw.0, &mut nals, &mut count, pic_in, out.as_mut_ptr())
        };
        if ret < 0 {
            return Err(fail(format!("x264_encoder_encode failed ({ret})")));
        }
        if ret == 0 || nals.is_null() || count <= 0 {
            return Ok(());
        }
        // SAFETY: see above; a returned frame has `pic_out` filled in.
        let (data, out) = unsafe {
            let first = &*nals;
            (
                Bytes::copy_from_slice(std::slice::from_raw_parts(first.p_payload, ret as usize)),
                out.assume_init(),
            )
        };
        self.out.push_back(Frame::new(
            self.track,
            out.i_dts,
            out.i_pts,
            out.b_keyframe != 0,
            data,
        ));
        Ok(())
    }

    /// Drains the pictures x264 holds (lookahead, B-frames) at the end of the stream.
    pub fn finish(&mut self) -> Result<(), Error> {
        // SAFETY: `self.raw` is open.
        while unsafe { sys::x264_encoder_delayed_frames(self.raw.0) } > 0 {
            let before = self.out.len();
            self.encode(None)?;
            if self.out.len() == before
                && unsafe { sys::x264_encoder_delayed_frames(self.raw.0) } == 0
            {
                break;
            }
        }
        Ok(())
    }

    /// The next encoded frame, if any.
    pub fn pull(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    /// Pictures x264 holds (lookahead, B-frames, frame threads).
    pub fn delayed(&self) -> usize {
        // SAFETY: `self.raw` is open.
        unsafe { sys::x264_encoder_delayed_frames(self.raw.0) }.max(0) as usize
    }

    /// Pictures pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) for one SPS and one PPS with
/// 4-byte NAL lengths, including the High-profile chroma/bit-depth fields.
fn avcc(sps: &[u8], pps: &[u8]) -> Result<Bytes, Error> {
    if sps.len() < 4 || sps.len() > 0xffff || pps.is_empty() || pps.len() > 0xffff {
        return Err(fail("SPS or PPS of impossible size"));
    }
    let mut b = BytesMut::with_capacity(16 + sps.len() + pps.len());
    b.put_u8(1);
    b.put_u8(sps[1]);
    b.put_u8(sps[2]);
    b.put_u8(sps[3]);
    b.put_u8(0xfc | 3);
    b.put_u8(0xe0 | 1);
    b.put_u16(sps.len() as u16);
    b.put_slice(sps);
    b.put_u8(1);
    b.put_u16(pps.len() as u16);
    b.put_slice(pps);
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        // 4:2:0, 8-bit: x264 here is built for 8-bit 4:2:0 input.
        b.put_u8(0xfc | 1);
        b.put_u8(0xf8);
        b.put_u8(0xf8);
        b.put_u8(0);
    }
    Ok(b.freeze())
}
