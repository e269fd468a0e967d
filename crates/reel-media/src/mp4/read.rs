//! Reading MP4 files back, so reel can continue an existing video: the first H.264 video track of
//! an MP4 (or QuickTime .mov) file, decoded frame by frame with OpenH264 into RGB8.
//!
//! Reads: the index (`moov`) before or after the media data, 32- and 64-bit box sizes and chunk
//! offsets, size 0 (to the end of the file), any chunk layout, `avc1` and `avc3` sample entries,
//! B-frames (frames come out in display order), colour as the `colr` box declares it (untagged video
//! as players guess it: BT.601 below 720 lines, BT.709 from 720 up). Memory holds the index (a few
//! bytes a frame) and one frame, however long the video is.
//!
//! Does not read: other codecs (HEVC, AV1, VP9, MPEG-4 Part 2, ProRes; the error says how to
//! convert), fragmented MP4 (`moof` boxes, as streaming recorders write), H.264 that OpenH264 cannot
//! decode (10-bit, 4:2:2, 4:4:4, interlaced), tracks that switch sample descriptions midway (the
//! first one's parameter sets are used). Edit lists are ignored: every sample is one frame. Audio
//! and other tracks are skipped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::yuv::{i420_to_rgb, I420Planes, YuvColour};
use crate::{MediaError, Result};

/// What a video file holds, read from its headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    pub width: usize,
    pub height: usize,
    /// Frames per second over the track's whole duration (the average, if the rate varies).
    pub fps: f64,
    pub frames: usize,
}

/// Reads the size, frame rate and frame count of the H.264 video track of the MP4 file at `path`.
pub fn read_mp4_info(path: &Path) -> Result<VideoInfo> {
    Ok(Mp4Video::open(path)?.track.info)
}

/// Decodes every frame of the MP4 file at `path` in display order and hands each to `on_frame` as
/// RGB8 (`width * height * 3` bytes, rows top to bottom), one at a time: memory does not grow with
/// the video's length. An error from `on_frame` stops the reading and is returned as it is.
pub fn read_mp4_frames(path: &Path, on_frame: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<VideoInfo> {
    let mut video = Mp4Video::open(path)?;
    video.decode(on_frame)?;
    Ok(video.track.info)
}

/// A problem found while parsing; the caller adds the file's name.
type Parse<T> = std::result::Result<T, String>;

/// How to make video this module cannot decode readable.
const CONVERT_HOW: &str = "e.g. with `ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p OUTPUT.mp4`";

const FRAGMENTED: &str = "it is a fragmented MP4 (`moof` boxes), which reel does not read: \
                          rewrite it as a plain MP4, e.g. with `ffmpeg -i INPUT -c copy OUTPUT.mp4`";

/// The largest index read into memory (it takes a few bytes a frame: hours of video fit many times).
const MAX_MOOV_BYTES: u64 = 512 << 20;

/// Where one frame's bytes lie in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    offset: u64,
    size: u32,
}

/// The video track as its headers describe it.
struct VideoTrack {
    info: VideoInfo,
    samples: Vec<Sample>,
    /// SPS and PPS NAL units with start codes, sent before the first frame.
    parameter_sets: Vec<u8>,
    /// Bytes of the big-endian length in front of each NAL unit in a sample.
    nal_length_size: usize,
    colour: YuvColour,
}

struct Mp4Video {
    path: PathBuf,
    file: File,
    track: VideoTrack,
}

impl Mp4Video {
    fn open(path: &Path) -> Result<Self> {
        let fail = |message: String| MediaError::Read { path: path.to_path_buf(), message };
        let mut file = File::open(path).map_err(|e| fail(open_problem(&e)))?;
        let metadata = file.metadata().map_err(|e| fail(e.to_string()))?;
        if metadata.is_dir() {
            return Err(fail("it is a folder, not a video file".into()));
        }
        let moov = read_moov(&mut file, metadata.len()).map_err(fail)?;
        let track = video_track(&moov, metadata.len()).map_err(fail)?;
        check_samples_in_file(&track.samples, metadata.len()).map_err(fail)?;
        Ok(Self { path: path.to_path_buf(), file, track })
    }

