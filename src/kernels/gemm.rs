//! Matrix products written straight into a growing buffer: the only module of Sacro with `unsafe` code
//! (STYLE.md: "unless a measured kernel needs it; then isolate and comment it").
//!
//! candle's CPU matmul calls the same `gemm` crate, but first fills its output with zeros (a pass over
//! memory the product then overwrites), and a product can only land in a buffer of its own (the
//! convolution's per-image products were copied into the batch's output afterwards). [`append_products`]
//! has the crate write each product into the unused capacity at the end of a `Vec` and then counts those
//! values as written: no zeroing, no copy. That is sound because `gemm::gemm` with `read_dst = false`
//! assigns every element of its destination and reads none of them (its contract, `dst := beta·lhs·rhs`;
//! checked in gemm-common 0.19: the micro-kernels, the matrix-vector and vector-vector paths and the
//! `k = 0` case all store without loading when alpha is zero, which `read_dst = false` forces), and
//! because every offset the crate will touch is checked against the slices first. Measured gain: README
//! "Performance" (2026-12-05, training step and batch-8 forward pass).

#![allow(unsafe_code)]

use candle_core::Result;

use super::cpu::Float;

/// A matrix view into a slice: element `(i, j)` at `offset + i·row_stride + j·col_stride`, and, in a
/// batch, product `b`'s at `b·batch_stride` further (0: the same matrix for every product).
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    /// The values.
    pub data: &'a [T],
    /// Element `(0, 0)` of the first product.
    pub offset: usize,
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
    /// Distance between the products of a batch.
    pub batch_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `[rows, cols]` matrix (any row length `row_stride`) at `offset`.
    pub fn row_major(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride,
            col_stride: 1,
            batch_stride: 0,
        }
    }

    /// The transpose of a row-major matrix whose rows are `row_stride` apart: element `(i, j)` is the
    /// stored `(j, i)`.
    pub fn transposed(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride: 1,
            col_stride: row_stride,
            batch_stride: 0,
        }
    }

    /// The same view with product `b` at `b·batch_stride` further.
    pub fn batched(self, batch_stride: usize) -> Self {
        Self {
            batch_stride,
            ..self
        }
    }

    /// Checks that a batch of `batch` `rows × cols` matrices lies inside the slice.
    fn check(&self, batch: usize, rows: usize, cols: usize, what: &str) -> Result<()> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Ok(());
        }
        let last = [
            (batch - 1).checked_mul(self.batch_stride),
            (rows - 1).checked_mul(self.row_stride),
            (cols - 1).checked_mul(self.col_stride),
        ]
        .into_iter()
        .try_fold(self.offset, |acc, term| acc.checked_add(term?));
        match last {
            Some(last) if last < self.data.len() => Ok(()),
            _ => candle_core::bail!(
                "matrix product: {what} ({batch} × {rows} × {cols}, {self:?}) reaches past its {} values",
                self.data.len()
            ),
        }
    }
}

impl<T> std::fmt::Debug for MatRef<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "offset {}, strides {}/{}/{}",
            self.offset, self.batch_stride, self.row_stride, self.col_stride
        )
    }
}

/// Whether a product runs on the thread pool or on the calling thread alone (the caller runs several
/// products side by side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The `gemm` crate splits each product over rayon's threads.
    Pool,
    /// One thread.
    One,
}

impl Threads {
    fn parallelism(self) -> gemm::Parallelism {
        let threads = rayon::current_num_threads();
        if self == Threads::Pool && threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        }
    }
}

