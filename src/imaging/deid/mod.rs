//! De-identification of DICOM files: PS3.15 Annex E, the Basic Application Level Confidentiality
//! Profile with the Retain Longitudinal Temporal Information with Modified Dates Option (Retain Device
//! Identity, Retain Patient Characteristics, Retain UIDs and Retain Safe Private off).
//!
//! What each of the profile's actions (Table E.1-1, `table.rs`) does here, from E.3's definitions:
//! - `X` (and `X` first in a choice that also allows a value): the attribute is removed;
//! - `Z`, `Z/D`, `X/Z`, `X/Z/D`: kept with an empty value (a type 2 attribute stays present);
//! - `D`, `X/D`: a dummy value of the attribute's VR (`ANONYMIZED`, `0`, an empty sequence, …);
//! - `U`: every UID replaced by `2.25.<n>`, `n` from an HMAC-SHA-256 of the UID under the site's secret,
//!   so the same UID gives the same new UID in every file and every run with that secret;
//! - `X/Z/U*` (referenced image sequences): kept, their items cleaned by the same table (their
//!   referenced instance UIDs replaced).
//!
//! And everywhere: private attributes (odd groups) removed; overlays (groups 60xx) and curves (50xx)
//! removed whole; every date (DA, and the date of a DT) that is kept shifted by a per-patient number
//! of days (the Modified Dates option: intervals between one patient's films are kept), times kept;
//! Patient's Name and Patient ID replaced by a pseudonym from the same HMAC (one patient keeps one
//! pseudonym across files and runs); Patient's Birth Date emptied; sequences not in the table cleaned
//! item by item. Added: Patient Identity Removed = YES, De-identification Method (and its code
//! sequence: DCM 113100, 113107), Longitudinal Temporal Information Modified = MODIFIED. The pixel
//! data is copied as it is: a film whose pixels may carry burned-in text is refused unless allowed.

mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dicom_core::header::Header;
use dicom_core::value::{C, DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ImagingError;

/// A basic-profile action code of Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Remove.
    X,
    /// Empty (zero length) or a dummy value.
    Z,
    /// A dummy value.
    D,
    /// Replace the UID.
    U,
    /// Z unless D is needed for conformance.
    ZD,
    /// X unless Z is needed for conformance.
    XZ,
    /// X unless D is needed for conformance.
    XD,
    /// X unless Z or D is needed for conformance.
    XZD,
    /// X unless Z or replacing the contained UIDs is needed (referenced image sequences).
    XZU,
}

/// One row of Table E.1-1: an attribute (or a repeating group by mask) and its action.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    group: u16,
    element: u16,
    group_mask: u16,
    element_mask: u16,
    action: Action,
    name: &'static str,
}

/// What Sacro does with one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Do {
    Remove,
    Empty,
    Dummy,
    Uid,
    Clean,
}

impl Action {
    fn what(self) -> Do {
        match self {
            Action::X => Do::Remove,
            Action::Z | Action::ZD | Action::XZ | Action::XZD => Do::Empty,
            Action::D | Action::XD => Do::Dummy,
            Action::U => Do::Uid,
            Action::XZU => Do::Clean,
        }
    }

    /// The code as PS3.15 writes it.
    pub fn code(self) -> &'static str {
        match self {
            Action::X => "X",
            Action::Z => "Z",
            Action::D => "D",
            Action::U => "U",
            Action::ZD => "Z/D",
            Action::XZ => "X/Z",
            Action::XD => "X/D",
            Action::XZD => "X/Z/D",
            Action::XZU => "X/Z/U*",
        }
    }
}

struct Lookup {
    exact: HashMap<(u16, u16), (Action, &'static str)>,
    masked: Vec<Rule>,
}

fn lookup() -> &'static Lookup {
    static LOOKUP: OnceLock<Lookup> = OnceLock::new();
    LOOKUP.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut masked = Vec::new();
        for rule in table::TABLE {
            if rule.group_mask == 0xFFFF && rule.element_mask == 0xFFFF {
                exact.insert((rule.group, rule.element), (rule.action, rule.name));
            } else {
                masked.push(*rule);
            }
        }
        Lookup { exact, masked }
    })
}

