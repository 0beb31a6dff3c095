//! Sacro reads pelvic radiographs for radiographic sacroiliitis.
//!
//! The library holds everything; the binary (`src/main.rs`) is a thin command-line shell that will also
//! open the desktop application. Layers, from the bottom (see `../shared/design/ARCHITECTURE.md`):
//!
//! - [`imaging`]: DICOM/TIFF/PNG/JPEG decoding, Modality LUT, VOI windowing, geometry. Never sees candle
//!   or egui.
//! - `grading`, `stats`: pure rules and statistics (later issues).
//! - `session`, `model`, `train`, `gui`: reading sessions, the ResNet-50, training and the desktop app
//!   (later issues).

pub mod assets;
pub mod grading;
pub mod gui;
pub mod imaging;
pub mod kernels;
pub mod model;
pub mod phantom;
pub mod report;
pub mod session;
pub mod stats;
pub mod train;