    fn decode(&mut self, on_frame: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let fail = |message: String| MediaError::Read { path: self.path.clone(), message };
        let track = &self.track;
        // Frames are taken as the decoder releases them, and the rest at the end. No flushing after
        // each frame: with B-frames that releases pictures before the decoder has put them in display
        // order (the openh264 crate's default; it scrambles libx264's files, then fails).
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| fail(format!("cannot start the H.264 decoder: {e}")))?;
        let mut output = FrameOutput { track, path: &self.path, rgb: Vec::new(), count: 0, on_frame };
        let (mut sample, mut stream) = (Vec::new(), Vec::new());
        for (i, location) in track.samples.iter().enumerate() {
            sample.resize(location.size as usize, 0);
            read_at(&mut self.file, location.offset, &mut sample).map_err(fail)?;
            stream.clear();
            if i == 0 {
                stream.extend_from_slice(&track.parameter_sets);
            }
            append_annex_b(&sample, track.nal_length_size, &mut stream)
                .map_err(|problem| fail(format!("frame {} of {} is damaged: {problem}", i + 1, track.samples.len())))?;
            let picture = decoder.decode(&stream).map_err(|e| fail(undecodable(i, &e)))?;
            if let Some(picture) = picture {
                output.push(&picture)?;
            }
        }
        let remaining = decoder.flush_remaining().map_err(|e| fail(undecodable(track.samples.len() - 1, &e)))?;
        for picture in &remaining {
            output.push(picture)?;
        }
        if output.count != track.samples.len() {
            return Err(fail(format!(
                "the H.264 decoder gave {} frames for the {} the file holds: the stream is damaged or uses features \
                 OpenH264 does not support; re-encode it, {CONVERT_HOW}",
                output.count,
                track.samples.len()
            )));
        }
        Ok(())
    }
}

/// Converts decoded pictures to RGB frames of the track's size and hands them on.
struct FrameOutput<'a> {
    track: &'a VideoTrack,
    path: &'a Path,
    rgb: Vec<u8>,
    count: usize,
    on_frame: &'a mut dyn FnMut(&[u8]) -> Result<()>,
}

impl FrameOutput<'_> {
    fn push(&mut self, picture: &DecodedYUV) -> Result<()> {
        let VideoInfo { width, height, frames, .. } = self.track.info;
        let fail = |message: String| MediaError::Read { path: self.path.to_path_buf(), message };
        if self.count == frames {
            return Err(fail(format!("the H.264 decoder gave more frames than the {frames} the file holds")));
        }
        let (decoded_width, decoded_height) = picture.dimensions();
        if decoded_width < width || decoded_height < height {
            return Err(fail(format!(
                "its header says {width}x{height}, but the H.264 stream holds {decoded_width}x{decoded_height} pictures"
            )));
        }
        let (y_stride, uv_stride, _) = picture.strides();
        let planes = I420Planes { y: picture.y(), u: picture.u(), v: picture.v(), y_stride, uv_stride };
        // The encoder pads odd sizes to even (and to whole macroblocks): keep the top-left part.
        self.rgb.resize(width * height * 3, 0);
        i420_to_rgb(&planes, width, height, self.track.colour, &mut self.rgb).map_err(|e| fail(e.to_string()))?;
        self.count += 1;
        (self.on_frame)(&self.rgb)
    }
}

fn open_problem(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "there is no such file: check the path".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied: the file is not readable for this user".into(),
        _ => format!("the file cannot be opened: {error}"),
    }
}

fn undecodable(frame: usize, error: &openh264::Error) -> String {
    format!(
        "its H.264 stream cannot be decoded at frame {}: the file is damaged, or uses features OpenH264 does \
         not support (such as interlacing); re-encode it, {CONVERT_HOW} ({error})",
        frame + 1
    )
}

