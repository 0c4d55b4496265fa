//! Signed bundles (format 1.2, spec section 10): OpenSSF Model Signing v1.0
//! signatures, stored in the bundle as `signatures/<name>.sigstore.json` or
//! beside it as a detached file.
//!
//! A signature is a Sigstore bundle whose DSSE envelope carries an in-toto
//! statement listing every other entry of the bundle with the SHA-256 of its
//! stored bytes. `model_signing verify key` accepts it after a plain unzip;
//! [`verify_bundle`] checks it in place, without unzipping.
//!
//! ```no_run
//! use nnbundle_container::{Archive, Bundle};
//! use nnbundle_signing::{SigningKey, VerifyingKey, sign_bundle, verify_bundle};
//!
//! let key = SigningKey::from_pem(&std::fs::read_to_string("key.pem")?)?;
//! let bundle = Bundle::open("model.nnb")?;
//! let signature = sign_bundle(&bundle, &key, "model")?;
//! // ... store it with Bundle::save_with_signatures, then:
//! let public = VerifyingKey::from_pem(&std::fs::read_to_string("pub.pem")?)?;
//! let verified = verify_bundle(&Archive::open("model.nnb")?, &public)?;
//! println!("signed as `{}`", verified.name);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use base64ct::{Base64, Encoding};
use nnbundle_container::{Archive, Bundle, ContainerError};
use nnbundle_format::SIGNATURE_ENTRY_PREFIX;
use rayon::prelude::*;

pub mod document;
mod key;

pub use document::ParsedSignature;
use document::{
    BUNDLE_MEDIA_TYPE, BundleClaims, DsseEnvelope, EnvelopeSignature, PAYLOAD_TYPE, PREDICATE_TYPE, Predicate,
    PublicKeyIdentifier, Resource, SHA256, STATEMENT_TYPE, Serialization, SigstoreBundle, Statement, Subject,
    SubjectDigest, VerificationMaterial,
};
pub use key::{Algorithm, SigningKey, VerifyingKey};

/// The resource name of a detached signature's one file.
pub const WHOLE_FILE: &str = ".";
/// `ignore_paths` of an in-bundle signature: the signature entries' folder.
pub const IGNORED_FOLDER: &str = "signatures";

/// What went wrong with a key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key file that cannot be used.
    #[error("key: {0}")]
    Key(String),
    /// A signature file that does not have the form spec section 10 gives.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A well-formed signature that does not verify or does not cover the content.
    #[error("{0}")]
    Invalid(String),
    /// The bundle cannot be read.
    #[error(transparent)]
    Container(#[from] nnbundle_container::ContainerError),
}

/// Why no signature by a key covers a bundle: one reason per signature entry.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.reasons))]
pub struct VerifyFailure {
    /// Each signature's name and why it does not verify the bundle (empty: the bundle is unsigned).
    pub reasons: Vec<(String, String)>,
}

fn describe(reasons: &[(String, String)]) -> String {
    if reasons.is_empty() {
        return "the bundle has no signatures".into();
    }
    let each: Vec<String> = reasons.iter().map(|(name, why)| format!("signature `{name}`: {why}")).collect();
    format!("no signature by this key covers the bundle: {}", each.join("; "))
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signature's name (`signatures/<name>.sigstore.json`).
    pub name: String,
    /// How many entries it covers.
    pub entries: usize,
}

/// The default signature name for a key: `key-` and the first 16 hex digits of its hint.
pub fn default_name(key: &VerifyingKey) -> String {
    format!("key-{}", &key.hint()[..16])
}

/// The SHA-256 of every non-signature entry's stored bytes, hashed in parallel, by entry name.
pub fn entry_digests(archive: &Archive) -> Result<Vec<Resource>, ContainerError> {
    archive
        .content_entries()
        .into_par_iter()
        .map(|name| Ok(Resource::sha256_of(name, &archive.read_entry(name)?)))
        .collect()
}

/// Signs `bundle`: returns the bytes of a `signatures/<name>.sigstore.json`
/// entry whose statement covers every other entry, names the model
/// `subject` (the bundle's file stem) and carries the bundle digest,
/// architecture digest and format version. The same bundle and key give the
/// same bytes.
pub fn sign_bundle(bundle: &Bundle, key: &SigningKey, subject: &str) -> Result<Vec<u8>, SignatureError> {
    let manifest = bundle.manifest();
    let claims = BundleClaims {
        architecture_digest: manifest.graph.as_ref().map(|g| g.architecture_digest.to_hex()),
        bundle_digest: bundle.digest().to_hex(),
        format_version: manifest.format_version.to_string(),
    };
    sign_resources(key, subject, entry_digests(bundle.archive())?, vec![IGNORED_FOLDER.into()], Some(claims))
}

