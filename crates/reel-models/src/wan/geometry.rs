//! How video sizes map to latent sizes: the VAE compresses time by `temporal` and space by
//! `spatial`, and the transformer cuts latents into patches. Sizes that do not fit are rejected with
//! the nearest valid values.

use crate::{ModelError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatentGeometry {
    pub channels: usize,
    pub temporal: usize,
    pub spatial: usize,
    /// The transformer's patch size in latent (frames, height, width).
    pub patch: (usize, usize, usize),
}

impl LatentGeometry {
    /// Video height and width must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        self.spatial * self.patch.1.max(self.patch.2)
    }

    /// (frames, height, width) of the latents for a video of `frames` frames of `height` x `width`.
    pub fn latent_dims(&self, frames: usize, height: usize, width: usize) -> Result<(usize, usize, usize)> {
        let t = self.temporal;
        if frames == 0 || !(frames - 1).is_multiple_of(t) {
            let below = frames.saturating_sub(1) / t * t + 1;
            return Err(ModelError::InvalidInput(format!(
                "{frames} frames is not a valid length: this model needs {t}k+1 frames; the nearest \
                 valid values are {below} and {}",
                below + t
            )));
        }
        let multiple = self.size_multiple();
        for (what, value) in [("height", height), ("width", width)] {
            if value == 0 || value % multiple != 0 {
                let below = (value / multiple * multiple).max(multiple);
                let above = if value <= below { below } else { below + multiple };
                let nearest = if value - below.min(value) <= above - value { below } else { above };
                return Err(ModelError::InvalidInput(format!(
                    "{what} {value} is not a multiple of {multiple} as this model needs; the nearest \
                     valid {what} is {nearest}"
                )));
            }
        }
        Ok(((frames - 1) / t + 1, height / self.spatial, width / self.spatial))
    }

    /// Video frames produced from `latent_frames` latent frames.
    pub fn video_frames(&self, latent_frames: usize) -> usize {
        (latent_frames - 1) * self.temporal + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAN21: LatentGeometry = LatentGeometry { channels: 16, temporal: 4, spatial: 8, patch: (1, 2, 2) };

    #[test]
    fn valid_sizes_map_to_latents() {
        assert_eq!(WAN21.latent_dims(81, 480, 832).unwrap(), (21, 60, 104));
        assert_eq!(WAN21.latent_dims(17, 192, 320).unwrap(), (5, 24, 40));
        assert_eq!(WAN21.video_frames(21), 81);
    }

    #[test]
    fn invalid_sizes_name_the_nearest_valid_values() {
        let err = WAN21.latent_dims(80, 480, 832).unwrap_err().to_string();
        assert!(err.contains("4k+1") && err.contains("77 and 81"), "{err}");
        let err = WAN21.latent_dims(81, 470, 832).unwrap_err().to_string();
        assert!(err.contains("height 470") && err.contains("nearest valid height is 464"), "{err}");
        let err = WAN21.latent_dims(81, 480, 830).unwrap_err().to_string();
        assert!(err.contains("width 830") && err.contains("832"), "{err}");
        let ti2v = LatentGeometry { channels: 48, temporal: 4, spatial: 16, patch: (1, 2, 2) };
        let err = ti2v.latent_dims(81, 720, 1296).unwrap_err().to_string();
        assert!(err.contains("multiple of 32") && err.contains("nearest valid height is 704"), "{err}");
        assert!(WAN21.latent_dims(0, 480, 832).is_err());
        assert!(WAN21.latent_dims(81, 0, 832).unwrap_err().to_string().contains("16"));
    }
}
