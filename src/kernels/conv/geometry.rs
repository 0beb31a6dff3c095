//! The geometry of a square-kernel convolution: sizes, output sides and which input pixel each kernel tap
//! of an output pixel reads (the index arithmetic im2col, col2im and Winograd share).

use candle_core::Result;

/// Geometry of a square-kernel convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl Geometry {
    /// Output height and width.
    pub fn out(&self) -> (usize, usize) {
        (
            (self.height + 2 * self.padding - self.k) / self.stride + 1,
            (self.width + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    /// Rows of the column matrix: channels × k × k.
    pub fn rows(&self) -> usize {
        self.channels * self.k * self.k
    }

    pub(super) fn check(&self, what: &str) -> Result<()> {
        if self.k == 0
            || self.stride == 0
            || self.height + 2 * self.padding < self.k
            || self.width + 2 * self.padding < self.k
        {
            candle_core::bail!("{what}: kernel {} does not fit the input {self:?}", self.k);
        }
        Ok(())
    }
}

/// Input offset of output position `o` and kernel tap `t` along one axis, if inside the image.
#[inline]
pub(super) fn source(o: usize, t: usize, g: &Geometry, size: usize) -> Option<usize> {
    (o * g.stride + t)
        .checked_sub(g.padding)
        .filter(|&i| i < size)
}

/// Along one axis of `size` input pixels and `outs` output pixels, for kernel tap `t`: the outputs
/// `lo..hi` whose input `o·stride + t − padding` lies inside the image, and the input of the first of them
/// (each later one is `stride` further on); `None` when no output sees the image through this tap.
#[inline(always)]
pub(super) fn run(
    t: usize,
    g: &Geometry,
    size: usize,
    outs: usize,
) -> Option<(usize, usize, usize)> {
    let lo = g.padding.saturating_sub(t).div_ceil(g.stride);
    let hi = (size + g.padding)
        .saturating_sub(t)
        .div_ceil(g.stride)
        .min(outs);
    (lo < hi).then(|| (lo, hi, lo * g.stride + t - g.padding))
}
