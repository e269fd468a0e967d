//! WebP through libwebp (compiled from source by `libwebp-sys`): animated lossy WebP for previews
//! and chats, and single lossy images for thumbnails.

use std::path::Path;
use std::ptr;

use libwebp_sys as webp;

use crate::{MediaError, Result, VideoFrames};

/// libwebp's quality scale (0-100): 80 keeps detail at a fraction of a GIF's size.
pub const DEFAULT_QUALITY: f32 = 80.0;

fn config(quality: f32) -> Result<webp::WebPConfig> {
    let mut config = std::mem::MaybeUninit::uninit();
    // SAFETY: libwebp fills the whole struct when the ABI matches (checked by its return value).
    let ok = unsafe {
        webp::WebPConfigInitInternal(
            config.as_mut_ptr(),
            webp::WebPPreset::WEBP_PRESET_DEFAULT,
            quality,
            webp::WEBP_ENCODER_ABI_VERSION as i32,
        )
    };
    if ok == 0 {
        return Err(MediaError::InvalidInput("libwebp rejected its configuration (version mismatch)".into()));
    }
    Ok(unsafe { config.assume_init() })
}

/// A libwebp picture holding one RGB frame; freed on drop.
struct Picture(webp::WebPPicture);

impl Picture {
    fn from_rgb(rgb: &[u8], width: u32, height: u32) -> Result<Self> {
        let mut picture = std::mem::MaybeUninit::uninit();
        // SAFETY: the picture is initialised by libwebp before use; the import copies `rgb`, whose
        // length the callers have checked against width * height * 3.
        unsafe {
            if webp::WebPPictureInitInternal(picture.as_mut_ptr(), webp::WEBP_ENCODER_ABI_VERSION as i32) == 0 {
                return Err(MediaError::InvalidInput("libwebp could not set up a picture".into()));
            }
            let mut picture = Picture(picture.assume_init());
            picture.0.width = width as i32;
            picture.0.height = height as i32;
            picture.0.use_argb = 1;
            if webp::WebPPictureImportRGB(&mut picture.0, rgb.as_ptr(), (width * 3) as i32) == 0 {
                return Err(MediaError::InvalidInput(format!("libwebp could not take a {width}x{height} frame (out of memory?)")));
            }
            Ok(picture)
        }
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by libwebp.
        unsafe { webp::WebPPictureFree(&mut self.0) };
    }
}

/// The animation encoder; deleted on drop.
struct AnimEncoder(*mut webp::WebPAnimEncoder);

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimEncoderNewInternal and not freed elsewhere.
        unsafe { webp::WebPAnimEncoderDelete(self.0) };
    }
}

fn encoder_error(encoder: &AnimEncoder, what: &str) -> MediaError {
    // SAFETY: libwebp returns a NUL-terminated message owned by the encoder.
    let message = unsafe {
        let text = webp::WebPAnimEncoderGetError(encoder.0);
        if text.is_null() { String::new() } else { std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned() }
    };
    MediaError::InvalidInput(format!("animated WebP {what} failed: {message}"))
}

/// Encodes `video` as an animated WebP that loops forever, each frame shown for 1/fps seconds.
pub fn encode_animated(video: &VideoFrames, quality: f32) -> Result<Vec<u8>> {
    let config = config(quality)?;
    let mut options = std::mem::MaybeUninit::uninit();
    // SAFETY: as for `config`.
    let options = unsafe {
        if webp::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), webp::WEBP_MUX_ABI_VERSION as i32) == 0 {
            return Err(MediaError::InvalidInput("libwebp rejected its animation options".into()));
        }
        let mut options = options.assume_init();
        options.anim_params.loop_count = 0;
        options
    };
    let (w, h) = (video.width as i32, video.height as i32);
    // SAFETY: valid options; the pointer is owned by the guard.
    let encoder = AnimEncoder(unsafe { webp::WebPAnimEncoderNewInternal(w, h, &options, webp::WEBP_MUX_ABI_VERSION as i32) });
    if encoder.0.is_null() {
        return Err(MediaError::InvalidInput(format!("libwebp cannot animate frames of {w}x{h}")));
    }
    let timestamp = |i: usize| (i as f64 * 1000.0 / video.fps).round() as i32;
    for (i, frame) in video.frames.iter().enumerate() {
        let mut picture = Picture::from_rgb(frame, video.width, video.height)?;
        // SAFETY: encoder, picture and config are valid; libwebp copies what it keeps.
        if unsafe { webp::WebPAnimEncoderAdd(encoder.0, &mut picture.0, timestamp(i), &config) } == 0 {
            return Err(encoder_error(&encoder, "frame encoding"));
        }
    }
    let mut data = webp::WebPData { bytes: ptr::null(), size: 0 };
    // SAFETY: a null frame marks the end (its timestamp is the last frame's end); the assembled
    // bytes are owned by `data` until cleared.
    unsafe {
        if webp::WebPAnimEncoderAdd(encoder.0, ptr::null_mut(), timestamp(video.frames.len()), ptr::null()) == 0
            || webp::WebPAnimEncoderAssemble(encoder.0, &mut data) == 0
        {
            return Err(encoder_error(&encoder, "assembly"));
        }
        let bytes = std::slice::from_raw_parts(data.bytes, data.size).to_vec();
        webp::WebPDataClear(&mut data);
        Ok(bytes)
    }
}

/// One RGB frame as a lossy WebP image.
pub fn encode_still(rgb: &[u8], width: u32, height: u32, quality: f32) -> Result<Vec<u8>> {
    if rgb.len() != (width * height * 3) as usize {
        return Err(MediaError::InvalidInput(format!("a {width}x{height} RGB frame needs {} bytes, got {}", width * height * 3, rgb.len())));
    }
    let mut output: *mut u8 = ptr::null_mut();
    // SAFETY: `rgb` holds height rows of width * 3 bytes; libwebp allocates `output`, freed below.
    unsafe {
        let size = webp::WebPEncodeRGB(rgb.as_ptr(), width as i32, height as i32, (width * 3) as i32, quality, &mut output);
        if size == 0 || output.is_null() {
            return Err(MediaError::InvalidInput(format!("libwebp could not encode a {width}x{height} image")));
        }
        let bytes = std::slice::from_raw_parts(output, size).to_vec();
        webp::WebPFree(output.cast());
        Ok(bytes)
    }
}

/// Writes `video` to `path` as an animated WebP.
pub fn write_animated(video: &VideoFrames, path: &Path, quality: f32) -> Result<()> {
    let bytes = encode_animated(video, quality)?;
    std::fs::write(path, bytes).map_err(|source| MediaError::Write { path: path.to_path_buf(), source })
}