/// `batch` products `lhs_b · rhs_b` (`[m, k]` by `[k, n]`) by the `gemm` crate, product `b` written to
/// the row-major `[m, n]` block at `dst + b·dst_batch_stride`; `dst := lhs·rhs` (its old values neither
/// read nor kept) or, when `accumulate`, `dst += lhs·rhs`.
///
/// # Safety
/// `k > 0`; both views checked ([`MatRef::check`]) for `batch` products; every destination block lies
/// in one allocation the caller holds mutably (so nothing aliases the operands, which are shared
/// borrows), initialised when `accumulate` (it is read) and possibly uninitialised otherwise (with
/// `read_dst = false` the crate writes every destination element and reads none: gemm-common 0.19's
/// micro-kernels, matrix-vector and vector-vector paths store without loading when alpha is zero, which
/// `read_dst = false` forces).
unsafe fn products_raw<T: Float>(
    dst: *mut T,
    dst_batch_stride: usize,
    (batch, m, n, k): (usize, usize, usize, usize),
    (lhs, rhs): (&MatRef<'_, T>, &MatRef<'_, T>),
    accumulate: bool,
    threads: Threads,
) {
    let parallelism = threads.parallelism();
    let alpha = T::from_f64(if accumulate { 1.0 } else { 0.0 });
    for b in 0..batch {
        // SAFETY: see the function's contract: the offsets below stay inside the checked views and the
        // destination blocks; strides index existing slices, so fit `isize`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.add(b * dst_batch_stride),
                1,
                n as isize,
                accumulate,
                lhs.data.as_ptr().add(lhs.offset + b * lhs.batch_stride),
                lhs.col_stride as isize,
                lhs.row_stride as isize,
                rhs.data.as_ptr().add(rhs.offset + b * rhs.batch_stride),
                rhs.col_stride as isize,
                rhs.row_stride as isize,
                alpha,
                T::from_f64(1.0),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// Appends to `out` the `batch` products `lhs_b · rhs_b` (`[m, k]` by `[k, n]`), each `[m, n]` row-major,
/// one after the other, computed by the `gemm` crate on the thread pool; `out`'s earlier values are left
/// as they are. Errors (and leaves `out` as it was) when a view reaches past its slice or the sizes
/// overflow.
pub(crate) fn append_products<T: Float>(
    out: &mut Vec<T>,
    (batch, m, n, k): (usize, usize, usize, usize),
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
) -> Result<()> {
    let Some(len) = batch.checked_mul(m).and_then(|v| v.checked_mul(n)) else {
        candle_core::bail!("matrix product: {batch} × {m} × {n} overflows");
    };
    if len == 0 {
        return Ok(());
    }
    if k == 0 {
        // Empty sums: zeros, without pointers into operands that may hold nothing.
        out.resize(out.len() + len, T::default());
        return Ok(());
    }
    lhs.check(batch, m, k, "left operand")?;
    rhs.check(batch, k, n, "right operand")?;
    out.reserve(len);
    let dst = out.spare_capacity_mut()[..len].as_mut_ptr().cast::<T>();
    // SAFETY: k > 0 and the views are checked; the `len` values of reserved capacity hold the `batch`
    // blocks of `m·n` one after the other; `out` is borrowed mutably and the operands are not.
    // `accumulate = false`: the uninitialised capacity is written, never read.
    unsafe {
        products_raw(
            dst,
            m * n,
            (batch, m, n, k),
            (&lhs, &rhs),
            false,
            Threads::Pool,
        );
    }
    // SAFETY: every one of the `len` values after the old length was written above (the crate assigns
    // every destination element when it does not read them).
    unsafe { out.set_len(out.len() + len) };
    Ok(())
}

/// Writes into `dst` (exactly `batch·m·n` values) the `batch` products `lhs_b · rhs_b` (`[m, k]` by
/// `[k, n]`), each `[m, n]` row-major, one after the other; `dst`'s old values are overwritten, never
/// read (a reused buffer needs no zeroing). `threads`: on the pool, or on this thread alone where the
/// caller runs products side by side. Errors (and leaves `dst` as it was) when `dst` has the wrong length
/// or a view reaches past its slice.
pub(crate) fn products_into<T: Float>(
    dst: &mut [T],
    (batch, m, n, k): (usize, usize, usize, usize),
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    threads: Threads,
) -> Result<()> {
    if batch.checked_mul(m).and_then(|v| v.checked_mul(n)) != Some(dst.len()) {
        candle_core::bail!(
            "matrix product: {batch} products of {m} × {n} given {} values",
            dst.len()
        );
    }
    if dst.is_empty() {
        return Ok(());
    }
    if k == 0 {
        dst.fill(T::default());
        return Ok(());
    }
    lhs.check(batch, m, k, "left operand")?;
    rhs.check(batch, k, n, "right operand")?;
    // SAFETY: k > 0 and the views are checked; `dst` holds the `batch` blocks one after the other and is
    // borrowed mutably while the operands are shared borrows.
    unsafe {
        products_raw(
            dst.as_mut_ptr(),
            m * n,
            (batch, m, n, k),
            (&lhs, &rhs),
            false,
            threads,
        );
    }
    Ok(())
}

/// Adds to `dst` (`[m, n]` row-major, `m·n` values) the sum of the `batch` products `lhs_b · rhs_b`
/// (`[m, k]` by `[k, n]`), one after the other (each multithreaded inside): a weight gradient summed over
/// a batch's images without a product per image in memory. Errors (and leaves `dst` as it was) when
/// `dst` has the wrong length or a view reaches past its slice.
pub(crate) fn accumulate_products<T: Float>(
    dst: &mut [T],
    (batch, m, n, k): (usize, usize, usize, usize),
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
) -> Result<()> {
    if m.checked_mul(n) != Some(dst.len()) {
        candle_core::bail!(
            "matrix product: a {m} × {n} destination given {} values",
            dst.len()
        );
    }
    if dst.is_empty() || k == 0 || batch == 0 {
        return Ok(());
    }
    lhs.check(batch, m, k, "left operand")?;
    rhs.check(batch, k, n, "right operand")?;
    // SAFETY: k > 0 and the views are checked; `dst` is an initialised `m × n` slice, the same block for
    // every product (batch stride 0), borrowed mutably while the operands are shared borrows.
    unsafe {
        products_raw(
            dst.as_mut_ptr(),
            0,
            (batch, m, n, k),
            (&lhs, &rhs),
            true,
            Threads::Pool,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Plain triple loop.
    fn reference(
        (batch, m, n, k): (usize, usize, usize, usize),
        lhs: &MatRef<'_, f64>,
        rhs: &MatRef<'_, f64>,
    ) -> Vec<f64> {
        let mut out = Vec::new();
        for b in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        s += lhs.data[lhs.offset
                            + b * lhs.batch_stride
                            + i * lhs.row_stride
                            + p * lhs.col_stride]
                            * rhs.data[rhs.offset
                                + b * rhs.batch_stride
                                + p * rhs.row_stride
                                + j * rhs.col_stride];
                    }
                    out.push(s);
                }
            }
        }
        out
    }

    /// Every orientation, batch strides 0 and not, offsets, k = 0, and a non-empty `out` (its values
    /// kept, the products appended; NaN in the reused capacity never reaches them): equal to a triple
    /// loop within 1e-12.
    #[test]
    fn appended_products_equal_the_triple_loop() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let data: Vec<f64> = (0..20_000).map(|_| rng.random_range(-1.0..1.0)).collect();
        for &(batch, m, n, k) in &[(1, 3, 5, 7), (3, 17, 33, 65), (2, 70, 9, 130), (2, 4, 6, 0)] {
            for (lt, rt) in [(false, false), (true, false), (false, true), (true, true)] {
                let lhs = if lt {
                    MatRef::transposed(&data, 11, m)
                } else {
                    MatRef::row_major(&data, 11, k)
                }
                .batched(if batch > 1 { m * k + 3 } else { 0 });
                let rhs = if rt {
                    MatRef::transposed(&data, 5000, k)
                } else {
                    MatRef::row_major(&data, 5000, n)
                }
                .batched(k * n);
                let mut out = vec![f64::NAN; 64];
                out.truncate(2);
                out[0] = 1.5;
                out[1] = -2.5;
                append_products(&mut out, (batch, m, n, k), lhs, rhs)?;
                let want = reference((batch, m, n, k), &lhs, &rhs);
                assert_eq!(out.len(), 2 + want.len());
                assert_eq!(&out[..2], &[1.5, -2.5]);
                for (a, b) in out[2..].iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
                }
            }
        }
        Ok(())
    }

    /// Products written into a reused slice (NaN in it never reaches them), on the pool and on one
    /// thread, equal the triple loop; a destination of the wrong length is refused and left as it was.
    #[test]
    fn products_into_a_slice_equal_the_triple_loop() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let data: Vec<f64> = (0..20_000).map(|_| rng.random_range(-1.0..1.0)).collect();
        for &(batch, m, n, k) in &[(1, 3, 5, 7), (3, 17, 33, 65), (2, 4, 6, 0)] {
            for threads in [Threads::Pool, Threads::One] {
                let lhs = MatRef {
                    data: &data,
                    offset: 2,
                    row_stride: 3 * k,
                    col_stride: 2,
                    batch_stride: 1,
                };
                let rhs = MatRef::transposed(&data, 9000, k).batched(k * n);
                let mut dst = vec![f64::NAN; batch * m * n];
                products_into(&mut dst, (batch, m, n, k), lhs, rhs, threads)?;
                let want = reference((batch, m, n, k), &lhs, &rhs);
                for (a, b) in dst.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
                }
            }
        }
        let data = vec![1.0f32; 100];
        let mut dst = vec![7.0f32; 5];
        let view = MatRef::row_major(&data, 0, 2);
        let err =
            products_into(&mut dst, (1, 2, 3, 2), view, view, Threads::One).expect_err("length");
        assert!(err.to_string().contains("given 5 values"), "{err}");
        let err = products_into(
            &mut dst[..4],
            (1, 2, 2, 99),
            view,
            MatRef::row_major(&data, 0, 2),
            Threads::One,
        )
        .expect_err("lhs reaches 100");
        assert!(err.to_string().contains("left operand"), "{err}");
        assert_eq!(dst, vec![7.0; 5]);
        Ok(())
    }

    /// Accumulated products equal the old values plus the triple loop's sum over the batch, in both
    /// orientations; a destination of the wrong length is refused.
    #[test]
    fn accumulated_products_equal_the_summed_triple_loop() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let data: Vec<f64> = (0..20_000).map(|_| rng.random_range(-1.0..1.0)).collect();
        for &(batch, m, n, k) in &[(1, 3, 5, 7), (4, 17, 33, 65), (3, 70, 9, 13)] {
            for lt in [false, true] {
                let lhs = if lt {
                    MatRef::transposed(&data, 3, m)
                } else {
                    MatRef::row_major(&data, 3, k)
                }
                .batched(m * k);
                let rhs = MatRef::transposed(&data, 9000, k).batched(k * n + 1);
                let old: Vec<f64> = data[..m * n].iter().map(|v| v * 2.0).collect();
                let mut dst = old.clone();
                accumulate_products(&mut dst, (batch, m, n, k), lhs, rhs)?;
                let each = reference((batch, m, n, k), &lhs, &rhs);
                for (i, (got, o)) in dst.iter().zip(&old).enumerate() {
                    let want = o + (0..batch).map(|b| each[b * m * n + i]).sum::<f64>();
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
            }
        }
        let data = vec![1.0f32; 100];
        let mut dst = vec![0.0f32; 5];
        let view = MatRef::row_major(&data, 0, 2);
        let err = accumulate_products(&mut dst, (1, 2, 3, 2), view, view).expect_err("length");
        assert!(err.to_string().contains("destination"), "{err}");
        Ok(())
    }

    /// A view that reaches past its slice is an error naming the operand, and `out` is left as it was.
    #[test]
    fn views_past_the_slice_are_refused() {
        let data = vec![1.0f32; 100];
        let mut out = vec![0.0f32; 3];
        let err = append_products(
            &mut out,
            (1, 10, 10, 10),
            MatRef::row_major(&data, 1, 10),
            MatRef::row_major(&data, 0, 10),
        )
        .expect_err("lhs reaches 100");
        assert!(err.to_string().contains("left operand"), "{err}");
        let err = append_products(
            &mut out,
            (2, 5, 5, 5),
            MatRef::row_major(&data, 0, 5),
            MatRef::row_major(&data, 0, 5).batched(80),
        )
        .expect_err("rhs's second product reaches 104");
        assert!(err.to_string().contains("right operand"), "{err}");
        let err = append_products(
            &mut out,
            (1, usize::MAX, 2, 0),
            MatRef::row_major(&data, 0, 1),
            MatRef::row_major(&data, 0, 1),
        )
        .expect_err("overflow");
        assert!(err.to_string().contains("overflows"), "{err}");
        assert_eq!(out, vec![0.0; 3]);
    }
}
