//! The lecture's figures, computed from quantized blobs in the runtime (the same code a device
//! runs): reconstructions at several latent sizes, the CVAE analogies grid and the denoising
//! grid. Each returns the cells of an image grid row by row; [`tinyvae_data::image::Grid`] draws them.

use tinyvae::{Decoder, Encoder, Model, Rng};

use tinyvae_data::corrupt::Corruption;

/// A figure could not be drawn; says which blob and why.
pub type FigureError = String;

/// Parses a blob, naming it in errors.
pub fn parse<'a>(name: &str, bytes: &'a [u8]) -> Result<Model<'a>, FigureError> {
    Model::parse(bytes).map_err(|e| format!("{name}: {e}"))
}

/// Encodes `pixels` (0..=255) with `encoder` (mu, or z for autoencoders) and decodes the code
/// with `decoder`; `label` for conditional models (used by both when they take one).
pub fn reconstruct(
    encoder: &Model<'_>,
    decoder: &Model<'_>,
    pixels: &[u8],
    label: u32,
) -> Result<Vec<u8>, FigureError> {
    let z = encode(encoder, pixels, label)?;
    decode(decoder, &z, label)
}

/// The code of `pixels`: mu for Gaussian encoders, z for deterministic ones.
pub fn encode(encoder: &Model<'_>, pixels: &[u8], label: u32) -> Result<Vec<f32>, FigureError> {
    let e = Encoder::new(encoder).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; encoder.arena_size()];
    let (mut mu, mut logvar) = (vec![0f32; e.latent_dim()], vec![0f32; e.latent_dim()]);
    let labels = (e.classes() > 0).then_some([label]);
    e.encode_pixels_batch(pixels, labels.as_ref().map(|l| &l[..]), 1, &mut arena, &mut mu, &mut logvar)
        .map_err(|e| e.to_string())?;
    Ok(mu)
}

/// Pixels of `z` (with `label` for conditional decoders).
pub fn decode(decoder: &Model<'_>, z: &[f32], label: u32) -> Result<Vec<u8>, FigureError> {
    let d = Decoder::new(decoder).map_err(|e| e.to_string())?;
    if z.len() != d.latent_dim() {
        return Err(format!("the encoder gives {} values but the decoder takes z of {}", z.len(), d.latent_dim()));
    }
    let mut arena = vec![0u8; decoder.arena_size()];
    let mut px = vec![0u8; d.output_len()];
    let labels = (d.classes() > 0).then_some([label]);
    d.decode_batch(z, labels.as_ref().map(|l| &l[..]), 1, &mut arena, &mut px).map_err(|e| e.to_string())?;
    Ok(px)
}

/// Rows: the input images, then their reconstruction through each (encoder, decoder) pair.
pub fn reconstructions(
    images: &[&[u8]],
    labels: &[u32],
    pairs: &[(Model<'_>, Model<'_>)],
) -> Result<Vec<u8>, FigureError> {
    let mut cells: Vec<u8> = images.iter().flat_map(|i| i.iter().copied()).collect();
    for (enc, dec) in pairs {
        for (img, &label) in images.iter().zip(labels) {
            cells.extend(reconstruct(enc, dec, img, label)?);
        }
    }
    Ok(cells)
}

/// One row per real digit: the digit, then the decoder's image of its code z (from
/// q(z | x, y) with the true label) under every label 0..classes, so the style is held fixed
/// while the label changes (Kingma et al. 2014, figure 1).
pub fn analogies(
    encoder: &Model<'_>,
    decoder: &Model<'_>,
    images: &[&[u8]],
    labels: &[u32],
) -> Result<Vec<u8>, FigureError> {
    let classes = decoder.meta().classes as u32;
    if classes == 0 {
        return Err("the analogies figure needs a conditional decoder".into());
    }
    let mut cells = Vec::new();
    for (img, &label) in images.iter().zip(labels) {
        let z = encode(encoder, img, label)?;
        cells.extend_from_slice(img);
        for y in 0..classes {
            cells.extend(decode(decoder, &z, y)?);
        }
    }
    Ok(cells)
}

/// Three rows: the corrupted inputs, the denoising autoencoder's outputs, the clean inputs.
pub fn denoising(
    encoder: &Model<'_>,
    decoder: &Model<'_>,
    images: &[&[u8]],
    corruption: Corruption,
    seed: u64,
) -> Result<Vec<u8>, FigureError> {
    let mut rng = Rng::new(seed);
    let mut corrupted = Vec::new();
    let mut outputs = Vec::new();
    for img in images {
        let mut x: Vec<f32> = img.iter().map(|&p| p as f32 / 255.0).collect();
        corruption.apply(&mut x, &mut rng);
        let px: Vec<u8> = x.iter().map(|&v| tinyvae::to_pixel(v)).collect();
        outputs.extend(reconstruct(encoder, decoder, &px, 0)?);
        corrupted.extend(px);
    }
    let clean: Vec<u8> = images.iter().flat_map(|i| i.iter().copied()).collect();
    Ok([corrupted, outputs, clean].concat())
}