/// The profile's action for a tag, if Table E.1-1 lists it.
pub fn profile_action(tag: Tag) -> Option<(Action, &'static str)> {
    let l = lookup();
    if let Some(found) = l.exact.get(&(tag.group(), tag.element())) {
        return Some(*found);
    }
    l.masked
        .iter()
        .find(|r| {
            tag.group() & r.group_mask == r.group && tag.element() & r.element_mask == r.element
        })
        .map(|r| (r.action, r.name))
}

/// The value written as De-identification Method (0012,0063).
pub const METHOD: [&str; 3] = [
    "DICOM PS3.15 E.1 Basic Application Confidentiality Profile",
    "Retain Longitudinal With Modified Dates Option",
    concat!("Sacro ", env!("CARGO_PKG_VERSION")),
];

/// The smallest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// Where the site's secret is kept unless told otherwise: `SACRO_DEID_SECRET_FILE`, else
/// `$XDG_CONFIG_HOME/sacro/deid-secret` (`~/.config/sacro/deid-secret`).
pub fn default_secret_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SACRO_DEID_SECRET_FILE") {
        return PathBuf::from(p);
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .unwrap_or_else(std::env::temp_dir)
        .join("sacro/deid-secret")
}

/// Reads the site's de-identification secret from `path`, or creates it there (32 random bytes as
/// hex, readable by the owner only) if the file does not exist. The secret decides every replaced
/// UID, pseudonym and date shift: keep it at the site, never with the de-identified films.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, ImagingError> {
    let bad = |detail: String| ImagingError::BadAttribute {
        path: path.to_path_buf(),
        attribute: "de-identification secret".into(),
        detail,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.is_file() {
                return Err(bad("is not a regular file".into()));
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(
                    std::fs::File::open(path).map_err(|e| ImagingError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })?,
                    4096,
                ),
                &mut bytes,
            )
            .map_err(|e| ImagingError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            let secret = hex_decode(text).unwrap_or_else(|| text.as_bytes().to_vec());
            if secret.len() < MIN_SECRET {
                return Err(bad(format!(
                    "holds {} bytes; at least {MIN_SECRET} are needed",
                    secret.len()
                )));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| write_err(path, e))?;
            std::io::Write::write_all(&mut file, format!("{hex}\n").as_bytes())
                .map_err(|e| write_err(path, e))?;
            tracing::info!(
                "created a new de-identification secret in {}",
                path.display()
            );
            Ok(secret.to_vec())
        }
        Err(e) => Err(ImagingError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ImagingError {
    ImagingError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The outcome of de-identifying one file.
#[derive(Debug, Clone)]
pub struct Deidentified {
    /// The de-identified file (named by its new SOP Instance UID).
    pub path: PathBuf,
    /// The new SOP Instance UID.
    pub sop_instance_uid: String,
    /// The patient's pseudonym (Patient's Name and Patient ID of the output).
    pub pseudonym: String,
    /// Days added to every date of this patient (negative: earlier).
    pub date_shift_days: i64,
}

/// Applies the profile with one site secret.
pub struct Deidentifier {
    mac: Hmac<Sha256>,
    allow_burned_in: bool,
}

impl std::fmt::Debug for Deidentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deidentifier")
            .field("allow_burned_in", &self.allow_burned_in)
            .finish_non_exhaustive()
    }
}

/// Per-file state: the patient's shift and pseudonym.
struct Ctx<'a> {
    de: &'a Deidentifier,
    shift_days: i64,
    pseudonym: String,
}

impl Deidentifier {
    /// A de-identifier keyed by the site's secret (at least [`MIN_SECRET`] bytes).
    pub fn new(secret: &[u8], allow_burned_in: bool) -> Result<Self, ImagingError> {
        if secret.len() < MIN_SECRET {
            return Err(ImagingError::InvalidParameter(format!(
                "the de-identification secret has {} bytes; at least {MIN_SECRET} are needed",
                secret.len()
            )));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|e| ImagingError::InvalidParameter(e.to_string()))?;
        Ok(Self {
            mac,
            allow_burned_in,
        })
    }

