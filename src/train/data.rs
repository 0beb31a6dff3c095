//! Training data: labelled radiographs from a folder + CSV (`file,label`, optionally
//! `left_grade,right_grade` and `split`) or from a reading-sessions study's consensus labels. Every film is
//! decoded once, windowed as the model's pre-processing does (`Radiograph::default_unit`), made square and
//! cached at the largest training size (16-bit, so 1,553 films at 768² take 1.8 GB), so that epochs never
//! decode DICOM again. The split is seeded and stratified (the study's 85/15), or given per row.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::TrainError;
use crate::grading::{JointGrade, JointGrades};
use crate::imaging::{self, GreyImage, LoadOptions};
use crate::model::preprocess::Preprocess;
use crate::session::Study;

/// Which set a case belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// Trained on.
    Train,
    /// Validation: AUC per epoch, checkpoints, cut-offs.
    Valid,
    /// Held-out test set, evaluated once at the end.
    Test,
}

/// A film squared and quantised to 16 bits.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedImage {
    side: u32,
    pixels: Vec<u16>,
}

impl CachedImage {
    /// Quantises a square image in [0, 1].
    pub fn new(img: &GreyImage) -> Self {
        Self {
            side: img.width,
            pixels: img
                .pixels
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
                .collect(),
        }
    }

    /// Side of the cached square.
    pub fn side(&self) -> u32 {
        self.side
    }

    /// The film at `size × size`, values in [0, 1].
    pub fn at(&self, size: u32) -> GreyImage {
        let img = GreyImage {
            width: self.side,
            height: self.side,
            pixels: self
                .pixels
                .iter()
                .map(|&v| f32::from(v) / 65535.0)
                .collect(),
        };
        if size == self.side {
            return img;
        }
        // Resizing a valid square to a non-zero size cannot fail; keep the original on the impossible path.
        img.resize(size, size).unwrap_or(img)
    }
}

/// One labelled film.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Pseudonymous case ID (study) or file name (CSV).
    pub id: String,
    /// Definite radiographic sacroiliitis.
    pub label: bool,
    /// Per-joint grades, when known (swapped with the image on a horizontal flip).
    pub grades: Option<JointGrades>,
    /// Set.
    pub split: Option<Split>,
    /// The cached film.
    pub image: CachedImage,
}

/// A data set with its split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// All examples.
    pub examples: Vec<Example>,
    /// Where they came from (for the model card).
    pub source: String,
}

impl Dataset {
    /// Indices of one set.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.examples.len())
            .filter(|&i| self.examples[i].split == Some(split))
            .collect()
    }

    /// Assigns train/validation to every example without a split: stratified by label, seeded; at least one
    /// validation case per class when both classes have two or more cases.
    pub fn split(&mut self, valid_pct: f64, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for class in [false, true] {
            let mut idx: Vec<usize> = (0..self.examples.len())
                .filter(|&i| self.examples[i].split.is_none() && self.examples[i].label == class)
                .collect();
            idx.shuffle(&mut rng);
            let mut n_valid = (idx.len() as f64 * valid_pct).round() as usize;
            if n_valid == 0 && idx.len() >= 2 {
                n_valid = 1;
            }
            for (k, &i) in idx.iter().enumerate() {
                self.examples[i].split = Some(if k < n_valid {
                    Split::Valid
                } else {
                    Split::Train
                });
            }
        }
    }

    /// Checks that training and validation can work: both classes in both sets.
    pub fn check(&self) -> Result<(), TrainError> {
        for split in [Split::Train, Split::Valid] {
            let idx = self.indices(split);
            let pos = idx.iter().filter(|&&i| self.examples[i].label).count();
            if pos == 0 || pos == idx.len() {
                return Err(TrainError::Data(format!(
                    "{}: the {split:?} set has {} cases, {pos} positive: both classes are needed",
                    self.source,
                    idx.len()
                )));
            }
        }
        Ok(())
    }
}

/// A film to load and its label.
#[derive(Debug, Clone)]
pub struct Entry {
    /// ID.
    pub id: String,
    /// File.
    pub path: PathBuf,
    /// Label.
    pub label: bool,
    /// Grades.
    pub grades: Option<JointGrades>,
    /// Given split.
    pub split: Option<Split>,
}

fn csv_error(path: &Path, row: usize, detail: impl Into<String>) -> TrainError {
    TrainError::Csv {
        path: path.to_path_buf(),
        row,
        detail: detail.into(),
    }
}

