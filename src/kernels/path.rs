//! Which implementation the kernels take, chosen once per process from the environment: `SACRO_CONV`
//! (`im2col`, the default; `stock`, candle's own operations; `tensor`, tensor operations with a GEMM
//! backward) and `SACRO_WINOGRAD=off` (im2col for the 3×3 stride-1 convolutions too). The network asks
//! here and nowhere else.

use std::sync::OnceLock;

/// Which implementation the process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// im2col + GEMM with a col2im backward.
    Im2Col,
    /// candle's stock `conv2d`.
    Stock,
    /// Tensor operations with a GEMM backward ([`super::conv_tensor`]) in training, candle's `conv2d`
    /// otherwise.
    Tensor,
}

/// The path chosen by `SACRO_CONV` (`im2col`, `stock` or `tensor`; im2col when unset).
pub fn conv_path() -> ConvPath {
    static PATH: OnceLock<ConvPath> = OnceLock::new();
    *PATH.get_or_init(|| match std::env::var("SACRO_CONV").as_deref() {
        Ok("stock") => ConvPath::Stock,
        Ok("tensor") => ConvPath::Tensor,
        _ => ConvPath::Im2Col,
    })
}

/// Whether 3×3 stride-1 convolutions take F(2×2, 3×3) ([`super::conv::winograd`]): yes unless
/// `SACRO_WINOGRAD=off` (im2col for them too: to compare, or to rule the algorithm out when diagnosing).
pub fn winograd_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("SACRO_WINOGRAD").as_deref() != Ok("off"))
}
