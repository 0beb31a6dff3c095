//! What Sacro's CPU kernels ([`super::conv`], [`super::norm`], [`super::pool`], [`super::checkpoint`])
//! share: the float types they run on, a dispatch from a tensor's dtype to a generic body, and borrowing a
//! contiguous slice of candle's storage.

use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// A float type a kernel runs on (f32 or f64): its slice of candle's CPU storage and back.
pub(crate) trait Float:
    Copy
    + bytemuck::Pod
    + Default
    + Send
    + Sync
    + PartialOrd
    + std::ops::AddAssign
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + 'static
{
    /// The values when `s` holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// The values, writable, when `s` holds this type.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Candle storage owning `v`.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// The values `s` owns, when it holds this type.
    fn into_vec(s: CpuStorage) -> Option<Vec<Self>>;
    /// Widened for accumulation.
    fn to_f64(self) -> f64;
    /// Narrowed from an accumulator.
    fn from_f64(v: f64) -> Self;
    /// The square root (correctly rounded, as IEEE 754 requires).
    fn sqrt(self) -> Self;
    /// The spare buffer of this type (see [`take_buffer`]).
    fn spare() -> &'static std::sync::Mutex<Vec<Self>>;
}

macro_rules! float {
    ($t:ty, $variant:ident) => {
        impl Float for $t {
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn into_vec(s: CpuStorage) -> Option<Vec<Self>> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            #[allow(clippy::cast_possible_truncation)]
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn spare() -> &'static std::sync::Mutex<Vec<Self>> {
                static SPARE: std::sync::Mutex<Vec<$t>> = std::sync::Mutex::new(Vec::new());
                &SPARE
            }
        }
    };
}
float!(f32, F32);
float!(f64, F64);

/// Runs `f` compiled for the widest vector instructions this processor has (AVX-512 or AVX2 + FMA,
/// detected at run time by `pulp`), so that the loops inlined into it vectorise; a plain build targets
/// the x86-64 baseline (SSE2). The results are the same on every path: Rust never contracts `a * b + c`
/// into a fused multiply-add nor reorders a floating-point sum, so vectorising changes no rounding.
/// `SACRO_SIMD=off` runs the baseline code (to compare, or to rule the dispatch out when diagnosing).
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    static ARCH: std::sync::OnceLock<pulp::Arch> = std::sync::OnceLock::new();
    #[cfg(test)]
    if tests::SCALAR.load(std::sync::atomic::Ordering::Relaxed) {
        return pulp::Arch::Scalar.dispatch(f);
    }
    let arch = ARCH.get_or_init(|| match std::env::var("SACRO_SIMD").as_deref() {
        Ok("off") => pulp::Arch::Scalar,
        _ => pulp::Arch::new(),
    });
    arch.dispatch(f)
}

/// Evaluates `$body` with the type alias `$t` set to the dtype's float type (f32 or f64); any other
/// dtype is an error naming the op `$what`.
macro_rules! by_float {
    ($dtype:expr, $what:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => candle_core::bail!("{}: {other:?} input (f32 or f64 only)", $what),
        }
    };
}
pub(crate) use by_float;

/// The values of a contiguous layout of `s` as `T`; `what` names the op and operand in errors.
pub(crate) fn contiguous<'a, T: Float>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> Result<&'a [T]> {
    let range = contiguous_range(l, what)?;
    T::slice(s)
        .and_then(|v| v.get(range))
        .ok_or_else(|| not_the_input_type(what))
}

/// The values of a contiguous layout of `s` as `T`, writable (an in-place op's destination).
pub(crate) fn contiguous_mut<'a, T: Float>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> Result<&'a mut [T]> {
    let range = contiguous_range(l, what)?;
    T::slice_mut(s)
        .and_then(|v| v.get_mut(range))
        .ok_or_else(|| not_the_input_type(what))
}

/// The storage range of a contiguous layout; `what` names the operand in the error.
pub(crate) fn contiguous_range(l: &Layout, what: &str) -> Result<std::ops::Range<usize>> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} must be contiguous")))?;
    Ok(start..end)
}

fn not_the_input_type(what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} must be f32 or f64 like the input"))
}

/// Whether [`on_pool`] runs passes on the thread pool (off by default; see [`set_passes_on_pool`]).
static PASSES_ON_POOL: AtomicBool = AtomicBool::new(false);

