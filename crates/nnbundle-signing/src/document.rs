//! The two JSON documents of a signature: the Sigstore bundle (the file) and
//! the in-toto statement its DSSE envelope carries (the signed payload).
//!
//! Struct fields are declared in sorted key order where nnbundle writes the
//! document canonically (the statement), so serializing gives sorted keys.

use std::collections::BTreeMap;

use base64ct::{Base64, Encoding};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::SignatureError;

/// `mediaType` of the Sigstore bundles nnbundle writes.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Prefix every Sigstore bundle media type has.
const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// `payloadType` of the DSSE envelope.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of the statement.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of OpenSSF Model Signing v1.0.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The only hash algorithm of resources and serialization.
pub const SHA256: &str = "sha256";

/// A signature file: a Sigstore bundle (v0.3) with a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigstoreBundle {
    /// `application/vnd.dev.sigstore.bundle.v0.3+json`.
    pub media_type: String,
    /// Which key or certificate signed.
    pub verification_material: VerificationMaterial,
    /// The signed statement and its signatures.
    pub dsse_envelope: DsseEnvelope,
}

/// How to find the signer: a key hint, or (for keyless Sigstore signatures,
/// stored as given) a certificate and transparency-log entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    /// Identifies the public key (key signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// The signing certificate (keyless signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Value>,
    /// A certificate chain (older keyless signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<Value>,
    /// Transparency-log entries; empty for key signatures.
    #[serde(default)]
    pub tlog_entries: Vec<Value>,
    /// Signed timestamps (keyless signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<Value>,
}

/// The public key's hint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyIdentifier {
    /// Lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DsseEnvelope {
    /// The statement's JSON bytes, standard base64 with padding.
    pub payload: String,
    /// `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// Signatures over the PAE of the payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signature bytes, standard base64: ASN.1 DER for ECDSA, 64 bytes for Ed25519.
    pub sig: String,
    /// Always empty.
    #[serde(default)]
    pub keyid: String,
}

/// The in-toto statement (the DSSE payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Statement {
    /// `https://in-toto.io/Statement/v1`.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What is signed: the entries and their digests.
    pub predicate: Predicate,
    /// `https://model_signing/signature/v1.0`.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// Exactly one: the model's name and the root digest of the resources.
    pub subject: Vec<Subject>,
}

/// The statement's subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// The root digest.
    pub digest: SubjectDigest,
    /// The model's name: the bundle's file stem.
    pub name: String,
}

/// The subject's digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectDigest {
    /// SHA-256 of the resources' raw digests concatenated in their order, lowercase hex.
    pub sha256: String,
}

/// The Model Signing v1.0 predicate, with nnbundle's own field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Predicate {
    /// What the bundle's manifest says, for readers of the statement alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nnbundle: Option<BundleClaims>,
    /// One per signed entry (or `.` for the whole file), sorted by name.
    pub resources: Vec<Resource>,
    /// How the resources were hashed.
    pub serialization: Serialization,
    /// Fields other tools add; ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// nnbundle's predicate field: the bundle's identity as its manifest gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleClaims {
    /// The graph's architecture digest (hex), when the bundle has a graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture_digest: Option<String>,
    /// The bundle digest (hex, spec 5.4).
    pub bundle_digest: String,
    /// The manifest's `format_version`.
    pub format_version: String,
}

/// One signed file: an entry name, or `.` for a detached signature's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resource {
    /// `sha256`.
    pub algorithm: String,
    /// SHA-256 of the entry's stored bytes, lowercase hex.
    pub digest: String,
    /// The exact zip entry name.
    pub name: String,
}

impl Resource {
    /// The resource `name` for `bytes`: their SHA-256.
    pub fn sha256_of(name: &str, bytes: &[u8]) -> Resource {
        Resource { algorithm: SHA256.into(), digest: hex::encode(Sha256::digest(bytes)), name: name.to_owned() }
    }
}

/// How the model was serialized into resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Serialization {
    /// `false`.
    #[serde(default)]
    pub allow_symlinks: bool,
    /// `sha256`.
    pub hash_type: String,
    /// Paths left out: `["signatures"]` in a bundle.
    #[serde(default)]
    pub ignore_paths: Vec<String>,
    /// `files`.
    pub method: String,
}

/// DSSE's pre-authentication encoding of a payload: the bytes a signature signs.
pub fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {PAYLOAD_TYPE} {} ", PAYLOAD_TYPE.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The root digest of `resources`: SHA-256 of their raw digests in order.
pub fn root_digest(resources: &[Resource]) -> Result<String, SignatureError> {
    let mut hasher = Sha256::new();
    for r in resources {
        let raw = hex_digest(&r.digest)
            .ok_or_else(|| SignatureError::Malformed(format!("resource `{}`: digest is not 64 hex digits", r.name)))?;
        hasher.update(raw);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let mut raw = [0; 32];
    (text.len() == 64 && !text.bytes().any(|b| b.is_ascii_uppercase())).then_some(())?;
    hex::decode_to_slice(text, &mut raw).ok().map(|()| raw)
}

/// A signature file, parsed and checked for form (spec 10.3), not yet verified.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    /// The Sigstore bundle.
    pub bundle: SigstoreBundle,
    /// The payload bytes, exactly as signed.
    pub payload: Vec<u8>,
    /// The statement the payload holds.
    pub statement: Statement,
    /// Each envelope signature, decoded.
    pub signatures: Vec<Vec<u8>>,
}