    fn digest(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The new UID for `uid` (`2.25.` and a 128-bit number; at most 44 characters).
    pub fn uid(&self, uid: &str) -> String {
        let d = self.digest("uid", uid.trim_end_matches(['\0', ' ']));
        let mut n = [0u8; 16];
        n.copy_from_slice(&d[..16]);
        format!("2.25.{}", u128::from_be_bytes(n))
    }

    /// The patient's pseudonym, from the original patient key.
    pub fn pseudonym(&self, patient_key: &str) -> String {
        let d = self.digest("patient", patient_key);
        let hex: String = d[..6].iter().map(|b| format!("{b:02X}")).collect();
        format!("SACRO-{hex}")
    }

    /// Days added to the patient's dates: between 1 and 10 years earlier (−365 … −3650).
    pub fn date_shift_days(&self, patient_key: &str) -> i64 {
        let d = self.digest("date-shift", patient_key);
        let mut n = [0u8; 8];
        n.copy_from_slice(&d[..8]);
        -(365 + (u64::from_be_bytes(n) % 3286) as i64)
    }

    /// De-identifies the DICOM file `input` into the folder `out_dir` (created if missing) as
    /// `<new SOP Instance UID>.dcm`, written to a temporary file and renamed. A film that may carry
    /// burned-in text is refused (unless allowed), as is anything `imaging` cannot parse.
    pub fn file(&self, input: &Path, out_dir: &Path) -> Result<Deidentified, ImagingError> {
        let (bytes, out) = self.bytes(input)?;
        std::fs::create_dir_all(out_dir).map_err(|e| write_err(out_dir, e))?;
        let path = out_dir.join(format!("{}.dcm", out.sop_instance_uid));
        super::export::write_via_temp(&path, |tmp| {
            std::fs::write(tmp, &bytes).map_err(|e| e.to_string())
        })?;
        Ok(Deidentified { path, ..out })
    }

    /// De-identifies the DICOM file `input` and returns the new file's bytes (nothing is written).
    pub fn bytes(&self, input: &Path) -> Result<(Vec<u8>, Deidentified), ImagingError> {
        let options = super::LoadOptions::default();
        let raw = super::read_bounded(input, options.max_file_bytes)?;
        let (obj, ts) = super::dicom::parse_object(input, &raw, &options)?;
        drop(raw);
        let identity = super::dicom::identity(&obj);
        if let Some(why) = identity.burned_in_text().filter(|_| !self.allow_burned_in) {
            return Err(ImagingError::BadAttribute {
                path: input.to_path_buf(),
                attribute: "Burned In Annotation (0028,0301)".into(),
                detail: format!(
                    "{why}: Sacro cannot clean pixels of burned-in text, so it refuses to \
                     de-identify this film (allow it only after checking the pixels yourself)"
                ),
            });
        }
        let Some(old_sop) = identity.sop_instance_uid.clone().filter(|s| !s.is_empty()) else {
            return Err(ImagingError::BadAttribute {
                path: input.to_path_buf(),
                attribute: "SOP Instance UID (0008,0018)".into(),
                detail: "missing: a film without an instance UID cannot be de-identified".into(),
            });
        };
        let key = patient_key(&identity);
        let ctx = Ctx {
            de: self,
            shift_days: self.date_shift_days(&key),
            pseudonym: self.pseudonym(&key),
        };
        let sop_class = identity
            .sop_class_uid
            .clone()
            .unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.7".into());
        let mut clean = ctx.dataset(obj, true);
        add_method(&mut clean);
        let sop = self.uid(&old_sop);
        // Explicit VR Big Endian is retired: its values are written little endian (the same values).
        let ts = if ts == "1.2.840.10008.1.2.2" {
            "1.2.840.10008.1.2.1".to_string()
        } else {
            ts
        };
        let file = clean
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(ts)
                    .media_storage_sop_class_uid(sop_class)
                    .media_storage_sop_instance_uid(sop.clone())
                    .implementation_class_uid("2.25.293756195613371049151206521431474541567")
                    .implementation_version_name("SACRO_0_1"),
            )
            .map_err(|e| ImagingError::malformed(input, format!("cannot build file meta: {e}")))?;
        let mut bytes = Vec::new();
        file.write_all(&mut bytes)
            .map_err(|e| write_err(input, format!("cannot encode the de-identified file: {e}")))?;
        Ok((
            bytes,
            Deidentified {
                path: PathBuf::new(),
                sop_instance_uid: sop,
                pseudonym: ctx.pseudonym,
                date_shift_days: ctx.shift_days,
            },
        ))
    }
}

