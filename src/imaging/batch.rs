//! Batch work over files and folders: gathering inputs recursively and converting one radiograph to a
//! windowed image or raw float TIFF, as the seed study did by hand before training.

use std::path::{Path, PathBuf};

use super::export::{self, GreyLevels, OutputFormat};
use super::{ImagingError, LoadOptions, NamedPreset, Radiograph, Voi, Window};

/// How to window a converted image.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowChoice {
    /// The file's first preset, else its VOI LUT, else the automatic window.
    FileDefault,
    /// A fixed window.
    Fixed(Window),
    /// A named preset.
    Preset(NamedPreset),
}

/// What `sacro convert` does to each file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSettings {
    /// Window choice (ignored with `raw`).
    pub window: WindowChoice,
    /// Output container (ignored with `raw`: always TIFF).
    pub format: OutputFormat,
    /// 8 or 16 bits.
    pub bits: u8,
    /// Write post-Modality-LUT values as 32-bit float TIFF, unwindowed, not inverted.
    pub raw: bool,
    /// Loading limits and frame.
    pub load: LoadOptions,
}

/// What [`gather_inputs`] found: each file with the root it was found under, and the folders inside
/// the roots that could not be read (reported and skipped, not fatal).
#[derive(Debug, Default)]
pub struct Gathered {
    /// (root, file), sorted per root.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// One line per folder skipped: which and why.
    pub skipped: Vec<String>,
}

/// Files under the given paths: files as given, folders walked recursively (hidden entries skipped,
/// only names that look like images), sorted. A root that cannot be read is an error; a folder inside
/// one that cannot be read is skipped and named in [`Gathered::skipped`]. So is a file or folder whose
/// name is not valid UTF-8 (shown with the bytes escaped): a study, a CSV or JSON could not name it
/// without changing it.
pub fn gather_inputs(paths: &[PathBuf]) -> Result<Gathered, ImagingError> {
    gather_inputs_excluding(paths, None)
}

/// [`gather_inputs`], leaving out the folder `exclude` (a conversion's output folder inside its input:
/// what it wrote is not input the next time).
pub fn gather_inputs_excluding(
    paths: &[PathBuf],
    exclude: Option<&Path>,
) -> Result<Gathered, ImagingError> {
    let exclude = exclude.and_then(|e| e.canonicalize().ok());
    let mut out = Gathered::default();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|source| ImagingError::Io {
            path: root.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(root, exclude.as_deref(), &mut found, &mut out.skipped, true)?;
            found.sort();
            out.files
                .extend(found.into_iter().map(|f| (root.clone(), f)));
        } else if root.to_str().is_none() {
            out.skipped.push(not_utf8(root));
        } else {
            let parent = root.parent().map(Path::to_path_buf).unwrap_or_default();
            out.files.push((parent, root.clone()));
        }
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    exclude: Option<&Path>,
    found: &mut Vec<PathBuf>,
    skipped: &mut Vec<String>,
    is_root: bool,
) -> Result<(), ImagingError> {
    if exclude.is_some_and(|e| dir.canonicalize().is_ok_and(|d| d == e)) {
        // The output folder is left out on purpose: not a failure to report.
        tracing::debug!("{}: the output folder, not read as input", dir.display());
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) if is_root => {
            return Err(ImagingError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
        Err(e) => {
            skipped.push(format!("{}: cannot read the folder: {e}", dir.display()));
            return Ok(());
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skipped.push(format!("{}: cannot list an entry: {e}", dir.display()));
                continue;
            }
        };
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_name().to_str().is_none() {
            skipped.push(not_utf8(&path));
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&path, exclude, found, skipped, false)?,
            Ok(kind) if kind.is_file() && super::has_image_extension(&path) => found.push(path),
            Ok(_) => {}
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    Ok(())
}

/// Why a path is skipped: its name is not UTF-8 (shown escaped, e.g. `"bad\xFF.dcm"`).
fn not_utf8(path: &Path) -> String {
    format!(
        "{:?}: the name is not valid UTF-8; rename it to read it",
        path.as_os_str()
    )
}

/// Output paths for `inputs` (root, file) under `out_dir` ([`output_path`]), made unique within the
/// run: where two inputs would give one name (`a.dcm` and `a.DCM`, or the same stem in one folder), the
/// later ones get `_2`, `_3`, … so that nothing one input writes is overwritten by another.
pub fn unique_output_paths(
    inputs: &[(PathBuf, PathBuf)],
    out_dir: &Path,
    extension: &str,
) -> Vec<PathBuf> {
    let mut taken = std::collections::HashSet::new();
    inputs
        .iter()
        .map(|(root, input)| {
            let first = output_path(root, input, out_dir, extension);
            let key = |p: &Path| p.to_string_lossy().to_lowercase();
            let mut candidate = first.clone();
            let mut n = 2;
            while !taken.insert(key(&candidate)) {
                let stem = first
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                candidate = first.with_file_name(format!("{stem}_{n}.{extension}"));
                n += 1;
            }
            candidate
        })
        .collect()
}

/// The output path for `input` found under `root`: the same relative folder under `out_dir`, the file's
/// stem, and the output extension.
pub fn output_path(root: &Path, input: &Path, out_dir: &Path, extension: &str) -> PathBuf {
    let rel = input.strip_prefix(root).unwrap_or(input);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    out_dir.join(parent).join(format!("{stem}.{extension}"))
}

/// The VOI stage a choice gives for one radiograph.
pub fn voi_for(radiograph: &Radiograph, choice: &WindowChoice) -> Result<Voi, ImagingError> {
    match choice {
        WindowChoice::FileDefault => Ok(radiograph.default_voi()),
        WindowChoice::Fixed(w) => Ok(Voi::Window(*w)),
        WindowChoice::Preset(p) => radiograph.voi_for(p),
    }
}

/// The extension a conversion writes.
pub fn output_extension(settings: &ConvertSettings) -> &'static str {
    if settings.raw {
        "tiff"
    } else {
        settings.format.extension()
    }
}

