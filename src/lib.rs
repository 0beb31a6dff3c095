//! Sacro reads pelvic radiographs for radiographic sacroiliitis: a DICOM/TIFF/PNG viewer, grading by the
//! modified New York criteria, blinded reading sessions, a ResNet-50 with Grad-CAM, its training, and the
//! statistics of Bressem et al. 2021.
//!
//! The library holds everything; the binary (`src/main.rs`) is a thin command-line shell that also opens
//! the desktop application. Layers, from the bottom (`ARCHITECTURE.md` at the repository's root is the
//! map, with the arrows allowed between them):
//!
//! - [`grading`], [`stats`]: pure rules and statistics, no I/O.
//! - [`imaging`]: decoding, Modality LUT, VOI windowing, geometry; never sees candle or egui.
//! - [`kernels`]: CPU kernels (convolutions, batch norm, pooling, Adam); know nothing of ResNet.
//! - [`phantom`], [`session`]: synthetic films; studies and their stores.
//! - [`model`]: the network, its weights and cards, prediction and Grad-CAM.
//! - [`train`], [`report`]: fine-tuning; the statistics report.
//! - [`gui`]: the desktop app.

pub mod assets;
pub mod escape;
pub mod grading;
pub mod gui;
pub mod imaging;
pub mod kernels;
pub mod model;
pub mod pacs;
pub mod phantom;
pub mod report;
pub mod session;
pub mod stats;
pub mod train;
