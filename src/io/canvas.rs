//! A small RGB raster for the pictures a scientist reads (issue 25): filled boxes, gene images in
//! the viridis colour map, spots as discs, colour bars and text, written as PNG.
//!
//! Text uses the pre-rasterised glyphs of the Noto Sans Mono font (crate `noto-sans-mono-bitmap`:
//! each glyph is an 8-bit coverage raster, blended over what lies beneath), so labels are real
//! anti-aliased type without a font file or a rasteriser at run time. Characters outside Basic
//! Latin and Latin-1 are drawn as `?`.

use super::picture::viridis;
use crate::error::{DarlcError, Result};
use ndarray::ArrayView2;
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use std::path::Path;

pub const WHITE: [u8; 3] = [255, 255, 255];
pub const BLACK: [u8; 3] = [0, 0, 0];
pub const GREY: [u8; 3] = [110, 110, 110];
/// Background pixels inside a picture of a section (outside the tissue).
pub const OUTSIDE: [u8; 3] = [225, 225, 225];

/// Size and weight of a line of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Font {
    pub height: RasterHeight,
    pub bold: bool,
}

impl Font {
    /// 16-pixel line, regular: tile labels.
    pub const SMALL: Font = Font {
        height: RasterHeight::Size16,
        bold: false,
    };
    /// 20-pixel line, bold: titles.
    pub const TITLE: Font = Font {
        height: RasterHeight::Size20,
        bold: true,
    };
    /// 24-pixel line, bold: a page heading.
    pub const HEADING: Font = Font {
        height: RasterHeight::Size24,
        bold: true,
    };

    fn weight(self) -> FontWeight {
        if self.bold {
            FontWeight::Bold
        } else {
            FontWeight::Regular
        }
    }

    /// Width of one character (the font is monospaced).
    pub fn char_width(self) -> usize {
        get_raster_width(self.weight(), self.height)
    }

    /// Height of one line.
    pub fn line_height(self) -> usize {
        self.height.val()
    }

    /// Width of `s` in pixels.
    pub fn width_of(self, s: &str) -> usize {
        s.chars().count() * self.char_width()
    }

    /// `s`, shortened with a trailing `..` so that it fits in `max_width` pixels.
    pub fn fit(self, s: &str, max_width: usize) -> String {
        let fits = max_width / self.char_width().max(1);
        if s.chars().count() <= fits {
            return s.to_string();
        }
        let keep = fits.saturating_sub(2);
        s.chars()
            .take(keep)
            .chain("..".chars())
            .take(fits)
            .collect()
    }
}

