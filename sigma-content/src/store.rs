//! The media store: where segments, inits, recordings and manifests that outlive the live edge
//! are kept, on local disk (the default, under the data dir) or on S3-compatible storage
//! (`s3://bucket/prefix`, shared by several nodes), through the `object_store` crate.
//!
//! Two kinds of writes, and the rule that makes a crash harmless:
//! - **objects** ([`MediaStore::put`]) are immutable: a key is written once, with its whole
//!   content, and never changed (keys carry sequence numbers, so a new version is a new key);
//! - **manifests** ([`MediaStore::put_manifest`]) name objects, and are written only after
//!   every object they name is stored ([`MediaStore::commit`] does both in that order).
//!
//! Each single write is atomic on both backends (the local one writes a temporary file and
//! renames it; S3 makes an object visible whole or not at all), so after a crash a reader sees
//! either the old manifest, whose objects all exist, or the new one, whose objects all exist
//! too; objects no manifest names yet are garbage a janitor may remove.

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// What can go wrong with the media store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--storage` URL is not one this store understands.
    #[error("storage URL {url:?}: {why}")]
    BadUrl {
        /// The URL as given (it never holds credentials: those come from the environment).
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key with characters or segments the store refuses.
    #[error("invalid media key {0:?}")]
    BadKey(String),
    /// The local directory could not be made.
    #[error("local media directory {path}: {source}")]
    Local {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The backend failed (network, permissions, disk).
    #[error("media store: {0}")]
    Backend(#[from] object_store::Error),
    /// A writer task ended abnormally (panicked or was cancelled).
    #[error("media store task: {0}")]
    Task(String),
}

/// A media key: a relative path of `/`-separated segments of `A-Z a-z 0-9 . _ -`, none of
/// them empty, `.` or `..`. Checked once, so every backend sees the same names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Longest key, in bytes.
    pub const MAX_LEN: usize = 512;

    /// `s` as a key, if it is one.
    pub fn new(s: impl Into<String>) -> Result<Key, StoreError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= Key::MAX_LEN
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(Key(s))
        } else {
            Err(StoreError::BadKey(s))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/child`.
    pub fn join(&self, child: &str) -> Result<Key, StoreError> {
        Key::new(format!("{}/{child}", self.0))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the store's root.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
}

/// The media store: cheap to clone, shared by every stream of a node.
#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    /// The key prefix inside the backend (an S3 URL's path), empty for local disk.
    root: String,
    describe: Arc<str>,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore")
            .field("at", &self.describe)
            .finish()
    }
}

impl MediaStore {
    /// The store named by `url`: `None` (or `file://` with no path) for `data_dir/media`,
    /// `file:///abs/dir` for a directory, `s3://bucket[/prefix]` for S3-compatible storage,
    /// with the endpoint, region and credentials from the usual `AWS_*` environment
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for a plain-HTTP
    /// endpoint such as a test server on loopback).
    pub fn open(url: Option<&str>, data_dir: &Path) -> Result<MediaStore, StoreError> {
        MediaStore::open_with(url, data_dir, &[])
    }

    /// Like [`open`](Self::open), with S3 settings that win over the environment, named as
    /// `object_store`'s `AmazonS3ConfigKey` parses them (`aws_endpoint`, `aws_region`,
    /// `aws_allow_http`, `aws_access_key_id`, `aws_secret_access_key`…); ignored for local
    /// disk. An unknown name is an error.
    pub fn open_with(
        url: Option<&str>,
        data_dir: &Path,
        s3_options: &[(&str, &str)],
    ) -> Result<MediaStore, StoreError> {
        match url {
            None => MediaStore::local(&data_dir.join("media")),
            Some(u) => {
                if let Some(rest) = u.strip_prefix("s3://") {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    MediaStore::s3(bucket, prefix.trim_matches('/'), u, s3_options)
                } else if let Some(path) = u.strip_prefix("file://") {
                    if path.is_empty() {
                        MediaStore::local(&data_dir.join("media"))
                    } else if path.starts_with('/') {
                        MediaStore::local(Path::new(path))
                    } else {
                        Err(StoreError::BadUrl {
                            url: u.to_string(),
                            why: "a file:// URL needs an absolute path (file:///var/sigma)",
                        })
                    }
                } else {
                    Err(StoreError::BadUrl {
                        url: u.to_string(),
                        why: "expected s3://bucket/prefix or file:///absolute/dir",
                    })
                }
            }
        }
    }

    /// A store in the local directory `dir` (made if missing).
    pub fn local(dir: &Path) -> Result<MediaStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Local {
            path: dir.display().to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(MediaStore {
            inner: Arc::new(fs),
            root: String::new(),
            describe: format!("local:{}", dir.display()).into(),
        })
    }

    fn s3(
        bucket: &str,
        prefix: &str,
        url: &str,
        options: &[(&str, &str)],
    ) -> Result<MediaStore, StoreError> {
        if bucket.is_empty() {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                why: "no bucket (s3://bucket/prefix)",
            });
        }
        if !prefix.is_empty() {
            Key::new(prefix).map_err(|_| StoreError::BadUrl {
                url: url.to_string(),
                why: "the prefix may hold only A-Z a-z 0-9 . _ - and /",
            })?;
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // The AWS SDKs' name for a custom endpoint, which object_store reads as AWS_ENDPOINT.
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            b = b.with_endpoint(endpoint);
        }
        for (name, value) in options {
            let k: AmazonS3ConfigKey = name.parse()?;
            b = b.with_config(k, *value);
        }
        let s3 = b.build()?;
        Ok(MediaStore {
            inner: Arc::new(s3),
            root: prefix.to_string(),
            describe: format!("s3://{bucket}/{prefix}").into(),
        })
    }

    /// Where the store is, for logs (never a credential).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn path(&self, key: &Key) -> StorePath {
        if self.root.is_empty() {
            StorePath::from(key.as_str())
        } else {
            StorePath::from(format!("{}/{}", self.root, key.as_str()))
        }
    }

    fn key_of(&self, p: &StorePath) -> Option<Key> {
        let s = p.as_ref();
        let rel = if self.root.is_empty() {
            s
        } else {
            s.strip_prefix(self.root.as_str())?.strip_prefix('/')?
        };
        Key::new(rel).ok()
    }

    /// Stores the immutable object `key` (the caller never writes one key twice with other
    /// content). The payload is shared, not copied.
    pub async fn put(&self, key: &Key, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&self.path(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Stores the immutable object `key` made of `chunks` in order (a segment's part headers
    /// and frame payloads): they are shared, not copied into one buffer.
    pub async fn put_chunks(&self, key: &Key, chunks: Vec<Bytes>) -> Result<(), StoreError> {
        self.inner
            .put(&self.path(key), chunks.into_iter().collect::<PutPayload>())
            .await?;
        Ok(())
    }

    /// Replaces the manifest `key`, atomically: readers see the old one or the new one.
    pub async fn put_manifest(&self, key: &Key, bytes: Bytes) -> Result<(), StoreError> {
        self.put(key, bytes).await
    }

    /// Stores `objects`, then (only when all of them are stored) the manifest that names them.
    pub async fn commit(
        &self,
        objects: impl IntoIterator<Item = (Key, Bytes)>,
        manifest: (Key, Bytes),
    ) -> Result<(), StoreError> {
        for (k, b) in objects {
            self.put(&k, b).await?;
        }
        self.put_manifest(&manifest.0, manifest.1).await
    }

    /// The object `key`, or `None` when there is none.
    pub async fn get(&self, key: &Key) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes `range` of the object `key`, or `None` when there is none. A range past the end
    /// is an error.
    pub async fn get_range(
        &self,
        key: &Key,
        range: Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get_range(&self.path(key), range).await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix` (all of them with `None`), in key order.
    pub async fn list(&self, prefix: Option<&Key>) -> Result<Vec<Listed>, StoreError> {
        let base = match (prefix, self.root.is_empty()) {
            (Some(p), _) => Some(self.path(p)),
            (None, true) => None,
            (None, false) => Some(StorePath::from(self.root.as_str())),
        };
        let metas: Vec<_> = self.inner.list(base.as_ref()).try_collect().await?;
        let mut out: Vec<Listed> = metas
            .iter()
            .filter_map(|m| {
                Some(Listed {
                    key: self.key_of(&m.location)?,
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes every object under `prefix`; how many there were.
    pub async fn delete_prefix(&self, prefix: &Key) -> Result<usize, StoreError> {
        let listed = self.list(Some(prefix)).await?;
        for l in &listed {
            match self.inner.delete(&self.path(&l.key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(listed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_plain_relative_paths() {
        for good in ["a", "ls_1/seg-00001.m4s", "x/y/z.mp4", "A-b_c.d"] {
            assert!(Key::new(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/../b", "./a", "a b", "a?b", "a%2Fb", "é",
        ] {
            assert!(Key::new(bad).is_err(), "{bad:?}");
        }
        assert!(Key::new("a".repeat(Key::MAX_LEN + 1)).is_err());
        assert_eq!(Key::new("a").unwrap().join("b").unwrap().as_str(), "a/b");
        assert!(Key::new("a").unwrap().join("..").is_err());
    }

    #[test]
    fn urls() {
        let dir = std::env::temp_dir().join(format!("sigma-content-url-{}", std::process::id()));
        let s = MediaStore::open(None, &dir).unwrap();
        assert!(s.describe().ends_with("/media"), "{}", s.describe());
        for bad in [
            "http://x/y",
            "s3://",
            "s3:///p",
            "file://relative",
            "s3://b/a b",
        ] {
            assert!(
                matches!(
                    MediaStore::open(Some(bad), &dir),
                    Err(StoreError::BadUrl { .. })
                ),
                "{bad}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest! {
        /// Whatever the text, a key either is refused or names a path inside the store.
        #[test]
        fn a_key_never_escapes(s in "[a-z./_-]{0,12}") {
            if let Ok(k) = Key::new(s) {
                prop_assert!(!k.as_str().starts_with('/'));
                prop_assert!(k.as_str().split('/').all(|p| p != ".." && p != "." && !p.is_empty()));
            }
        }
    }
}