fn read_at(file: &mut File, offset: u64, buffer: &mut [u8]) -> Parse<()> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buffer))
        .map_err(|e| format!("reading {} bytes at byte {offset} failed ({e}); did the file change while reading?", buffer.len()))
}

/// A box header: its type, the header's length and the box's whole size.
struct BoxHeader {
    kind: [u8; 4],
    header: u64,
    size: u64,
}

impl BoxHeader {
    /// Parses the header at the start of `bytes` (up to 16 of them) of a box with `available` bytes
    /// up to the end of its parent; `None` if it is cut short or claims more than is there.
    fn parse(bytes: &[u8], available: u64) -> Option<Self> {
        let size = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as u64;
        let kind = bytes.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            0 => (8, available),
            1 => (16, u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?)),
            _ => (8, size),
        };
        (header <= size && size <= available).then_some(Self { kind, header, size })
    }
}

fn name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// Finds the top-level `moov` box (wherever it lies) and reads its payload.
fn read_moov(file: &mut File, len: u64) -> Parse<Vec<u8>> {
    if len == 0 {
        return Err("the file is empty".into());
    }
    let not_mp4 = || "it is not an MP4 file (it does not start with MP4 boxes); reel reads H.264 video in MP4 files".to_string();
    let mut seen: Vec<[u8; 4]> = Vec::new();
    let mut at = 0;
    while len - at >= 8 {
        let mut bytes = [0u8; 16];
        let available = (len - at).min(16) as usize;
        read_at(file, at, &mut bytes[..available])?;
        let plausible = |b: &BoxHeader| b.kind.iter().all(|c| c.is_ascii_alphanumeric() || *c == b' ');
        let header = match BoxHeader::parse(&bytes[..available], len - at) {
            Some(header) if !seen.is_empty() || plausible(&header) => header,
            _ if seen.is_empty() => return Err(not_mp4()),
            _ => {
                let kind = String::from_utf8_lossy(&bytes[4..8]).into_owned();
                return Err(format!(
                    "it is truncated: the `{kind}` box at byte {at} runs past the end of the file ({len} bytes); \
                     it was cut short (an interrupted download or render?)"
                ));
            }
        };
        if &header.kind == b"moov" {
            if header.size > MAX_MOOV_BYTES {
                return Err(format!("its index (`moov` box) takes {} bytes, more than reel reads", header.size));
            }
            let mut moov = vec![0; (header.size - header.header) as usize];
            read_at(file, at + header.header, &mut moov)?;
            return Ok(moov);
        }
        seen.push(header.kind);
        at += header.size;
    }
    Err(if seen.contains(b"moof") {
        FRAGMENTED.into()
    } else if seen.contains(b"ftyp") || seen.contains(b"mdat") {
        "it has no index (`moov` box): the file is incomplete (an interrupted recording or download?)".into()
    } else {
        not_mp4()
    })
}

/// Reads big-endian fields from a box's payload, failing (not panicking) past its end.
struct Fields<'a> {
    bytes: &'a [u8],
    name: &'static str,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], name: &'static str) -> Self {
        Self { bytes, name }
    }

    fn take(&mut self, count: usize) -> Parse<&'a [u8]> {
        let (head, rest) = self
            .bytes
            .split_at_checked(count)
            .ok_or_else(|| format!("its `{}` box is cut short: the file is damaged", self.name))?;
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Parse<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Parse<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Parse<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Parse<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A table of `count` entries of `width` bytes each.
    fn table(&mut self, count: u32, width: usize) -> Parse<std::slice::ChunksExact<'a, u8>> {
        let bytes = (count as usize).checked_mul(width).ok_or_else(|| format!("its `{}` box is damaged", self.name))?;
        Ok(self.take(bytes)?.chunks_exact(width))
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).fold(0, |n, b| (n << 8) | *b as u32)
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).fold(0, |n, b| (n << 8) | *b as u64)
}

