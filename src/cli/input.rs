//! The input flags shared by every subcommand that reads data (`run`, `embed`, `images`,
//! `smooth`): which input, and the method §2 options that turn it into images.

use crate::config::Config;
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

/// Input selection and method §2 options shared by every command that reads data (`run`, `embed`,
/// `images`, `smooth`). `--patch`, `--min-spots` and `--canvas` are also config keys
/// (`module1.patch`, `min_spots`, `canvas`): in `run` and `embed` a flag that is given replaces
/// the preset's and the config file's value, a flag left out changes nothing.
#[derive(clap::Args, Clone, Debug)]
pub struct InputArgs {
    /// Input: a Space Ranger outs/ folder, a flat 10x/ST/cell folder, a dense counts or MSI table,
    /// or an image stack (.safetensors, CSV `label,pixel…`). Default: the mouse olfactory bulb ST
    /// section embedded in the binary (fixtures/mob_st_rep11).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Patch side p: images are padded to multiples of it (method §2.2) and the ViT cuts them into
    /// p×p patches (method §4.1). Default 5 (`run`/`embed`: the config's `module1.patch`, 5 in
    /// every preset).
    #[arg(long)]
    pub patch: Option<usize>,
    /// Image shape of a CSV image stack, HxW or HxWxC.
    #[arg(long, value_parser = parse_shape)]
    pub image_shape: Option<ImageShape>,
    /// Zero this fraction of pixels per image of an image stack (method §2.3), e.g. 0.9. Default:
    /// none.
    #[arg(long)]
    pub sparsify: Option<f64>,
    /// Divide every pixel value by this after loading, to put an image stack on [0, 1] as method
    /// §2.3 does for natural images (255 for 8-bit images, 16 for the 8×8 digits). Default: no
    /// scaling.
    #[arg(long)]
    pub pixel_max: Option<f64>,
    /// Keep genes expressed in at least this many spots (method §2.1). Default 10 (`run`/`embed`:
    /// the config's `min_spots`, 10 in every preset).
    #[arg(long)]
    pub min_spots: Option<usize>,
    /// Canvas: a minimum side (an integer) or `tissue` (the tissue's bounding box padded to the
    /// patch). Default 75, method §2.2 (`run`/`embed`: the config's `canvas`: `tissue` in the
    /// recommended preset, 75 in `paper`).
    #[arg(long, value_parser = crate::config::CanvasRule::parse)]
    pub canvas: Option<crate::config::CanvasRule>,
    /// Section to use from a multi-section spot table (its `section` column). Default: the table
    /// must hold one section.
    #[arg(long)]
    pub section: Option<String>,
    /// Free coordinates: round to the integer lattice, or bin onto a grid.
    #[arg(long, value_enum, default_value_t = CoordMode::Auto)]
    pub coords: CoordMode,
    /// Bin side in input units for `--coords bin`. Default: the larger of (the larger coordinate
    /// range) / 75 and the median nearest-neighbour distance between points.
    #[arg(long)]
    pub bin_size: Option<f64>,
}

impl InputArgs {
    /// The input: the path given, else the embedded section (unpacked until the [`Input`] is
    /// dropped).
    pub fn input(&self) -> Result<Input> {
        Input::or_embedded(self.input.as_deref())
    }

    /// The [`LoadOptions`] of a command without a config (`images`, `smooth`): the flags, else
    /// [`LoadOptions::default`]; `seed` names the `data.sparsify` stream.
    pub fn options(&self, seed: u64) -> LoadOptions {
        let d = LoadOptions::default();
        LoadOptions {
            patch: self.patch.unwrap_or(d.patch),
            image_shape: self.image_shape.map(|s| (s.0, s.1, s.2)),
            sparsify: self.sparsify,
            seed,
            min_spots: self.min_spots.unwrap_or(d.min_spots),
            canvas: self
                .canvas
                .map_or(d.canvas, crate::config::CanvasRule::min_side),
            section: self.section.clone(),
            coords: self.coords,
            bin_size: self.bin_size,
            pixel_max: self.pixel_max,
        }
    }

    /// Write the flags that are config keys (`--patch`, `--min-spots`, `--canvas`) into `c`; a
    /// flag left out keeps the config's value.
    pub fn apply_to(&self, c: &mut Config) {
        if let Some(p) = self.patch {
            c.module1.patch = p;
        }
        if let Some(m) = self.min_spots {
            c.min_spots = m;
        }
        if let Some(canvas) = self.canvas {
            c.canvas = canvas;
        }
    }

    /// The [`LoadOptions`] of a command with a checked config (`run`, `embed`): patch, gene
    /// filter, canvas and seed from the config (after [`InputArgs::apply_to`]), the rest from the
    /// flags.
    pub fn options_for(&self, c: &Config) -> LoadOptions {
        LoadOptions {
            patch: c.module1.patch,
            min_spots: c.min_spots,
            canvas: c.canvas.min_side(),
            ..self.options(c.seed)
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
