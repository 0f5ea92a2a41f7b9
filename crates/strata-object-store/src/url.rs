//! `--storage URL`: which object store, and the prefix under which one
//! engine keeps its objects.
//!
//! - `s3://BUCKET[/PREFIX]`: AWS S3 or any S3-compatible server, configured
//!   from the standard environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, and
//!   `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
//! - `gs://BUCKET[/PREFIX]`: Google Cloud Storage, credentials from
//!   `GOOGLE_SERVICE_ACCOUNT` (a service-account key file) or
//!   `GOOGLE_SERVICE_ACCOUNT_KEY` (the key's JSON), else
//!   `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's application-default
//!   credentials, else the GCE metadata server. A fake GCS server: a key
//!   `{"gcs_base_url": "http://HOST:PORT", "disable_oauth": true,
//!   "client_email": "", "private_key": "", "private_key_id": ""}`
//!   (`GOOGLE_SKIP_SIGNATURE` would still ask the metadata server for a
//!   token on PUTs and DELETEs).
//! - `az://CONTAINER[/PREFIX]`: Azure Blob Storage: `AZURE_STORAGE_ACCOUNT_NAME`
//!   and `AZURE_STORAGE_ACCOUNT_KEY` (or another `AZURE_*` credential). The
//!   Azurite emulator: `AZURE_STORAGE_USE_EMULATOR=true`, and
//!   `AZURITE_BLOB_STORAGE_URL` if it is not on `http://127.0.0.1:10000`.
//! - `file:///DIR`: a local directory used through the object API.
//! - `memory://[PREFIX]`: memory, gone when the process ends (tests).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::SetupError;

/// How long one request is retried (with backoff) before it fails.
pub const REQUEST_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed `--storage` URL.
pub struct StorageUrl {
    /// The URL as given (for logs and the cache's identity).
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
    /// Where this engine's objects live in the store.
    pub prefix: Path,
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: REQUEST_RETRY_TIMEOUT,
    }
}

/// Parses `--storage URL` and builds its store.
pub fn parse_storage_url(url: &str) -> Result<StorageUrl, SetupError> {
    let bad = |why: &str| SetupError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let store_err = |source| SetupError::Store {
        url: url.to_string(),
        source,
    };
    let parsed = ::url::Url::parse(url).map_err(|e| {
        bad(&format!(
            "{e}; expected s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX, file:///DIR or memory://"
        ))
    })?;
    let path = parsed.path().trim_matches('/');
    let prefix = Path::parse(path).map_err(|e| bad(&format!("bad prefix: {e}")))?;
    let bucket = || {
        parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| bad("no bucket (or container) named after the scheme"))
    };
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" => Arc::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket()?)
                .with_retry(retry())
                .build()
                .map_err(store_err)?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket()?)
                .with_retry(retry())
                .build()
                .map_err(store_err)?,
        ),
        "az" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket()?)
                .with_retry(retry())
                .build()
                .map_err(store_err)?,
        ),
        "file" => {
            if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(bad("a file URL names no host: file:///DIR"));
            }
            let dir = parsed.path();
            std::fs::create_dir_all(dir).map_err(|e| SetupError::Cache {
                dir: dir.to_string(),
                source: e,
            })?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(store_err)?;
            return Ok(StorageUrl {
                url: url.to_string(),
                store: Arc::new(fs),
                prefix: Path::default(),
            });
        }
        "memory" => {
            let prefix = [parsed.host_str().unwrap_or(""), path]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            return Ok(StorageUrl {
                url: url.to_string(),
                store: Arc::new(InMemory::new()),
                prefix: Path::parse(prefix).map_err(|e| bad(&format!("bad prefix: {e}")))?,
            });
        }
        other => {
            return Err(bad(&format!(
                "unknown scheme {other:?}; expected s3, gs, az, file or memory"
            )))
        }
    };
    Ok(StorageUrl {
        url: url.to_string(),
        store,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let m = parse_storage_url("memory://").unwrap();
        assert_eq!(m.prefix.as_ref(), "");
        let m = parse_storage_url("memory://a/b").unwrap();
        assert_eq!(m.prefix.as_ref(), "a/b");
        let dir = tempfile::tempdir().unwrap();
        let f = parse_storage_url(&format!("file://{}/store", dir.path().display())).unwrap();
        assert_eq!(f.prefix.as_ref(), "");
        assert!(dir.path().join("store").is_dir());
        for bad in ["", "/tmp/x", "ftp://x/y", "s3:///nobucket", "file://host/x"] {
            let e = parse_storage_url(bad).err().expect(bad).to_string();
            assert!(e.contains("--storage URL"), "{bad}: {e}");
        }
    }
}