/// The child boxes in a box's payload, as (type, payload) pairs.
fn children<'a>(payload: &'a [u8], parent: &str) -> Parse<Vec<([u8; 4], &'a [u8])>> {
    let mut out = Vec::new();
    let mut rest = payload;
    // Fewer than 8 bytes left is padding some muxers add.
    while rest.len() >= 8 {
        let header = BoxHeader::parse(rest, rest.len() as u64)
            .ok_or_else(|| format!("a box inside `{parent}` runs past its end: the file is damaged"))?;
        let (this, tail) = rest.split_at(header.size as usize);
        out.push((header.kind, &this[header.header as usize..]));
        rest = tail;
    }
    Ok(out)
}

fn find_optional<'a>(payload: &'a [u8], parent: &str, kind: &[u8; 4]) -> Parse<Option<&'a [u8]>> {
    Ok(children(payload, parent)?.into_iter().find(|(k, _)| k == kind).map(|(_, p)| p))
}

fn find<'a>(payload: &'a [u8], parent: &str, kind: &[u8; 4]) -> Parse<&'a [u8]> {
    find_optional(payload, parent, kind)?
        .ok_or_else(|| format!("its `{parent}` box has no `{}` box: the file is damaged", name(kind)))
}

/// The first video track of the movie.
fn video_track(moov: &[u8], file_len: u64) -> Parse<VideoTrack> {
    let boxes = children(moov, "moov")?;
    let mut others = Vec::new();
    for (_, trak) in boxes.iter().filter(|(kind, _)| kind == b"trak") {
        let mdia = find(trak, "trak", b"mdia")?;
        let mut hdlr = Fields::new(find(mdia, "mdia", b"hdlr")?, "hdlr");
        hdlr.take(8)?;
        let handler = hdlr.array::<4>()?;
        if &handler == b"vide" {
            let fragmented = boxes.iter().any(|(kind, _)| kind == b"mvex");
            return video_track_media(mdia, fragmented, file_len);
        }
        others.push(match &handler {
            b"soun" => "audio".to_string(),
            b"sbtl" | b"subt" | b"text" => "subtitles".to_string(),
            other => format!("`{}`", name(other)),
        });
    }
    Err(if others.is_empty() {
        "it holds no tracks at all: there is no video to read".into()
    } else {
        format!("it holds no video track (only {}): reel can only continue a video", others.join(", "))
    })
}

fn video_track_media(mdia: &[u8], fragmented: bool, file_len: u64) -> Parse<VideoTrack> {
    let timescale = media_timescale(find(mdia, "mdia", b"mdhd")?)?;
    let stbl = find(find(mdia, "mdia", b"minf")?, "minf", b"stbl")?;
    let entry = avc_sample_entry(find(stbl, "stbl", b"stsd")?)?;
    let sizes = sample_sizes(find(stbl, "stbl", b"stsz")?, file_len)?;
    if sizes.is_empty() {
        return Err(if fragmented { FRAGMENTED.into() } else { "its video track holds no frames".into() });
    }
    let runs = sample_to_chunk(find(stbl, "stbl", b"stsc")?)?;
    let samples = locate_samples(&sizes, &runs, &chunk_offsets(stbl)?)?;
    let (timed, duration) = sample_timing(find(stbl, "stbl", b"stts")?)?;
    if timescale == 0 || duration == 0 || timed == 0 {
        return Err("its video track gives no frame timing (`mdhd`, `stts`): the file is damaged".into());
    }
    let fps = timescale as f64 * timed as f64 / duration as f64;
    let (width, height) = (entry.width as usize, entry.height as usize);
    let info = VideoInfo { width, height, fps, frames: samples.len() };
    let colour = entry.colour.unwrap_or_else(|| YuvColour::guess(height));
    Ok(VideoTrack { info, samples, parameter_sets: entry.parameter_sets, nal_length_size: entry.nal_length_size, colour })
}

