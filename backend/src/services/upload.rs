//! `upload.v1.UploadService`: files written to disk as their chunks arrive, and batches.
//!
//! An upload goes to a hidden `.part` file that a guard deletes unless the upload completes, so a
//! failed, rejected or cancelled upload leaves nothing behind (cancellation drops the handler's
//! future, which only a `Drop` sees). A complete one is synced, renamed to its id, synced again
//! (the directory) and only then recorded and acknowledged.

use crate::error::{ApiError, Validator, Violation};
use crate::services::user::{create_user, delete_user};
use crate::store::Store;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchyard_proto::types::v1::Error as ItemError;
use switchyard_proto::upload::v1::upload_service_server::UploadService;
use switchyard_proto::upload::v1::{
    Chunk, GetUploadRequest, ProcessRequest, ProcessResponse, UploadInfo, UploadResult, request_data::Operation,
};
use switchyard_proto::wkt::Timestamp;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

/// Size of the chunks DownloadUpload sends.
pub const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// The upload API.
#[derive(Clone)]
pub struct UploadApi {
    store: Arc<dyn Store>,
    /// Where files live: `<dir>/<file_id>`.
    dir: PathBuf,
    /// Largest accepted file, in bytes.
    max_size: u64,
}

impl UploadApi {
    /// Creates the upload directory if needed.
    pub fn new(store: Arc<dyn Store>, dir: PathBuf, max_size: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(UploadApi { store, dir, max_size })
    }

    fn path_of(&self, file_id: &str) -> Result<PathBuf, ApiError> {
        // File ids are UUIDs we made; anything else must not become a path.
        uuid::Uuid::parse_str(file_id)
            .map(|_| self.dir.join(file_id))
            .map_err(|_| ApiError::Store(crate::store::StoreError::NotFound(format!("upload {file_id:?}"))))
    }
}

/// Deletes its files when dropped, unless disarmed.
struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.paths.clear();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn invalid(field: &str, description: String) -> ApiError {
    ApiError::Invalid(vec![Violation { field: field.to_owned(), description }])
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}

impl UploadApi {
    async fn receive(&self, mut chunks: Streaming<Chunk>) -> Result<UploadResult, ApiError> {
        let file_id = uuid::Uuid::new_v4().to_string();
        let part = self.dir.join(format!(".{file_id}.part"));
        let mut cleanup = Cleanup { paths: vec![part.clone()] };
        // Created synchronously (one quick syscall): with tokio::fs a cancellation could drop
        // this future, and run the guard, before the background create had even happened.
        let file = tokio::fs::File::from_std(std::fs::File::create(&part)?);
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut next: i32 = 0;
        let mut upload_id: Option<String> = None;
        while let Some(chunk) = chunks.message().await.map_err(|s| {
            // The client's stream broke or was cancelled; the guard removes the part file.
            ApiError::InvalidArgument(format!("upload stream failed: {}", s.message()))
        })? {
            if chunk.sequence != next {
                let what = if chunk.sequence < next { "a duplicate" } else { "a gap" };
                return Err(invalid(
                    "sequence",
                    format!(
                        "chunk {} after chunk {} is {what}; sequences start at 0 and increase by 1",
                        chunk.sequence,
                        next - 1
                    ),
                ));
            }
            match &upload_id {
                None => upload_id = Some(chunk.upload_id.clone()),
                Some(id) if *id != chunk.upload_id => {
                    return Err(invalid(
                        "upload_id",
                        format!("chunk {} has upload_id {:?}, earlier chunks {id:?}", chunk.sequence, chunk.upload_id),
                    ));
                }
                Some(_) => {}
            }
            size += chunk.data.len() as u64;
            if size > self.max_size {
                return Err(invalid("data", format!("the upload exceeds the maximum size of {} bytes", self.max_size)));
            }
            hasher.update(&chunk.data);
            out.write_all(&chunk.data).await?;
            next = next.checked_add(1).ok_or_else(|| invalid("sequence", "too many chunks".into()))?;
        }
        out.flush().await?;
        let file = out.into_inner();
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(hasher.finalize());
        let info = UploadInfo {
            file_id: file_id.clone(),
            upload_id: upload_id.unwrap_or_default(),
            size: size as i64,
            sha256: sha256.clone(),
            created_at: Some(Timestamp::now()),
        };
        // Every byte is here: committing runs to its end in its own task, so a cancellation
        // now cannot leave a file without its record or a record without its file.
        cleanup.disarm();
        let commit = self.clone().commit(part, info);
        tokio::spawn(commit).await.map_err(std::io::Error::other)??;
        Ok(UploadResult { file_id, size: size as i64, success: true, sha256 })
    }

