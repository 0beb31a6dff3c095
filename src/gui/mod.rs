//! The desktop application (egui/eframe with the wgpu renderer): the reading workstation. The only
//! module that knows a window exists; everything it shows comes from the library's other modules.

pub mod app;
mod apply;
pub mod command;
pub mod compare;
pub mod dashboard;
pub mod loader;
pub mod model;
pub mod pacs;
pub mod panels;
pub mod reader_study;
pub mod study;
pub mod training;
pub mod viewer;

use std::path::{Path, PathBuf};

pub use app::{Launch, SacroApp};

/// Application name (window title, settings folder).
pub const APP_NAME: &str = "Sacro";

/// The reader the demo study offers the user.
pub const DEMO_READER: &str = "you (demo reader)";

/// Where the bundled assets are: `$SACRO_ASSETS`, an installed package's `share/sacro` beside the binary,
/// or the source tree's `assets/`.
pub fn assets_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SACRO_ASSETS") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(Path::parent)
    {
        let installed = prefix.join("share").join("sacro");
        if installed.join("demo").is_dir() {
            return installed;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Folder for the user's own copy of the demo study and other data: `$SACRO_DATA_DIR`, or the platform's
/// data folder for Sacro.
pub fn data_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SACRO_DATA_DIR") {
        return PathBuf::from(p);
    }
    eframe::storage_dir(APP_NAME).unwrap_or_else(|| std::env::temp_dir().join("sacro"))
}

/// The demo study, copied on first use from the bundled (read-only) assets into the data folder `data`
/// (the app uses [`data_dir`]) so that readings can be committed to it. Returns the study file.
pub fn demo_study_in(data: &Path) -> Result<PathBuf, String> {
    let src = assets_dir().join("demo");
    let dst = data.join("demo");
    let study = dst.join("study.sacro");
    if study.is_file() {
        return Ok(study);
    }
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dst)?;
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), dst.join(entry.file_name()))?;
            }
        }
        Ok(())
    };
    copy().map_err(|e| {
        format!(
            "cannot copy the demo study from {} to {}: {e}",
            src.display(),
            dst.display()
        )
    })?;
    // The bundled study is fully read by simulated readers; the user joins it as an extra reader with
    // all 24 films to read (extra readers do not change the protocol's consensus).
    use crate::session::{Role, SqliteStore, StudyStore};
    let store = SqliteStore::open(&study).map_err(|e| e.to_string())?;
    if !store
        .readers()
        .map_err(|e| e.to_string())?
        .iter()
        .any(|r| r.name == DEMO_READER)
    {
        store
            .add_reader(DEMO_READER, Role::Reader)
            .map_err(|e| e.to_string())?;
    }
    Ok(study)
}

/// Opens the main window (blocking until it closes), with a model folder loaded if given.
pub fn run(launch: Launch, model: Option<PathBuf>) -> Result<(), String> {
    let mut viewport = egui::ViewportBuilder::default();
    if let Ok(icon) =
        eframe::icon_data::from_png_bytes(include_bytes!("../../packaging/linux/sacro.png"))
    {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: viewport
            .with_title(APP_NAME)
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        APP_NAME,
        options,
        Box::new(move |cc| {
            let mut app = SacroApp::new(cc, launch);
            // Without a model given, the bundled demo model (its card says what it is and is not for).
            if let Some(dir) = model.or_else(crate::model::card::bundled_demo) {
                app.load_model(&dir);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}