fn media_timescale(mdhd: &[u8]) -> Parse<u32> {
    let mut f = Fields::new(mdhd, "mdhd");
    let version = f.u8()?;
    f.take(3)?;
    // Creation and modification times: 32 bits each in version 0, 64 in version 1.
    f.take(if version == 1 { 16 } else { 8 })?;
    f.u32()
}

/// What the `avc1` sample entry says.
struct AvcEntry {
    width: u16,
    height: u16,
    parameter_sets: Vec<u8>,
    nal_length_size: usize,
    colour: Option<YuvColour>,
}

fn codec_name(kind: &[u8; 4]) -> String {
    match kind {
        b"hvc1" | b"hev1" => "HEVC (H.265)".into(),
        b"av01" => "AV1".into(),
        b"vp09" => "VP9".into(),
        b"vp08" => "VP8".into(),
        b"mp4v" => "MPEG-4 Part 2".into(),
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "Apple ProRes".into(),
        b"encv" => "encrypted".into(),
        other => format!("`{}`", name(other)),
    }
}

fn avc_sample_entry(stsd: &[u8]) -> Parse<AvcEntry> {
    let mut f = Fields::new(stsd, "stsd");
    f.take(8)?; // version, flags, entry count
    let entries = children(f.bytes, "stsd")?;
    let Some((kind, entry)) = entries.first() else {
        return Err("its video track names no codec (empty `stsd` box): the file is damaged".into());
    };
    if kind != b"avc1" && kind != b"avc3" {
        return Err(format!("its video is {}, but reel reads H.264 video only: convert it to H.264, {CONVERT_HOW}", codec_name(kind)));
    }
    let mut f = Fields::new(entry, "avc1");
    f.take(24)?; // reserved, data reference index, pre-defined
    let (width, height) = (f.u16()?, f.u16()?);
    f.take(50)?; // resolution, frame count, compressor name, depth, pre-defined
    if width == 0 || height == 0 {
        return Err(format!("its video track gives the frame size {width}x{height}: the file is damaged"));
    }
    let boxes = children(f.bytes, "avc1")?;
    let avcc = boxes.iter().find(|(k, _)| k == b"avcC").ok_or("its `avc1` box has no `avcC` box: the file is damaged")?;
    let (parameter_sets, nal_length_size) = avc_config(avcc.1)?;
    let colour = boxes.iter().find(|(k, _)| k == b"colr").and_then(|(_, colr)| colour(colr));
    Ok(AvcEntry { width, height, parameter_sets, nal_length_size, colour })
}

/// The decoder configuration record: parameter sets (as Annex B) and the NAL length size.
fn avc_config(avcc: &[u8]) -> Parse<(Vec<u8>, usize)> {
    let mut f = Fields::new(avcc, "avcC");
    let [_version, profile, _compatibility, _level, length_size] = f.array()?;
    let unsupported = match profile {
        110 => Some("High 10 (10-bit)"),
        122 => Some("High 4:2:2"),
        244 => Some("High 4:4:4"),
        44 => Some("CAVLC 4:4:4"),
        _ => None,
    };
    if let Some(profile) = unsupported {
        return Err(format!(
            "its video is H.264 {profile} profile, which the decoder (OpenH264) cannot read: convert it to 8-bit 4:2:0 \
             H.264, {CONVERT_HOW}"
        ));
    }
    let mut parameter_sets = Vec::new();
    let sps_count = f.u8()? & 0x1f;
    for _ in 0..sps_count {
        let len = f.u16()? as usize;
        parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
        parameter_sets.extend_from_slice(f.take(len)?);
    }
    let pps_count = f.u8()?;
    for _ in 0..pps_count {
        let len = f.u16()? as usize;
        parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
        parameter_sets.extend_from_slice(f.take(len)?);
    }
    Ok((parameter_sets, (length_size & 3) as usize + 1))
}