/// Signs a whole file as one resource named `.`: the detached form that
/// `model_signing verify key FILE --signature SIG` accepts.
pub fn sign_file(file: &[u8], key: &SigningKey, subject: &str) -> Result<Vec<u8>, SignatureError> {
    sign_resources(key, subject, vec![Resource::sha256_of(WHOLE_FILE, file)], Vec::new(), None)
}

fn sign_resources(
    key: &SigningKey,
    subject: &str,
    resources: Vec<Resource>,
    ignore_paths: Vec<String>,
    nnbundle: Option<BundleClaims>,
) -> Result<Vec<u8>, SignatureError> {
    let statement = Statement {
        statement_type: STATEMENT_TYPE.into(),
        predicate_type: PREDICATE_TYPE.into(),
        subject: vec![Subject {
            digest: SubjectDigest { sha256: document::root_digest(&resources)? },
            name: subject.to_owned(),
        }],
        predicate: Predicate {
            nnbundle,
            resources,
            serialization: Serialization {
                allow_symlinks: false,
                hash_type: SHA256.into(),
                ignore_paths,
                method: "files".into(),
            },
            other: BTreeMap::new(),
        },
    };
    let payload = serde_json::to_vec(&statement).expect("a statement serializes");
    let signature = key.sign(&document::pae(&payload));
    let file = SigstoreBundle {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        verification_material: VerificationMaterial {
            public_key: Some(PublicKeyIdentifier { hint: Some(key.verifying_key().hint()) }),
            certificate: None,
            x509_certificate_chain: None,
            tlog_entries: Vec::new(),
            timestamp_verification_data: None,
        },
        dsse_envelope: DsseEnvelope {
            payload: Base64::encode_string(&payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature { sig: Base64::encode_string(&signature), keyid: String::new() }],
        },
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("a Sigstore bundle serializes");
    bytes.push(b'\n');
    Ok(bytes)
}

/// Checks that `signature`'s envelope is signed by `key` (the hint, when
/// present, must be the key's) and returns its statement's resources.
fn check_envelope<'a>(signature: &'a ParsedSignature, key: &VerifyingKey) -> Result<&'a [Resource], String> {
    if signature.is_keyless() {
        return Err("a keyless Sigstore signature (a certificate, not a key): `nnb verify` checks key signatures \
                    only; use `model_signing verify sigstore` on the unzipped bundle"
            .into());
    }
    let own = key.hint();
    if let Some(hint) = signature.hint()
        && hint != own
    {
        return Err(format!("signed by another key (hint {hint}, this key's is {own})"));
    }
    let message = document::pae(&signature.payload);
    if !signature.signatures.iter().any(|s| key.verify(&message, s).is_ok()) {
        return Err(format!("the envelope's signature does not verify with this {} key", key.algorithm()));
    }
    Ok(&signature.statement.predicate.resources)
}

/// Compares signed resources with the current ones (both sorted by name);
/// names the first difference.
fn compare_resources(signed: &[Resource], current: &[Resource]) -> Result<(), String> {
    let signed: BTreeMap<&str, &str> = signed.iter().map(|r| (r.name.as_str(), r.digest.as_str())).collect();
    for r in current {
        match signed.get(r.name.as_str()) {
            None => return Err(format!("entry `{}` is not covered by the signature", r.name)),
            Some(&digest) if digest != r.digest => {
                return Err(format!("entry `{}` changed: signed SHA-256 {digest}, now {}", r.name, r.digest));
            }
            Some(_) => {}
        }
    }
    let present: BTreeSet<&str> = current.iter().map(|r| r.name.as_str()).collect();
    if let Some(missing) = signed.keys().find(|name| !present.contains(*name)) {
        return Err(format!("signed entry `{missing}` is missing from the bundle"));
    }
    Ok(())
}

