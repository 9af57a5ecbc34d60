//! The API as it was before migration: plain JSON over HTTP/1.1 on the same store, with no gRPC
//! behind it. `switchyard bench` runs it as a child process (`switchyard legacy-rest`) so that
//! "REST vs gRPC" and "what the gateway costs" are two separate numbers, and migration mode's
//! tests and guide use it as "the old API".
//!
//! It has what a real old API has: its own JSON style (snake_case names, 64-bit numbers as JSON
//! numbers, creation times as Unix seconds), its own OpenAPI document (`/openapi.json`), and a
//! route with no gRPC counterpart (`GET /api/v1/users/search`). It serves GetUser, CreateUser,
//! ListUsers (one page), DeleteUser, a user's orders as NDJSON, and a raw-body upload on the
//! gateway's paths.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use backend::error::ApiError;
use backend::store::Store;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchyard_proto::upload::v1::{UploadInfo, UploadResult};
use switchyard_proto::user::v1::{CreateUserRequest, User};
use switchyard_proto::wkt::Timestamp;
use tokio::io::AsyncWriteExt;

/// Flags of `switchyard legacy-rest`.
#[derive(clap::Args, Debug, Clone)]
pub struct LegacyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Database URL (the same file as the backend's, to serve the same data).
    #[arg(long, default_value = "sqlite://data/switchyard.db")]
    pub database: String,
    /// Folder for uploaded files.
    #[arg(long, default_value = "data/legacy-uploads")]
    pub upload_dir: PathBuf,
}

#[derive(Clone)]
struct Legacy {
    store: Arc<dyn Store>,
    upload_dir: PathBuf,
}

/// A plain JSON error with the status a REST API would pick.
struct Failure(ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(e)
    }
}

impl From<backend::store::StoreError> for Failure {
    fn from(e: backend::store::StoreError) -> Self {
        Failure(ApiError::Store(e))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(ApiError::Io(e))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = tonic::Status::from(self.0);
        let http = match status.code() {
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::AlreadyExists | tonic::Code::Aborted => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({"code": status.code() as i32, "message": status.message(), "details": []});
        (http, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], serde_json::to_vec(value).unwrap_or_default()).into_response()
}

/// A user in the legacy API's own style.
#[derive(serde::Serialize)]
struct LegacyUser {
    id: String,
    name: String,
    email: String,
    age: i32,
    active: bool,
    roles: Vec<String>,
    metadata: HashMap<String, String>,
    created_at: LegacyCreatedAt,
    status: &'static str,
}

#[derive(serde::Serialize)]
struct LegacyCreatedAt {
    /// Unix seconds, a JSON number (the gRPC API prints int64 as a string).
    timestamp: i64,
    timezone: String,
}

impl From<User> for LegacyUser {
    fn from(u: User) -> Self {
        let status = u.status().as_str_name();
        let created = u.created_at.unwrap_or_default();
        LegacyUser {
            id: u.id,
            name: u.name,
            email: u.email,
            age: u.age,
            active: u.active,
            roles: u.roles,
            metadata: u.metadata.into_iter().collect(),
            created_at: LegacyCreatedAt { timestamp: created.timestamp, timezone: created.timezone },
            status,
        }
    }
}

/// An order in the legacy API's own style.
fn legacy_order(o: switchyard_proto::order::v1::Order) -> serde_json::Value {
    let items: Vec<serde_json::Value> = o
        .items
        .iter()
        .map(|i| serde_json::json!({"product_id": i.product_id, "name": i.name, "quantity": i.quantity, "price": i.price}))
        .collect();
    serde_json::json!({
        "order_id": o.order_id,
        "user_id": o.user_id,
        "items": items,
        "total": o.total,
        "status": o.status().as_str_name(),
        "created_at": o.created_at.map(|t| t.to_string()),
        "updated_at": o.updated_at.map(|t| t.to_string()),
    })
}

async fn get_user(State(app): State<Legacy>, Path(id): Path<String>) -> Result<Response, Failure> {
    Ok(json(&LegacyUser::from(app.store.get_user(&id).await?)))
}

async fn delete_user(State(app): State<Legacy>, Path(id): Path<String>) -> Result<Response, Failure> {
    app.store.delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_user(State(app): State<Legacy>, body: Bytes) -> Result<Response, Failure> {
    let req: CreateUserRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidArgument(format!("invalid JSON body: {e}")))?;
    Ok(json(&LegacyUser::from(backend::services::user::create_user(app.store.as_ref(), req).await?)))
}

async fn list_users(State(app): State<Legacy>, Query(q): Query<HashMap<String, String>>) -> Result<Response, Failure> {
    let size = q.get("pageSize").or_else(|| q.get("page_size")).and_then(|s| s.parse::<u32>().ok()).unwrap_or(50);
    let page = app.store.list_users(0, size.clamp(1, 1000)).await?;
    // One page is what the bench reads; the token is informative only.
    let next = page.next.map(|n| n.to_string()).unwrap_or_default();
    let users: Vec<LegacyUser> = page.users.into_iter().map(LegacyUser::from).collect();
    Ok(json(&serde_json::json!({"users": users, "next_page_token": next})))
}

/// `GET /api/v1/users/search?q=TEXT`: users whose name contains the text (the first 1000
/// users are searched). The gRPC API has no such call: it stays on the legacy API.
async fn search_users(
    State(app): State<Legacy>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let text = q.get("q").map(|s| s.to_lowercase()).unwrap_or_default();
    let page = app.store.list_users(0, 1000).await?;
    let users: Vec<LegacyUser> =
        page.users.into_iter().filter(|u| u.name.to_lowercase().contains(&text)).map(LegacyUser::from).collect();
    Ok(json(&serde_json::json!({"users": users})))
}

/// The legacy API's own OpenAPI document, as its team wrote it.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], LEGACY_OPENAPI).into_response()
}

