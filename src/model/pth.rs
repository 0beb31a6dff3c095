//! Importing PyTorch `.pth` checkpoints (torchvision state dicts, fastai `learn.save` files) without
//! executing anything, and without letting the file decide how much memory or time the import takes.
//!
//! The archive's pickle is read by [`super::pickle`] (bounded, allow-list checked as it reads). Before a
//! byte of tensor data is read, every tensor is checked: its storage class, its view inside the storage,
//! the storage's record in the archive and its declared size, and the total against
//! [`MAX_TENSOR_BYTES`]. Each storage is then read once, with a read bounded to its declared size, however
//! many tensors share it; a record that inflates past its declared size is refused.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use super::ModelError;
use super::pickle::{self, Limits, TensorRef};

/// Largest pickle (`data.pkl`) read: a ResNet-50 state dict's is about 30 KB.
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// Largest total of tensor data a checkpoint may hold (a ResNet-50 with fastai's optimiser state is
/// about 300 MB).
pub const MAX_TENSOR_BYTES: u64 = 2 << 30;

/// A checked checkpoint: its tensors described, none read yet.
#[derive(Debug)]
pub struct PthCheckpoint {
    path: PathBuf,
    prefix: String,
    tensors: Vec<(String, Rc<TensorRef>)>,
}

fn element(class: &str) -> Option<(DType, u64)> {
    Some(match class {
        "FloatStorage" => (DType::F32, 4),
        "DoubleStorage" => (DType::F64, 8),
        "HalfStorage" => (DType::F16, 2),
        "BFloat16Storage" => (DType::BF16, 2),
        "ByteStorage" | "BoolStorage" => (DType::U8, 1),
        "CharStorage" => (DType::I16, 1),
        "ShortStorage" => (DType::I16, 2),
        "IntStorage" => (DType::I32, 4),
        "LongStorage" => (DType::I64, 8),
        _ => return None,
    })
}

/// The index of the last element a view touches, or `None` for an empty view.
fn last_index(t: &TensorRef) -> Result<Option<u64>, String> {
    if t.shape.contains(&0) {
        return Ok(None);
    }
    let mut last = t.offset;
    for (&n, &s) in t.shape.iter().zip(&t.stride) {
        last = (n - 1)
            .checked_mul(s)
            .and_then(|d| last.checked_add(d))
            .ok_or("a view whose extent overflows 64 bits")?;
    }
    Ok(Some(last))
}

fn numel(shape: &[u64]) -> Result<u64, String> {
    shape
        .iter()
        .try_fold(1u64, |a, &n| a.checked_mul(n))
        .ok_or_else(|| format!("a shape {shape:?} whose size overflows 64 bits"))
}

fn open_archive(path: &Path) -> Result<zip::ZipArchive<BufReader<std::fs::File>>, ModelError> {
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        detail: format!(
            "not a PyTorch zip checkpoint ({e}); legacy (pre-1.6) files must be re-saved with torch.save first"
        ),
    })
}

/// Reads at most `limit` bytes of an archive record; more is an error.
fn read_record<R: Read>(entry: R, limit: u64, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(usize::try_from(limit.min(1 << 30)).unwrap_or(0));
    entry
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "{name}: holds more than the {limit} bytes it may (a record that inflates past its declared size?)"
        ));
    }
    Ok(out)
}

