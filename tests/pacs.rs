//! Films from a PACS over DICOMweb, against a real Orthanc with its DICOMweb plugin that the tests
//! start themselves (`tests/orthanc`: loopback only, authentication on): finding studies, series and
//! instances (QIDO-RS), retrieving them (WADO-RS) as files whose decoded pixels equal the originals',
//! patient identity hidden unless asked for, and the refusals (no credentials, wrong password,
//! unknown or malformed UIDs).

mod orthanc;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use orthanc::{PASSWORD, USER, orthanc};
use sacro::imaging::{self, LoadOptions};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real")
        .join(name)
}

fn sacro_pacs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
    c.env("SACRO_DICOMWEB_USER", USER)
        .env("SACRO_DICOMWEB_PASSWORD", PASSWORD)
        .env_remove("SACRO_DICOMWEB_TOKEN")
        .arg("pacs");
    c
}

/// Uploads the films once per test binary; returns their identities.
fn archive() -> &'static Vec<imaging::Identity> {
    static FILMS: std::sync::OnceLock<Vec<imaging::Identity>> = std::sync::OnceLock::new();
    FILMS.get_or_init(|| {
        ["RG3_UNCR.dcm", "CR_spine_6154.dcm", "MR_small.dcm"]
            .iter()
            .map(|f| {
                let path = testdata(f);
                orthanc().upload(&std::fs::read(&path).expect("test film"));
                imaging::load(&path, &LoadOptions::default())
                    .expect("film")
                    .identity
            })
            .collect()
    })
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("sacro");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn find_lists_studies_series_and_instances_without_identity_unless_asked() {
    let films = archive();
    let url = orthanc().dicomweb();
    let (ok, out, err) = run(sacro_pacs().args(["find", &url]));
    assert!(ok, "{err}");
    for f in films {
        let study = f.study_uid.as_deref().expect("study uid");
        let sop = f.sop_instance_uid.as_deref().expect("sop uid");
        assert!(out.contains(&format!("study {study}")), "{out}");
        assert!(out.contains(&format!("instance {sop}")), "{out}");
        if let Some(name) = f.patient_name.as_deref().filter(|n| n.len() > 3) {
            assert!(
                !out.contains(name),
                "identity shown without --show-phi: {out}"
            );
        }
    }
    let (ok, out, _) = run(sacro_pacs().args(["find", &url, "--show-phi"]));
    assert!(ok);
    let named = films
        .iter()
        .filter_map(|f| f.patient_id.as_deref().filter(|i| !i.is_empty()))
        .collect::<Vec<_>>();
    assert!(named.iter().all(|id| out.contains(id)), "{out}");
    // Modality filter: the CR films, not the MR one.
    let (ok, out, err) = run(sacro_pacs().args(["find", &url, "--modality", "CR,DX", "--json"]));
    assert!(ok, "{err}");
    let found: serde_json::Value = serde_json::from_str(&out).expect("json");
    let uids: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["study_uid"].as_str())
        .collect();
    let mr = films[2].study_uid.as_deref().expect("mr");
    assert!(!uids.contains(&mr), "{uids:?}");
    assert!(uids.contains(&films[0].study_uid.as_deref().expect("cr")));
    assert!(
        found
            .as_array()
            .expect("array")
            .iter()
            .all(|s| s["patient_name"].is_null())
    );
}

#[test]
fn get_retrieves_files_whose_pixels_equal_the_originals() {
    let films = archive();
    let tmp = tempfile::tempdir().expect("tmp");
    let url = orthanc().dicomweb();
    let f = &films[0];
    let study = f.study_uid.as_deref().expect("study");
    let (ok, out, err) = run(sacro_pacs()
        .args(["get", &url, "--study-uid", study, "--out"])
        .arg(tmp.path()));
    assert!(ok, "{err}");
    let sop = f.sop_instance_uid.as_deref().expect("sop");
    let got = tmp.path().join(format!("{sop}.dcm"));
    assert!(out.contains(&got.display().to_string()), "{out}");
    let a = imaging::load(&testdata("RG3_UNCR.dcm"), &LoadOptions::default()).expect("original");
    let b = imaging::load(&got, &LoadOptions::default()).expect("retrieved");
    assert_eq!(a.identity.sop_instance_uid, b.identity.sop_instance_uid);
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    assert!(a.image.pixels == b.image.pixels, "decoded pixels differ");
    // Nothing half-written is left beside the films.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{sop}.dcm")]);
}

