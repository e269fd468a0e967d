//! WAV audio (16-bit PCM) with hound.

use std::path::Path;

use crate::{Audio, MediaError, Result};

pub fn write_wav(audio: &Audio, path: &Path) -> Result<()> {
    let spec = hound::WavSpec {
        channels: audio.channels,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let failed = |e: hound::Error| match e {
        hound::Error::IoError(source) => MediaError::Write { path: path.to_path_buf(), source },
        other => MediaError::Encode { path: path.to_path_buf(), message: other.to_string() },
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(failed)?;
    for sample in audio.to_i16() {
        writer.write_sample(sample).map_err(failed)?;
    }
    writer.finalize().map_err(failed)
}

/// Reads a WAV file (integer or float PCM, mono or stereo) as [`Audio`].
pub fn read_wav(path: &Path) -> Result<Audio> {
    let failed = |e: hound::Error| MediaError::InvalidInput(format!("{} is not a readable WAV file: {e}", path.display()));
    let reader = hound::WavReader::open(path).map_err(failed)?;
    let spec = reader.spec();
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<std::result::Result<_, _>>().map_err(failed)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<std::result::Result<_, _>>().map_err(failed)?
        }
    };
    Audio::new(spec.sample_rate, spec.channels, samples)
}
