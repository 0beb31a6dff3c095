//! A preview of what the model is fed: a grid of augmented training samples, each labelled with its
//! class.

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::config::TrainConfig;
use super::data::{Dataset, Split};
use super::trainer::batch_images;
use crate::imaging::GreyImage;
use crate::imaging::burn_text;

/// A grid of augmented training samples (as the model is fed them, before normalisation), `cols × rows`
/// tiles of `size` pixels, each tile labelled `+`/`−` for its class.
pub fn augmented_grid(
    cfg: &TrainConfig,
    data: &Dataset,
    size: u32,
    (cols, rows): (u32, u32),
    seed: u64,
) -> GreyImage {
    let train = data.indices(Split::Train);
    let pool = if train.is_empty() {
        (0..data.examples.len()).collect()
    } else {
        train
    };
    let n = (cols * rows) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let picks: Vec<usize> = (0..n)
        .filter_map(|_| pool.choose(&mut rng).copied())
        .collect();
    let tiles = batch_images(data, &picks, size, cfg, Some(seed));
    let gap = 4;
    let (w, h) = (cols * (size + gap) - gap, rows * (size + gap) - gap);
    let mut grid = GreyImage::filled(w.max(1), h.max(1), 0.15);
    for (k, (tile, &i)) in tiles.iter().zip(&picks).enumerate() {
        let (cx, cy) = (
            (k as u32 % cols) * (size + gap),
            (k as u32 / cols) * (size + gap),
        );
        for y in 0..size {
            let dst = ((cy + y) * w + cx) as usize;
            let src = (y * size) as usize;
            grid.pixels[dst..dst + size as usize]
                .copy_from_slice(&tile.pixels[src..src + size as usize]);
        }
        let mark = if data.examples[i].label { "+" } else { "-" };
        let px = (size as f32 / 8.0).max(10.0);
        burn_text(&mut grid, mark, cx as f32 + 2.0, cy as f32 + 2.0, px, 1.0);
    }
    grid
}
