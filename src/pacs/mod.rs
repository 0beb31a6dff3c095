//! Films from a PACS over DICOMweb: QIDO-RS to find studies, series and instances, WADO-RS to retrieve
//! instances as DICOM files. A blocking HTTP client (ureq; TLS through the system's OpenSSL, `--ca-cert`
//! for a private CA), HTTP basic or bearer authentication from the environment, timeouts, retries with
//! backoff, and every answer read with a size limit. A retrieved instance is written under a temporary
//! name, read back through Sacro's own hardened loader ([`crate::imaging::load`]) and kept only if it is
//! a readable film carrying the SOP Instance UID that was asked for: a server that lies (another
//! instance, a truncated or hostile object, an endless answer) gets an error naming what it sent, and
//! nothing is kept.
//!
//! Files: `multipart` (the `multipart/related` bodies of WADO-RS), [`cache`] (the local film cache).

pub mod cache;
mod multipart;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::imaging::valid_uid;

/// Largest QIDO-RS answer read (JSON).
const QUERY_LIMIT: u64 = 32 << 20;
/// Largest WADO-RS answer read (one instance).
const INSTANCE_LIMIT: u64 = 1 << 30;
/// Tries of one request on a connection failure or a 5xx/429 answer.
const TRIES: u32 = 3;

/// Why a DICOMweb request failed.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    /// The URL, credentials or certificate cannot be used.
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached or the answer not read.
    #[error("{url}: {detail}")]
    Http {
        /// Request URL (no credentials).
        url: String,
        /// What happened.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered {status}{hint}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// What it likely means.
        hint: &'static str,
    },
    /// The answer is not what DICOMweb promises.
    #[error("{url}: {detail}")]
    BadAnswer {
        /// Request URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A retrieved object is not the film that was asked for, or not a readable film.
    #[error("instance {asked}: {detail}; nothing was kept")]
    WrongInstance {
        /// The SOP Instance UID asked for.
        asked: String,
        /// What came instead.
        detail: String,
    },
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// How to log in to the archive.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No authentication.
    #[default]
    None,
    /// HTTP basic.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => write!(f, "Basic({user}, …)"),
            Self::Bearer(_) => f.write_str("Bearer(…)"),
        }
    }
}

/// The PEM file of a private CA named by `SACRO_DICOMWEB_CA_CERT`: trusted for the archives a study's
/// cases name (where no `--ca-cert` can be given: the app, `study fetch`, training).
pub fn ca_cert_from_env() -> Option<PathBuf> {
    std::env::var_os("SACRO_DICOMWEB_CA_CERT").map(PathBuf::from)
}

impl Credentials {
    /// From `SACRO_DICOMWEB_TOKEN`, else `SACRO_DICOMWEB_USER` and `SACRO_DICOMWEB_PASSWORD`.
    pub fn from_env() -> Self {
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        if let Some(t) = var("SACRO_DICOMWEB_TOKEN") {
            return Self::Bearer(t);
        }
        match (var("SACRO_DICOMWEB_USER"), var("SACRO_DICOMWEB_PASSWORD")) {
            (Some(user), password) => Self::Basic {
                user,
                password: password.unwrap_or_default(),
            },
            _ => Self::None,
        }
    }

    fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Self::None => None,
            Self::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Self::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// A DICOMweb service (its root URL, e.g. `https://pacs.example.org/dicom-web`).
pub struct DicomWeb {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl std::fmt::Debug for DicomWeb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomWeb")
            .field("base", &self.base)
            .finish()
    }
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Patient ID.
    pub patient_id: Option<String>,
    /// Study date or range (`YYYYMMDD`, `YYYYMMDD-YYYYMMDD`).
    pub study_date: Option<String>,
    /// Modalities (any of them in the study).
    pub modalities: Vec<String>,
    /// Body part examined (series level).
    pub body_part: Option<String>,
}

/// A series found, with its instances.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesFound {
    /// Series Instance UID.
    pub series_uid: String,
    /// Modality.
    pub modality: Option<String>,
    /// Body Part Examined.
    pub body_part: Option<String>,
    /// SOP Instance UIDs.
    pub instances: Vec<String>,
}

