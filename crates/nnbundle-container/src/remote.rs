//! Bundles read over the network through the `object_store` crate (cargo
//! feature `remote`): `http(s)://`, `s3://`, `gs://` and `az://` URLs.
//!
//! Opening reads the last [`TAIL_BYTES`] of the object with one suffix range
//! request, which also gives the object's size (no HEAD); the central
//! directory and, for a small bundle, every other entry come from it. Every
//! later read is one bounded range request; every request after the first
//! carries the object's ETag when the server gave one, so an object replaced
//! while open is an error, never a mix of two files.

use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreScheme};

use crate::error::{ContainerError, Result};

/// How much of the object's end the first request reads: the central
/// directory and, for a bundle up to this size, everything.
pub const TAIL_BYTES: u64 = 1 << 20;

/// Requests in flight at once when many ranges are read (object_store's
/// `get_ranges` also merges ranges less than 1 MiB apart).
const BATCH_BYTES: u64 = 64 << 20;

/// Threads for blocking work that mostly waits on the network, such as
/// opening an index's shards (each two round trips): 16 of them, whatever
/// the number of cores. `None` if the threads cannot be started.
pub(crate) fn waiting_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new().num_threads(16).thread_name(|i| format!("nnb-remote-open-{i}")).build().ok()
    })
    .as_ref()
}

/// One runtime for every remote read of the process: the reader's API is
/// blocking, object_store's is async.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("nnb-remote")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ContainerError::Remote {
            url: String::new(),
            reason: format!("cannot start the I/O runtime: {e}"),
            not_found: false,
        })
}

/// Whether `location` names a remote object (a URL with a scheme
/// object_store reads) rather than a local path.
pub fn is_url(location: &str) -> bool {
    let Some((scheme, rest)) = location.split_once("://") else { return false };
    !rest.is_empty()
        && matches!(
            scheme.to_ascii_lowercase().as_str(),
            "http" | "https" | "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss"
        )
}

/// An object in a store, open for range reads.
pub(crate) struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    url: url::Url,
    len: usize,
    /// The object's ETag, sent with every later request.
    etag: Option<String>,
    /// Ranges already read (the tail, the entries read at open), served
    /// without a request.
    cached: RwLock<Vec<(usize, Bytes)>>,
}

impl RemoteFile {
    /// Opens `url` with credentials and settings from the environment
    /// (object_store's builders' `from_env`).
    pub(crate) fn open(url: &str) -> Result<RemoteFile> {
        let parsed = url::Url::parse(url).map_err(|e| ContainerError::Remote {
            url: url.to_owned(),
            reason: format!("not a URL: {e}"),
            not_found: false,
        })?;
        let (store, path) = store_for(&parsed)?;
        RemoteFile::open_in(Arc::from(store), path, parsed)
    }

    /// Opens the object `name` in the same folder of the same store (a shard
    /// beside its index).
    pub(crate) fn open_sibling(&self, name: &str) -> Result<RemoteFile> {
        let url = self.url.join(name).map_err(|e| self.error(format!("cannot resolve `{name}`: {e}")))?;
        let mut parts: Vec<_> = self.path.parts().collect();
        parts.pop();
        let path: StorePath = parts.into_iter().chain([name.into()]).collect();
        RemoteFile::open_in(self.store.clone(), path, url)
    }

    fn open_in(store: Arc<dyn ObjectStore>, path: StorePath, url: url::Url) -> Result<RemoteFile> {
        let options = GetOptions { range: Some(GetRange::Suffix(TAIL_BYTES)), ..GetOptions::default() };
        let (result, bytes) = runtime()?
            .block_on(async {
                let result = store.get_opts(&path, options).await?;
                let (meta, range) = (result.meta.clone(), result.range.clone());
                Ok::<_, object_store::Error>(((meta, range), result.bytes().await?))
            })
            .map_err(|e| failed(&url, "read the end of", e))?;
        let ((meta, range), tail) = (result, bytes);
        let len = usize::try_from(meta.size).map_err(|_| failed_msg(&url, "is too large for this platform"))?;
        if range.end != meta.size || (range.end - range.start) as usize != tail.len() {
            return Err(failed_msg(&url, "answered a range request with other bytes than asked"));
        }
        let start = range.start as usize;
        Ok(RemoteFile { store, path, url, len, etag: meta.e_tag, cached: RwLock::new(vec![(start, tail)]) })
    }

    /// The URL of `name` in the same folder (for messages).
    pub(crate) fn sibling_url(&self, name: &str) -> String {
        self.url.join(name).map_or_else(|_| name.to_owned(), String::from)
    }

