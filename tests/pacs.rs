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
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    raw_archive(head, body)
}

/// A server that answers every request with `head` and then `body`, and closes the connection.
fn raw_archive(head: String, body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/dicom-web")
}

#[test]
fn an_archive_that_fails_cuts_off_or_announces_100_gb_gets_nothing_kept() {
    let asked = "1.2.826.0.1.3680043.8.498.1";
    let film = std::fs::read(testdata("CR_spine_6154.dcm")).expect("test film");
    let ct = "multipart/related; type=\"application/dicom\"; boundary=b0";
    let mut part = b"--b0\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    part.extend_from_slice(&film);
    part.extend_from_slice(b"\r\n--b0--\r\n");
    let cut = part[..part.len() / 2].to_vec();
    for (what, head, body, expect) in [
        (
            "a server error",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string(),
            Vec::new(),
            "500",
        ),
        (
            "a download cut in the middle (the server gone)",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                part.len()
            ),
            cut,
            "",
        ),
        (
            "a Content-Length of 100 GB",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: 100000000000\r\nConnection: close\r\n\r\n"
            ),
            part.clone(),
            "",
        ),
    ] {
        let url = raw_archive(head, body);
        let client = sacro::pacs::DicomWeb::new(&url, &sacro::pacs::Credentials::None, None)
            .expect("client");
        let tmp = tempfile::tempdir().expect("tmp");
        let cache = sacro::pacs::cache::FilmCache::open(tmp.path(), 1 << 30).expect("cache");
        let start = std::time::Instant::now();
        let err = cache
            .fetch(&client, "1.2.3", "1.2.3.4", asked)
            .expect_err(what)
            .to_string();
        assert!(err.contains(expect) && err.contains(&url), "{what}: {err}");
        // Refused at once (bounded retries), nothing in the cache, no temporary file left.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what}"
        );
        assert!(cache.get(asked).is_none(), "{what}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("dir").count(),
            0,
            "{what}: something was kept"
        );
    }
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

// ---- De-identification (PS3.15 Annex E), then `upload --deidentify` against the same Orthanc. ----

mod deid {
    use std::collections::{BTreeMap, HashMap};
    use std::path::{Path, PathBuf};

    use dicom_core::header::Header;
    use dicom_core::{Tag, VR};
    use dicom_object::{InMemDicomObject, OpenFileOptions};
    use sacro::imaging::deid::{Action, Deidentifier, profile_action};
    use sacro::imaging::{self, LoadOptions};

    use super::testdata;

    pub const SECRET: [u8; 32] = *b"test secret, not a site's secret";

    /// Every element of a data set, nested ones included: (tag, VR, trimmed string values or None
    /// for binary values and sequences).
    pub fn walk(obj: &InMemDicomObject, out: &mut Vec<(Tag, VR, Option<Vec<String>>)>) {
        for e in obj {
            let values = match e.value() {
                dicom_core::value::Value::Sequence(seq) => {
                    for item in seq.items() {
                        walk(item, out);
                    }
                    None
                }
                dicom_core::value::Value::PixelSequence(_) => None,
                dicom_core::value::Value::Primitive(_) => match e.vr() {
                    VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN => None,
                    _ => e.to_multi_str().ok().map(|v| {
                        v.iter()
                            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                            .collect()
                    }),
                },
            };
            out.push((e.tag(), e.vr(), values));
        }
    }

