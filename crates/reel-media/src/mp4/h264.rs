//! H.264 encoding with Cisco's OpenH264 (compiled from source by the `openh264` crate): constant
//! quantiser for a CRF-like quality setting, BT.709 colour in the stream's VUI, a keyframe every
//! two seconds so players can seek.

use openh264::encoder::{
    BitRate, Complexity, Encoder, FrameRate, EncoderConfig, FrameType, IntraFramePeriod, QpRange, RateControlMode, VuiConfig,
};
use openh264::OpenH264API;

use crate::yuv::Yuv420;
use crate::{MediaError, Result};

/// H.264 NAL unit types this module looks at.
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// One encoded frame: its NAL units (start codes removed, parameter sets excluded).
pub struct EncodedFrame {
    pub nal_units: Vec<Vec<u8>>,
    pub keyframe: bool,
}

pub struct H264Encoder {
    encoder: Encoder,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl H264Encoder {
    /// `quality` is the quantiser, 0 (best) to 51 (smallest), as x264's CRF scale reads.
    pub fn new(fps: f64, quality: u8) -> Result<Self> {
        if quality > 51 {
            return Err(MediaError::InvalidInput(format!("quality must lie in 0..=51 (lower is better), found {quality}")));
        }
        let keyframe_interval = (2.0 * fps).round().max(1.0) as u32;
        // Quality mode with the quantiser pinned to one value and a bitrate ceiling far above what
        // that quantiser produces: constant quality. (OpenH264's "off" mode ignores the quantiser.)
        // Frame skipping stays allowed only because OpenH264 warns on stderr otherwise; under this
        // ceiling it never skips, and `encode` reports it if it ever did.
        let config = EncoderConfig::new()
            .rate_control_mode(RateControlMode::Quality)
            .bitrate(BitRate::from_bps(100_000_000))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .qp(QpRange::new(quality, quality))
            .complexity(Complexity::High)
            .intra_frame_period(IntraFramePeriod::from_num_frames(keyframe_interval))
            .vui(VuiConfig::bt709());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| MediaError::InvalidInput(format!("cannot start the H.264 encoder: {e}")))?;
        Ok(Self { encoder, sps: None, pps: None })
    }

    pub fn encode(&mut self, frame: &Yuv420) -> Result<EncodedFrame> {
        let stream = self
            .encoder
            .encode(frame)
            .map_err(|e| MediaError::InvalidInput(format!("H.264 encoding failed: {e}")))?;
        let keyframe = stream.frame_type() == FrameType::IDR;
        if stream.frame_type() == FrameType::Skip {
            return Err(MediaError::InvalidInput(
                "the H.264 encoder dropped a frame to hold its bitrate; choose a higher quality number".into(),
            ));
        }
        let mut nal_units = Vec::new();
        for l in 0..stream.num_layers() {
            let layer = stream.layer(l).expect("layer index in range");
            for n in 0..layer.nal_count() {
                let nal = strip_start_code(layer.nal_unit(n).expect("nal index in range"));
                match nal.first().map(|b| b & 0x1f) {
                    Some(NAL_SPS) => self.sps = Some(nal.to_vec()),
                    Some(NAL_PPS) => self.pps = Some(nal.to_vec()),
                    Some(_) => nal_units.push(nal.to_vec()),
                    None => {}
                }
            }
        }
        if nal_units.is_empty() {
            return Err(MediaError::InvalidInput("the H.264 encoder produced no picture for a frame".into()));
        }
        Ok(EncodedFrame { nal_units, keyframe })
    }

    /// The sequence and picture parameter sets, known after the first frame.
    pub fn parameter_sets(&self) -> Option<(&[u8], &[u8])> {
        Some((self.sps.as_deref()?, self.pps.as_deref()?))
    }
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}
