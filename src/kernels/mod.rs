//! Sacro's CPU kernels: candle custom ops and plain functions over slices that the network composes
//! (convolutions by im2col, 1×1 products and Winograd F(2×2, 3×3); fused batch norm with ReLU and the
//! residual sum; max pooling; Adam's step), the matrix-product wrapper (the one module with raw-pointer code),
//! buffer reuse and the thread pool. Knows nothing of ResNet: it imports nothing from the network,
//! training or app layers (`.ci/check-layers.sh`). Which path the network takes is read once, in [`path`].

pub(crate) mod adam;
pub mod conv;
pub(crate) mod cpu;
pub(crate) mod gemm;
pub mod norm;
pub mod path;
pub mod pool;

pub use cpu::set_passes_on_pool;
