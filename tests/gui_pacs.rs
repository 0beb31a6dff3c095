//! The app's archive windows against a real Orthanc (`tests/orthanc`): the coordinator queries the
//! archive, adds a series as cases, and the reader's film is fetched into the film cache and shown;
//! "Send to archive…" de-identifies a folder and the archive then holds only the cleaned film.

mod orthanc;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::accesskit::Role as A11y;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use orthanc::{PASSWORD, USER, orthanc};
use sacro::gui::{Launch, SacroApp};
use sacro::imaging::{self, LoadOptions};
use sacro::session::{Protocol, Role, SqliteStore, StudyStore};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real")
        .join(name)
}

fn app() -> Harness<'static, SacroApp> {
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .with_pixels_per_point(1.0)
        .with_max_steps(32)
        .wgpu()
        .build_eframe(|cc| SacroApp::new(cc, Launch::Nothing));
    h.run();
    h
}

fn type_into(h: &mut Harness<'static, SacroApp>, role: A11y, label: &str, text: &str) {
    let field = h.get_by_role_and_label(role, label);
    field.focus();
    field.type_text(text);
    h.run();
}

/// Steps frames (a spinner repaints while the worker runs) until the archive window's worker is
/// done (bounded).
fn wait_for_archive(h: &mut Harness<'static, SacroApp>) {
    let start = Instant::now();
    h.step();
    while h.state().pacs.busy() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    assert!(!h.state().pacs.busy(), "the archive did not answer in 60 s");
    h.run();
}

/// A server that records each request's head and answers 404: (its DICOMweb URL, what it heard).
fn listening_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = heard.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            log.lock()
                .expect("log")
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (format!("http://127.0.0.1:{port}/dicom-web"), heard)
}

fn log_in(h: &mut Harness<'static, SacroApp>) {
    type_into(h, A11y::TextInput, "DICOMweb URL:", &orthanc().dicomweb());
    type_into(h, A11y::TextInput, "User (empty: SACRO_DICOMWEB_*):", USER);
    type_into(h, A11y::PasswordInput, "Password:", PASSWORD);
}

#[test]
fn the_coordinator_adds_a_series_from_the_archive_and_the_reader_sees_it_fetched() {
    let film = testdata("RG3_UNCR.dcm");
    orthanc().upload(&std::fs::read(&film).expect("film"));
    let tmp = tempfile::tempdir().expect("tmp");
    let study = tmp.path().join("study.sacro");
    let store = SqliteStore::create(&study, Protocol::Single, 3).expect("study");
    store.add_reader("R1", Role::Reader).expect("reader");
    drop(store);
    let cache = tmp.path().join("cache");
    let mut h = app();
    h.state_mut().set_film_cache(cache.clone());
    h.state_mut().open(&study);
    h.run();
    h.get_by_label("Coordinator view").click();
    h.run();
    h.get_by_label("Add from PACS…").click();
    h.run();
    log_in(&mut h);
    type_into(&mut h, A11y::TextInput, "Body part:", "EXTREMITY");
    h.get_by_label("Search").click();
    wait_for_archive(&mut h);
    // Patient identity hidden by default.
    let name = imaging::load(&film, &LoadOptions::default())
        .expect("film")
        .identity
        .patient_name
        .unwrap_or_default();
    assert!(h.query_by_label(name.trim()).is_none());
    h.get_by_label("series 1").click();
    h.run();
    h.get_by_label("Add the selected series as cases").click();
    h.run();
    let cases = SqliteStore::open(&study)
        .expect("open")
        .cases()
        .expect("cases");
    assert_eq!(cases.len(), 1, "{:?}", h.state().toasts);
    assert!(cases[0].archive.is_some() && cases[0].path.is_none());
    // A second case, written behind the app's back, names another server: the login typed for
    // Orthanc must never be sent there.
    let (other, heard) = listening_server();
    SqliteStore::open(&study)
        .expect("open")
        .add_cases(&[sacro::session::NewCase {
            path: None,
            sop_instance_uid: Some("1.2.826.0.1.3680043.8.498.77".into()),
            case_id: Some("ELSEWHERE".into()),
            archive: Some(sacro::session::ArchiveRef {
                url: other,
                study_uid: "1.2.3".into(),
                series_uid: "1.2.3.4".into(),
            }),
        }])
        .expect("second case");
    h.state_mut().open(&study);
    h.run();
    h.get_by_label("Coordinator view").click();
    h.run();
    // The reader opens the case: the film is fetched into the cache and decoded.
    h.state_mut().pacs.shown = None; // the window's ✕
    h.run();
    h.get_by_label("Coordinator view").click();
    h.run();
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label("R1 (reader)").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    // Both cases were asked for (the current one and the prefetched next): the other server heard
    // a request, and no credentials in it.
    let heard = heard.lock().expect("heard").clone();
    assert!(!heard.is_empty(), "the other case was never fetched");
    assert!(
        heard
            .iter()
            .all(|r| !r.to_ascii_lowercase().contains("authorization")),
        "credentials went to another server: {heard:?}"
    );
    if h.state().current_film().is_none() {
        h.key_press(egui::Key::ArrowDown);
        h.run();
        h.state_mut().wait_for_films();
        h.run();
    }
    let shown = h.state().current_film().expect("film shown");
    let local = imaging::load(&film, &LoadOptions::default()).expect("local");
    assert_eq!(shown.radiograph.image.pixels, local.image.pixels);
    let sop = cases[0].sop_instance_uid.clone().expect("sop");
    assert!(cache.join(format!("{sop}.dcm")).is_file());
    // Nothing of the password stays in the app's debug output.
    assert!(!format!("{:?}", h.state()).contains(PASSWORD));
}