    pub fn open(path: &Path) -> dicom_object::DefaultDicomObject {
        OpenFileOptions::new()
            .open_file(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The real films that must de-identify (the secondary captures, JPEG-lossy.dcm among them, are
    /// refused: burned-in text).
    pub const FILMS: [&str; 13] = [
        "CR_spine_6154.dcm",
        "CR_spine_6247.dcm",
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "RG1_J2KI.dcm",
        "RG3_J2KR.dcm",
        "RG3_UNCR.dcm",
        "emri_small_RLE.dcm",
    ];

    fn shifted(date: &str, days: i64) -> String {
        let d = chrono::NaiveDate::parse_from_str(&date[..8], "%Y%m%d").expect("date");
        format!(
            "{}{}",
            (d + chrono::TimeDelta::days(days)).format("%Y%m%d"),
            &date[8..]
        )
    }

    fn pixel_bytes(obj: &InMemDicomObject) -> Vec<u8> {
        let e = obj
            .element(dicom_core::Tag(0x7FE0, 0x0010))
            .expect("pixel data");
        match e.value() {
            dicom_core::value::Value::PixelSequence(seq) => seq.fragments().concat(),
            v => v.to_bytes().expect("bytes").into_owned(),
        }
    }

    /// Checks one input against its output: every attribute of the table has its action, dates moved
    /// by the patient's shift, pixels unchanged. Returns the (old, new) UID pairs seen.
    fn check_file(input: &Path, output: &Path, de: &Deidentifier) -> Vec<(String, String)> {
        let (a, b) = (open(input), open(output));
        let name = input.display();
        let mut before = Vec::new();
        walk(&a, &mut before);
        let mut after = Vec::new();
        walk(&b, &mut after);
        let mut after_by_tag: HashMap<Tag, Vec<Option<Vec<String>>>> = HashMap::new();
        for (t, _, v) in &after {
            after_by_tag.entry(*t).or_default().push(v.clone());
        }
        let id = imaging::load(input, &LoadOptions::default())
            .expect("input")
            .identity;
        let t = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or("").to_string();
        let key = match (t(&id.patient_id), t(&id.patient_name)) {
            (p, _) if !p.is_empty() => format!("id:{p}"),
            (_, n) if !n.is_empty() => format!("name:{n}"),
            _ => format!("study:{}", t(&id.study_uid)),
        };
        let shift = de.date_shift_days(&key);
        let mut uids = Vec::new();
        for (tag, vr, values) in &before {
            let out = after_by_tag.get(tag);
            if tag.group() % 2 == 1 || (0x6000..=0x60FF).contains(&tag.group()) {
                assert!(out.is_none(), "{name}: private/overlay {tag} survived");
                continue;
            }
            let nonempty = values
                .as_ref()
                .is_some_and(|v| v.iter().any(|s| !s.is_empty()));
            if matches!(vr, VR::DA | VR::DT) && nonempty {
                let v = values.as_ref().expect("values");
                let expect: Vec<String> = v.iter().map(|d| shifted(d, shift)).collect();
                if *tag == dicom_core::Tag(0x0010, 0x0030)
                    || profile_action(*tag).map(|a| a.0) == Some(Action::X)
                {
                    // Birth date emptied; removed dates gone.
                    assert!(
                        out.is_none_or(|o| o
                            .iter()
                            .all(|x| x.as_ref().is_none_or(|x| x.iter().all(String::is_empty)))),
                        "{name}: {tag} kept"
                    );
                } else {
                    let o = out.unwrap_or_else(|| panic!("{name}: date {tag} missing"));
                    assert!(
                        o.contains(&Some(expect.clone())),
                        "{name}: {tag} {v:?} -> {o:?}, want {expect:?}"
                    );
                }
                continue;
            }
            let Some((action, what)) = profile_action(*tag) else {
                continue;
            };
            match action {
                Action::X => assert!(out.is_none(), "{name}: {what} {tag} (X) survived"),
                Action::U => {
                    let v = values.as_ref().expect("uid");
                    let o = out.unwrap_or_else(|| panic!("{name}: {what} {tag} (U) missing"));
                    let new: Vec<String> = v.iter().map(|u| de.uid(u)).collect();
                    assert!(
                        o.contains(&Some(new.clone())),
                        "{name}: {what} {tag}: {o:?}"
                    );
                    for (old, new) in v.iter().zip(new) {
                        assert_ne!(*old, new);
                        uids.push((old.clone(), new));
                    }
                }
                _ if *vr == VR::TM => {} // times are kept by the Modified Dates option
                _ => {
                    // Z, D and the choices: whatever is left holds none of the original value.
                    if nonempty && *tag != dicom_core::Tag(0x0008, 0x0016) {
                        let o = out.map(Vec::as_slice).unwrap_or(&[]);
                        assert!(
                            !o.contains(values),
                            "{name}: {what} {tag} ({}) kept its value {values:?}",
                            action.code()
                        );
                    }
                }
            }
        }
        // What the profile adds, and the identity gone from every byte of the file.
        let text = |t| {
            b.element(t)
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        assert_eq!(
            text(dicom_core::Tag(0x0012, 0x0062)).as_deref(),
            Some("YES")
        );
        assert!(text(dicom_core::Tag(0x0012, 0x0063)).is_some_and(|m| m.contains("PS3.15")));
        assert_eq!(
            text(dicom_core::Tag(0x0028, 0x0303)).as_deref(),
            Some("MODIFIED")
        );
        assert_eq!(
            text(dicom_core::Tag(0x0010, 0x0010)),
            Some(de.pseudonym(&key))
        );
        assert_eq!(
            text(dicom_core::Tag(0x0010, 0x0020)),
            Some(de.pseudonym(&key))
        );
        assert_eq!(
            b.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            text(dicom_core::Tag(0x0008, 0x0018)).unwrap_or_default()
        );
        let bytes = std::fs::read(output).expect("output");
        for phi in [&id.patient_name, &id.patient_id] {
            if let Some(p) = phi.as_deref().map(str::trim).filter(|p| p.len() >= 4) {
                assert!(
                    memchr::memmem::find(&bytes, p.as_bytes()).is_none(),
                    "{name}: {p:?} still in the file"
                );
            }
        }
        // Pixels: the same stored bytes, and the same decoded values.
        assert_eq!(
            pixel_bytes(&a),
            pixel_bytes(&b),
            "{name}: pixel data changed"
        );
        let (x, y) = (
            imaging::load(input, &LoadOptions::default()).expect("input"),
            imaging::load(output, &LoadOptions::default()).expect("output"),
        );
        assert_eq!(
            x.image.pixels, y.image.pixels,
            "{name}: decoded values changed"
        );
        uids
    }

    #[test]
    fn every_attribute_of_the_profile_gets_its_action_over_the_real_films() {
        let de = Deidentifier::new(&SECRET, false).expect("secret");
        let dir = tempfile::tempdir().expect("tmp");
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for f in FILMS {
            let input = testdata(f);
            let done = de
                .file(&input, dir.path())
                .unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(
                done.path,
                dir.path().join(format!("{}.dcm", done.sop_instance_uid))
            );
            for (old, new) in check_file(&input, &done.path, &de) {
                // Consistent: one old UID, one new UID, in every file it occurs in.
                let prev = map.insert(old.clone(), new.clone());
                assert!(prev.is_none_or(|p| p == new), "{old} mapped twice");
            }
            // The same input and secret give the same bytes again (another run, another day).
            let (again, _) = de.bytes(&input).expect("again");
            assert_eq!(
                again,
                std::fs::read(&done.path).expect("out"),
                "{f}: not deterministic"
            );
        }
        let news: std::collections::HashSet<&String> = map.values().collect();
        assert_eq!(news.len(), map.len(), "two UIDs mapped to one");
        // The MR_small copies share their study: one new Study Instance UID for all of them.
        let study = |f: &str| {
            imaging::load(&testdata(f), &LoadOptions::default())
                .expect("f")
                .identity
                .study_uid
        };
        assert_eq!(study("MR_small.dcm"), study("MR_small_RLE.dcm"));
        // Another secret: other UIDs and pseudonyms.
        let other = Deidentifier::new(&[1u8; 32], false).expect("secret");
        let (_, a) = de.bytes(&testdata("RG3_UNCR.dcm")).expect("a");
        let (_, b) = other.bytes(&testdata("RG3_UNCR.dcm")).expect("b");
        assert_ne!(a.sop_instance_uid, b.sop_instance_uid);
        assert_ne!(a.pseudonym, b.pseudonym);
    }

    /// A copy of a real film with Burned In Annotation = YES.
    pub fn burned_in_copy(dir: &Path) -> PathBuf {
        let mut obj = open(&testdata("RG3_UNCR.dcm"));
        obj.put(dicom_core::DataElement::new(
            dicom_core::Tag(0x0028, 0x0301),
            VR::CS,
            dicom_core::PrimitiveValue::from("YES"),
        ));
        let path = dir.join("burned.dcm");
        obj.write_to_file(&path).expect("write");
        path
    }

    #[test]
    fn burned_in_text_broken_files_and_bad_secrets_are_refused_without_output() {
        let de = Deidentifier::new(&SECRET, false).expect("secret");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let burned = burned_in_copy(tmp.path());
        for input in [
            burned.clone(),
            testdata("SC_rgb_rle.dcm"),
            testdata("SC_rgb_jpeg_gdcm.dcm"),
            testdata("JPEG-lossy.dcm"),
        ] {
            let e = de.file(&input, &out).expect_err("refused").to_string();
            assert!(
                e.contains(&input.display().to_string()) && e.contains("burned-in"),
                "{e}"
            );
        }
        let malformed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/dicom/malformed");
        for f in std::fs::read_dir(&malformed).expect("malformed") {
            let path = f.expect("entry").path();
            if let Err(e) = de.file(&path, &out) {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            }
        }
        let written: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            written
                .iter()
                .all(|n| !n.to_string_lossy().starts_with('.')),
            "half-written files left: {written:?}"
        );
        // Allowed after checking: written.
        let allowed = Deidentifier::new(&SECRET, true).expect("secret");
        assert!(allowed.file(&burned, &out).is_ok());
        // Secrets: created once, owner-only, reused; too short or not a file refused.
        let secret = tmp.path().join("site/secret");
        let first = sacro::imaging::deid::load_or_create_secret(&secret).expect("created");
        assert_eq!(
            sacro::imaging::deid::load_or_create_secret(&secret).expect("read"),
            first
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret)
                .expect("secret")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "secret readable by others: {mode:o}");
        }
        std::fs::write(tmp.path().join("short"), "abc").expect("short");
        let e = sacro::imaging::deid::load_or_create_secret(&tmp.path().join("short"))
            .expect_err("short");
        assert!(e.to_string().contains("short"), "{e}");
        assert!(sacro::imaging::deid::load_or_create_secret(tmp.path()).is_err());
    }

    #[test]
    fn the_command_writes_the_folder_and_names_what_it_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let inputs = tmp.path().join("in");
        std::fs::create_dir_all(&inputs).expect("in");
        for f in ["RG3_UNCR.dcm", "SC_rgb_rle.dcm", "CR_spine_6154.dcm"] {
            std::fs::copy(testdata(f), inputs.join(f)).expect("copy");
        }
        let secret = tmp.path().join("secret");
        let run = |out: &Path| {
            std::process::Command::new(env!("CARGO_BIN_EXE_sacro"))
                .arg("deidentify")
                .arg(&inputs)
                .arg("--out")
                .arg(out)
                .arg("--secret-file")
                .arg(&secret)
                .output()
                .expect("sacro")
        };
        let out = tmp.path().join("out");
        let o = run(&out);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "a refused film makes the run fail");
        assert!(
            stdout.contains("de-identified 2, failed 1") && stdout.contains("SC_rgb_rle.dcm"),
            "{stdout}"
        );
        assert_eq!(std::fs::read_dir(&out).expect("out").count(), 2);
        let secret_text = std::fs::read_to_string(&secret).expect("secret");
        for f in std::fs::read_dir(&out).expect("out").flatten() {
            let bytes = std::fs::read(f.path()).expect("file");
            assert!(memchr::memmem::find(&bytes, secret_text.trim().as_bytes()).is_none());
        }
        // The output inside an input folder is refused before anything is written.
        let o = run(&inputs.join("deid"));
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("inside an input folder"));
        assert_eq!(
            std::fs::read_dir(inputs.join("deid")).expect("dir").count(),
            0
        );
    }
}

