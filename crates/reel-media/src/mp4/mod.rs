//! MP4 (H.264 video, optional AAC-LC audio) written as a stream: each frame is encoded and appended
//! to disk as it arrives, so memory does not grow with the video's length (only the sample tables,
//! a few bytes per frame, are kept). `finish` lays the file out for fast start (`moov` before `mdat`,
//! so browsers play while downloading) by copying the media data once behind the index.

mod aac;
mod boxes;
mod h264;
mod read;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use boxes::{descriptor, BoxWriter};
pub use h264::H264Encoder;
pub use read::{read_mp4_frames, read_mp4_info, VideoInfo};

use crate::audio::Audio;
use crate::yuv::{even_size, Yuv420};
use crate::{MediaError, Result};

/// The default quantiser: visually clean at the sizes the models make (see the PSNR test).
pub const DEFAULT_QUALITY: u8 = 20;

/// Movie-level timescale (ticks per second) of the headers.
const MOVIE_TIMESCALE: u32 = 1000;

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Mp4Summary {
    pub path: PathBuf,
    pub frames: usize,
    /// Encoded size, even (odd sources are padded by one row or column).
    pub width: usize,
    pub height: usize,
    pub duration: f64,
    pub bytes: u64,
}

#[derive(Default)]
struct SampleTable {
    sizes: Vec<u32>,
    /// Offsets in the media-data file.
    offsets: Vec<u64>,
    /// 1-based numbers of keyframes.
    sync: Vec<u32>,
}

struct AudioTrack {
    encoded: aac::EncodedAudio,
    written: usize,
    table: SampleTable,
}

/// Streams frames into an MP4 file.
pub struct Mp4Writer {
    path: PathBuf,
    media_path: PathBuf,
    media: BufWriter<File>,
    media_len: u64,
    encoder: H264Encoder,
    source_size: (usize, usize),
    coded_size: (usize, usize),
    fps: f64,
    video: SampleTable,
    audio: Option<AudioTrack>,
    finished: bool,
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Write { path: path.to_path_buf(), source }
}

/// A hidden file next to `path` for intermediate data.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

