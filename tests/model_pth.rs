//! Importing PyTorch checkpoints: torchvision and fastai state dicts give the same tensors as the
//! safetensors fixture; a pickle that refers to code is refused without being run
//! (`tests/reference/make_pth_fixtures.py` made the files).

use std::path::Path;

use candle_core::Device;
use sacro::model::pth::{check_pth, read_pth};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().expect("flat").to_vec1().expect("vec");
    let b: Vec<f32> = b.flatten_all().expect("flat").to_vec1().expect("vec");
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn torchvision_and_fastai_checkpoints_match_the_safetensors() {
    let reference =
        candle_core::safetensors::load(fixture("resnet_small.safetensors"), &Device::Cpu)
            .expect("fixture");
    let tv = read_pth(&fixture("resnet_small.pth")).expect("torchvision pth");
    assert!(tv.contains_key("layer2.0.downsample.0.weight") && tv.contains_key("fc.weight"));
    for (k, v) in &tv {
        assert_eq!(max_diff(v, &reference[k]), 0.0, "{k}");
    }
    let fa = read_pth(&fixture("fastai_small.pth")).expect("fastai pth");
    assert!(
        fa.contains_key("conv1.weight")
            && fa.contains_key("layer4.0.conv3.weight")
            && fa.contains_key("head.8.weight")
    );
    for (k, v) in &fa {
        assert_eq!(max_diff(v, &reference[k]), 0.0, "{k}");
    }
}

#[test]
fn a_checkpoint_with_code_is_refused_without_running_it() {
    let marker = std::env::temp_dir().join("sacro_pth_test_never_created");
    let err = check_pth(&fixture("malicious.pth"))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("posix.system") || err.contains("os.system"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(read_pth(&fixture("malicious.pth")).is_err());
    assert!(!marker.exists());
    // Not a checkpoint at all.
    let err = check_pth(&fixture("resnet_small.safetensors"))
        .expect_err("not a zip")
        .to_string();
    assert!(err.contains("not a PyTorch zip checkpoint"), "{err}");
}

/// Pickle pieces, written as torch.save writes them (protocol 2).
mod pk {
    pub fn s(text: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((text.len() as u32).to_le_bytes());
        v.extend(text.as_bytes());
        v
    }
    pub fn int(n: u32) -> Vec<u8> {
        let mut v = vec![b'J'];
        v.extend((n as i32).to_le_bytes());
        v
    }
    pub fn long(n: i64) -> Vec<u8> {
        let mut v = vec![0x8a, 8];
        v.extend(n.to_le_bytes());
        v
    }
    pub fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![b'('];
        items.iter().for_each(|i| v.extend(i));
        v.push(b't');
        v
    }
    /// `_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), offset, size, stride, False, {})`
    pub fn tensor(key: &str, numel: i64, offset: u32, size: &[u32], stride: &[u32]) -> Vec<u8> {
        let mut v = b"ctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
        v.extend(tuple(&[
            s("storage"),
            b"ctorch\nFloatStorage\n".to_vec(),
            s(key),
            s("cpu"),
            long(numel),
        ]));
        v.push(b'Q');
        v.extend(int(offset));
        v.extend(tuple(&size.iter().map(|&n| int(n)).collect::<Vec<_>>()));
        v.extend(tuple(&stride.iter().map(|&n| int(n)).collect::<Vec<_>>()));
        v.extend(b"\x89}tR");
        v
    }
    /// `{name: tensor, …}`
    pub fn state_dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0x80, 2, b'}', b'('];
        for (k, t) in entries {
            v.extend(s(k));
            v.extend(t);
        }
        v.extend(b"u.");
        v
    }
}