/// A study found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StudyFound {
    /// Study Instance UID.
    pub study_uid: String,
    /// Study Date.
    pub study_date: Option<String>,
    /// Study Description.
    pub description: Option<String>,
    /// Patient's Name (protected health information: shown only when asked for).
    pub patient_name: Option<String>,
    /// Patient ID (protected health information).
    pub patient_id: Option<String>,
    /// Its series that match.
    pub series: Vec<SeriesFound>,
}

/// A DICOM JSON attribute's value(s) as text (`\`-joined; person names by their alphabetic form).
fn value(obj: &Value, tag: &str) -> Option<String> {
    let values = obj.get(tag)?.get("Value")?.as_array()?;
    let parts: Vec<String> = values
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o
                .get("Alphabetic")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\\"))
}

/// A UID fit for a URL path and a file name (digits and dots, 1–64 characters).
impl DicomWeb {
    /// A client for the service at `base` (http or https), with `ca_cert` (PEM) trusted besides the
    /// system's roots.
    pub fn new(
        base: &str,
        credentials: &Credentials,
        ca_cert: Option<&Path>,
    ) -> Result<Self, PacsError> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PacsError::Setup(format!(
                "{base}: a DICOMweb URL starts with http:// or https://"
            )));
        }
        if base
            .split("://")
            .nth(1)
            .is_some_and(|rest| rest.split('/').next().is_some_and(|h| h.contains('@')))
        {
            return Err(PacsError::Setup(
                "credentials do not belong in the URL: use SACRO_DICOMWEB_USER/SACRO_DICOMWEB_PASSWORD or SACRO_DICOMWEB_TOKEN".into(),
            ));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .http_status_as_error(false)
            .user_agent("sacro");
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| PacsError::Setup(format!("--ca-cert {}: {e}", ca.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(PacsError::Setup(format!(
                    "--ca-cert {}: no PEM certificate in it",
                    ca.display()
                )));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        } else {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            );
        }
        Ok(Self {
            base,
            agent: config.build().into(),
            auth: credentials.header(),
        })
    }

    /// GET `path` (below the root) with the `query` pairs (ureq encodes them) and `accept`, retried on
    /// connection failures and 5xx/429 with backoff; the body read up to `limit` bytes. Returns the
    /// Content-Type and the body.
    fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        accept: &str,
        limit: u64,
    ) -> Result<(String, Vec<u8>), PacsError> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(250);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self
                .agent
                .get(&url)
                .query_pairs(query.iter().copied())
                .header("Accept", accept);
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a);
            }
            let retry = match req.call() {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    if (200..300).contains(&status) {
                        let ct = r
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let body = r
                            .body_mut()
                            .with_config()
                            .limit(limit)
                            .read_to_vec()
                            .map_err(|e| PacsError::Http {
                                url: url.clone(),
                                detail: format!(
                                    "cannot read the answer (limit {limit} bytes): {e}"
                                ),
                            })?;
                        return Ok((ct, body));
                    }
                    if status == 204 {
                        return Ok((String::new(), Vec::new()));
                    }
                    let hint = match status {
                        401 => {
                            ": wrong or missing credentials (SACRO_DICOMWEB_USER/PASSWORD or TOKEN)"
                        }
                        403 => ": this login may not read it",
                        404 => ": no such resource (wrong UID or DICOMweb root?)",
                        _ => "",
                    };
                    if !(status == 429 || status >= 500) || tries >= TRIES {
                        return Err(PacsError::Status { url, status, hint });
                    }
                    format!("status {status}")
                }
                Err(e) => {
                    if tries >= TRIES {
                        return Err(PacsError::Http {
                            url,
                            detail: format!("cannot reach the archive: {e}"),
                        });
                    }
                    e.to_string()
                }
            };
            tracing::info!("{url}: {retry}; trying again in {delay:?}");
            std::thread::sleep(delay);
            delay *= 2;
        }
    }

    fn json(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Value>, PacsError> {
        let (_, body) = self.get(path, query, "application/dicom+json", QUERY_LIMIT)?;
        if body.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| PacsError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: format!("not DICOM JSON: {e}"),
        })?;
        match v {
            Value::Array(a) => Ok(a),
            _ => Err(PacsError::BadAnswer {
                url: format!("{}{path}", self.base),
                detail: "not a JSON array of results".into(),
            }),
        }
    }

    /// Studies matching `q`, each with its matching series and their instances (QIDO-RS).
    pub fn find(&self, q: &Query) -> Result<Vec<StudyFound>, PacsError> {
        let mut params = vec![("includefield", "00081030"), ("includefield", "00080061")];
        if let Some(id) = &q.patient_id {
            params.push(("PatientID", id));
        }
        if let Some(d) = &q.study_date {
            params.push(("StudyDate", d));
        }
        let mut out = Vec::new();
        for s in self.json("/studies", &params)? {
            let Some(study_uid) = value(&s, "0020000D").filter(|u| valid_uid(u)) else {
                continue;
            };
            let modalities = value(&s, "00080061").unwrap_or_default();
            if !q.modalities.is_empty()
                && !modalities.is_empty()
                && !modalities
                    .split('\\')
                    .any(|m| q.modalities.iter().any(|w| w.eq_ignore_ascii_case(m)))
            {
                continue;
            }
            let mut series = Vec::new();
            for se in self.json(
                &format!("/studies/{study_uid}/series"),
                &[("includefield", "00180015")],
            )? {
                let Some(series_uid) = value(&se, "0020000E").filter(|u| valid_uid(u)) else {
                    continue;
                };
                let modality = value(&se, "00080060");
                let body_part = value(&se, "00180015");
                if !q.modalities.is_empty()
                    && modality
                        .as_deref()
                        .is_some_and(|m| !q.modalities.iter().any(|w| w.eq_ignore_ascii_case(m)))
                {
                    continue;
                }
                if let Some(want) = &q.body_part
                    && !body_part
                        .as_deref()
                        .is_some_and(|b| b.eq_ignore_ascii_case(want))
                {
                    continue;
                }
                let instances = self.instances(&study_uid, &series_uid)?;
                series.push(SeriesFound {
                    series_uid,
                    modality,
                    body_part,
                    instances,
                });
            }
            if series.is_empty() && (q.body_part.is_some() || !q.modalities.is_empty()) {
                continue;
            }
            out.push(StudyFound {
                study_date: value(&s, "00080020"),
                description: value(&s, "00081030"),
                patient_name: value(&s, "00100010"),
                patient_id: value(&s, "00100020"),
                study_uid,
                series,
            });
        }
        Ok(out)
    }

    /// The SOP Instance UIDs of a series.
    pub fn instances(&self, study: &str, series: &str) -> Result<Vec<String>, PacsError> {
        for uid in [study, series] {
            if !valid_uid(uid) {
                return Err(PacsError::Setup(format!("{uid:?} is not a UID")));
            }
        }
        Ok(self
            .json(&format!("/studies/{study}/series/{series}/instances"), &[])?
            .iter()
            .filter_map(|i| value(i, "00080018"))
            .filter(|u| valid_uid(u))
            .collect())
    }

    /// The series of a study.
    pub fn series_of(&self, study: &str) -> Result<Vec<String>, PacsError> {
        if !valid_uid(study) {
            return Err(PacsError::Setup(format!("{study:?} is not a UID")));
        }
        Ok(self
            .json(&format!("/studies/{study}/series"), &[])?
            .iter()
            .filter_map(|s| value(s, "0020000E"))
            .filter(|u| valid_uid(u))
            .collect())
    }

    /// Retrieves one instance (WADO-RS) into `dir` as `<SOP Instance UID>.dcm`: written under a temporary
    /// name, checked (a readable film with the UID asked for) and renamed; an existing file is kept.
    pub fn retrieve(
        &self,
        study: &str,
        series: &str,
        sop: &str,
        dir: &Path,
    ) -> Result<PathBuf, PacsError> {
        for uid in [study, series, sop] {
            if !valid_uid(uid) {
                return Err(PacsError::Setup(format!("{uid:?} is not a UID")));
            }
        }
        let path = format!("/studies/{study}/series/{series}/instances/{sop}");
        // As stored (`transfer-syntax=*`): Sacro decodes every common syntax, and without it the
        // standard's default asks the archive to transcode to explicit VR little endian (slower, and
        // Orthanc answers 500 where its transcoder cannot, e.g. for some JPEG 2000 films).
        let (ct, body) = self.get(
            &path,
            &[],
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            INSTANCE_LIMIT,
        )?;
        let url = format!("{}{path}", self.base);
        let parts = multipart::parts(&ct, &body).map_err(|detail| PacsError::BadAnswer {
            url: url.clone(),
            detail,
        })?;
        let [part] = parts.as_slice() else {
            return Err(PacsError::BadAnswer {
                url,
                detail: format!("{} parts for one instance", parts.len()),
            });
        };
        let io = |path: &Path, source| PacsError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Checked before anything is written: a DICOM object with pixel data whose every length is
        // within the data and whose SOP Instance UID is the one asked for (the pixels are decoded
        // when the film is read, as any file's).
        // (Its errors name the request's URL: no file exists yet.)
        let identity = crate::imaging::dicom_identity(Path::new(&url), part).map_err(|e| {
            PacsError::WrongInstance {
                asked: sop.to_string(),
                detail: format!("the archive sent no readable film ({e})"),
            }
        })?;
        let got = identity.sop_instance_uid.unwrap_or_default();
        if got != sop {
            return Err(PacsError::WrongInstance {
                asked: sop.to_string(),
                detail: format!("the archive sent instance {got:?} instead"),
            });
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".sacro-fetch-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| io(dir, e))?;
        std::io::Write::write_all(&mut tmp, part).map_err(|e| io(tmp.path(), e))?;
        tmp.as_file().sync_all().map_err(|e| io(tmp.path(), e))?;
        let target = dir.join(format!("{sop}.dcm"));
        match tmp.persist_noclobber(&target) {
            Ok(_) => Ok(target),
            Err(e) if target.exists() => {
                drop(e);
                Ok(target)
            }
            Err(e) => Err(io(&target, e.error)),
        }
    }
}