/// Reads a CSV of `file,label[,left_grade,right_grade][,split]` (files relative to the CSV's folder; the
/// label may be left empty when both grades are given, and is then derived by the mNY rule).
pub fn read_csv(csv_path: &Path) -> Result<Vec<Entry>, TrainError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| csv_error(csv_path, 1, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_error(csv_path, 1, e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let file_col = col("file").ok_or_else(|| csv_error(csv_path, 1, "no `file` column"))?;
    let (label_col, left_col, right_col, split_col) = (
        col("label"),
        col("left_grade"),
        col("right_grade"),
        col("split"),
    );
    if label_col.is_none() && (left_col.is_none() || right_col.is_none()) {
        return Err(csv_error(
            csv_path,
            1,
            "a `label` column or both `left_grade` and `right_grade` are needed",
        ));
    }
    let base = csv_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.map_err(|e| csv_error(csv_path, row, e.to_string()))?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("");
        let file = field(Some(file_col));
        if file.is_empty() {
            return Err(csv_error(csv_path, row, "empty `file`"));
        }
        let grade = |name: &str, c: Option<usize>| -> Result<Option<JointGrade>, TrainError> {
            let s = field(c);
            if s.is_empty() {
                return Ok(None);
            }
            let v: i64 = s.parse().map_err(|_| {
                csv_error(csv_path, row, format!("{name} `{s}` is not a grade 0–4"))
            })?;
            JointGrade::from_value(v)
                .map(Some)
                .map_err(|e| csv_error(csv_path, row, format!("{name}: {e}")))
        };
        let grades = match (
            grade("left_grade", left_col)?,
            grade("right_grade", right_col)?,
        ) {
            (Some(l), Some(r)) => Some(JointGrades::new(l, r)),
            (None, None) => None,
            _ => {
                return Err(csv_error(
                    csv_path,
                    row,
                    "only one of left_grade/right_grade given",
                ));
            }
        };
        let label = match (field(label_col), grades) {
            ("0", _) => false,
            ("1", _) => true,
            ("", Some(g)) => g.definite_sacroiliitis(),
            (s, _) => {
                return Err(csv_error(
                    csv_path,
                    row,
                    format!("label `{s}` must be 0 or 1"),
                ));
            }
        };
        if let Some(g) = grades
            && g.definite_sacroiliitis() != label
        {
            return Err(csv_error(
                csv_path,
                row,
                format!(
                    "label {} contradicts grades {}/{} by the mNY rule",
                    u8::from(label),
                    g.left.value(),
                    g.right.value()
                ),
            ));
        }
        let split = match field(split_col).to_ascii_lowercase().as_str() {
            "" => None,
            "train" => Some(Split::Train),
            "valid" | "validation" | "val" => Some(Split::Valid),
            "test" => Some(Split::Test),
            s => {
                return Err(csv_error(
                    csv_path,
                    row,
                    format!("split `{s}` must be train, valid or test"),
                ));
            }
        };
        let path = Path::new(file);
        out.push(Entry {
            id: file.to_string(),
            path: if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            },
            label,
            grades,
            split,
        });
    }
    if out.is_empty() {
        return Err(csv_error(csv_path, 1, "no rows"));
    }
    Ok(out)
}

/// The cases of a study with a consensus label (cases without one are left out and counted).
pub fn study_entries(study: &Path) -> Result<(Vec<Entry>, usize), TrainError> {
    let store = Study::open(study, None).map_err(|e| TrainError::Data(e.to_string()))?;
    let labels = crate::session::consensus(&*store).map_err(|e| TrainError::Data(e.to_string()))?;
    let cases = store.cases().map_err(|e| TrainError::Data(e.to_string()))?;
    let mut out = Vec::new();
    let mut unlabelled = 0;
    let mut cache: Option<crate::pacs::cache::FilmCache> = None;
    for c in labels {
        let Some(label) = c.label else {
            unlabelled += 1;
            continue;
        };
        let Some(info) = cases.iter().find(|k| k.id == c.case_id) else {
            continue;
        };
        let path = match (store.resolve(info), &info.archive, &info.sop_instance_uid) {
            (Some(path), _, _) => path,
            // A film in an archive: from the local film cache, fetched into it when missing.
            (None, Some(a), Some(sop)) => {
                let cache = match &cache {
                    Some(c) => c,
                    None => cache.insert(
                        crate::pacs::cache::FilmCache::open_default()
                            .map_err(|e| TrainError::Data(e.to_string()))?,
                    ),
                };
                cache
                    .film(
                        &a.url,
                        &crate::pacs::Credentials::from_env(),
                        &a.study_uid,
                        &a.series_uid,
                        sop,
                    )
                    .map_err(|e| {
                        TrainError::Data(format!("{}: case {}: {e}", study.display(), c.case_id))
                    })?
            }
            _ => {
                return Err(TrainError::Data(format!(
                    "{}: case {} has no file path",
                    study.display(),
                    c.case_id
                )));
            }
        };
        out.push(Entry {
            id: c.case_id,
            path,
            label,
            grades: None,
            split: None,
        });
    }
    Ok((out, unlabelled))
}