#[test]
fn upload_deidentify_stores_only_cleaned_films() {
    let url = orthanc().dicomweb();
    let tmp = tempfile::tempdir().expect("tmp");
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "00112233445566778899aabbccddeeff").expect("secret");
    let film = testdata("CR_spine_6247.dcm");
    let id = imaging::load(&film, &LoadOptions::default())
        .expect("film")
        .identity;
    let burned = deid::burned_in_copy(tmp.path());
    // A burned-in film in the batch: nothing is sent.
    let (ok, _, err) = run(sacro_pacs()
        .args(["upload", &url, "--deidentify", "--secret-file"])
        .arg(&secret)
        .arg(&film)
        .arg(&burned));
    assert!(!ok && err.contains("burned-in"), "{err}");
    let (ok, out, err) = run(sacro_pacs()
        .args(["upload", &url, "--deidentify", "--secret-file"])
        .arg(&secret)
        .arg(&film));
    assert!(ok, "{err}");
    let key = sacro::imaging::deid::load_or_create_secret(&secret).expect("secret");
    let de2 = sacro::imaging::deid::Deidentifier::new(&key, false).expect("de");
    let old_sop = id.sop_instance_uid.as_deref().expect("sop");
    let new_sop = de2.uid(old_sop);
    assert!(out.contains(&new_sop), "{out}");
    // Orthanc holds the new instance, not the old; what it holds is de-identified.
    let (_, listed, _) = run(sacro_pacs().args(["find", &url, "--show-phi"]));
    assert!(listed.contains(&new_sop), "{listed}");
    assert!(
        !listed.contains(old_sop),
        "the identified film reached the archive: {listed}"
    );
    // (Another test sends an identified film of the same patient: only the new study's line counts.)
    let new_study = de2.uid(id.study_uid.as_deref().expect("study"));
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("study {new_study}")))
        .unwrap_or_else(|| panic!("{listed}"));
    let name = id.patient_name.as_deref().unwrap_or("").trim().to_string();
    assert!(!name.is_empty() && !line.contains(&name), "{line}");
    assert!(line.contains("SACRO-"), "{line}");
    let got = tmp.path().join("got");
    let (ok, _, err) = run(sacro_pacs()
        .args(["get", &url, "--study-uid", &new_study, "--out"])
        .arg(&got));
    assert!(ok, "{err}");
    let back = deid::open(&got.join(format!("{new_sop}.dcm")));
    let s = |t| {
        back.element(t)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    assert_eq!(s(dicom_core::Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
    assert!(s(dicom_core::Tag(0x0010, 0x0010)).is_some_and(|n| n.starts_with("SACRO-")));
}

/// The study and series of a test film.
fn uids_of(name: &str) -> (String, String, String) {
    let id = imaging::load(&testdata(name), &LoadOptions::default())
        .expect("film")
        .identity;
    (
        id.study_uid.expect("study"),
        id.series_uid.expect("series"),
        id.sop_instance_uid.expect("sop"),
    )
}

#[test]
fn add_cases_dicomweb_refers_to_the_archive_and_fetches_into_the_cache() {
    use sacro::session::{Protocol, SqliteStore, StudyStore};
    let _ = archive();
    let url = orthanc().dicomweb();
    let tmp = tempfile::tempdir().expect("tmp");
    let study = tmp.path().join("study.sacro");
    SqliteStore::create(&study, Protocol::Adjudicated, 1).expect("study");
    let cache = tmp.path().join("cache");
    let sacro = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
        c.env("SACRO_DICOMWEB_USER", USER)
            .env("SACRO_DICOMWEB_PASSWORD", PASSWORD)
            .env("SACRO_CACHE_DIR", &cache)
            .env_remove("SACRO_DICOMWEB_TOKEN");
        c
    };
    // A whole study of the archive: one case per instance.
    let (rg3_study, _, rg3_sop) = uids_of("RG3_UNCR.dcm");
    let (ok, out, err) = run(sacro().args(["study", "add-cases"]).arg(&study).args([
        "--dicomweb",
        &url,
        "--study-uid",
        &rg3_study,
    ]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "C0001", "{out}");
    // A case list with a dicomweb column: a series, and one instance under a chosen ID.
    let (spine_study, spine_series, spine_sop) = uids_of("CR_spine_6154.dcm");
    let (mr_study, mr_series, mr_sop) = uids_of("MR_small.dcm");
    let list = tmp.path().join("list.csv");
    std::fs::write(
        &list,
        format!(
            "dicomweb,case_id\n{spine_study}/{spine_series},\n{mr_study}/{mr_series}/{mr_sop},MR-1\n"
        ),
    )
    .expect("list");
    let (ok, _, err) = run(sacro().args(["study", "add-cases"]).arg(&study).arg(&list));
    assert!(!ok && err.contains("--dicomweb"), "{err}");
    let (ok, out, err) = run(sacro()
        .args(["study", "add-cases"])
        .arg(&study)
        .arg(&list)
        .args(["--dicomweb", &url]));
    assert!(ok, "{err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["C0002", "MR-1"]
    );
    let store = SqliteStore::open(&study).expect("open");
    let cases = store.cases().expect("cases");
    let by_sop = |sop: &str| {
        cases
            .iter()
            .find(|c| c.sop_instance_uid.as_deref() == Some(sop))
            .unwrap_or_else(|| panic!("{sop} not a case: {cases:?}"))
    };
    let spine = by_sop(&spine_sop);
    assert!(spine.path.is_none());
    let a = spine.archive.as_ref().expect("archive");
    assert_eq!(
        (a.url.as_str(), a.study_uid.as_str()),
        (url.as_str(), spine_study.as_str())
    );
    assert_eq!(by_sop(&mr_sop).id, "MR-1");
    assert_eq!(by_sop(&rg3_sop).id, "C0001");
    drop(store);
    // Bad lists are refused with the row named, and nothing is added.
    for (body, says) in [
        ("dicomweb\n1.2.3\n", "row 2"),
        ("dicomweb\n1.2.3/abc\n", "row 2"),
        ("path,dicomweb\nx.dcm,1.2/3.4\n", "not both"),
    ] {
        std::fs::write(&list, body).expect("list");
        let (ok, _, err) = run(sacro()
            .args(["study", "add-cases"])
            .arg(&study)
            .arg(&list)
            .args(["--dicomweb", &url]));
        assert!(!ok && err.contains(says), "{body}: {err}");
    }
    // A URL with credentials in it is refused.
    let with_login = url.replace("http://", "http://user:pw@");
    let (ok, _, err) = run(sacro().args(["study", "add-cases"]).arg(&study).args([
        "--dicomweb",
        &with_login,
        "--study-uid",
        &rg3_study,
    ]));
    assert!(!ok && err.contains("credentials"), "{err}");
    // Wrong password: nothing fetched, nothing cached, the failure named per case.
    let (ok, out, _) = run(sacro()
        .env("SACRO_DICOMWEB_PASSWORD", "wrong")
        .args(["study", "fetch"])
        .arg(&study));
    assert!(
        !ok && out.contains("3 failed") && out.contains("401"),
        "{out}"
    );
    assert!(!cache.join(format!("{rg3_sop}.dcm")).exists());
    // Fetched into the cache: the values equal the local files'.
    let (ok, out, err) = run(sacro().args(["study", "fetch"]).arg(&study));
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 fetched"), "{out}");
    for (name, sop) in [
        ("RG3_UNCR.dcm", &rg3_sop),
        ("CR_spine_6154.dcm", &spine_sop),
        ("MR_small.dcm", &mr_sop),
    ] {
        let local = imaging::load(&testdata(name), &LoadOptions::default()).expect("local");
        let cached = imaging::load(&cache.join(format!("{sop}.dcm")), &LoadOptions::default())
            .expect("cached");
        assert_eq!(local.image.pixels, cached.image.pixels, "{name}");
    }
    let (ok, out, _) = run(sacro().args(["study", "fetch"]).arg(&study));
    assert!(ok && out.contains("3 already cached"), "{out}");
}