impl ParsedSignature {
    /// Parses a signature file and checks its form: the Sigstore bundle's
    /// fields, the envelope, and the statement (type, predicate type, one
    /// subject whose digest is the resources' root digest, `files`
    /// serialization with SHA-256, unique resource names).
    pub fn parse(bytes: &[u8]) -> Result<ParsedSignature, SignatureError> {
        let malformed = |what: &str, e: &dyn std::fmt::Display| SignatureError::Malformed(format!("{what}: {e}"));
        let bundle: SigstoreBundle =
            serde_json::from_slice(bytes).map_err(|e| malformed("not a Sigstore bundle's JSON", &e))?;
        if !bundle.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
            return Err(SignatureError::Malformed(format!(
                "mediaType is `{}`, not a Sigstore bundle's (`{BUNDLE_MEDIA_TYPE}`)",
                bundle.media_type
            )));
        }
        let envelope = &bundle.dsse_envelope;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(SignatureError::Malformed(format!(
                "dsseEnvelope.payloadType is `{}`, not `{PAYLOAD_TYPE}`",
                envelope.payload_type
            )));
        }
        let payload = Base64::decode_vec(&envelope.payload)
            .map_err(|e| malformed("dsseEnvelope.payload is not standard base64", &e))?;
        if envelope.signatures.is_empty() {
            return Err(SignatureError::Malformed("dsseEnvelope.signatures is empty".into()));
        }
        let signatures = envelope
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Base64::decode_vec(&s.sig)
                    .map_err(|e| malformed(&format!("dsseEnvelope.signatures[{i}].sig is not standard base64"), &e))
            })
            .collect::<Result<_, _>>()?;
        let statement: Statement =
            serde_json::from_slice(&payload).map_err(|e| malformed("the payload is not an in-toto statement", &e))?;
        check_statement(&statement)?;
        Ok(ParsedSignature { bundle, payload, statement, signatures })
    }

    /// The key hint, when the signature names one.
    pub fn hint(&self) -> Option<&str> {
        self.bundle.verification_material.public_key.as_ref()?.hint.as_deref()
    }

    /// Whether a certificate rather than a key identifies the signer (keyless Sigstore).
    pub fn is_keyless(&self) -> bool {
        let material = &self.bundle.verification_material;
        material.certificate.is_some() || material.x509_certificate_chain.is_some()
    }
}

fn check_statement(statement: &Statement) -> Result<(), SignatureError> {
    let bad = |reason: String| Err(SignatureError::Malformed(format!("statement: {reason}")));
    if statement.statement_type != STATEMENT_TYPE {
        return bad(format!("_type is `{}`, not `{STATEMENT_TYPE}`", statement.statement_type));
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return bad(format!("predicateType is `{}`, not `{PREDICATE_TYPE}`", statement.predicate_type));
    }
    let [subject] = statement.subject.as_slice() else {
        return bad(format!("{} subjects, Model Signing has exactly one", statement.subject.len()));
    };
    let serialization = &statement.predicate.serialization;
    if serialization.method != "files" || serialization.hash_type != SHA256 {
        return bad(format!(
            "serialization is `{}` with `{}`; a bundle's signature hashes whole files (`files`, `sha256`)",
            serialization.method, serialization.hash_type
        ));
    }
    let resources = &statement.predicate.resources;
    if let Some(r) = resources.iter().find(|r| r.algorithm != SHA256) {
        return bad(format!("resource `{}` uses algorithm `{}`, not `sha256`", r.name, r.algorithm));
    }
    let mut names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        return bad(format!("resource `{}` is listed twice", pair[0]));
    }
    let root = root_digest(resources)?;
    if subject.digest.sha256 != root {
        return bad(format!("the subject's digest is {}, the resources' root digest is {root}", subject.digest.sha256));
    }
    Ok(())
}

/// The JSON Schema (draft 2020-12) of a signature file (`signatures/<name>.sigstore.json`).
pub fn signature_schema() -> Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<SigstoreBundle>()
        .to_value()
}

/// The JSON Schema (draft 2020-12) of the statement a signature's envelope carries.
pub fn statement_schema() -> Value {
    schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<Statement>().to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec() {
        // DSSE protocol.md's example: PAE("http://example.com/HelloWorld", "hello world")
        // is "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; the same rule here.
        assert_eq!(pae(b"hello world"), b"DSSEv1 28 application/vnd.in-toto+json 11 hello world".to_vec());
    }

    #[test]
    fn root_digest_hashes_raw_digests_in_order() {
        let r = |name: &str, byte: u8| Resource {
            algorithm: SHA256.into(),
            digest: hex::encode([byte; 32]),
            name: name.into(),
        };
        let mut expected = Sha256::new();
        expected.update([1u8; 32]);
        expected.update([2u8; 32]);
        assert_eq!(root_digest(&[r("a", 1), r("b", 2)]).unwrap(), hex::encode(expected.finalize()));
        let mut upper = r("a", 0xab);
        upper.digest = upper.digest.to_uppercase();
        assert!(root_digest(&[upper]).unwrap_err().to_string().contains("resource `a`"));
    }
}