#[test]
fn refusals_are_clear_and_keep_nothing() {
    let films = archive();
    let url = orthanc().dicomweb();
    assert_eq!(orthanc().status_without_login("/dicom-web/studies"), 401);
    let (ok, _, err) = run(Command::new(env!("CARGO_BIN_EXE_sacro"))
        .env_remove("SACRO_DICOMWEB_USER")
        .env_remove("SACRO_DICOMWEB_PASSWORD")
        .env_remove("SACRO_DICOMWEB_TOKEN")
        .args(["pacs", "find", &url]));
    assert!(!ok);
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    let (ok, _, err) = run(sacro_pacs()
        .env("SACRO_DICOMWEB_PASSWORD", "hunter2-not-it")
        .args(["find", &url]));
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("hunter2"), "password shown: {err}");
    let tmp = tempfile::tempdir().expect("tmp");
    for uid in ["1.2.3.999999", "1.2/../../system", "not-a-uid"] {
        let (ok, _, err) = run(sacro_pacs()
            .args(["get", &url, "--study-uid", uid, "--out"])
            .arg(tmp.path()));
        assert!(!ok, "{uid}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
    let (ok, _, err) = run(sacro_pacs().args([
        "find",
        &format!("http://user:pw@127.0.0.1:{}/dicom-web", orthanc().port),
    ]));
    assert!(!ok);
    assert!(
        err.contains("credentials do not belong in the URL"),
        "{err}"
    );
    let _ = films;
}

/// An archive that lies: answers every request with `body` (a hostile server, not a stand-in for
/// Orthanc: Orthanc does not lie).
fn lying_archive(content_type: &'static str, body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/dicom-web")
}

#[test]
fn an_archive_that_sends_another_film_or_garbage_gets_nothing_kept() {
    let asked = "1.2.826.0.1.3680043.8.498.1";
    let other = std::fs::read(testdata("CR_spine_6154.dcm")).expect("test film");
    let mut wrapped = b"--b0\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    wrapped.extend_from_slice(&other);
    wrapped.extend_from_slice(b"\r\n--b0--\r\n");
    let ct = "multipart/related; type=\"application/dicom\"; boundary=b0";
    let mut truncated = b"--b0\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    truncated.extend_from_slice(&other[..other.len() / 2]);
    let mut not_dicom = b"--b0\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    not_dicom.extend_from_slice(b"<html>login</html>\r\n--b0--");
    for (what, body, expect) in [
        ("another film", wrapped, "instead"),
        ("a truncated answer", truncated, "not closed"),
        ("not DICOM", not_dicom, "no readable film"),
    ] {
        let url = lying_archive(ct, body);
        let client = sacro::pacs::DicomWeb::new(&url, &sacro::pacs::Credentials::None, None)
            .expect("client");
        let tmp = tempfile::tempdir().expect("tmp");
        let err = client
            .retrieve("1.2.3", "1.2.3.4", asked, tmp.path())
            .expect_err(what)
            .to_string();
        assert!(err.contains(expect), "{what}: {err}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("dir").count(),
            0,
            "{what}: something was kept"
        );
    }
    // A QIDO answer that is not DICOM JSON.
    let url = lying_archive(
        "application/dicom+json",
        b"{\"not\": \"an array\"}".to_vec(),
    );
    let client =
        sacro::pacs::DicomWeb::new(&url, &sacro::pacs::Credentials::None, None).expect("client");
    let err = client
        .find(&sacro::pacs::Query::default())
        .expect_err("lie");
    assert!(err.to_string().contains("not a JSON array"), "{err}");
}

#[test]
fn upload_sends_checked_films_and_refuses_burned_in_text_and_unconfirmed_identity() {
    let _ = archive();
    let url = orthanc().dicomweb();
    let chest = testdata("RG1_J2KI.dcm");
    let chest_id = imaging::load(&chest, &LoadOptions::default())
        .expect("chest")
        .identity;
    let (ok, _, err) = run(sacro_pacs().args(["upload", &url]).arg(&chest));
    assert!(!ok);
    assert!(err.contains("--identified"), "{err}");
    // A secondary capture (no Burned In Annotation) beside a good film: nothing at all is sent.
    let sc = testdata("SC_rgb_rle.dcm");
    let sc_id = imaging::load(&sc, &LoadOptions::default())
        .expect("secondary capture")
        .identity;
    assert!(sc_id.burned_in_text().is_some());
    let (ok, _, err) = run(sacro_pacs()
        .args(["upload", &url, "--identified"])
        .arg(&chest)
        .arg(&sc));
    assert!(!ok);
    assert!(
        err.contains("burned-in") || err.contains("not sent"),
        "{err}"
    );
    let (_, listed, _) = run(sacro_pacs().args(["find", &url]));
    let chest_study = chest_id.study_uid.as_deref().expect("study");
    assert!(
        !listed.contains(chest_study),
        "sent although refused: {listed}"
    );
    let (ok, out, err) = run(sacro_pacs()
        .args(["upload", &url, "--identified"])
        .arg(&chest));
    assert!(ok, "{err}");
    let sop = chest_id.sop_instance_uid.as_deref().expect("sop");
    assert!(out.contains(sop), "{out}");
    let (_, listed, _) = run(sacro_pacs().args(["find", &url]));
    assert!(listed.contains(&format!("instance {sop}")), "{listed}");
}

#[test]
fn the_cache_serves_films_offline_and_evicts_the_least_recently_used() {
    use sacro::pacs::cache::FilmCache;
    use sacro::pacs::{Credentials, DicomWeb};
    let films = archive();
    let tmp = tempfile::tempdir().expect("tmp");
    let client = DicomWeb::new(
        &orthanc().dicomweb(),
        &Credentials::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
        None,
    )
    .expect("client");
    let ids = |i: usize| {
        let f = &films[i];
        (
            f.study_uid.clone().expect("study"),
            f.series_uid.clone().expect("series"),
            f.sop_instance_uid.clone().expect("sop"),
        )
    };
    let fetch = |cache: &FilmCache, i: usize| {
        let (st, se, sop) = ids(i);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.fetch(&client, &st, &se, &sop).expect("fetch")
    };
    let size = |p: &Path| std::fs::metadata(p).expect("size").len();
    let scratch = tempfile::tempdir().expect("tmp");
    let all = FilmCache::open(scratch.path(), u64::MAX).expect("cache");
    let sizes: Vec<u64> = (0..3).map(|i| size(&fetch(&all, i))).collect();
    let big = FilmCache::open(tmp.path(), u64::MAX).expect("cache");
    let a = fetch(&big, 0);
    let b = fetch(&big, 1);
    // Room for the first film and one other: the third evicts the one used least recently (b, since a
    // is used again).
    let cache = FilmCache::open(tmp.path(), sizes[0] + sizes[1].max(sizes[2]) + 1).expect("cache");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(cache.get(&ids(0).2), Some(a.clone()));
    let c = fetch(&cache, 2);
    assert!(a.exists() && c.exists());
    assert!(!b.exists(), "the least recently used film stays");
    // Offline: a film in the cache needs no archive.
    let offline =
        DicomWeb::new("http://127.0.0.1:9/dicom-web", &Credentials::None, None).expect("client");
    let (st, se, sop) = ids(0);
    assert_eq!(cache.fetch(&offline, &st, &se, &sop).expect("cached"), a);
    assert!(
        cache
            .fetch(&offline, &ids(1).0, &ids(1).1, &ids(1).2)
            .is_err()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["cache", "info", "--json", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("sacro");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["films"], 2);
    let out = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["cache", "clear", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("sacro");
    assert!(out.status.success());
    assert_eq!(cache.info().films, 0);
}
