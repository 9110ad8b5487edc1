//! S3-compatible object storage for finished recordings (`object_store`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use tokio::io::AsyncReadExt;

use crate::RecordingError;
use crate::config::S3Config;

/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

pub(crate) struct S3Backend {
    client: Arc<AmazonS3>,
    pub(crate) bucket: String,
    prefix: String,
    part_size: usize,
    attempts: u32,
    backoff: Duration,
    pub(crate) retry_interval: Duration,
}

fn s3_error(what: impl Into<String>, source: object_store::Error) -> RecordingError {
    RecordingError::ObjectStore {
        what: what.into(),
        source,
    }
}

impl S3Backend {
    pub(crate) fn new(c: &S3Config) -> Result<S3Backend, RecordingError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_virtual_hosted_style_request(!c.path_style)
            // Client options replace the builder's own, allow_http included.
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(c.allow_http)
                    .with_timeout(Duration::from_secs(c.request_timeout_secs.max(1)))
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            // A few quick retries per request; whole-upload attempts and the
            // maintenance task cover longer outages without holding a finish.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
            });
        if let Some(e) = &c.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &c.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &c.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let client = b
            .build()
            .map_err(|e| RecordingError::Config(format!("recording.s3: {e}")))?;
        let mut prefix = c.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        Ok(S3Backend {
            client: Arc::new(client),
            bucket: c.bucket.clone(),
            prefix,
            part_size: c.part_size_bytes,
            attempts: c.upload_attempts.max(1),
            backoff: Duration::from_millis(c.retry_backoff_ms),
            retry_interval: Duration::from_secs(c.retry_interval_secs.max(1)),
        })
    }

    pub(crate) fn key(&self, file_name: &str) -> String {
        format!("{}{file_name}", self.prefix)
    }

    /// Reachable, and the credentials are accepted.
    pub(crate) async fn probe(&self) -> Result<(), RecordingError> {
        let prefix = ObjectPath::from(self.prefix.trim_end_matches('/'));
        self.client
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| s3_error(format!("listing bucket {}", self.bucket), e))
    }

    /// Upload a local file, retrying the whole upload with a doubling pause.
    pub(crate) async fn upload_file(&self, local: &Path, key: &str) -> Result<(), RecordingError> {
        let mut pause = self.backoff;
        let mut attempt = 1;
        loop {
            match self.upload_once(local, key).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= self.attempts => return Err(e),
                Err(e) => {
                    tracing::warn!(key, attempt, error = %e, "recording upload failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }

    async fn upload_once(&self, local: &Path, key: &str) -> Result<(), RecordingError> {
        let location = ObjectPath::from(key);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| RecordingError::io("open", local, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| RecordingError::io("stat", local, e))?
            .len();
        if size <= self.part_size as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)
                .await
                .map_err(|e| RecordingError::io("read", local, e))?;
            self.client
                .put(&location, PutPayload::from(buf))
                .await
                .map_err(|e| s3_error(format!("uploading {key}"), e))?;
            return Ok(());
        }
        let upload = self
            .client
            .put_multipart(&location)
            .await
            .map_err(|e| s3_error(format!("starting the upload of {key}"), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut buf = vec![0u8; self.part_size];
        let result = async {
            loop {
                let n = read_full(&mut file, &mut buf)
                    .await
                    .map_err(|e| RecordingError::io("read", local, e))?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| s3_error(format!("uploading a part of {key}"), e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| s3_error(format!("completing the upload of {key}"), e)),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), RecordingError> {
        self.client
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| s3_error(format!("uploading {key}"), e))
    }

    pub(crate) async fn get(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, RecordingError>>, RecordingError> {
        let got = self
            .client
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| s3_error(format!("fetching {key}"), e))?;
        let key = key.to_owned();
        Ok(got
            .into_stream()
            .map(move |r| r.map_err(|e| s3_error(format!("fetching {key}"), e)))
            .boxed())
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), RecordingError> {
        match self.client.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error(format!("deleting {key}"), e)),
        }
    }
}

/// Fill `buf` unless the file ends first; returns the bytes read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = file.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}
