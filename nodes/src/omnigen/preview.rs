//! A cheap picture of a latent for progress previews: a fixed linear map from the 4 SDXL-VAE latent
//! channels to RGB (the approximation ComfyUI uses for SDXL latents), with no VAE decode.

use omnigen_engine::{Image, ValueError};

/// Channel → RGB weights for SDXL-VAE latents (scaled by the VAE's scaling factor, as OmniGen samples them).
const LATENT_RGB: [[f32; 3]; 4] = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
];
const LATENT_RGB_BIAS: [f32; 3] = [0.1084, -0.0175, -0.0011];

/// Renders one latent (`[4, h, w]` row-major) as an `h × w` RGB image in `0..=1`.
pub fn latent_to_rgb(latent: &[f32], height: usize, width: usize) -> Result<Image, ValueError> {
    let plane = height * width;
    let mut data = Vec::with_capacity(plane * 3);
    for i in 0..plane {
        for (c, bias) in LATENT_RGB_BIAS.iter().enumerate() {
            let mut v = *bias;
            for (ch, weights) in LATENT_RGB.iter().enumerate() {
                v += latent.get(ch * plane + i).copied().unwrap_or(0.0) * weights[c];
            }
            data.push(((v + 1.0) * 0.5).clamp(0.0, 1.0));
        }
    }
    Image::new(1, height, width, 3, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_latent_maps_to_the_bias_colour() {
        let img = latent_to_rgb(&[0.0; 4 * 2 * 3], 2, 3).expect("image");
        assert_eq!(img.dims(), (1, 2, 3, 3));
        let px = img.pixel(0, 1, 2).expect("pixel");
        assert!((px[0] - (1.0 + 0.1084) / 2.0).abs() < 1e-6);
        assert!((px[1] - (1.0 - 0.0175) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn channels_are_weighted_and_clamped() {
        // Channel 0 = 1 everywhere: red = 0.3651 + 0.1084.
        let mut latent = vec![0.0; 4];
        latent[0] = 1.0;
        let img = latent_to_rgb(&latent, 1, 1).expect("image");
        assert!((img.data()[0] - (1.0 + 0.4735) / 2.0).abs() < 1e-6);
        let img = latent_to_rgb(&[100.0, 0.0, 0.0, 0.0], 1, 1).expect("image");
        assert_eq!(img.data()[0], 1.0);
    }
}