/// What identifies the patient for pseudonym and date shift: Patient ID, else name and birth date,
/// else the study (so that at least one study's films stay together).
fn patient_key(identity: &super::Identity) -> String {
    let t = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or("").to_string();
    let id = t(&identity.patient_id);
    if !id.is_empty() {
        return format!("id:{id}");
    }
    let name = t(&identity.patient_name);
    if !name.is_empty() {
        return format!("name:{name}");
    }
    format!("study:{}", t(&identity.study_uid))
}

fn strings(elem: &DataElement<InMemDicomObject>) -> Vec<String> {
    elem.to_multi_str()
        .map(|v| {
            v.iter()
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn text_value(values: Vec<String>) -> PrimitiveValue {
    match values.len() {
        0 => PrimitiveValue::Empty,
        1 => PrimitiveValue::from(values.into_iter().next().unwrap_or_default()),
        _ => PrimitiveValue::Strs(C::from_vec(values)),
    }
}

/// `YYYYMMDD` shifted by `days`; `None` for anything else (partial dates, garbage).
fn shift_date(date: &str, days: i64) -> Option<String> {
    let date = date.trim();
    if date.len() < 8 || !date.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = chrono::NaiveDate::parse_from_str(&date[..8], "%Y%m%d").ok()?;
    let shifted = d.checked_add_signed(chrono::TimeDelta::try_days(days)?)?;
    Some(format!("{}{}", shifted.format("%Y%m%d"), &date[8..]))
}

impl Ctx<'_> {
    fn dataset(&self, obj: InMemDicomObject, top: bool) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for elem in obj {
            if let Some(e) = self.element(elem, top) {
                out.put(e);
            }
        }
        out
    }

    fn element(
        &self,
        elem: DataElement<InMemDicomObject>,
        top: bool,
    ) -> Option<DataElement<InMemDicomObject>> {
        let tag = elem.tag();
        let vr = elem.vr();
        let group = tag.group();
        // Private attributes, group lengths, curves and overlays, the file meta group.
        if group % 2 == 1
            || tag.element() == 0
            || (0x5000..=0x50FF).contains(&group)
            || (0x6000..=0x60FF).contains(&group)
            || group == 0x0002
        {
            return None;
        }
        if top && (tag == tags::PATIENT_NAME || tag == tags::PATIENT_ID) {
            return Some(DataElement::new(
                tag,
                vr,
                PrimitiveValue::from(self.pseudonym.clone()),
            ));
        }
        if tag == tags::PATIENT_BIRTH_DATE {
            return Some(DataElement::empty(tag, vr));
        }
        let what = profile_action(tag).map(|(a, _)| a.what());
        if what == Some(Do::Remove) {
            return None;
        }
        // Modified Dates option: kept dates are shifted, times kept.
        match vr {
            VR::DA | VR::DT => {
                let shifted: Option<Vec<String>> = strings(&elem)
                    .iter()
                    .map(|d| shift_date(d, self.shift_days))
                    .collect();
                let value = shifted.map_or(PrimitiveValue::Empty, text_value);
                return Some(DataElement::new(tag, vr, value));
            }
            VR::TM if what.is_some() => return Some(elem),
            _ => {}
        }
        match what {
            None | Some(Do::Clean) => match elem.value() {
                Value::Sequence(_) => {
                    let items = elem.into_value().into_items().unwrap_or_default();
                    let items: Vec<InMemDicomObject> =
                        items.into_iter().map(|i| self.dataset(i, false)).collect();
                    Some(DataElement::new(
                        tag,
                        vr,
                        DataSetSequence::new(items, Length::UNDEFINED),
                    ))
                }
                _ => Some(elem),
            },
            Some(Do::Empty) => Some(empty(tag, vr)),
            Some(Do::Uid) => {
                if vr == VR::UI {
                    let uids = strings(&elem).iter().map(|u| self.de.uid(u)).collect();
                    Some(DataElement::new(tag, vr, text_value(uids)))
                } else {
                    Some(empty(tag, vr))
                }
            }
            Some(Do::Dummy) => Some(self.dummy(&elem)),
            Some(Do::Remove) => None,
        }
    }

    fn dummy(&self, elem: &DataElement<InMemDicomObject>) -> DataElement<InMemDicomObject> {
        let (tag, vr) = (elem.tag(), elem.vr());
        let text = |s: &str| DataElement::new(tag, vr, PrimitiveValue::from(s));
        match vr {
            VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
                text("ANONYMIZED")
            }
            VR::AS => text("000Y"),
            VR::IS | VR::DS => text("0"),
            VR::UI => {
                let uids = strings(elem).iter().map(|u| self.de.uid(u)).collect();
                DataElement::new(tag, vr, text_value(uids))
            }
            _ => empty(tag, vr),
        }
    }
}