impl Mp4Writer {
    /// Starts `path` for frames of `width` x `height` at `fps`, with `audio` muxed alongside.
    /// `quality` is the H.264 quantiser (0 best .. 51 smallest; [`DEFAULT_QUALITY`] by default).
    pub fn create(path: &Path, width: usize, height: usize, fps: f64, audio: Option<&Audio>, quality: u8) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(MediaError::InvalidInput(format!("frame size {width}x{height} is empty")));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(MediaError::InvalidInput(format!("fps must be a positive number, found {fps}")));
        }
        let audio = audio
            .map(|a| -> Result<AudioTrack> { Ok(AudioTrack { encoded: aac::encode(a)?, written: 0, table: SampleTable::default() }) })
            .transpose()?;
        let encoder = H264Encoder::new(fps, quality)?;
        let media_path = sibling(path, "mdat.partial");
        let file = File::create(&media_path).map_err(write_error(&media_path))?;
        Ok(Self {
            path: path.to_path_buf(),
            media_path,
            media: BufWriter::with_capacity(256 << 10, file),
            media_len: 0,
            encoder,
            source_size: (width, height),
            coded_size: even_size(width, height),
            fps,
            video: SampleTable::default(),
            audio,
            finished: false,
        })
    }

    fn append(&mut self, data: &[u8]) -> Result<u64> {
        let offset = self.media_len;
        self.media.write_all(data).map_err(write_error(&self.media_path))?;
        self.media_len += data.len() as u64;
        Ok(offset)
    }

    /// Encodes and appends one RGB8 frame of the size given to `create`.
    pub fn push_frame(&mut self, rgb: &[u8]) -> Result<()> {
        let (w, h) = self.source_size;
        if rgb.len() != w * h * 3 {
            return Err(MediaError::InvalidInput(format!(
                "frame {} holds {} bytes, but {w}x{h} RGB frames hold {}: all frames must have the same size",
                self.video.sizes.len(),
                rgb.len(),
                w * h * 3
            )));
        }
        let frame = self.encoder.encode(&Yuv420::from_rgb(rgb, w, h))?;
        if self.video.sizes.is_empty() && !frame.keyframe {
            return Err(MediaError::InvalidInput("the H.264 encoder did not start with a keyframe".into()));
        }
        // Length-prefixed NAL units, as the `avc1` sample format stores them.
        let mut sample = Vec::with_capacity(frame.nal_units.iter().map(|n| n.len() + 4).sum());
        for nal in &frame.nal_units {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        }
        let offset = self.append(&sample)?;
        self.video.offsets.push(offset);
        self.video.sizes.push(sample.len() as u32);
        if frame.keyframe {
            self.video.sync.push(self.video.sizes.len() as u32);
        }
        // Interleave the audio that plays during this frame.
        let until = self.video.sizes.len() as f64 / self.fps;
        self.write_audio_until(until)
    }

    fn write_audio_until(&mut self, seconds: f64) -> Result<()> {
        loop {
            let Some(audio) = &self.audio else { return Ok(()) };
            let start = audio.written as f64 * aac::AAC_FRAME as f64 / audio.encoded.sample_rate as f64;
            if audio.written >= audio.encoded.access_units.len() || start >= seconds {
                return Ok(());
            }
            let unit = audio.encoded.access_units[audio.written].clone();
            let offset = self.append(&unit)?;
            let audio = self.audio.as_mut().expect("checked above");
            audio.table.offsets.push(offset);
            audio.table.sizes.push(unit.len() as u32);
            audio.written += 1;
        }
    }

    /// Writes the remaining audio and lays the file out for fast start.
    pub fn finish(mut self) -> Result<Mp4Summary> {
        if self.video.sizes.is_empty() {
            return Err(MediaError::InvalidInput("there are no frames to write".into()));
        }
        self.write_audio_until(f64::INFINITY)?;
        self.media.flush().map_err(write_error(&self.media_path))?;
        let (sps, pps) = self
            .encoder
            .parameter_sets()
            .map(|(s, p)| (s.to_vec(), p.to_vec()))
            .ok_or_else(|| MediaError::InvalidInput("the H.264 encoder gave no parameter sets".into()))?;

        let ftyp = ftyp();
        let large = self.media_len + 16 > u32::MAX as u64;
        let mdat_header = if large { 16 } else { 8 };
        // The index's size depends only on the width of the offsets it holds (32 or 64 bits).
        let mut wide = false;
        let mut probe = self.moov(&sps, &pps, 0, wide);
        if (ftyp.len() + probe.len()) as u64 + mdat_header + self.media_len > u32::MAX as u64 {
            wide = true;
            probe = self.moov(&sps, &pps, 0, wide);
        }
        let media_start = (ftyp.len() + probe.len()) as u64 + mdat_header;
        let moov = self.moov(&sps, &pps, media_start, wide);
        debug_assert_eq!(moov.len(), probe.len());

        let staging = sibling(&self.path, "partial");
        let out = File::create(&staging).map_err(write_error(&staging))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut write = |bytes: &[u8]| out.write_all(bytes).map_err(write_error(&staging));
        write(&ftyp)?;
        write(&moov)?;
        if large {
            write(&1u32.to_be_bytes())?;
            write(b"mdat")?;
            write(&(self.media_len + 16).to_be_bytes())?;
        } else {
            write(&((self.media_len + 8) as u32).to_be_bytes())?;
            write(b"mdat")?;
        }
        let mut media = BufReader::new(File::open(&self.media_path).map_err(write_error(&self.media_path))?);
        let copied = std::io::copy(&mut media.by_ref().take(self.media_len), &mut out).map_err(write_error(&staging))?;
        if copied != self.media_len {
            return Err(MediaError::Write {
                path: self.media_path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "media data ended early"),
            });
        }
        out.flush().map_err(write_error(&staging))?;
        drop(out);
        std::fs::rename(&staging, &self.path).map_err(write_error(&self.path))?;
        let _ = std::fs::remove_file(&self.media_path);
        self.finished = true;
        let bytes = std::fs::metadata(&self.path).map_err(write_error(&self.path))?.len();
        Ok(Mp4Summary {
            path: self.path.clone(),
            frames: self.video.sizes.len(),
            width: self.coded_size.0,
            height: self.coded_size.1,
            duration: self.video.sizes.len() as f64 / self.fps,
            bytes,
        })
    }

    /// Ticks per second of the video track: the frame rate to a thousandth.
    fn video_timescale(&self) -> u32 {
        (self.fps * 1000.0).round() as u32
    }

    fn moov(&self, sps: &[u8], pps: &[u8], media_start: u64, wide: bool) -> Vec<u8> {
        let frames = self.video.sizes.len() as u64;
        let video_ms = (frames as f64 / self.fps * MOVIE_TIMESCALE as f64).round() as u64;
        let audio_ms = self.audio.as_ref().map_or(0, |a| {
            (a.encoded.frames as f64 / a.encoded.sample_rate as f64 * MOVIE_TIMESCALE as f64).round() as u64
        });
        let mut moov = BoxWriter::new(b"moov");
        let mut mvhd = BoxWriter::full(b"mvhd", 0, 0);
        mvhd.u32(0).u32(0).u32(MOVIE_TIMESCALE).u32(video_ms.max(audio_ms) as u32);
        mvhd.u32(0x0001_0000).u16(0x0100).zeros(10).unity_matrix().zeros(24);
        mvhd.u32(if self.audio.is_some() { 3 } else { 2 });
        moov.child(mvhd);
        moov.child(self.video_trak(sps, pps, media_start, wide, video_ms));
        if let Some(audio) = &self.audio {
            moov.child(audio_trak(audio, media_start, wide, audio_ms));
        }
        moov.finish()
    }

    fn video_trak(&self, sps: &[u8], pps: &[u8], media_start: u64, wide: bool, duration_ms: u64) -> BoxWriter {
        let (w, h) = (self.coded_size.0 as u32, self.coded_size.1 as u32);
        let timescale = self.video_timescale();
        let frames = self.video.sizes.len() as u32;
        let mut trak = BoxWriter::new(b"trak");
        trak.child(tkhd(1, duration_ms, 0, w, h));
        let mut mdia = BoxWriter::new(b"mdia");
        mdia.child(mdhd(timescale, frames as u64 * 1000));
        mdia.child(hdlr(b"vide", "VideoHandler"));
        let mut minf = BoxWriter::new(b"minf");
        let mut vmhd = BoxWriter::full(b"vmhd", 0, 1);
        vmhd.zeros(8);
        minf.child(vmhd);
        minf.child(dinf());
        let mut stbl = BoxWriter::new(b"stbl");
        stbl.child(stsd(avc1(w, h, sps, pps)));
        stbl.child(stts(frames, 1000));
        let mut stss = BoxWriter::full(b"stss", 0, 0);
        stss.u32(self.video.sync.len() as u32);
        for s in &self.video.sync {
            stss.u32(*s);
        }
        stbl.child(stss);
        sample_location(&mut stbl, &self.video, media_start, wide);
        minf.child(stbl);
        mdia.child(minf);
        trak.child(mdia);
        trak
    }
}