#[test]
fn send_to_archive_stores_only_the_de_identified_film() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("films");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::copy(testdata("MR_small_RLE.dcm"), folder.join("a.dcm")).expect("copy");
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").expect("secret");
    let study = tmp.path().join("study.sacro");
    SqliteStore::create(&study, Protocol::Single, 3).expect("study");
    let mut h = app();
    h.state_mut().open(&study);
    h.run();
    h.get_by_label("Coordinator view").click();
    h.run();
    h.get_by_label("Send to archive…").click();
    h.run();
    log_in(&mut h);
    type_into(
        &mut h,
        A11y::TextInput,
        "Folder of DICOM films:",
        &folder.display().to_string(),
    );
    type_into(
        &mut h,
        A11y::TextInput,
        "Site secret file (empty: default):",
        &secret.display().to_string(),
    );
    h.get_by_label("De-identify and send").click();
    wait_for_archive(&mut h);
    let key = sacro::imaging::deid::load_or_create_secret(&secret).expect("secret");
    let de = sacro::imaging::deid::Deidentifier::new(&key, false).expect("de");
    let id = imaging::load(&testdata("MR_small_RLE.dcm"), &LoadOptions::default())
        .expect("film")
        .identity;
    let old = id.sop_instance_uid.expect("sop");
    let new = de.uid(&old);
    let client = sacro::pacs::DicomWeb::new(
        &orthanc().dicomweb(),
        &sacro::pacs::Credentials::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
        None,
    )
    .expect("client");
    let found = client
        .instances(
            &de.uid(&id.study_uid.clone().expect("study")),
            &de.uid(&id.series_uid.clone().expect("series")),
        )
        .expect("instances");
    assert_eq!(found, vec![new], "{:?}", h.state().toasts);
    assert!(
        h.state()
            .toasts
            .iter()
            .any(|t| t.text.contains("1 de-identified film(s) stored")),
        "{:?}",
        h.state().toasts
    );
}

#[test]
fn a_reader_without_the_archive_login_is_asked_for_it_and_then_sees_the_film() {
    let film = testdata("CR_spine_6154.dcm");
    orthanc().upload(&std::fs::read(&film).expect("film"));
    let id = imaging::load(&film, &LoadOptions::default())
        .expect("film")
        .identity;
    let tmp = tempfile::tempdir().expect("tmp");
    let study = tmp.path().join("study.sacro");
    let store = SqliteStore::create(&study, Protocol::Single, 3).expect("study");
    store.add_reader("R1", Role::Reader).expect("reader");
    store
        .add_cases(&[sacro::session::NewCase {
            path: None,
            sop_instance_uid: id.sop_instance_uid.clone(),
            case_id: None,
            archive: Some(sacro::session::ArchiveRef {
                url: orthanc().dicomweb(),
                study_uid: id.study_uid.clone().expect("study"),
                series_uid: id.series_uid.clone().expect("series"),
            }),
        }])
        .expect("case");
    drop(store);
    let mut h = app();
    h.state_mut().set_film_cache(tmp.path().join("cache"));
    h.state_mut().open(&study);
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    // No login in this process's environment: the archive says 401, the app asks for the login.
    assert!(h.state().current_film().is_none());
    assert!(
        h.state().toasts.iter().any(|t| t.text.contains("401")),
        "{:?}",
        h.state().toasts
    );
    h.get_by_label("Log in to the archive…").click();
    h.run();
    type_into(
        &mut h,
        A11y::TextInput,
        "User (empty: SACRO_DICOMWEB_*):",
        USER,
    );
    type_into(&mut h, A11y::PasswordInput, "Password:", PASSWORD);
    h.get_by_label("Use this login").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    let shown = h
        .state()
        .current_film()
        .expect("film shown after the login");
    let local = imaging::load(&film, &LoadOptions::default()).expect("local");
    assert_eq!(shown.radiograph.image.pixels, local.image.pixels);
}
