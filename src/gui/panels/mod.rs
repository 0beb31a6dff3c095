//! The app's panels. Each reads what it shows (borrowed from the app's state), keeps only its own
//! widget state (text fields, toggles), and sends [`super::command::Command`]s for anything that changes
//! the study, the open films or the model; none of them touches a store.

pub mod coordinator;
pub mod grading;
pub mod help;
pub mod image_controls;
pub mod model_output;
pub mod notifications;
pub mod review;
pub mod status_bar;
pub mod top_bar;
pub mod worklist;