/// A checkpoint archive: `ckpt/data.pkl` and the storages as `ckpt/data/KEY`.
fn archive(name: &str, pickle: &[u8], storages: &[(&str, Vec<u8>, bool)]) -> std::path::PathBuf {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("sacro_pth_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("file");
    let mut z = zip::ZipWriter::new(file);
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let deflated = stored.compression_method(zip::CompressionMethod::Deflated);
    z.start_file("ckpt/data.pkl", stored).expect("pkl");
    z.write_all(pickle).expect("write");
    z.start_file("ckpt/byteorder", stored).expect("byteorder");
    z.write_all(b"little").expect("write");
    for (key, bytes, deflate) in storages {
        let opts = if *deflate { deflated } else { stored };
        z.start_file(format!("ckpt/data/{key}"), opts)
            .expect("record");
        z.write_all(bytes).expect("write");
    }
    z.finish().expect("finish");
    path
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn refused(path: &Path) -> String {
    let err = read_pth(path).expect_err("refused").to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    err
}

#[test]
fn hostile_pickles_are_refused_with_a_clear_error() {
    // 1.3 KB of repeated memo references: 2^64 objects if expanded.
    let mut bomb = vec![0x80, 2, b']', b'q', 0];
    for i in 0..64u8 {
        bomb.extend([b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
    }
    bomb.push(b'.');
    let err = refused(&archive("memo.pth", &bomb, &[]));
    assert!(err.contains("expands to more than"), "{err}");

    // 400 KB of nested lists: refused, not a stack overflow.
    let mut nested = vec![0x80, 2];
    nested.extend(std::iter::repeat_n(b']', 200_000));
    nested.extend(std::iter::repeat_n(b'a', 199_999));
    nested.push(b'.');
    let err = refused(&archive("nested.pth", &nested, &[]));
    assert!(err.contains("nested deeper"), "{err}");
    let mut marks = vec![0x80, 2];
    marks.extend(std::iter::repeat_n(b'(', 400_000));
    let err = refused(&archive("marks.pth", &marks, &[]));
    assert!(err.contains("marks"), "{err}");

    // A string longer than the pickle.
    let mut long = vec![0x80, 4, 0x8d];
    long.extend(u64::MAX.to_le_bytes());
    let err = refused(&archive("long.pth", &long, &[]));
    assert!(err.contains("remain in the pickle"), "{err}");
}

#[test]
fn declared_sizes_are_checked_against_the_archive_before_anything_is_read() {
    // 2^40 elements: refused before allocating.
    let pickle = pk::state_dict(&[("w", pk::tensor("0", 1 << 40, 0, &[1 << 20], &[1]))]);
    let err = refused(&archive(
        "huge.pth",
        &pickle,
        &[("0", f32_bytes(&[0.0; 4]), false)],
    ));
    assert!(err.contains("declares 1099511627776 elements"), "{err}");

    // A record that inflates far beyond the 4 elements declared: refused without inflating it.
    let pickle = pk::state_dict(&[("w", pk::tensor("0", 4, 0, &[4], &[1]))]);
    let zeros = vec![0u8; 64 << 20];
    let path = archive("inflates.pth", &pickle, &[("0", zeros, true)]);
    assert!(std::fs::metadata(&path).expect("size").len() < 1 << 20);
    let err = refused(&path);
    assert!(
        err.contains("the record holds 67108864 bytes, the pickle declares 16"),
        "{err}"
    );

    // A record shorter than declared, a missing record, a view outside its storage.
    let err = refused(&archive(
        "short.pth",
        &pickle,
        &[("0", f32_bytes(&[1.0; 3]), false)],
    ));
    assert!(err.contains("declares 16"), "{err}");
    let err = refused(&archive("missing.pth", &pickle, &[]));
    assert!(err.contains("no record ckpt/data/0"), "{err}");
    let outside = pk::state_dict(&[("w", pk::tensor("0", 4, 2, &[2, 2], &[2, 1]))]);
    let err = refused(&archive(
        "outside.pth",
        &outside,
        &[("0", f32_bytes(&[1.0; 4]), false)],
    ));
    assert!(
        err.contains("views element 5 of storage 0 that declares 4 elements"),
        "{err}"
    );
    // Views that add up to more than the limit, although the storage is small.
    let many: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            (
                format!("t{i}"),
                pk::tensor("0", 4, 0, &[1 << 14, 1 << 14], &[0, 0]),
            )
        })
        .collect();
    let entries: Vec<(&str, Vec<u8>)> = many.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let err = refused(&archive(
        "views.pth",
        &pk::state_dict(&entries),
        &[("0", f32_bytes(&[1.0; 4]), false)],
    ));
    assert!(err.contains("add up to more than"), "{err}");
}

#[test]
fn tensors_sharing_a_storage_read_it_once_as_views() {
    // Twelve views of one storage of 24 values: offsets, a transposed (non-contiguous) view, a scalar.
    let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let mut entries = Vec::new();
    let names: Vec<String> = (0..10).map(|i| format!("row{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        entries.push((n.as_str(), pk::tensor("0", 24, i as u32 * 2, &[2], &[1])));
    }
    entries.push(("t", pk::tensor("0", 24, 0, &[3, 2], &[1, 3])));
    entries.push(("scalar", pk::tensor("0", 24, 23, &[], &[])));
    let path = archive(
        "shared.pth",
        &pk::state_dict(&entries),
        &[("0", f32_bytes(&values), false)],
    );
    let tensors = read_pth(&path).expect("reads");
    assert_eq!(tensors.len(), 12);
    let row3: Vec<f32> = tensors["row3"].to_vec1().expect("row");
    assert_eq!(row3, vec![6.0, 7.0]);
    let t: Vec<Vec<f32>> = tensors["t"].to_vec2().expect("t");
    assert_eq!(t, vec![vec![0.0, 3.0], vec![1.0, 4.0], vec![2.0, 5.0]]);
    let s: f32 = tensors["scalar"].to_scalar().expect("scalar");
    assert_eq!(s, 23.0);
}