impl Drop for Mp4Writer {
    fn drop(&mut self) {
        // An unfinished file leaves nothing behind.
        if !self.finished {
            let _ = std::fs::remove_file(&self.media_path);
        }
    }
}

fn ftyp() -> Vec<u8> {
    let mut ftyp = BoxWriter::new(b"ftyp");
    ftyp.bytes(b"isom").u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        ftyp.bytes(brand);
    }
    ftyp.finish()
}

fn tkhd(track: u32, duration_ms: u64, volume: u16, width: u32, height: u32) -> BoxWriter {
    // Flags: enabled, in movie, in preview.
    let mut tkhd = BoxWriter::full(b"tkhd", 0, 3);
    tkhd.u32(0).u32(0).u32(track).u32(0).u32(duration_ms as u32).zeros(8);
    tkhd.u16(0).u16(0).u16(volume).u16(0).unity_matrix();
    tkhd.u32(width << 16).u32(height << 16);
    tkhd
}

fn mdhd(timescale: u32, duration: u64) -> BoxWriter {
    let mut mdhd = BoxWriter::full(b"mdhd", 0, 0);
    // Language "und", packed as three 5-bit letters.
    mdhd.u32(0).u32(0).u32(timescale).u32(duration as u32).u16(0x55c4).u16(0);
    mdhd
}

fn hdlr(handler: &[u8; 4], name: &str) -> BoxWriter {
    let mut hdlr = BoxWriter::full(b"hdlr", 0, 0);
    hdlr.u32(0).bytes(handler).zeros(12).bytes(name.as_bytes()).u8(0);
    hdlr
}

fn dinf() -> BoxWriter {
    let mut dref = BoxWriter::full(b"dref", 0, 0);
    dref.u32(1);
    // Flag 1: the media data is in this file.
    dref.child(BoxWriter::full(b"url ", 0, 1));
    let mut dinf = BoxWriter::new(b"dinf");
    dinf.child(dref);
    dinf
}

fn stsd(entry: BoxWriter) -> BoxWriter {
    let mut stsd = BoxWriter::full(b"stsd", 0, 0);
    stsd.u32(1).child(entry);
    stsd
}

