//! `sign` and `verify`: OpenSSF Model Signing signatures inside a bundle
//! (`signatures/<name>.sigstore.json`) or beside it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nnbundle_container::{Archive, Bundle, Durability, OpenOptions, Verify, write_bytes_atomically};
use nnbundle_format::signature_entry_name;
use nnbundle_signing::{ParsedSignature, SigningKey, VerifyingKey};
use serde_json::json;

use crate::output::{BAD, GOOD, done, json as print_json, spinner};
use crate::{Failure, Outcome};

/// What `nnb sign` was asked to do.
pub(crate) struct SignArgs<'a> {
    pub(crate) bundle: &'a Path,
    pub(crate) key: Option<&'a Path>,
    pub(crate) name: Option<&'a str>,
    pub(crate) sidecar: Option<&'a Path>,
    pub(crate) attach: Option<&'a Path>,
}

fn read_text(path: &Path, what: &str) -> Result<String, Failure> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("read the {what} `{}`", path.display()))?)
}

fn signing_key(path: &Path) -> Result<SigningKey, Failure> {
    SigningKey::from_pem(&read_text(path, "private key")?)
        .map_err(|e| Failure::usage(format!("`{}`: {e}", path.display())))
}

/// Reads a public key file (`verify --key`, `validate --key`).
pub(crate) fn verifying_key(path: &Path) -> Result<VerifyingKey, Failure> {
    VerifyingKey::from_pem(&read_text(path, "public key")?)
        .map_err(|e| Failure::usage(format!("`{}`: {e}", path.display())))
}

/// The model's name in a statement: the file stem (`model` for `model.nnb`).
fn subject(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
}

pub(crate) fn sign(args: &SignArgs<'_>) -> Outcome {
    let bundle = Bundle::open_with(args.bundle, OpenOptions { verify: Verify::OnAccess, ..Default::default() })?;
    if let Some(file) = args.attach {
        return attach(&bundle, args, file);
    }
    let key_path = args.key.ok_or_else(|| Failure::usage("`nnb sign` needs --key KEY.pem (or --attach FILE)"))?;
    let key = signing_key(key_path)?;
    let spin = spinner("checking and hashing every entry");
    // A signature vouches for the content: refuse to sign a damaged bundle.
    bundle.verify_every_digest().context("the bundle is damaged; it was not signed")?;
    if let Some(sidecar) = args.sidecar {
        let file = bundle.file_bytes().ok_or_else(|| anyhow::anyhow!("the bundle is not memory-mapped"))?;
        let signature = nnbundle_signing::sign_file(file, &key, &file_name(args.bundle))?;
        write_bytes_atomically(sidecar, &signature)?;
        spin.finish_and_clear();
        done(format_args!(
            "signed {} ({}): detached signature {} over the whole file",
            args.bundle.display(),
            key.algorithm(),
            sidecar.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let name = match args.name {
        Some(name) => checked_name(name)?,
        None => nnbundle_signing::default_name(&key.verifying_key()),
    };
    let signature = nnbundle_signing::sign_bundle(&bundle, &key, &subject(args.bundle))?;
    store(&bundle, args.bundle, &name, signature)?;
    spin.finish_and_clear();
    done(format_args!(
        "signed {} as {} ({}, key {}), covering {} entries",
        args.bundle.display(),
        signature_entry_name(&name),
        key.algorithm(),
        &key.verifying_key().hint()[..16],
        bundle.archive().content_entries().len()
    ));
    Ok(ExitCode::SUCCESS)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
}

fn checked_name(name: &str) -> Result<String, Failure> {
    nnbundle_format::names::check_signature_name(name).map_err(|e| Failure::usage(format!("--name: {e}")))?;
    Ok(name.to_owned())
}

/// Adds or replaces signature `name`, keeping the others, atomically.
fn store(bundle: &Bundle, path: &Path, name: &str, signature: Vec<u8>) -> Result<(), Failure> {
    let mut signatures: BTreeMap<String, Vec<u8>> =
        bundle.signatures()?.into_iter().map(|(n, bytes)| (n.to_owned(), bytes.into_owned())).collect();
    signatures.insert(name.to_owned(), signature);
    bundle.archive().save_with_signatures(path, &signatures, Durability::Synced)?;
    Ok(())
}

/// Stores a signature made elsewhere (by `model_signing sign` over the
/// unzipped bundle), as given, once it is well-formed and lists exactly the
/// bundle's entries.
fn attach(bundle: &Bundle, args: &SignArgs<'_>, file: &Path) -> Outcome {
    if args.key.is_some() || args.sidecar.is_some() {
        return Err(Failure::usage("--attach stores a signature as given: it takes no --key or --sidecar"));
    }
    let bytes = std::fs::read(file).with_context(|| format!("read `{}`", file.display()))?;
    let parsed = ParsedSignature::parse(&bytes).with_context(|| format!("`{}`", file.display()))?;
    nnbundle_signing::check_names_cover(&parsed, bundle).with_context(|| format!("`{}`", file.display()))?;
    let name = match (args.name, parsed.hint()) {
        (Some(name), _) => checked_name(name)?,
        (None, Some(hint)) if hint.len() >= 16 => format!("key-{}", &hint[..16]),
        (None, _) => "sigstore".to_owned(),
    };
    store(bundle, args.bundle, &name, bytes)?;
    done(format_args!("attached {} to {} as {}", file.display(), args.bundle.display(), signature_entry_name(&name)));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(bundle_path: &Path, key_path: &Path, detached: Option<&Path>, as_json: bool) -> Outcome {
    let key = verifying_key(key_path)?;
    let outcome = match detached {
        Some(signature_path) => {
            let signature =
                std::fs::read(signature_path).with_context(|| format!("read `{}`", signature_path.display()))?;
            let file = match super::url_of(bundle_path) {
                // A URL: the whole object, in one request.
                Some(url) => Archive::open_url(url)?.read(0..usize::MAX)?.into_owned(),
                None => std::fs::read(bundle_path).with_context(|| format!("read `{}`", bundle_path.display()))?,
            };
            nnbundle_signing::verify_file(&file, &signature, &key)
                .map(|()| (signature_path.display().to_string(), 1))
                .map_err(|e| e.to_string())
        }
        None => {
            let bundle = match super::url_of(bundle_path) {
                Some(url) => Archive::open_url(url)?,
                None => Archive::open(bundle_path)?,
            };
            let spin = spinner("hashing every entry");
            let verified = nnbundle_signing::verify_bundle(&bundle, &key);
            spin.finish_and_clear();
            verified.map(|v| (signature_entry_name(&v.name), v.entries)).map_err(|e| e.to_string())
        }
    };
    if as_json {
        print_json(&match &outcome {
            Ok((signature, entries)) => json!({"verified": true, "signature": signature, "entries": entries}),
            Err(reason) => json!({"verified": false, "reason": reason}),
        })?;
    }
    match outcome {
        Ok((signature, entries)) => {
            if !as_json {
                anstream::println!(
                    "{GOOD}verified{GOOD:#}: {signature} by key {} covers all {entries} entries of {}",
                    &key.hint()[..16],
                    bundle_path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            if !as_json {
                anstream::println!("{BAD}not verified{BAD:#}: {}: {reason}", bundle_path.display());
            }
            Ok(ExitCode::from(1))
        }
    }
}
