//! Keys: ECDSA P-256 with SHA-256 (deterministic, RFC 6979) and Ed25519, read
//! from PEM as openssl writes them.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

use crate::SignatureError;

/// The kinds of key nnbundle signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256; signatures are ASN.1 DER.
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8032); signatures are 64 raw bytes.
    Ed25519,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::EcdsaP256Sha256 => "ECDSA P-256 SHA-256",
            Algorithm::Ed25519 => "Ed25519",
        })
    }
}

/// A private key that signs.
pub enum SigningKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.algorithm())
    }
}

impl SigningKey {
    /// Reads an unencrypted PKCS#8 PEM private key (`BEGIN PRIVATE KEY`), P-256 or Ed25519.
    pub fn from_pem(text: &str) -> Result<SigningKey, SignatureError> {
        read_pem(
            text,
            "PRIVATE KEY",
            "a private key is an unencrypted PKCS#8 `BEGIN PRIVATE KEY` block (convert with `openssl pkcs8 -topk8 -nocrypt`)",
            |t| p256::ecdsa::SigningKey::from_pkcs8_pem(t).ok().map(SigningKey::P256),
            |t| ed25519_dalek::SigningKey::from_pkcs8_pem(t).ok().map(SigningKey::Ed25519),
        )
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::P256(_) => Algorithm::EcdsaP256Sha256,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::P256(key) => VerifyingKey::P256(*key.verifying_key()),
            SigningKey::Ed25519(key) => VerifyingKey::Ed25519(key.verifying_key()),
        }
    }

    /// Signs `message`: DER for ECDSA (deterministic per RFC 6979), 64 bytes for Ed25519.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

/// A public key that verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyingKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl VerifyingKey {
    /// Reads a SubjectPublicKeyInfo PEM public key (`BEGIN PUBLIC KEY`), P-256 or Ed25519.
    pub fn from_pem(text: &str) -> Result<VerifyingKey, SignatureError> {
        read_pem(
            text,
            "PUBLIC KEY",
            "a public key is a SubjectPublicKeyInfo `BEGIN PUBLIC KEY` block (`openssl pkey -pubout` writes one)",
            |t| p256::ecdsa::VerifyingKey::from_public_key_pem(t).ok().map(VerifyingKey::P256),
            |t| ed25519_dalek::VerifyingKey::from_public_key_pem(t).ok().map(VerifyingKey::Ed25519),
        )
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::P256(_) => Algorithm::EcdsaP256Sha256,
            VerifyingKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The key as SubjectPublicKeyInfo PEM: 64-column lines, LF, a trailing newline.
    pub fn to_pem(&self) -> String {
        match self {
            VerifyingKey::P256(key) => key.to_public_key_pem(LineEnding::LF),
            VerifyingKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        }
        .expect("a valid key encodes")
    }

    /// The key hint of `verificationMaterial.publicKey.hint`: the lowercase hex
    /// SHA-256 of [`to_pem`](Self::to_pem)'s text, as model-signing computes it.
    pub fn hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let ok = match self {
            VerifyingKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| SignatureError::Invalid("the ECDSA signature is not ASN.1 DER".into()))
                .map(|s| key.verify(message, &s).is_ok())?,
            VerifyingKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .map_err(|_| SignatureError::Invalid("the Ed25519 signature is not 64 bytes".into()))
                .map(|s| key.verify(message, &s).is_ok())?,
        };
        ok.then_some(())
            .ok_or_else(|| SignatureError::Invalid(format!("the {} signature does not verify", self.algorithm())))
    }
}

/// Reads a PEM key of the given label as a P-256 key, else an Ed25519 one.
fn read_pem<K>(
    text: &str,
    label: &str,
    expected: &str,
    p256: impl Fn(&str) -> Option<K>,
    ed25519: impl Fn(&str) -> Option<K>,
) -> Result<K, SignatureError> {
    let found = pem_label(text)?;
    if found != label {
        return Err(SignatureError::Key(format!("a `BEGIN {found}` PEM block; {expected}")));
    }
    p256(text).or_else(|| ed25519(text)).ok_or_else(|| {
        SignatureError::Key(format!(
            "not a P-256 or Ed25519 {} (the two kinds nnbundle signs and verifies with)",
            label.to_lowercase()
        ))
    })
}

/// The label of the first PEM block (`PRIVATE KEY`, `PUBLIC KEY`, ...).
fn pem_label(text: &str) -> Result<&str, SignatureError> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| SignatureError::Key("no `-----BEGIN ...-----` PEM block".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(file: &str) -> String {
        std::fs::read_to_string(format!("{}/../../spec/conformance/keys/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn wrong_pem_blocks_are_named() {
        let err = SigningKey::from_pem("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n");
        assert!(err.unwrap_err().to_string().contains("`BEGIN EC PRIVATE KEY`"));
        assert!(VerifyingKey::from_pem("hello").unwrap_err().to_string().contains("no `-----BEGIN"));
        assert!(VerifyingKey::from_pem(&key("p256.pem")).unwrap_err().to_string().contains("SubjectPublicKeyInfo"));
    }

    #[test]
    fn p256_signatures_are_deterministic_and_checked() {
        let signer = SigningKey::from_pem(&key("p256.pem")).unwrap();
        let public = signer.verifying_key();
        // openssl's `pkey -pubout` text, byte for byte: the hint hashes it.
        assert_eq!(public.to_pem(), key("p256.pub.pem"));
        assert_eq!(VerifyingKey::from_pem(&key("p256.pub.pem")).unwrap(), public);
        let key = signer;
        let (a, b) = (key.sign(b"message"), key.sign(b"message"));
        assert_eq!(a, b, "RFC 6979 signatures are deterministic");
        assert_eq!(a[0], 0x30, "DER SEQUENCE");
        public.verify(b"message", &a).unwrap();
        assert!(public.verify(b"messagf", &a).is_err());
        // OpenSSL signs with a random nonce and either half of `s`: both forms
        // of the same signature verify (model_signing's may be either).
        let signature = p256::ecdsa::Signature::from_der(&a).unwrap();
        let (r, s) = signature.split_scalars();
        let twin = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(twin, signature);
        public.verify(b"message", twin.to_der().as_bytes()).unwrap();
    }
}

#[cfg(test)]
mod ed25519_tests {
    use super::*;

    #[test]
    fn ed25519_keys_read_sign_and_verify() {
        let dir = format!("{}/../../spec/conformance/keys", env!("CARGO_MANIFEST_DIR"));
        let private = std::fs::read_to_string(format!("{dir}/ed25519.pem")).unwrap();
        let public = std::fs::read_to_string(format!("{dir}/ed25519.pub.pem")).unwrap();
        let key = SigningKey::from_pem(&private).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_eq!(key.verifying_key().to_pem(), public);
        let signature = key.sign(b"payload");
        assert_eq!(signature.len(), 64);
        VerifyingKey::from_pem(&public).unwrap().verify(b"payload", &signature).unwrap();
        let other = std::fs::read_to_string(format!("{dir}/other_p256.pub.pem")).unwrap();
        assert!(VerifyingKey::from_pem(&other).unwrap().verify(b"payload", &signature).is_err());
    }
}