/// What an upload did with one file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stored {
    /// The file.
    pub path: PathBuf,
    /// Its SOP Instance UID.
    pub sop_instance_uid: String,
}

impl DicomWeb {
    /// Checks a file before it is sent: a readable film (through Sacro's loader), with a SOP Instance
    /// UID, and no sign of burned-in text unless `allow_burned_in`. Returns its SOP Instance UID.
    pub fn check_upload(path: &Path, allow_burned_in: bool) -> Result<String, PacsError> {
        let film = crate::imaging::load(path, &crate::imaging::LoadOptions::default())
            .map_err(|e| PacsError::Setup(format!("not sent: {e}")))?;
        Self::sendable(path, film.identity, allow_burned_in)
    }

    /// The SOP Instance UID of an object about to be sent, unless it may carry burned-in text (and
    /// that is not allowed) or has no valid UID.
    fn sendable(
        path: &Path,
        identity: crate::imaging::Identity,
        allow_burned_in: bool,
    ) -> Result<String, PacsError> {
        if !allow_burned_in && let Some(why) = identity.burned_in_text() {
            return Err(PacsError::Setup(format!(
                "{}: not sent: {why}; Sacro cannot clean pixels (give --allow-burned-in after checking \
                 the film)",
                path.display()
            )));
        }
        identity
            .sop_instance_uid
            .filter(|u| valid_uid(u))
            .ok_or_else(|| {
                PacsError::Setup(format!(
                    "{}: not sent: no valid SOP Instance UID",
                    path.display()
                ))
            })
    }

