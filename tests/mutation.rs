//! Mutation test: thousands of seeded byte flips and truncations of real DICOM files must give an image
//! or a clear error, never a panic, and never allocate more than a fixed budget above what the file size
//! justifies. The budget is enforced by a capped global allocator: an allocation beyond it fails, which
//! for an infallible allocation aborts the test.

use std::alloc::System;
use std::path::{Path, PathBuf};

use cap::Cap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sacro::imaging::{self, LoadOptions};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const FILES: [&str; 10] = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "CT_small.dcm",
    "CR_spine_6154.dcm",
    "emri_small_RLE.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
];

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real")
        .join(name)
}

fn mutate(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut b = original.to_vec();
    match rng.random_range(0..4) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => b.truncate(rng.random_range(0..b.len())),
        2 => {
            // Overwrite 4 bytes (often a length field) with a large value.
            let i = rng.random_range(0..b.len().saturating_sub(4));
            let v: u32 = rng.random_range(0x0100_0000..=u32::MAX);
            b[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
    }
    b
}

#[test]
fn mutated_files_never_panic_and_stay_within_memory() {
    let cases_per_file = 300;
    let mut rng = ChaCha8Rng::seed_from_u64(20211);
    let opts = LoadOptions::default();
    let (mut ok, mut refused) = (0usize, 0usize);
    for name in FILES {
        let original = std::fs::read(real(name)).expect("read");
        let path = PathBuf::from(format!("mutated_{name}"));
        for case in 0..cases_per_file {
            let bytes = mutate(&mut rng, &original);
            // Budget: 64 MiB plus 64× the file size above what is allocated now.
            let budget = (64 << 20) + 64 * bytes.len();
            ALLOC
                .set_limit(ALLOC.allocated() + budget)
                .expect("set limit");
            let result = std::panic::catch_unwind(|| imaging::load_bytes(&path, &bytes, &opts));
            ALLOC.set_limit(usize::MAX).expect("reset limit");
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    refused += 1;
                    assert!(
                        e.to_string().contains(&format!("mutated_{name}")),
                        "{name} case {case}: {e}"
                    );
                }
                Err(_) => panic!("{name} case {case}: the loader panicked"),
            }
        }
    }
    eprintln!("mutations: {ok} decoded, {refused} refused with an error");
    assert_eq!(ok + refused, FILES.len() * cases_per_file);
    assert!(refused > 100 && ok > 100);
}