fn empty(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    if vr == VR::SQ {
        DataElement::new(
            tag,
            vr,
            DataSetSequence::<InMemDicomObject>::new(Vec::new(), Length::UNDEFINED),
        )
    } else {
        DataElement::empty(tag, vr)
    }
}

/// The attributes that record what was done (PS3.15 E.1.1, PS3.3 C.7.1.1 and C.12.1).
fn add_method(obj: &mut InMemDicomObject) {
    obj.put(DataElement::new(
        tags::PATIENT_IDENTITY_REMOVED,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        text_value(METHOD.iter().map(|s| (*s).to_string()).collect()),
    ));
    let code = |value: &str, meaning: &str| {
        InMemDicomObject::from_element_iter([
            DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
            DataElement::new(
                tags::CODING_SCHEME_DESIGNATOR,
                VR::SH,
                PrimitiveValue::from("DCM"),
            ),
            DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
        ])
    };
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::new(
            vec![
                code("113100", "Basic Application Confidentiality Profile"),
                code(
                    "113107",
                    "Retain Longitudinal Temporal Information Modified Dates Option",
                ),
            ],
            Length::UNDEFINED,
        ),
    ));
    obj.put(DataElement::new(
        tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
        VR::CS,
        PrimitiveValue::from("MODIFIED"),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_profile() {
        // PS3.15 2026c Table E.1-1 lists several hundred attributes; spot checks of well-known rows.
        assert!(table::TABLE.len() > 600, "{}", table::TABLE.len());
        let act = |g, e| profile_action(Tag(g, e)).map(|(a, _)| a);
        assert_eq!(act(0x0010, 0x0010), Some(Action::Z)); // Patient's Name
        assert_eq!(act(0x0008, 0x0018), Some(Action::U)); // SOP Instance UID
        assert_eq!(act(0x0008, 0x0080), Some(Action::XZD)); // Institution Name
        assert_eq!(act(0x0010, 0x1010), Some(Action::X)); // Patient's Age
        assert_eq!(act(0x6002, 0x3000), Some(Action::X)); // Overlay Data, repeating group
        assert_eq!(act(0x0028, 0x0010), None); // Rows: not in the table
    }

    #[test]
    fn dates_shift_and_garbage_empties() {
        assert_eq!(shift_date("20200301", -1).as_deref(), Some("20200229"));
        assert_eq!(
            shift_date("20200301120000.5+0100", -366).as_deref(),
            Some("20190301120000.5+0100")
        );
        assert_eq!(shift_date("2020", -1), None);
        assert_eq!(shift_date("2020.03.01", -1), None);
        assert_eq!(shift_date("20201341", -1), None);
    }

    #[test]
    fn uids_and_pseudonyms_depend_on_the_secret_only() {
        let a = Deidentifier::new(&[7u8; 32], false).unwrap();
        let b = Deidentifier::new(&[8u8; 32], false).unwrap();
        let uid = "1.2.826.0.1.3680043.8.1055.1.20111103111148288.98361414.79379639";
        assert_eq!(a.uid(uid), a.uid(&format!("{uid}\0")));
        assert_ne!(a.uid(uid), b.uid(uid));
        assert!(a.uid(uid).len() <= 64 && a.uid(uid).starts_with("2.25."));
        assert_eq!(a.pseudonym("id:123"), a.pseudonym("id:123"));
        let shift = a.date_shift_days("id:123");
        assert!((-3650..=-365).contains(&shift), "{shift}");
        assert!(Deidentifier::new(b"short", false).is_err());
    }
}