/// Run the network's forward and backward passes on the CPU inside rayon's thread pool rather than on
/// the calling thread. Every kernel is a parallel loop; called from outside the pool, each one hands its
/// work to the pool and puts the caller to sleep until it is done, and called from a pool thread it runs
/// there and shares it with the others: fewer sleeps and wake-ups (measured in interleaved runs: a
/// training step at 224² b8 10 % faster; README, "Performance"). The buffers are then allocated on the
/// pool's threads, and glibc gives each thread its own memory arena, which does not keep large freed
/// blocks for reuse as the main one does under Sacro's allocator settings (src/main.rs): only turn this
/// on with a single arena (`glibc.malloc.arena_max=1`), as `sacro`'s model commands do. Without it the
/// training step at 768² b2 was 11 % slower instead of 9 % faster.
pub fn set_passes_on_pool(on: bool) {
    PASSES_ON_POOL.store(on, Ordering::Relaxed);
}

/// `f` (a pass of the network), on a thread of rayon's pool when the device is the CPU and
/// [`set_passes_on_pool`] is on; the spare buffers ([`take_buffer`]) are freed when the pass ends.
pub(crate) fn on_pool<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    let out = if device.is_cpu() && PASSES_ON_POOL.load(Ordering::Relaxed) {
        rayon::scope(|_| f())
    } else {
        f()
    };
    release_buffers();
    out
}

/// A buffer of `n` values for a kernel that writes every one of them: the spare buffer a kernel gave back
/// ([`keep_buffer`]) when it is large enough, its old values left in it (no pass over memory to zero it,
/// and, for a buffer of more than 32 MB, which the allocator maps afresh each time, no page faults),
/// otherwise [`zeros`]. The convolutions' column matrices are such buffers (up to nine times a layer's
/// input); a convolution gives back its column matrix and the product it copied into batch-major order.
pub(crate) fn take_buffer<T: Float>(n: usize) -> Vec<T> {
    let mut v = std::mem::take(&mut *lock_spare::<T>());
    if v.capacity() < n {
        return zeros(n);
    }
    if v.len() >= n {
        v.truncate(n);
    } else {
        v.resize(n, T::default());
    }
    v
}

/// Keeps `v` as the spare buffer for [`take_buffer`] when it is larger than the one kept (which is then
/// freed); one buffer per float type, freed by [`release_buffers`] at the end of each pass.
pub(crate) fn keep_buffer<T: Float>(v: Vec<T>) {
    let mut spare = lock_spare::<T>();
    if v.capacity() > spare.capacity() {
        *spare = v;
    }
}

/// Frees the spare buffers.
pub(crate) fn release_buffers() {
    drop(std::mem::take(&mut *lock_spare::<f32>()));
    drop(std::mem::take(&mut *lock_spare::<f64>()));
}

fn lock_spare<T: Float>() -> std::sync::MutexGuard<'static, Vec<T>> {
    // A panic while the lock was held leaves nothing half-done: any buffer is a valid spare.
    T::spare()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `n` zeros written by the thread pool: a kernel's output buffer, zeroed (and, when fresh from the
/// system, faulted in page by page) in parallel rather than by the calling thread alone, which the profile
/// of a training step showed as a serial share of it. Written as blocks of 16 values, which the compiler
/// stores as whole vectors (20–40 % faster than value by value from 1 to 63 MB, `benches/zeroing`), then viewed as
/// values (`bytemuck`: same alignment, same bytes; no copy).
pub(crate) fn zeros<T: Float>(n: usize) -> Vec<T> {
    const BLOCK: usize = 16;
    let blocks = n.div_ceil(BLOCK);
    let mut v: Vec<[T; BLOCK]> = Vec::with_capacity(blocks);
    v.par_extend(rayon::iter::repeat_n([T::default(); BLOCK], blocks));
    let mut v: Vec<T> = bytemuck::allocation::try_cast_vec(v)
        .unwrap_or_else(|(_, v)| v.into_iter().flatten().collect());
    v.truncate(n);
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The largest absolute difference between two tensors of the same shape, in f64.
    pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f64 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.to_dtype(candle_core::DType::F64))
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f64>())
            .expect("difference")
    }

    /// Set while [`on_both_paths`] runs its baseline pass (other tests running meanwhile only run slower).
    pub(crate) static SCALAR: AtomicBool = AtomicBool::new(false);

    #[test]
    fn passes_run_on_the_pool_only_when_asked() {
        let on_a_pool_thread = || rayon::current_thread_index().is_some();
        assert!(!super::on_pool(&candle_core::Device::Cpu, on_a_pool_thread));
        super::set_passes_on_pool(true);
        let inside = super::on_pool(&candle_core::Device::Cpu, on_a_pool_thread);
        super::set_passes_on_pool(false);
        assert!(inside);
    }

    /// `f` with the dispatched code and with the baseline code: the two results.
    pub(crate) fn on_both_paths<R>(f: impl Fn() -> R) -> (R, R) {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fast = f();
        SCALAR.store(true, Ordering::Relaxed);
        let base = f();
        SCALAR.store(false, Ordering::Relaxed);
        (fast, base)
    }
}