/// Decodes and caches the entries (in parallel), reporting `(done, total)`; stops early when `cancel` is
/// set. A film that cannot be read is an error naming it.
pub fn load(
    entries: &[Entry],
    cache_size: u32,
    fit: crate::model::preprocess::Fit,
    window: crate::imaging::WindowPolicy,
    source: &str,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Dataset, TrainError> {
    let pre = Preprocess {
        fit,
        window,
        ..Preprocess::imagenet(cache_size)
    };
    let done = AtomicUsize::new(0);
    let examples = entries
        .par_iter()
        .map(|e| {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            let rad = imaging::load(&e.path, &LoadOptions::default())
                .map_err(|err| TrainError::Data(err.to_string()))?;
            let unit = rad.model_unit(window);
            let sq = pre
                .square(&unit.pixels, unit.width, unit.height)
                .map_err(|err| TrainError::Data(format!("{}: {err}", e.path.display())))?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, entries.len());
            Ok(Example {
                id: e.id.clone(),
                label: e.label,
                grades: e.grades,
                split: e.split,
                image: CachedImage::new(&sq),
            })
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    Ok(Dataset {
        examples,
        source: source.to_string(),
    })
}

/// Opens training data as the CLI and the app's training panel both do: a CSV (by its extension) or a
/// study's consensus labels; decodes and caches every film at the configuration's largest size, then
/// splits (seeded, stratified). Returns the data set and what the user should be told (left-out cases).
pub fn open(
    path: &Path,
    cfg: &crate::train::TrainConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<(Dataset, Vec<String>), TrainError> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut notes = Vec::new();
    let (entries, source) = if is_csv {
        (read_csv(path)?, format!("{}", path.display()))
    } else {
        let (entries, unlabelled) = study_entries(path)?;
        if unlabelled > 0 {
            notes.push(format!(
                "{unlabelled} cases without a consensus label are left out"
            ));
        }
        (entries, format!("consensus labels of {}", path.display()))
    };
    let mut ds = load(
        &entries,
        cfg.cache_size(),
        cfg.fit,
        cfg.window,
        &source,
        progress,
        cancel,
    )?;
    ds.split(cfg.valid_pct, cfg.seed);
    Ok((ds, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(labels: &[bool]) -> Dataset {
        let img = CachedImage::new(&GreyImage::filled(4, 4, 0.5));
        Dataset {
            examples: labels
                .iter()
                .enumerate()
                .map(|(i, &label)| Example {
                    id: format!("c{i}"),
                    label,
                    grades: None,
                    split: None,
                    image: img.clone(),
                })
                .collect(),
            source: "test".into(),
        }
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let labels: Vec<bool> = (0..200).map(|i| i % 3 != 0).collect();
        let mut a = dataset(&labels);
        a.split(0.15, 1);
        let valid = a.indices(Split::Valid);
        let pos = valid.iter().filter(|&&i| a.examples[i].label).count();
        // 133 positives → 20 validation, 67 negatives → 10.
        assert_eq!((valid.len(), pos), (30, 20));
        let mut b = dataset(&labels);
        b.split(0.15, 1);
        assert_eq!(b.indices(Split::Valid), valid);
        let mut c = dataset(&labels);
        c.split(0.15, 2);
        assert_ne!(c.indices(Split::Valid), valid);
        a.check().unwrap();
        let mut one_class = dataset(&[true; 10]);
        one_class.split(0.15, 1);
        assert!(
            one_class
                .check()
                .unwrap_err()
                .to_string()
                .contains("both classes")
        );
    }

    #[test]
    fn cache_quantises_and_resizes() {
        let img = GreyImage {
            width: 2,
            height: 2,
            pixels: vec![0.0, 0.25, 0.5, 1.0],
        };
        let c = CachedImage::new(&img);
        let back = c.at(2);
        for (a, b) in back.pixels.iter().zip(&img.pixels) {
            assert!((a - b).abs() < 1e-4);
        }
        assert_eq!(c.at(4).pixels.len(), 16);
    }
}