/// Opens and checks a checkpoint: the pickle under [`Limits::default`], every tensor's view against its
/// storage, every storage against its record in the archive. Nothing is read but the pickle.
pub fn open_pth(path: &Path) -> Result<PthCheckpoint, ModelError> {
    let refuse = |detail: String| ModelError::Weights {
        path: path.to_path_buf(),
        detail,
    };
    let mut zip = open_archive(path)?;
    let pickles: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
        .collect();
    let [name] = pickles.as_slice() else {
        return Err(refuse(if pickles.is_empty() {
            "no data.pkl inside: not a PyTorch checkpoint".into()
        } else {
            format!("{} data.pkl records; a checkpoint has one", pickles.len())
        }));
    };
    let prefix = name
        .strip_suffix("data.pkl")
        .unwrap_or_default()
        .to_string();
    if let Ok(entry) = zip.by_name(&format!("{prefix}byteorder")) {
        let order = read_record(entry, 16, "byteorder").map_err(&refuse)?;
        if order != b"little" {
            return Err(refuse(format!(
                "byte order {:?}; only little-endian checkpoints are read",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let data = {
        let entry = zip
            .by_name(name)
            .map_err(|e| refuse(format!("{name}: {e}")))?;
        read_record(entry, MAX_PICKLE_BYTES, name).map_err(&refuse)?
    };
    let top = pickle::read(&data, Limits::default())
        .map_err(|e| refuse(format!("{name}: {}", e.detail_at())))?;
    let tensors = pickle::state_dict(&top).map_err(&refuse)?;

    let mut storages: HashMap<String, (String, u64)> = HashMap::new();
    let mut view_bytes: u64 = 0;
    for (tname, t) in &tensors {
        let bad = |d: String| refuse(format!("tensor {tname}: {d}"));
        let (_, size) = element(&t.storage.class)
            .ok_or_else(|| bad(format!("unsupported storage {}", t.storage.class)))?;
        let n = numel(&t.shape).map_err(&bad)?;
        view_bytes = n
            .checked_mul(size)
            .and_then(|b| view_bytes.checked_add(b))
            .filter(|&b| b <= MAX_TENSOR_BYTES)
            .ok_or_else(|| {
                bad(format!(
                    "the tensors add up to more than {MAX_TENSOR_BYTES} bytes"
                ))
            })?;
        if let Some(last) = last_index(t).map_err(&bad)?
            && last >= t.storage.numel
        {
            return Err(bad(format!(
                "views element {last} of storage {} that declares {} elements",
                t.storage.key, t.storage.numel
            )));
        }
        let declared = (t.storage.class.clone(), t.storage.numel);
        match storages.get(&t.storage.key) {
            Some(seen) if *seen != declared => {
                return Err(bad(format!(
                    "storage {} declared twice, as {} × {} and as {} × {}",
                    t.storage.key, seen.1, seen.0, declared.1, declared.0
                )));
            }
            Some(_) => {}
            None => {
                storages.insert(t.storage.key.clone(), declared);
            }
        }
    }
    let mut storage_bytes: u64 = 0;
    for (key, (class, n)) in &storages {
        let size = element(class).map_or(1, |e| e.1);
        let bytes = n
            .checked_mul(size)
            .filter(|&b| b <= MAX_TENSOR_BYTES)
            .ok_or_else(|| {
                refuse(format!(
                    "storage {key} declares {n} elements, more than the {MAX_TENSOR_BYTES} bytes a checkpoint may hold"
                ))
            })?;
        storage_bytes = storage_bytes.saturating_add(bytes);
        if storage_bytes > MAX_TENSOR_BYTES {
            return Err(refuse(format!(
                "the storages add up to more than {MAX_TENSOR_BYTES} bytes"
            )));
        }
        let record = format!("{prefix}data/{key}");
        let entry = zip
            .by_name(&record)
            .map_err(|_| refuse(format!("storage {key}: no record {record} in the archive")))?;
        if entry.size() != bytes {
            return Err(refuse(format!(
                "storage {key}: the record holds {} bytes, the pickle declares {bytes}",
                entry.size()
            )));
        }
    }
    Ok(PthCheckpoint {
        path: path.to_path_buf(),
        prefix,
        tensors,
    })
}

impl PthCheckpoint {
    /// The tensors' names, as stored.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }

    /// Reads the tensors: each storage once, bounded by its declared size.
    pub fn read(&self) -> Result<HashMap<String, Tensor>, ModelError> {
        let refuse = |detail: String| ModelError::Weights {
            path: self.path.clone(),
            detail,
        };
        let mut zip = open_archive(&self.path)?;
        let mut by_storage: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (_, t)) in self.tensors.iter().enumerate() {
            by_storage
                .entry(t.storage.key.as_str())
                .or_default()
                .push(i);
        }
        let mut out = HashMap::with_capacity(self.tensors.len());
        for (key, users) in by_storage {
            let storage = &self.tensors[users[0]].1.storage;
            let (dtype, size) = element(&storage.class)
                .ok_or_else(|| refuse(format!("unsupported storage {}", storage.class)))?;
            let bytes = storage.numel * size;
            let record = format!("{}data/{key}", self.prefix);
            let entry = zip
                .by_name(&record)
                .map_err(|e| refuse(format!("{record}: {e}")))?;
            let data = read_record(entry, bytes, &record).map_err(&refuse)?;
            if (data.len() as u64) < bytes {
                return Err(refuse(format!(
                    "{record}: {} bytes, the pickle declares {bytes} (truncated?)",
                    data.len()
                )));
            }
            for i in users {
                let (name, t) = &self.tensors[i];
                let raw = gather(&data, t, size as usize);
                let raw = if storage.class == "CharStorage" {
                    raw.iter()
                        .flat_map(|&b| i16::from(b as i8).to_le_bytes())
                        .collect()
                } else {
                    raw
                };
                let shape: Vec<usize> = t.shape.iter().map(|&n| n as usize).collect();
                let tensor = Tensor::from_raw_buffer(&raw, dtype, &shape, &Device::Cpu)
                    .map_err(|e| refuse(format!("tensor {name}: {e}")))?;
                out.insert(name.clone(), tensor);
            }
        }
        Ok(out)
    }
}

/// The bytes of a (checked) view, in row-major order.
fn gather(data: &[u8], t: &TensorRef, size: usize) -> Vec<u8> {
    let n: usize = t.shape.iter().map(|&d| d as usize).product();
    let mut contiguous = true;
    let mut expect = 1u64;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d > 1 && s != expect {
            contiguous = false;
        }
        expect *= d;
    }
    let start = t.offset as usize * size;
    if contiguous {
        return data[start..start + n * size].to_vec();
    }
    let mut out = Vec::with_capacity(n * size);
    let mut index = vec![0u64; t.shape.len()];
    for _ in 0..n {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let at = at as usize * size;
        out.extend_from_slice(&data[at..at + size]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Refuses a checkpoint whose pickle refers to anything but tensors, storages and dictionaries, or
/// whose declared sizes do not fit the archive and the limits.
pub fn check_pth(path: &Path) -> Result<(), ModelError> {
    open_pth(path).map(|_| ())
}

/// torchvision names for a state dict that may come from fastai (`0.N.…` body, `1.N.…` head).
fn torchvision_name(name: &str) -> String {
    let body = [
        ("0.0.", "conv1."),
        ("0.1.", "bn1."),
        ("0.4.", "layer1."),
        ("0.5.", "layer2."),
        ("0.6.", "layer3."),
        ("0.7.", "layer4."),
    ];
    for (from, to) in body {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    if let Some(rest) = name.strip_prefix("1.") {
        return format!("head.{rest}");
    }
    name.to_string()
}

/// Reads the tensors of a checked checkpoint, under torchvision/Sacro names. fastai's `learn.save`
/// files keep the weights under the key `model`.
pub fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let tensors = open_pth(path)?.read()?;
    Ok(tensors
        .into_iter()
        .map(|(k, v)| (torchvision_name(&k), v))
        .collect())
}