/// The colour matrix and range a `colr` box declares, if it declares a known one.
fn colour(colr: &[u8]) -> Option<YuvColour> {
    let mut f = Fields::new(colr, "colr");
    let kind = f.array::<4>().ok()?;
    let [_primaries, _transfer, matrix] = [f.u16().ok()?, f.u16().ok()?, f.u16().ok()?];
    match &kind {
        b"nclx" => YuvColour::from_matrix(matrix, f.u8().ok()? & 0x80 != 0),
        b"nclc" => YuvColour::from_matrix(matrix, false),
        _ => None,
    }
}

/// Sample sizes from `stsz`.
fn sample_sizes(stsz: &[u8], file_len: u64) -> Parse<Vec<u32>> {
    let mut f = Fields::new(stsz, "stsz");
    f.take(4)?;
    let (size, count) = (f.u32()?, f.u32()?);
    if size == 0 {
        return Ok(f.table(count, 4)?.map(be_u32).collect());
    }
    if size as u64 * count as u64 > file_len {
        return Err(format!("it is truncated: its {count} frames of {size} bytes do not fit in the file ({file_len} bytes)"));
    }
    Ok(vec![size; count as usize])
}

/// `stsc` runs: (first chunk, numbered from 1; samples in each chunk from there on).
fn sample_to_chunk(stsc: &[u8]) -> Parse<Vec<(u32, u32)>> {
    let mut f = Fields::new(stsc, "stsc");
    f.take(4)?;
    let count = f.u32()?;
    Ok(f.table(count, 12)?.map(|e| (be_u32(&e[0..4]), be_u32(&e[4..8]))).collect())
}

/// Chunk offsets from `stco` or `co64`.
fn chunk_offsets(stbl: &[u8]) -> Parse<Vec<u64>> {
    let (table, width) = match find_optional(stbl, "stbl", b"stco")? {
        Some(stco) => (Fields::new(stco, "stco"), 4),
        None => (Fields::new(find(stbl, "stbl", b"co64")?, "co64"), 8),
    };
    let mut f = table;
    f.take(4)?;
    let count = f.u32()?;
    Ok(f.table(count, width)?.map(be_u64).collect())
}

/// Where each sample lies: chunks hold consecutive samples, as many as their `stsc` run says.
fn locate_samples(sizes: &[u32], runs: &[(u32, u32)], chunks: &[u64]) -> Parse<Vec<Sample>> {
    let disagree = || "its sample tables (`stsc`, `stsz`, `stco`) disagree: the file is damaged".to_string();
    let mut samples = Vec::with_capacity(sizes.len());
    for (i, &(first, per_chunk)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(chunks.len() as u64 + 1, |next| next.0 as u64);
        if first == 0 || end < first as u64 {
            return Err(disagree());
        }
        for chunk in first as u64..end {
            let Some(&start) = chunks.get(chunk as usize - 1) else { break };
            let mut offset = start;
            for _ in 0..per_chunk {
                let Some(&size) = sizes.get(samples.len()) else { return Ok(samples) };
                samples.push(Sample { offset, size });
                offset = offset.checked_add(size as u64).ok_or_else(disagree)?;
            }
        }
    }
    if samples.len() < sizes.len() {
        return Err(disagree());
    }
    Ok(samples)
}

/// Samples counted and their total duration in media ticks, from `stts`.
fn sample_timing(stts: &[u8]) -> Parse<(u64, u64)> {
    let mut f = Fields::new(stts, "stts");
    f.take(4)?;
    let count = f.u32()?;
    Ok(f.table(count, 8)?.fold((0, 0), |(samples, ticks), e| {
        let (n, delta) = (be_u32(&e[0..4]) as u64, be_u32(&e[4..8]) as u64);
        (samples.saturating_add(n), ticks.saturating_add(n * delta))
    }))
}

fn check_samples_in_file(samples: &[Sample], len: u64) -> Parse<()> {
    for (i, sample) in samples.iter().enumerate() {
        let end = sample.offset.saturating_add(sample.size as u64);
        if end > len {
            return Err(format!(
                "it is truncated: frame {} of {} lies at bytes {}..{end}, but the file ends at byte {len}; \
                 it was cut short (an interrupted download or render?)",
                i + 1,
                samples.len(),
                sample.offset
            ));
        }
    }
    Ok(())
}