    /// Stores one DICOM file in the archive (STOW-RS); the archive's answer must not list it as
    /// failed. The file is read once (within the size limit) and its structure, UID and burned-in
    /// text checked without decoding the pixels: [`DicomWeb::check_upload`], which does decode them,
    /// is the check to run over a batch before the first file is sent.
    pub fn store(&self, path: &Path, allow_burned_in: bool) -> Result<Stored, PacsError> {
        let file = crate::imaging::read_bounded(path, INSTANCE_LIMIT)
            .map_err(|e| PacsError::Setup(format!("not sent: {e}")))?;
        let identity = crate::imaging::dicom_identity(path, &file)
            .map_err(|e| PacsError::Setup(format!("not sent: {e}")))?;
        let sop = Self::sendable(path, identity, allow_burned_in)?;
        self.store_bytes(path, &file, &sop)
    }

    /// De-identifies a DICOM file (PS3.15 Annex E, [`crate::imaging::deid`]) in memory and stores the
    /// result (STOW-RS); the identified file is never sent. [`DicomWeb::deidentify_checked`], which
    /// also decodes the result, is the check to run over a batch before the first file is sent.
    pub fn store_deidentified(
        &self,
        path: &Path,
        de: &crate::imaging::deid::Deidentifier,
    ) -> Result<Stored, PacsError> {
        let (bytes, done) = Self::deidentify(path, de)?;
        crate::imaging::dicom_identity(path, &bytes).map_err(|e| {
            PacsError::Setup(format!("not sent: the de-identified object is broken: {e}"))
        })?;
        let mut stored = self.store_bytes(path, &bytes, &done.sop_instance_uid)?;
        stored.path = path.to_path_buf();
        Ok(stored)
    }