fn avc1(width: u32, height: u32, sps: &[u8], pps: &[u8]) -> BoxWriter {
    let mut avc1 = BoxWriter::new(b"avc1");
    avc1.zeros(6).u16(1).zeros(16).u16(width as u16).u16(height as u16);
    avc1.u32(0x0048_0000).u32(0x0048_0000).u32(0).u16(1);
    let mut name = [0u8; 32];
    let label = b"reel OpenH264";
    name[0] = label.len() as u8;
    name[1..=label.len()].copy_from_slice(label);
    avc1.bytes(&name).u16(0x0018).u16(0xffff);

    let mut avcc = BoxWriter::new(b"avcC");
    avcc.u8(1).u8(sps[1]).u8(sps[2]).u8(sps[3]).u8(0xff).u8(0xe1);
    avcc.u16(sps.len() as u16).bytes(sps).u8(1).u16(pps.len() as u16).bytes(pps);
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        // High profiles: 4:2:0, 8-bit, no SPS extensions.
        avcc.u8(0xfc | 1).u8(0xf8).u8(0xf8).u8(0);
    }
    avc1.child(avcc);
    // BT.709 primaries, transfer and matrix, limited range.
    let mut colr = BoxWriter::new(b"colr");
    colr.bytes(b"nclx").u16(1).u16(1).u16(1).u8(0);
    avc1.child(colr);
    let mut pasp = BoxWriter::new(b"pasp");
    pasp.u32(1).u32(1);
    avc1.child(pasp);
    avc1
}

fn stts(count: u32, delta: u32) -> BoxWriter {
    let mut stts = BoxWriter::full(b"stts", 0, 0);
    stts.u32(1).u32(count).u32(delta);
    stts
}

/// One sample per chunk: `stsc`, `stsz` and `stco`/`co64` for a table.
fn sample_location(stbl: &mut BoxWriter, table: &SampleTable, media_start: u64, wide: bool) {
    let mut stsc = BoxWriter::full(b"stsc", 0, 0);
    stsc.u32(1).u32(1).u32(1).u32(1);
    stbl.child(stsc);
    let mut stsz = BoxWriter::full(b"stsz", 0, 0);
    stsz.u32(0).u32(table.sizes.len() as u32);
    for size in &table.sizes {
        stsz.u32(*size);
    }
    stbl.child(stsz);
    let mut offsets = BoxWriter::full(if wide { b"co64" } else { b"stco" }, 0, 0);
    offsets.u32(table.offsets.len() as u32);
    for offset in &table.offsets {
        let absolute = media_start + offset;
        if wide {
            offsets.u64(absolute);
        } else {
            offsets.u32(absolute as u32);
        }
    }
    stbl.child(offsets);
}

fn audio_trak(audio: &AudioTrack, media_start: u64, wide: bool, duration_ms: u64) -> BoxWriter {
    let encoded = &audio.encoded;
    let units = audio.table.sizes.len() as u32;
    let mut trak = BoxWriter::new(b"trak");
    trak.child(tkhd(2, duration_ms, 0x0100, 0, 0));
    // Skip the encoder's priming samples and play exactly the source's length.
    let mut elst = BoxWriter::full(b"elst", 0, 0);
    elst.u32(1).u32(duration_ms as u32).u32(encoded.delay).u16(1).u16(0);
    let mut edts = BoxWriter::new(b"edts");
    edts.child(elst);
    trak.child(edts);
    let mut mdia = BoxWriter::new(b"mdia");
    mdia.child(mdhd(encoded.sample_rate, units as u64 * aac::AAC_FRAME as u64));
    mdia.child(hdlr(b"soun", "SoundHandler"));
    let mut minf = BoxWriter::new(b"minf");
    let mut smhd = BoxWriter::full(b"smhd", 0, 0);
    smhd.u16(0).u16(0);
    minf.child(smhd);
    minf.child(dinf());
    let mut stbl = BoxWriter::new(b"stbl");
    stbl.child(stsd(mp4a(encoded)));
    stbl.child(stts(units, aac::AAC_FRAME));
    sample_location(&mut stbl, &audio.table, media_start, wide);
    minf.child(stbl);
    mdia.child(minf);
    trak.child(mdia);
    trak
}

fn mp4a(encoded: &aac::EncodedAudio) -> BoxWriter {
    let mut mp4a = BoxWriter::new(b"mp4a");
    mp4a.zeros(6).u16(1).zeros(8).u16(encoded.channels).u16(16).u16(0).u16(0);
    mp4a.u32(encoded.sample_rate << 16);
    // ES descriptor: decoder config (AAC, audio stream) with the AudioSpecificConfig, SL config.
    let mut config = vec![0x40, 0x15, 0, 0x18, 0];
    config.extend_from_slice(&encoded.bitrate.to_be_bytes());
    config.extend_from_slice(&encoded.bitrate.to_be_bytes());
    config.extend_from_slice(&descriptor(0x05, &encoded.config));
    let mut es = vec![0, 1, 0];
    es.extend_from_slice(&descriptor(0x04, &config));
    es.extend_from_slice(&descriptor(0x06, &[0x02]));
    let mut esds = BoxWriter::full(b"esds", 0, 0);
    esds.bytes(&descriptor(0x03, &es));
    mp4a.child(esds);
    mp4a
}