/// Verifies a bundle with `key`: succeeds when one signature entry is
/// signed by `key` and its statement lists exactly the bundle's other
/// entries, each with the SHA-256 of its current bytes. Works on the
/// [`Archive`], so a bundle whose manifest was changed is still checked (and
/// the change named). Every entry is hashed once (in parallel), and only
/// when some signature's envelope verifies. The statement's `nnbundle` field
/// is informative: the manifest's own bytes are what is verified.
pub fn verify_bundle(bundle: &Archive, key: &VerifyingKey) -> Result<Verified, VerifyFailure> {
    let mut reasons = Vec::new();
    let mut current: Option<Vec<Resource>> = None;
    for (name, range) in bundle.signature_entries() {
        let outcome = bundle.read(range).map_err(|e| e.to_string()).and_then(|bytes| {
            let signature = ParsedSignature::parse(&bytes).map_err(|e| e.to_string())?;
            let signed = check_envelope(&signature, key)?;
            if current.is_none() {
                current = Some(entry_digests(bundle).map_err(|e| e.to_string())?);
            }
            let current = current.as_deref().unwrap_or_default();
            compare_resources(signed, current)?;
            Ok(current.len())
        });
        match outcome {
            Ok(entries) => return Ok(Verified { name: name.to_owned(), entries }),
            Err(reason) => reasons.push((name.to_owned(), reason)),
        }
    }
    Err(VerifyFailure { reasons })
}

/// Verifies a detached signature over a whole file (one resource named `.`).
pub fn verify_file(file: &[u8], signature: &[u8], key: &VerifyingKey) -> Result<(), SignatureError> {
    let signature = ParsedSignature::parse(signature)?;
    let signed = check_envelope(&signature, key).map_err(SignatureError::Invalid)?;
    compare_resources(signed, &[Resource::sha256_of(WHOLE_FILE, file)]).map_err(SignatureError::Invalid)
}

/// Checks that a well-formed signature's resources name exactly `bundle`'s
/// entries (the digests are checked by [`verify_bundle`]): what attaching a
/// signature made elsewhere requires.
pub fn check_names_cover(signature: &ParsedSignature, bundle: &Bundle) -> Result<(), SignatureError> {
    let signed: Vec<&str> = signature.statement.predicate.resources.iter().map(|r| r.name.as_str()).collect();
    let entries: Vec<&str> = bundle.archive().content_entries();
    let (signed_set, entry_set): (BTreeSet<&str>, BTreeSet<&str>) =
        (signed.iter().copied().collect(), entries.iter().copied().collect());
    if let Some(extra) = signed.iter().find(|n| !entry_set.contains(*n)) {
        let hint = if extra.starts_with(SIGNATURE_ENTRY_PREFIX) || *extra == WHOLE_FILE {
            " (sign the unzipped bundle with `--ignore-paths signatures`, or use a detached signature)"
        } else {
            ""
        };
        return Err(SignatureError::Invalid(format!(
            "the signature lists `{extra}`, which is not an entry of the bundle{hint}"
        )));
    }
    if let Some(missing) = entries.iter().find(|n| !signed_set.contains(*n)) {
        return Err(SignatureError::Invalid(format!("the signature does not list entry `{missing}`")));
    }
    Ok(())
}

/// What one signature entry says, read without a key (for `inspect` and `validate`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureSummary {
    /// The signature's name (`signatures/<name>.sigstore.json`).
    pub name: String,
    /// `key` or `keyless` (a Sigstore certificate), when well-formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<&'static str>,
    /// The key hint (hex SHA-256 of the public key's PEM), when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hint: Option<String>,
    /// The statement's subject name, when well-formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How many entries the statement lists, when well-formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<usize>,
    /// Why the signature is malformed; `None` when well-formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl std::fmt::Display for SignatureSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.problem, self.signer, &self.key_hint) {
            (Some(problem), _, _) => write!(f, "`{}`: {problem}", self.name),
            (None, Some("keyless"), _) => write!(f, "`{}` (keyless Sigstore certificate)", self.name),
            (None, _, Some(hint)) => write!(f, "`{}` (key {})", self.name, &hint[..hint.len().min(16)]),
            (None, _, None) => write!(f, "`{}` (key, no hint)", self.name),
        }
    }
}

/// Reads every signature entry of `bundle` and checks its form (spec 10.3).
pub fn summarize(bundle: &Archive) -> Vec<SignatureSummary> {
    bundle
        .signature_entries()
        .map(|(name, range)| {
            match bundle.read(range).map_err(SignatureError::from).and_then(|b| ParsedSignature::parse(&b)) {
                Ok(s) => SignatureSummary {
                    name: name.to_owned(),
                    signer: Some(if s.is_keyless() { "keyless" } else { "key" }),
                    key_hint: s.hint().map(str::to_owned),
                    subject: s.statement.subject.first().map(|s| s.name.clone()),
                    entries: Some(s.statement.predicate.resources.len()),
                    problem: None,
                },
                Err(e) => SignatureSummary {
                    name: name.to_owned(),
                    signer: None,
                    key_hint: None,
                    subject: None,
                    entries: None,
                    problem: Some(e.to_string()),
                },
            }
        })
        .collect()
}