/// Converts one file into `out` (from [`unique_output_paths`]); returns the path written.
pub fn convert_one(
    input: &Path,
    out: PathBuf,
    settings: &ConvertSettings,
) -> Result<PathBuf, ImagingError> {
    let radiograph = super::load(input, &settings.load)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ImagingError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    if settings.raw {
        export::write_raw_f32_tiff(&out, &radiograph.image)?;
    } else {
        let display = radiograph.display(voi_for(&radiograph, &settings.window)?);
        let levels = GreyLevels::render(&radiograph.image, &display, settings.bits);
        export::write_grey(
            &out,
            radiograph.width(),
            radiograph.height(),
            &levels,
            settings.format,
        )?;
    }
    Ok(out)
}

/// Films decoded at once by folder commands: two per thread, so a thread that finishes early has the
/// next film ready, and memory stays bounded by a few films, not the folder.
pub fn films_in_flight() -> usize {
    rayon::current_num_threads().max(1) * 2
}

/// Runs `work` on up to `in_flight` items at a time on rayon's threads and hands each result to `done`
/// in the items' order (output order never depends on which film decodes first); at most `in_flight`
/// results are held at once.
pub fn in_order<I: Sync, T: Send>(
    items: &[I],
    in_flight: usize,
    work: impl Fn(&I) -> T + Sync,
    mut done: impl FnMut(&I, T),
) {
    use rayon::prelude::*;
    for chunk in items.chunks(in_flight.max(1)) {
        let results: Vec<T> = chunk.par_iter().map(&work).collect();
        for (item, r) in chunk.iter().zip(results) {
            done(item, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder that cannot be read inside a walk (here: one that vanished) is skipped and named; the
    /// walk goes on. (Permissions cannot make a folder unreadable for root, who runs CI.)
    #[test]
    fn an_unreadable_inner_folder_is_skipped_and_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        let gone = tmp.path().join("gone");
        let (mut found, mut skipped) = (Vec::new(), Vec::new());
        walk(&gone, None, &mut found, &mut skipped, false).expect("not fatal inside a root");
        assert!(found.is_empty());
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].contains("gone") && skipped[0].contains("cannot read"),
            "{skipped:?}"
        );
        assert!(
            walk(&gone, None, &mut found, &mut skipped, true).is_err(),
            "a root is an error"
        );
    }

    #[test]
    fn outputs_that_would_collide_get_numbered() {
        let root = PathBuf::from("/in");
        let inputs: Vec<(PathBuf, PathBuf)> = ["/in/a.dcm", "/in/a.DCM", "/in/a", "/in/sub/a.dcm"]
            .iter()
            .map(|p| (root.clone(), PathBuf::from(p)))
            .collect();
        let out = unique_output_paths(&inputs, Path::new("/out"), "tiff");
        assert_eq!(
            out,
            [
                "/out/a.tiff",
                "/out/a_2.tiff",
                "/out/a_3.tiff",
                "/out/sub/a.tiff"
            ]
            .map(PathBuf::from)
            .to_vec()
        );
    }

    /// A name that is not UTF-8 is skipped and shown escaped; the other files are found.
    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_are_skipped_and_shown_escaped() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let bad = tmp.path().join(std::ffi::OsStr::from_bytes(b"bad\xff.dcm"));
        std::fs::write(&bad, b"x").expect("write");
        std::fs::write(tmp.path().join("good.dcm"), b"x").expect("write");
        let g = gather_inputs(&[tmp.path().to_path_buf()]).expect("gather");
        assert_eq!(g.files.len(), 1);
        assert!(g.files[0].1.ends_with("good.dcm"));
        assert_eq!(g.skipped.len(), 1);
        assert!(g.skipped[0].contains("bad\\xFF.dcm"), "{:?}", g.skipped);
        let g = gather_inputs(&[bad]).expect("a file given directly");
        assert!(g.files.is_empty() && g.skipped.len() == 1);
    }

    #[test]
    fn in_order_keeps_the_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..37).collect();
        let mut seen = Vec::new();
        // Later items finish first within each window.
        in_order(
            &items,
            5,
            |&i| {
                std::thread::sleep(std::time::Duration::from_micros(200 * (40 - i)));
                i * i
            },
            |&i, sq| seen.push((i, sq)),
        );
        assert_eq!(seen, items.iter().map(|&i| (i, i * i)).collect::<Vec<_>>());
    }
}