/// Appends a sample's length-prefixed NAL units to `out` with Annex B start codes instead.
fn append_annex_b(sample: &[u8], length_size: usize, out: &mut Vec<u8>) -> Parse<()> {
    let mut rest = sample;
    while !rest.is_empty() {
        let (prefix, tail) = rest.split_at_checked(length_size).ok_or("a NAL unit's length is cut short")?;
        let len = prefix.iter().fold(0usize, |n, b| (n << 8) | *b as usize);
        let (nal, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| format!("a NAL unit claims {len} bytes, but only {} remain in the frame", tail.len()))?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_located_through_chunk_runs() {
        // Chunks 1-2 hold two samples each, chunk 3 on holds one.
        let sizes = [10, 20, 30, 40, 50, 60];
        let samples = locate_samples(&sizes, &[(1, 2), (3, 1)], &[100, 200, 300, 400]).unwrap();
        let at: Vec<(u64, u32)> = samples.iter().map(|s| (s.offset, s.size)).collect();
        assert_eq!(at, vec![(100, 10), (110, 20), (200, 30), (230, 40), (300, 50), (400, 60)]);
        // Too few chunks for the samples, or runs out of order: an error, not a panic.
        assert!(locate_samples(&sizes, &[(1, 2)], &[100]).unwrap_err().contains("disagree"));
        assert!(locate_samples(&sizes, &[(3, 2), (1, 1)], &[100, 200, 300]).is_err());
        assert!(locate_samples(&sizes, &[(0, 2)], &[100]).is_err());
    }

    #[test]
    fn nal_lengths_become_start_codes() {
        let mut out = Vec::new();
        append_annex_b(&[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41], 4, &mut out).unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 0x65, 1, 0, 0, 0, 1, 0x41]);
        out.clear();
        append_annex_b(&[0, 3, 9, 9, 9], 2, &mut out).unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 9, 9, 9]);
        assert!(append_annex_b(&[0, 0, 0, 9, 0x65], 4, &mut out).unwrap_err().contains("claims 9 bytes"));
        assert!(append_annex_b(&[0, 0], 4, &mut out).is_err());
    }

    #[test]
    fn box_headers_are_checked_against_what_is_there() {
        let header = BoxHeader::parse(&[0, 0, 0, 16, b'f', b'r', b'e', b'e'], 100).unwrap();
        assert_eq!((&header.kind, header.header, header.size), (b"free", 8, 16));
        // 64-bit size, and size 0 meaning "to the end".
        let large = [0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 40];
        assert_eq!(BoxHeader::parse(&large, 40).map(|h| (h.header, h.size)), Some((16, 40)));
        assert_eq!(BoxHeader::parse(&[0, 0, 0, 0, b'm', b'd', b'a', b't'], 77).map(|h| h.size), Some(77));
        // Longer than its parent, shorter than its own header, or cut short.
        assert!(BoxHeader::parse(&[0, 0, 0, 16, b'f', b'r', b'e', b'e'], 15).is_none());
        assert!(BoxHeader::parse(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], 15).is_none());
        assert!(BoxHeader::parse(&large[..12], 40).is_none());
        assert!(children(&[0, 0, 0, 9, b'f', b'r', b'e', b'e', 0], "moov").is_ok());
        assert!(children(&[0, 0, 0, 90, b'f', b'r', b'e', b'e', 0], "moov").is_err());
    }

    #[test]
    fn fields_fail_past_the_end() {
        let mut f = Fields::new(&[0, 0, 0, 2, 1, 2], "stsz");
        assert_eq!(f.u32().unwrap(), 2);
        assert!(f.table(2, 4).unwrap_err().contains("`stsz` box is cut short"));
        assert!(Fields::new(&[0; 4], "stco").table(u32::MAX, 8).is_err());
    }
}