/// An RGB picture, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Canvas {
    /// A `width × height` picture filled with `background`.
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Canvas {
        let mut rgb = vec![0u8; width * height * 3];
        for px in rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&background);
        }
        Canvas { width, height, rgb }
    }

    /// The colour at `(x, y)` (tests and checks).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let o = (y * self.width + x) * 3;
        [self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]
    }

    /// Set `(x, y)` to `c`; pixels outside the picture are ignored.
    pub fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let o = (y * self.width + x) * 3;
            self.rgb[o..o + 3].copy_from_slice(&c);
        }
    }

    /// Mix `c` into `(x, y)` with coverage `alpha` (0 = unchanged, 255 = `c`).
    fn blend(&mut self, x: usize, y: usize, c: [u8; 3], alpha: u8) {
        if x < self.width && y < self.height && alpha > 0 {
            let o = (y * self.width + x) * 3;
            let a = alpha as u32;
            for (px, &new) in self.rgb[o..o + 3].iter_mut().zip(&c) {
                *px = ((new as u32 * a + *px as u32 * (255 - a) + 127) / 255) as u8;
            }
        }
    }

    /// Fill the box of `w × h` pixels whose top-left corner is `(x, y)`.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                self.put(xx, yy, c);
            }
        }
    }

    /// A one-pixel frame around the box `w × h` at `(x, y)`.
    pub fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        if w == 0 || h == 0 {
            return;
        }
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y + h - 1, w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x + w - 1, y, 1, h, c);
    }

    /// Draw `s` with its top-left corner at `(x, y)`; returns the width drawn.
    pub fn text(&mut self, x: usize, y: usize, s: &str, font: Font, c: [u8; 3]) -> usize {
        let cw = font.char_width();
        for (i, ch) in s.chars().enumerate() {
            let glyph = get_raster(ch, font.weight(), font.height)
                .or_else(|| get_raster('?', font.weight(), font.height));
            let Some(g) = glyph else { continue };
            for (gy, row) in g.rows().enumerate() {
                for (gx, &a) in row.iter().enumerate() {
                    self.blend(x + i * cw + gx, y + gy, c, a);
                }
            }
        }
        s.chars().count() * cw
    }

    /// Draw `s` centred on the column `cx`.
    pub fn text_centred(&mut self, cx: usize, y: usize, s: &str, font: Font, c: [u8; 3]) {
        let w = font.width_of(s);
        self.text(cx.saturating_sub(w / 2), y, s, font, c);
    }

    /// A gene image with its top-left corner at `(x, y)`, each pixel a `scale × scale` block,
    /// coloured by `viridis(v / vmax)` (`vmax ≤ 0`: every pixel at the bottom of the map);
    /// pixels outside `mask` (0) are [`OUTSIDE`].
    pub fn image(
        &mut self,
        x: usize,
        y: usize,
        img: ArrayView2<f32>,
        mask: Option<ArrayView2<u8>>,
        scale: usize,
        vmax: f32,
    ) {
        let (h, w) = img.dim();
        for i in 0..h {
            for j in 0..w {
                let inside = mask.is_none_or(|m| m[[i, j]] != 0);
                let c = if !inside {
                    OUTSIDE
                } else if vmax > 0.0 {
                    viridis((img[[i, j]] / vmax) as f64)
                } else {
                    viridis(0.0)
                };
                self.fill_rect(x + j * scale, y + i * scale, scale, scale, c);
            }
        }
    }

    /// A filled disc of radius `r` centred on `(cx, cy)` (pixel centres at `+0.5`), edges
    /// anti-aliased by 4×4 supersampling.
    pub fn disc(&mut self, cx: f64, cy: f64, r: f64, c: [u8; 3]) {
        if !(cx.is_finite() && cy.is_finite() && r.is_finite()) || r <= 0.0 {
            return;
        }
        let x0 = (cx - r).floor().max(0.0) as usize;
        let y0 = (cy - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil().max(0.0) as usize).min(self.width);
        let y1 = ((cy + r).ceil().max(0.0) as usize).min(self.height);
        for y in y0..y1 {
            for x in x0..x1 {
                let mut hits = 0u32;
                for sy in 0..4 {
                    for sx in 0..4 {
                        let dx = x as f64 + (sx as f64 + 0.5) / 4.0 - cx;
                        let dy = y as f64 + (sy as f64 + 0.5) / 4.0 - cy;
                        if dx * dx + dy * dy <= r * r {
                            hits += 1;
                        }
                    }
                }
                self.blend(x, y, c, (hits * 255 / 16) as u8);
            }
        }
    }

    /// A horizontal viridis bar `w × h` at `(x, y)` with `lo` under its left end and `hi` under
    /// its right end; returns the height used (bar and labels).
    pub fn colour_bar(
        &mut self,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
        lo: &str,
        hi: &str,
    ) -> usize {
        for xx in 0..w {
            let c = viridis(xx as f64 / (w.max(2) - 1) as f64);
            self.fill_rect(x + xx, y, 1, h, c);
        }
        self.frame(x, y, w, h, GREY);
        let f = Font::SMALL;
        self.text(x, y + h + 1, lo, f, BLACK);
        let hw = f.width_of(hi);
        self.text((x + w).saturating_sub(hw), y + h + 1, hi, f, BLACK);
        h + 1 + f.line_height()
    }

    /// Copy `src` (another picture) with its top-left corner at `(x, y)`, clipped.
    pub fn paste(&mut self, x: usize, y: usize, src: &Canvas) {
        for yy in 0..src.height {
            for xx in 0..src.width {
                self.put(x + xx, y + yy, src.pixel(xx, yy));
            }
        }
    }

    /// The part `w × h` at `(x, y)` (clipped to the picture).
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Canvas {
        let w = w.min(self.width.saturating_sub(x));
        let h = h.min(self.height.saturating_sub(y));
        let mut out = Canvas::new(w, h, WHITE);
        for yy in 0..h {
            let o = ((y + yy) * self.width + x) * 3;
            out.rgb[yy * w * 3..(yy + 1) * w * 3].copy_from_slice(&self.rgb[o..o + w * 3]);
        }
        out
    }

    /// Scaled by `f` with nearest-neighbour sampling (H&E backgrounds).
    pub fn resized(&self, f: f64) -> Canvas {
        let w = ((self.width as f64 * f).round() as usize).max(1);
        let h = ((self.height as f64 * f).round() as usize).max(1);
        let mut out = Canvas::new(w, h, WHITE);
        for y in 0..h {
            let sy = (((y as f64 + 0.5) / f) as usize).min(self.height.saturating_sub(1));
            for x in 0..w {
                let sx = (((x as f64 + 0.5) / f) as usize).min(self.width.saturating_sub(1));
                out.put(x, y, self.pixel(sx, sy));
            }
        }
        out
    }

    /// The picture as PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let err = |e: png::EncodingError| DarlcError::Data(format!("PNG encoding: {e}"));
            let mut wr = enc.write_header().map_err(err)?;
            wr.write_image_data(&self.rgb).map_err(err)?;
            wr.finish().map_err(err)?;
        }
        Ok(out)
    }

    /// Write the picture as a PNG file (atomically).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        super::atomic_write(path, &self.to_png()?)
    }
}

