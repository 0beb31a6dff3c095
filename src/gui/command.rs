//! What panels ask the app to do. A panel reads the app's state and sends [`Command`]s; the shell applies
//! them in one place ([`super::apply`]), the only code that writes to a study's store, so that every
//! change happens in one order, after the frame's widgets, and every failure becomes a notification.

use std::path::PathBuf;

use crate::session::{CropRect, NewCase, Role, StudySettings};

/// Severity of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something failed.
    Error,
}

/// What fills the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    /// Viewing, reading, coordinating.
    #[default]
    Work,
    /// The training panel.
    Training,
}

/// The coordinator view's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoordinatorTab {
    /// Progress, readers, blinding, prediction of the whole study, export, lock.
    #[default]
    Overview,
    /// Readers, consensus and model case by case.
    Compare,
    /// The seed study's analysis.
    Statistics,
}

/// Which window is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacsTab {
    /// Query and add cases.
    Add,
    /// De-identify and upload.
    Send,
    /// Only the login the films of archived cases are fetched with (a reader's prompt).
    Login,
}

/// A password on its way to the store: never shown, not even in debug output.
#[derive(Clone, PartialEq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One change asked for by a panel or a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a study file, a folder of films or one film.
    Open(PathBuf),
    /// Open a study on a PostgreSQL server: its URL and the login's password (kept only in memory,
    /// for reconnecting).
    OpenServer {
        /// postgres://LOGIN@HOST:PORT/DATABASE.
        url: String,
        /// The login's password (empty: PGPASSWORD or ~/.pgpass).
        password: Secret,
        /// The folder this site keeps the study's films in (empty: the current folder).
        films: String,
    },
    /// Open the bundled demo study (a copy in the user's data folder).
    OpenDemo,
    /// Load a model folder.
    LoadModel(PathBuf),
    /// Read as this reader.
    ChooseReader(String),
    /// Go to entry `i` of the work list.
    GoTo(usize),
    /// Move through the work list by `delta` entries.
    Step(isize),
    /// Commit the draft of the current case.
    Commit,
    /// Save (or clear) the current case's crop rectangle.
    SetCrop(Option<CropRect>),
    /// Open a case for the coordinator's review (from the compare table).
    ReviewCase(String),
    /// Enter (true) or leave the coordinator view.
    SetCoordinating(bool),
    /// Show a coordinator tab.
    ShowTab(CoordinatorTab),
    /// Run the model over every case without its prediction.
    PredictStudy,
    /// Stop the whole-study prediction.
    CancelStudyRun,
    /// Add a reader with a role.
    AddReader(String, Role),
    /// Change what readers may see after their commit.
    SetSettings(StudySettings),
    /// Export readings (and consensus beside them) to this CSV file.
    Export(PathBuf),
    /// Lock the study.
    Lock,
    /// Reload what the coordinator sees (progress, prediction count, compare table).
    RefreshStatus,
    /// Start the statistics dashboard's analysis from the study's store.
    StartAnalysis,
    /// Set (or remove) the reader's box around a joint of the current case.
    SetJointBox(crate::session::joint_boxes::Side, Option<CropRect>),
    /// Analyse the reader study's arm readings (the statistics tab's "Reader study").
    ComputeReaderStudy,
    /// Show a page.
    ShowPage(Page),
    /// Show a notification.
    Notify(String, Level),
    /// Add cases to the study (the coordinator's "Add from PACS…").
    AddCases(Vec<NewCase>),
    /// The archive login the loader fetches films with (empty user: the environment's).
    ArchiveLogin {
        /// The archive it is for (sent nowhere else).
        url: String,
        /// HTTP basic user.
        user: String,
        /// Its password (memory only).
        password: Secret,
    },
    /// Show an archive window.
    ShowPacs(PacsTab),
}

/// The queue panels send commands into during a frame.
#[derive(Debug, Default)]
pub struct Commands(Vec<Command>);

impl Commands {
    /// Queues `command`.
    pub fn send(&mut self, command: Command) {
        self.0.push(command);
    }

    /// Queues a notification.
    pub fn notify(&mut self, text: impl Into<String>, level: Level) {
        self.send(Command::Notify(text.into(), level));
    }

    /// Takes the queued commands, oldest first.
    pub fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.0)
    }

    /// The queued commands (tests).
    pub fn queued(&self) -> &[Command] {
        &self.0
    }
}
