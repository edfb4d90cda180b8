//! The input flags shared by every subcommand that reads data (`run`, `embed`, `images`,
//! `smooth`): which input, and the SPEC §2 options that turn it into images.

use crate::data::{CoordMode, Input, LoadOptions};
use crate::error::Result;
use std::path::PathBuf;

/// `HxW` or `HxWxC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape(pub usize, pub usize, pub usize);

fn parse_shape(s: &str) -> std::result::Result<ImageShape, String> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let nums: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("`{s}` is not HxW or HxWxC (e.g. 8x8, 32x32x3)"))?;
    match *nums.as_slice() {
        [h, w] if h > 0 && w > 0 => Ok(ImageShape(h, w, 1)),
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok(ImageShape(h, w, c)),
        _ => Err(format!("`{s}` is not HxW or HxWxC with positive sizes")),
    }
}

/// Input selection and SPEC §2 options shared by every command that reads data.
#[derive(clap::Args, Clone, Debug)]
pub struct InputArgs {
    /// Input: a Space Ranger outs/ folder, a flat 10x/ST/cell folder, a dense counts or MSI table,
    /// or an image stack (.safetensors, CSV `label,pixel…`). Default: the mouse olfactory bulb ST
    /// section embedded in the binary (fixtures/mob_st_rep11).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Patch side: images are padded to multiples of it (SPEC §2.2).
    #[arg(long, default_value_t = 5)]
    pub patch: usize,
    /// Image shape of a CSV image stack, HxW or HxWxC.
    #[arg(long, value_parser = parse_shape)]
    pub image_shape: Option<ImageShape>,
    /// Zero this fraction of pixels per image of an image stack (SPEC §2.3), e.g. 0.9.
    #[arg(long)]
    pub sparsify: Option<f64>,
    /// Keep genes expressed in at least this many spots (SPEC §2.1).
    #[arg(long, default_value_t = 10)]
    pub min_spots: usize,
    /// Canvas: a minimum side (SPEC §2.2's 75 when not given; `darlc run` takes the preset's,
    /// 75 in `paper`) or `tissue` (the tissue's bounding box padded to the patch, as in `darlc
    /// run`'s recommended preset).
    #[arg(long, value_parser = crate::config::CanvasRule::parse)]
    pub canvas: Option<crate::config::CanvasRule>,
    /// Section to use from a multi-section spot table (its `section` column).
    #[arg(long)]
    pub section: Option<String>,
    /// Free coordinates: round to the integer lattice, or bin onto a grid.
    #[arg(long, value_enum, default_value_t = CoordMode::Auto)]
    pub coords: CoordMode,
    /// Bin side in input units for `--coords bin` (default: see the docs of the bin rule).
    #[arg(long)]
    pub bin_size: Option<f64>,
}

impl InputArgs {
    /// The input: the path given, else the embedded section (unpacked until the [`Input`] is
    /// dropped).
    pub fn input(&self) -> Result<Input> {
        Input::or_embedded(self.input.as_deref())
    }
    /// The [`LoadOptions`] these flags describe; `seed` is the run's seed.
    pub fn options(&self, seed: u64) -> LoadOptions {
        LoadOptions {
            patch: self.patch,
            image_shape: self.image_shape.map(|s| (s.0, s.1, s.2)),
            sparsify: self.sparsify,
            seed,
            min_spots: self.min_spots,
            canvas: self.canvas.map_or(75, crate::config::CanvasRule::min_side),
            section: self.section.clone(),
            coords: self.coords,
            bin_size: self.bin_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("8x8"), Ok(ImageShape(8, 8, 1)));
        assert_eq!(parse_shape("32x32x3"), Ok(ImageShape(32, 32, 3)));
        assert!(parse_shape("8").is_err());
        assert!(parse_shape("0x8").is_err());
        assert!(parse_shape("axb").is_err());
    }
}
