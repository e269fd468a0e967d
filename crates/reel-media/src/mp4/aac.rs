//! AAC-LC encoding with the Fraunhofer FDK AAC library (compiled from source by the `fdk-aac`
//! crate): raw access units for the MP4 muxer, plus the AudioSpecificConfig and the encoder delay
//! that the MP4's edit list trims.

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::audio::Audio;
use crate::{MediaError, Result};

/// Sample rates AAC-LC defines.
const AAC_RATES: [u32; 12] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000];

/// Samples per channel in one AAC-LC access unit.
pub const AAC_FRAME: u32 = 1024;

pub struct EncodedAudio {
    pub sample_rate: u32,
    pub channels: u16,
    /// Raw access units, 1024 samples each.
    pub access_units: Vec<Vec<u8>>,
    /// MPEG-4 AudioSpecificConfig for the `esds` box.
    pub config: Vec<u8>,
    /// Priming samples at the start that players skip.
    pub delay: u32,
    /// Samples per channel of the source (the playable length).
    pub frames: u64,
    /// Average bitrate in bits per second.
    pub bitrate: u32,
}

/// 64 kbit/s per channel: transparent for speech and fine for music at these lengths.
fn bitrate(channels: u16) -> u32 {
    64_000 * channels as u32
}

pub fn encode(audio: &Audio) -> Result<EncodedAudio> {
    if !AAC_RATES.contains(&audio.sample_rate) {
        return Err(MediaError::InvalidInput(format!(
            "AAC cannot carry audio at {} Hz: resample to one of 48000, 44100, 32000, 24000, 22050 or 16000 Hz",
            audio.sample_rate
        )));
    }
    let fail = |what: &str, e: fdk_aac::enc::EncoderError| MediaError::InvalidInput(format!("AAC {what} failed: {e:?}"));
    let rate = bitrate(audio.channels);
    let encoder = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(rate),
        sample_rate: audio.sample_rate,
        transport: Transport::Raw,
        channels: if audio.channels == 1 { ChannelMode::Mono } else { ChannelMode::Stereo },
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| fail("encoder set-up", e))?;
    let info = encoder.info().map_err(|e| fail("encoder set-up", e))?;
    let config = info.confBuf[..info.confSize as usize].to_vec();
    let delay = info.nDelay;
    let channels = audio.channels as usize;

    // The library only releases its last frames when fed more input: append silence covering the
    // delay and one frame, then keep the access units that carry the source.
    let mut pcm = audio.to_i16();
    pcm.resize(pcm.len() + (delay + 2 * AAC_FRAME) as usize * channels, 0);
    let needed = (audio.frames() as u64 + delay as u64).div_ceil(AAC_FRAME as u64) as usize;
    let mut output = vec![0u8; info.maxOutBufBytes.max(8192) as usize];
    let mut access_units = Vec::with_capacity(needed);
    let mut position = 0;
    let chunk = AAC_FRAME as usize * channels;
    while access_units.len() < needed && position < pcm.len() {
        let end = (position + chunk).min(pcm.len());
        let result = encoder.encode(&pcm[position..end], &mut output).map_err(|e| fail("encoding", e))?;
        position += result.input_consumed.max(1);
        if result.output_size > 0 {
            access_units.push(output[..result.output_size].to_vec());
        }
    }
    if access_units.len() < needed {
        return Err(MediaError::InvalidInput("the AAC encoder stopped before the end of the audio".into()));
    }
    Ok(EncodedAudio {
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        access_units,
        config,
        delay,
        frames: audio.frames() as u64,
        bitrate: rate,
    })
}
