//! The 16 products of Winograd F(2×2, 3×3), one per transformed position ξ: each a matrix product over
//! the channels, side by side on the pool ([`crate::kernels::gemm`]'s products, which hold the only raw
//! pointer code).

use rayon::prelude::*;

use crate::kernels::cpu::Float;
use crate::kernels::gemm::{self, MatRef, Threads};
use candle_core::Result;

/// `buf` as blocks of `rows` rows of `len` values each (one block per ξ), regrouped by row: item `r`
/// holds row `r` of every block, so that one task can write its row of each ξ.
pub(super) fn rows_of_blocks<T>(buf: &mut [T], rows: usize, len: usize) -> Vec<Vec<&mut [T]>> {
    let mut out: Vec<Vec<&mut [T]>> = (0..rows).map(|_| Vec::with_capacity(16)).collect();
    if len == 0 {
        return out;
    }
    for block in buf.chunks_mut(rows * len) {
        for (r, row) in block.chunks_mut(len).enumerate() {
            out[r].push(row);
        }
    }
    out
}

/// The 16 products `lhs(ξ) · rhs(ξ)` (`[m, k]` by `[k, n]`) into `dst` `[16][m][n]`, side by side on
/// the pool, each on one thread.
pub(super) fn products_by_xi<'a, T: Float>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
    rhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
) -> Result<()> {
    dst.par_chunks_mut(m * n)
        .enumerate()
        .try_for_each(|(xi, d)| {
            gemm::products_into(d, (1, m, n, k), lhs(xi), rhs(xi), Threads::One)
        })
}

/// `M_ξ = U_ξ · V_ξ` (`[co, c]` by `[c, bt]`) into `m` `[16][co][bt]`.
pub(super) fn products_forward<T: Float>(
    u: &[T],
    v: &[T],
    m: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        m,
        (co, bt, c),
        |xi| MatRef::row_major(u, xi * co * c, c),
        |xi| MatRef::row_major(v, xi * c * bt, bt),
    )
}

/// `dU_ξ = dM_ξ · V_ξᵀ` (`[co, bt]` by `[bt, c]`: the sum over the tiles) into `du` `[16][co][c]`.
pub(super) fn products_weight_grad<T: Float>(
    dm: &[T],
    v: &[T],
    du: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        du,
        (co, c, bt),
        |xi| MatRef::row_major(dm, xi * co * bt, bt),
        |xi| MatRef::transposed(v, xi * c * bt, bt),
    )
}

/// `dV_ξ = U_ξᵀ · dM_ξ` (`[c, co]` by `[co, bt]`) into `dv` `[16][c][bt]`.
pub(super) fn products_input_grad<T: Float>(
    u: &[T],
    dm: &[T],
    dv: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        dv,
        (c, bt, co),
        |xi| MatRef::transposed(u, xi * co * c, c),
        |xi| MatRef::row_major(dm, xi * co * bt, bt),
    )
}