const LEGACY_OPENAPI: &str = include_str!("legacy-openapi.json");

async fn user_orders(State(app): State<Legacy>, Path(id): Path<String>) -> Result<Response, Failure> {
    app.store.get_user(&id).await?;
    let lines = app.store.orders_of_user(&id, None).ready_chunks(256).map(|batch| {
        let mut buf = BytesMut::new();
        for order in batch {
            let order = legacy_order(order.map_err(std::io::Error::other)?);
            buf.extend_from_slice(b"{\"result\":");
            buf.extend_from_slice(&serde_json::to_vec(&order).map_err(std::io::Error::other)?);
            buf.extend_from_slice(b"}\n");
        }
        Ok::<_, std::io::Error>(buf.freeze())
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

async fn upload(State(app): State<Legacy>, body: Body) -> Result<Response, Failure> {
    let file_id = uuid::Uuid::new_v4().to_string();
    let part = app.upload_dir.join(format!(".{file_id}.part"));
    let file = tokio::fs::File::from_std(std::fs::File::create(&part)?);
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidArgument(format!("upload failed: {e}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    out.into_inner().sync_all().await?;
    tokio::fs::rename(&part, app.upload_dir.join(&file_id)).await?;
    let sha256 = hex::encode(hasher.finalize());
    let info = UploadInfo {
        file_id: file_id.clone(),
        upload_id: String::new(),
        size: size as i64,
        sha256: sha256.clone(),
        created_at: Some(Timestamp::now()),
    };
    app.store.insert_upload(&info).await?;
    Ok(json(&UploadResult { file_id, size: size as i64, success: true, sha256 }))
}

/// The legacy service's routes.
pub fn router(store: Arc<dyn Store>, upload_dir: PathBuf) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/users/search", get(search_users))
        .route("/api/v1/users/{id}", get(get_user).delete(delete_user))
        .route("/api/v1/users/{id}/orders", get(user_orders))
        .route("/api/v1/uploads", post(upload))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Legacy { store, upload_dir })
}

/// Serves the legacy API until `shutdown`.
pub async fn run(
    args: LegacyArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.upload_dir)?;
    let store = backend::store::open(&args.database).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("legacy REST API listening on http://{}", listener.local_addr()?);
    use axum::serve::ListenerExt;
    // NODELAY, as on the gateway: the comparison is about protocols, not Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(store, args.upload_dir)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