    /// Its size, from the first response.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn error(&self, reason: String) -> ContainerError {
        ContainerError::Remote { url: self.url.to_string(), reason, not_found: false }
    }

    /// The bytes of `range` when an earlier request already brought them.
    fn cached(&self, range: &Range<usize>) -> Option<Bytes> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached.iter().find_map(|(start, bytes)| {
            let from = range.start.checked_sub(*start)?;
            (from + range.len() <= bytes.len()).then(|| bytes.slice(from..from + range.len()))
        })
    }

    /// Reads `range` (clamped to the object): from what was read before, or
    /// with one range request.
    pub(crate) fn read(&self, range: Range<usize>, what: &str) -> Result<Bytes> {
        let range = range.start.min(self.len)..range.end.min(self.len);
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        if let Some(bytes) = self.cached(&range) {
            return Ok(bytes);
        }
        Ok(self.read_many(std::slice::from_ref(&range), what)?.remove(0))
    }

    /// Reads `range` with one request and keeps it for later reads (the
    /// entries an open needs).
    /// A piece that ends where another starts is joined to it, so that reads
    /// across the seam are served too.
    pub(crate) fn keep(&self, range: Range<usize>) -> Result<()> {
        if self.cached(&range).is_some() {
            return Ok(());
        }
        let bytes = self.read(range.clone(), "the bundle's directory and documents")?;
        let mut cached = self.cached.write().unwrap_or_else(|e| e.into_inner());
        let (mut start, mut joined) = (range.start, bytes.to_vec());
        cached.retain(|(at, piece)| {
            if *at == start + joined.len() {
                joined.extend_from_slice(piece);
            } else if at + piece.len() == start {
                joined.splice(0..0, piece.iter().copied());
                start = *at;
            } else {
                return true;
            }
            false
        });
        cached.push((start, Bytes::from(joined)));
        Ok(())
    }

    /// Reads each of `ranges` (inside the object): those an earlier request
    /// brought from memory, the others with object_store's `coalesce_ranges`
    /// (ranges less than 1 MiB apart merged into one request, up to ten
    /// requests at a time), each request carrying the ETag. Each response is
    /// checked to be the bytes asked for.
    pub(crate) fn read_many(&self, ranges: &[Range<usize>], what: &str) -> Result<Vec<Bytes>> {
        let cached: Vec<Option<Bytes>> = ranges.iter().map(|r| self.cached(r)).collect();
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&cached)
            .filter(|(_, hit)| hit.is_none())
            .map(|(r, _)| r.start as u64..r.end as u64)
            .collect();
        let fetched = match missing.is_empty() {
            true => Vec::new(),
            false => runtime()?
                .block_on(object_store::coalesce_ranges(
                    &missing,
                    |range| self.get(range),
                    object_store::OBJECT_STORE_COALESCE_DEFAULT,
                ))
                .map_err(|e| match e {
                    object_store::Error::Precondition { .. } => self.error(format!(
                        "changed while open (its ETag is no longer {}) before reading {what}",
                        self.etag.as_deref().unwrap_or("?")
                    )),
                    e => failed(&self.url, &format!("read {what} from"), e),
                })?,
        };
        let mut fetched = fetched.into_iter();
        let read: Vec<Bytes> =
            cached.into_iter().map(|hit| hit.or_else(|| fetched.next()).unwrap_or_default()).collect();
        for (bytes, range) in read.iter().zip(ranges) {
            if bytes.len() != range.len() {
                return Err(self.error(format!(
                    "returned {} bytes for {what} (bytes {}..{}), not {}",
                    bytes.len(),
                    range.start,
                    range.end,
                    range.len()
                )));
            }
        }
        Ok(read)
    }

    /// One range request, with the object's ETag when it has one.
    async fn get(&self, range: Range<u64>) -> object_store::Result<Bytes> {
        let options =
            GetOptions { range: Some(GetRange::Bounded(range)), if_match: self.etag.clone(), ..GetOptions::default() };
        self.store.get_opts(&self.path, options).await?.bytes().await
    }

    /// Reads `ranges` in batches of about 64 MiB, in order, calling `each`
    /// with each range's bytes; stops at the first error `each` returns.
    pub(crate) fn read_batched(
        &self,
        ranges: &[Range<usize>],
        what: &str,
        mut each: impl FnMut(usize, Result<Bytes>) -> bool,
    ) {
        let mut at = 0;
        while at < ranges.len() {
            let mut end = at + 1;
            let mut total = ranges[at].len() as u64;
            while end < ranges.len() && total + (ranges[end].len() as u64) <= BATCH_BYTES {
                total += ranges[end].len() as u64;
                end += 1;
            }
            match self.read_many(&ranges[at..end], what) {
                Ok(read) => {
                    for (i, bytes) in read.into_iter().enumerate() {
                        if !each(at + i, Ok(bytes)) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = each(at, Err(e));
                    return;
                }
            }
            at = end;
        }
    }
}

/// The store for `url` and the object's path in it, configured from the
/// environment (credentials, endpoints, regions).
fn store_for(url: &url::Url) -> Result<(Box<dyn ObjectStore>, StorePath)> {
    let (scheme, path) =
        ObjectStoreScheme::parse(url).map_err(|e| failed_msg(url, &format!("not a store URL: {e}")))?;
    let built: std::result::Result<Box<dyn ObjectStore>, object_store::Error> = match scheme {
        // A plain `http://` URL is the user's explicit choice of no TLS.
        ObjectStoreScheme::Http => object_store::http::HttpBuilder::new()
            .with_url(&url[..url::Position::BeforePath])
            .with_client_options(object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"))
            .build()
            .map(|s| Box::new(s) as _),
        ObjectStoreScheme::AmazonS3 => {
            object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str()).build().map(|s| Box::new(s) as _)
        }
        ObjectStoreScheme::GoogleCloudStorage => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Box::new(s) as _),
        ObjectStoreScheme::MicrosoftAzure => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Box::new(s) as _),
        _ => {
            return Err(failed_msg(url, "not a remote URL (http, https, s3, gs or az)"));
        }
    };
    let store = built.map_err(|e| failed(url, "set up a client for", e))?;
    Ok((store, path))
}

fn failed(url: &url::Url, doing: &str, e: object_store::Error) -> ContainerError {
    let not_found = matches!(e, object_store::Error::NotFound { .. });
    let reason = match not_found {
        true => format!("cannot {doing} it: not found"),
        false => format!("cannot {doing} it: {e}"),
    };
    ContainerError::Remote { url: url.to_string(), reason, not_found }
}

fn failed_msg(url: &url::Url, reason: &str) -> ContainerError {
    ContainerError::Remote { url: url.to_string(), reason: reason.to_owned(), not_found: false }
}