/// Read a PNG (8- or 16-bit; grey, grey+alpha, RGB, RGBA or palette) as an RGB [`Canvas`]:
/// Space Ranger's `tissue_lowres_image.png`. Alpha is dropped (composited over white).
pub fn read_png(path: &Path) -> Result<Canvas> {
    let f = std::fs::File::open(path).map_err(|e| DarlcError::io(path, e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let err =
        |e: png::DecodingError| DarlcError::format(path, None, format!("not a readable PNG: {e}"));
    let mut reader = dec.read_info().map_err(err)?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    // The same guard as for other inputs: a header must not make us allocate without bound.
    if w.saturating_mul(h) > 100_000_000 {
        return Err(DarlcError::format(
            path,
            None,
            format!("{w}×{h} pixels: larger than a low-resolution tissue image can be"),
        ));
    }
    let mut buf = vec![
        0u8;
        reader.output_buffer_size().ok_or_else(|| {
            DarlcError::format(path, None, "PNG too large to decode")
        })?
    ];
    let info = reader.next_frame(&mut buf).map_err(err)?;
    let data = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let mut c = Canvas::new(w, h, WHITE);
    for (i, px) in data.chunks_exact(channels).enumerate().take(w * h) {
        let (rgb, a) = match channels {
            1 => ([px[0]; 3], 255),
            2 => ([px[0]; 3], px[1]),
            3 => ([px[0], px[1], px[2]], 255),
            _ => ([px[0], px[1], px[2]], px[3]),
        };
        c.put(i % w, i / w, WHITE);
        c.blend(i % w, i / w, rgb, a);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn text_marks_pixels_inside_its_box_only() {
        let mut c = Canvas::new(100, 30, WHITE);
        let w = c.text(2, 3, "Gfap", Font::SMALL, BLACK);
        assert_eq!(w, 4 * Font::SMALL.char_width());
        let dark = |x: usize, y: usize| c.pixel(x, y)[0] < 128;
        let inside = (3..3 + 16).flat_map(|y| (2..2 + w).map(move |x| (x, y)));
        assert!(
            inside.filter(|&(x, y)| dark(x, y)).count() > 20,
            "glyphs drawn"
        );
        for y in 0..30 {
            for x in 0..100 {
                if !(2..2 + w).contains(&x) || !(3..19).contains(&y) {
                    assert_eq!(c.pixel(x, y), WHITE, "({x},{y}) outside the text box");
                }
            }
        }
    }

    #[test]
    fn fit_shortens_with_dots() {
        let f = Font::SMALL;
        let cw = f.char_width();
        assert_eq!(f.fit("Snap25", 6 * cw), "Snap25");
        assert_eq!(f.fit("Snap25", 5 * cw), "Sna..");
        assert!(f.width_of(&f.fit("a-very-long-symbol", 7 * cw)) <= 7 * cw);
    }

    #[test]
    fn image_scales_to_vmax_and_greys_outside_the_mask() {
        let img = array![[0.0f32, 2.0], [4.0, 8.0]];
        let mask = array![[1u8, 1], [1, 0]];
        let mut c = Canvas::new(4, 4, WHITE);
        c.image(0, 0, img.view(), Some(mask.view()), 2, 4.0);
        assert_eq!(c.pixel(0, 0), viridis(0.0));
        assert_eq!(c.pixel(3, 1), viridis(0.5));
        assert_eq!(c.pixel(1, 3), viridis(1.0));
        assert_eq!(c.pixel(3, 3), OUTSIDE);
    }

    #[test]
    fn disc_covers_its_centre_not_far_pixels() {
        let mut c = Canvas::new(20, 20, WHITE);
        c.disc(10.0, 10.0, 3.0, BLACK);
        assert_eq!(c.pixel(10, 10), BLACK);
        assert_eq!(c.pixel(10, 15), WHITE);
        assert_eq!(c.pixel(0, 0), WHITE);
    }

    #[test]
    fn png_round_trip() {
        let mut c = Canvas::new(7, 5, WHITE);
        c.fill_rect(1, 1, 3, 2, [10, 200, 30]);
        let d = std::env::temp_dir().join(format!("darlc-canvas-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("c.png");
        c.save_png(&p).unwrap();
        assert_eq!(read_png(&p).unwrap(), c);
        std::fs::write(&p, b"not a png").unwrap();
        assert!(read_png(&p).unwrap_err().to_string().contains("c.png"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