    /// What [`DicomWeb::store_deidentified`] would send: the de-identified bytes, checked to load as
    /// a film. Errors name the file and are what `upload --deidentify` reports before sending anything.
    pub fn deidentify_checked(
        path: &Path,
        de: &crate::imaging::deid::Deidentifier,
    ) -> Result<(Vec<u8>, crate::imaging::deid::Deidentified), PacsError> {
        let (bytes, done) = Self::deidentify(path, de)?;
        crate::imaging::load_bytes(path, &bytes, &crate::imaging::LoadOptions::default()).map_err(
            |e| {
                PacsError::Setup(format!(
                    "not sent: the de-identified film does not load: {e}"
                ))
            },
        )?;
        Ok((bytes, done))
    }

    /// The de-identified bytes of a file, within the size an archive is sent.
    fn deidentify(
        path: &Path,
        de: &crate::imaging::deid::Deidentifier,
    ) -> Result<(Vec<u8>, crate::imaging::deid::Deidentified), PacsError> {
        let (bytes, done) = de
            .bytes(path)
            .map_err(|e| PacsError::Setup(format!("not sent: {e}")))?;
        if bytes.len() as u64 > INSTANCE_LIMIT {
            return Err(PacsError::Setup(format!(
                "{}: not sent: larger than {INSTANCE_LIMIT} bytes",
                path.display()
            )));
        }
        Ok((bytes, done))
    }

    /// Sends one DICOM object's bytes (STOW-RS). `path` names it in messages.
    fn store_bytes(&self, path: &Path, file: &[u8], sop: &str) -> Result<Stored, PacsError> {
        // A boundary that does not occur in the object (lengthened until it does not; bounded).
        let mut boundary = format!("sacro-{}", sop.replace('.', ""));
        for i in 0..8 {
            if memchr::memmem::find(file, boundary.as_bytes()).is_none() {
                break;
            }
            boundary.push_str(&format!("-{i}{}", file.len()));
        }
        if memchr::memmem::find(file, boundary.as_bytes()).is_some() {
            return Err(PacsError::Setup(format!(
                "{}: not sent: no multipart boundary found that the file does not contain",
                path.display()
            )));
        }
        let mut body =
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!("{}/studies", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header("Accept", "application/dicom+json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut r = req.send(&body[..]).map_err(|e| PacsError::Http {
            url: url.clone(),
            detail: format!("cannot reach the archive: {e}"),
        })?;
        let status = r.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(PacsError::Status {
                url,
                status,
                hint: match status {
                    401 => ": wrong or missing credentials (SACRO_DICOMWEB_USER/PASSWORD or TOKEN)",
                    409 => ": the archive refused the instance",
                    _ => "",
                },
            });
        }
        let answer = r
            .body_mut()
            .with_config()
            .limit(QUERY_LIMIT)
            .read_to_vec()
            .unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<Value>(&answer)
            && v.get("00081198")
                .and_then(|f| f.get("Value"))
                .is_some_and(|f| f.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(PacsError::BadAnswer {
                url,
                detail: format!("the archive lists {} as failed", path.display()),
            });
        }
        Ok(Stored {
            path: path.to_path_buf(),
            sop_instance_uid: sop.to_string(),
        })
    }
}
