//! A throwaway Orthanc with its DICOMweb plugin for the tests that talk to a PACS: a generated
//! configuration in a temporary folder (storage and index there), HTTP on a free loopback port only,
//! remote access off, the DICOM server off, authentication on (one user). One per test binary, started
//! on first use; a watchdog process stops it and removes its folder when the test binary exits.
//!
//! Orthanc is found in `SACRO_ORTHANC`, on `PATH`, or at `/usr/sbin/Orthanc`, its DICOMweb plugin in
//! `SACRO_ORTHANC_DICOMWEB` or Debian's `/usr/share/orthanc/plugins/libOrthancDicomWeb.so`
//! (`packaging/setup-debian.sh` installs `orthanc` and `orthanc-dicomweb`). Missing, they fail the
//! tests with that message: the tests are never skipped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The archive's user and password (loopback only, torn down with the tests).
pub const USER: &str = "sacro-test";
/// Its password.
pub const PASSWORD: &str = "pacs pass:word";

/// A running Orthanc.
pub struct Orthanc {
    pub dir: PathBuf,
    pub port: u16,
}

/// The Orthanc of this test binary.
pub fn orthanc() -> &'static Orthanc {
    static ORTHANC: OnceLock<Orthanc> = OnceLock::new();
    ORTHANC.get_or_init(Orthanc::start)
}

fn find(env: &str, name: &str, fallbacks: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    fallbacks
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: run packaging/setup-debian.sh (orthanc, orthanc-dicomweb) or set {env}")
        })
}

impl Orthanc {
    fn start() -> Self {
        let exe = find("SACRO_ORTHANC", "Orthanc", &["/usr/sbin/Orthanc"]);
        let plugin = find(
            "SACRO_ORTHANC_DICOMWEB",
            "libOrthancDicomWeb.so",
            &[
                "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
            ],
        );
        let dir = tempfile::Builder::new()
            .prefix("sacro-orthanc-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let port = crate::support::free_port();
        let config = serde_json::json!({
            "Name": "sacro-test-archive",
            "StorageDirectory": dir.join("storage"),
            "IndexDirectory": dir.join("index"),
            "HttpPort": port,
            "RemoteAccessAllowed": false,
            "DicomServerEnabled": false,
            "DicomPort": crate::support::free_port(),
            "AuthenticationEnabled": true,
            "RegisteredUsers": { USER: PASSWORD },
            "Plugins": [plugin],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
            "StableAge": 1,
        });
        let config_path = dir.join("orthanc.json");
        std::fs::write(&config_path, config.to_string()).expect("config");
        let log = std::fs::File::create(dir.join("orthanc.log")).expect("log");
        // Never waited for here: the watchdog stops it when the tests end.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(exe)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start Orthanc");
        let server = Self { dir, port };
        server.watchdog(child.id());
        // Ready when its REST API answers (bounded: 30 s).
        for _ in 0..300 {
            if server.get("/system").is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Orthanc did not start: {}",
            std::fs::read_to_string(server.dir.join("orthanc.log")).unwrap_or_default()
        );
    }

    /// Kills Orthanc and removes its folder when this process has gone (or after 3 hours).
    fn watchdog(&self, pid: u32) {
        crate::support::watchdog(
            &format!("kill {pid} 2>/dev/null; sleep 1; kill -9 {pid} 2>/dev/null"),
            &self.dir,
        );
    }

    /// The DICOMweb root URL.
    pub fn dicomweb(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.port)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn auth() -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        )
    }

    /// GET on Orthanc's own REST API.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let mut r = Self::agent()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("Authorization", Self::auth())
            .call()
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("status {}", r.status()));
        }
        r.body_mut().read_to_string().map_err(|e| e.to_string())
    }

    /// Stores a DICOM file in the archive (Orthanc's REST upload).
    pub fn upload(&self, bytes: &[u8]) {
        let r = Self::agent()
            .post(format!("http://127.0.0.1:{}/instances", self.port))
            .header("Authorization", Self::auth())
            .send(bytes)
            .expect("upload");
        assert!(r.status().is_success(), "upload: {}", r.status());
    }

    /// Raw GET without credentials: what anyone on the machine gets.
    pub fn status_without_login(&self, path: &str) -> u16 {
        Self::agent()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}