    /// Moves a complete part file into place and records it; undoes both on failure.
    async fn commit(self, part: PathBuf, info: UploadInfo) -> Result<(), ApiError> {
        let fin = self.dir.join(&info.file_id);
        let mut cleanup = Cleanup { paths: vec![part.clone(), fin.clone()] };
        tokio::fs::rename(&part, &fin).await?;
        sync_dir(&self.dir).await?;
        self.store.insert_upload(&info).await?;
        cleanup.disarm();
        Ok(())
    }

    async fn process(&self, mut requests: Streaming<ProcessRequest>) -> Result<ProcessResponse, ApiError> {
        let mut resp = ProcessResponse::default();
        let mut index = 0usize;
        while let Some(r) = requests
            .message()
            .await
            .map_err(|s| ApiError::InvalidArgument(format!("batch stream failed: {}", s.message())))?
        {
            let at = format!("requests[{index}]");
            index += 1;
            if resp.process_id.is_empty() {
                resp.process_id = r.process_id.clone();
            } else if !r.process_id.is_empty() && r.process_id != resp.process_id {
                resp.errors.push(ItemError {
                    code: tonic::Code::InvalidArgument as i32,
                    message: format!("process_id {:?} differs from the batch's {:?}", r.process_id, resp.process_id),
                    field: format!("{at}.process_id"),
                });
                continue;
            }
            let outcome = match r.data.and_then(|d| d.operation) {
                Some(Operation::CreateUser(c)) => create_user(self.store.as_ref(), c).await.map(drop),
                Some(Operation::DeleteUser(d)) => delete_user(self.store.as_ref(), d).await,
                None => Err(invalid("data", "no operation set".into())),
            };
            match outcome {
                Ok(()) => resp.processed_count += 1,
                Err(ApiError::Invalid(violations)) => resp.errors.extend(violations.into_iter().map(|v| ItemError {
                    code: tonic::Code::InvalidArgument as i32,
                    message: v.description,
                    field: format!("{at}.{}", v.field),
                })),
                Err(e) => {
                    let status = Status::from(e);
                    resp.errors.push(ItemError {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                        field: at,
                    });
                }
            }
        }
        if resp.process_id.is_empty() {
            resp.process_id = uuid::Uuid::new_v4().to_string();
        }
        Ok(resp)
    }
}

#[tonic::async_trait]
impl UploadService for UploadApi {
    type DownloadUploadStream = BoxStream<'static, Result<Chunk, Status>>;

    async fn upload_chunks(&self, req: Request<Streaming<Chunk>>) -> Result<Response<UploadResult>, Status> {
        Ok(Response::new(self.receive(req.into_inner()).await?))
    }

    async fn get_upload(&self, req: Request<GetUploadRequest>) -> Result<Response<UploadInfo>, Status> {
        let id = req.into_inner().file_id;
        Validator::default().check(!id.is_empty(), "file_id", "must not be empty").finish()?;
        Ok(Response::new(self.store.get_upload(&id).await.map_err(ApiError::from)?))
    }

    async fn download_upload(
        &self,
        req: Request<GetUploadRequest>,
    ) -> Result<Response<Self::DownloadUploadStream>, Status> {
        let id = req.into_inner().file_id;
        Validator::default().check(!id.is_empty(), "file_id", "must not be empty").finish()?;
        let info = self.store.get_upload(&id).await.map_err(ApiError::from)?;
        let file = tokio::fs::File::open(self.path_of(&id)?).await.map_err(ApiError::from)?;
        let upload_id = info.upload_id;
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file, DOWNLOAD_CHUNK).enumerate().map(move |(i, data)| {
                match data {
                    Ok(data) => Ok(Chunk { upload_id: upload_id.clone(), sequence: i as i32, data: data.to_vec() }),
                    Err(e) => Err(Status::from(ApiError::from(e))),
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn process_batch(
        &self,
        req: Request<Streaming<ProcessRequest>>,
    ) -> Result<Response<ProcessResponse>, Status> {
        Ok(Response::new(self.process(req.into_inner()).await?))
    }
}
