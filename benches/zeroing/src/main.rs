//! See Cargo.toml. Prints, per buffer size and method, the mean time of zeroing and of zeroing plus one
//! parallel write pass (6 buffers kept alive at a time, as a graph keeps tensors).
use rayon::prelude::*;
use std::time::Instant;

fn one_by_one(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0.0f32, n));
    v
}

fn blocks_of_16(n: usize) -> Vec<f32> {
    let mut v: Vec<[f32; 16]> = Vec::with_capacity(n.div_ceil(16));
    v.par_extend(rayon::iter::repeat_n([0.0f32; 16], n.div_ceil(16)));
    let mut v: Vec<f32> = bytemuck::cast_vec(v);
    v.truncate(n);
    v
}

fn calloc(n: usize) -> Vec<f32> {
    vec![0.0f32; n]
}

fn write_pass(v: &mut [f32]) {
    v.par_chunks_mut(1 << 14).for_each(|c| {
        for (i, x) in c.iter_mut().enumerate() {
            *x += i as f32;
        }
    });
}

fn main() {
    let methods: [(&str, fn(usize) -> Vec<f32>); 3] =
        [("one by one", one_by_one), ("blocks of 16", blocks_of_16), ("calloc", calloc)];
    for n in [256 * 1024, 2 << 20, 6 << 20, 15 << 20] {
        for (name, zero) in methods {
            let reps = 40;
            let (mut keep, mut zeroing) = (Vec::new(), 0.0);
            let start = Instant::now();
            for _ in 0..reps {
                let t = Instant::now();
                let mut v = zero(n);
                zeroing += t.elapsed().as_secs_f64();
                write_pass(&mut v);
                keep.push(v);
                if keep.len() > 6 {
                    keep.remove(0);
                }
            }
            let total = start.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name:12} {:6.1} MB  zeroing {:.3} ms  with the write pass {:.3} ms",
                n as f64 * 4.0 / 1e6,
                zeroing / reps as f64 * 1e3,
                total * 1e3
            );
        }
    }
}
