//! Mutation test: thousands of seeded byte flips and truncations of real DICOM files must give an image
//! or a clear error, never a panic, and never allocate more than a fixed budget above what the file size
//! justifies.
//!
//! The global allocator counts live bytes and their peak per case (`peak_alloc`); the test asserts on
//! each case's peak and names the file and case that went over. Below that, `cap` refuses anything that
//! would take the process more than 4 GiB past where a case started: such a request is a bug, and the
//! allocation failure aborts with its message. This test runs without the libtest harness
//! (`harness = false`), because an abort while the harness captures output deadlocks in its lock.

use std::path::{Path, PathBuf};

use cap::Cap;
use peak_alloc::PeakAlloc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sacro::imaging::{self, LoadOptions};

#[global_allocator]
static ALLOC: Cap<PeakAlloc> = Cap::new(PeakAlloc, usize::MAX);

/// Ceiling above a case's starting point: beyond it an allocation fails and the process aborts.
const CEILING: usize = 4 << 30;

const FILES: [&str; 14] = [
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
    // 12-bit JPEG Extended (libjpeg-turbo through `imaging::jpeg12`).
    "JPEG-lossy.dcm",
    "tests/fixtures/jpeg12/CR_spine_6154_jpeg12.dcm",
    // High-Throughput JPEG 2000 (copies of a real film's region by OpenJPH), lossy and lossless.
    "tests/fixtures/htj2k/RG3_crop_HTJ2K.dcm",
    "tests/fixtures/htj2k/RG3_crop_HTJ2KR.dcm",
];

fn real(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if name.starts_with("tests/") {
        return root.join(name);
    }
    root.join("../shared/testdata/dicom/real").join(name)
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

fn main() {
    mutated_files_never_panic_and_stay_within_memory();
    println!("test mutated_files_never_panic_and_stay_within_memory ... ok");
}

fn mutated_files_never_panic_and_stay_within_memory() {
    let cases_per_file = 300;
    let mut rng = ChaCha8Rng::seed_from_u64(20211);
    let opts = LoadOptions::default();
    let (mut ok, mut refused) = (0usize, 0usize);
    let mut problems = Vec::new();
    // Decoder panics are caught by the loader and become errors; the default hook would print each one
    // and symbolise a backtrace, whose tens of MiB would count against the case's budget. Problems are
    // collected and reported once the hook is back.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for name in FILES {
        let original = std::fs::read(real(name)).expect("read");
        let short = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = PathBuf::from(format!("mutated_{short}"));
        for case in 0..cases_per_file {
            let bytes = mutate(&mut rng, &original);
            // Budget: 64 MiB plus 64× the file size above what is live now.
            let budget = (64 << 20) + 64 * bytes.len();
            let before = ALLOC.allocated();
            ALLOC.set_limit(before + CEILING).expect("set limit");
            PeakAlloc.reset_peak_usage();
            let result = std::panic::catch_unwind(|| imaging::load_bytes(&path, &bytes, &opts));
            let used = PeakAlloc.peak_usage().saturating_sub(before);
            ALLOC.set_limit(usize::MAX).expect("reset limit");
            if used > budget {
                problems.push(format!(
                    "{name} case {case}: allocated {used} bytes at peak, budget {budget}"
                ));
            }
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    refused += 1;
                    if !e.to_string().contains(&format!("mutated_{short}")) {
                        problems.push(format!("{name} case {case}: error without the file: {e}"));
                    }
                }
                Err(_) => problems.push(format!("{name} case {case}: the loader panicked")),
            }
        }
    }
    std::panic::set_hook(default_hook);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("mutations: {ok} decoded, {refused} refused with an error");
    assert!(refused > 100 && ok > 100);
}
