//! `library-server`: a small gRPC service that is not part of Switchyard's reference API — the
//! kind of service a team already has. Switchyard's gateway fronts it without recompiling,
//! loading its API from a descriptor set ([`FILE_DESCRIPTOR_SET`]), from its `.proto` file, or
//! through the server reflection this server offers.
//!
//! Run with `cargo run -p library-example -- --listen 127.0.0.1:50061`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The generated messages, client and server.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("library.v1");
}

use pb::library_service_server::{LibraryService, LibraryServiceServer};
use pb::{ArchiveBookRequest, Book, CreateBookRequest, GetBookRequest, ListBooksRequest};

/// The encoded FileDescriptorSet of `library.proto` and its imports, as `protoc
/// --include_imports -o` would write it.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/library.bin"));

/// The books, in memory, by resource name.
#[derive(Default)]
pub struct Library {
    books: Mutex<BTreeMap<String, Book>>,
}

/// `shelves/{shelf}` must name a shelf, `shelves/{shelf}/books/{book}` a book.
fn check_name(name: &str, parts: usize) -> Result<(), Status> {
    let segments: Vec<&str> = name.split('/').collect();
    let ok = segments.len() == parts
        && segments.iter().all(|s| !s.is_empty())
        && segments[0] == "shelves"
        && (parts == 2 || segments[2] == "books");
    if ok { Ok(()) } else { Err(Status::invalid_argument(format!("{name:?} is not a valid resource name"))) }
}

#[tonic::async_trait]
impl LibraryService for Library {
    async fn get_book(&self, req: Request<GetBookRequest>) -> Result<Response<Book>, Status> {
        let name = req.into_inner().name;
        check_name(&name, 4)?;
        let books = self.books.lock().expect("books lock");
        books.get(&name).cloned().map(Response::new).ok_or_else(|| Status::not_found(format!("no book {name}")))
    }

    async fn create_book(&self, req: Request<CreateBookRequest>) -> Result<Response<Book>, Status> {
        let r = req.into_inner();
        check_name(&r.parent, 2)?;
        if r.book_id.is_empty() || r.book_id.contains('/') {
            return Err(Status::invalid_argument("book_id must be a non-empty name without '/'"));
        }
        let mut book = r.book.unwrap_or_default();
        book.name = format!("{}/books/{}", r.parent, r.book_id);
        let mut books = self.books.lock().expect("books lock");
        if books.contains_key(&book.name) {
            return Err(Status::already_exists(format!("{} already exists", book.name)));
        }
        books.insert(book.name.clone(), book.clone());
        Ok(Response::new(book))
    }

    type ListBooksStream = tokio_stream::Iter<std::vec::IntoIter<Result<Book, Status>>>;

    async fn list_books(&self, req: Request<ListBooksRequest>) -> Result<Response<Self::ListBooksStream>, Status> {
        let r = req.into_inner();
        check_name(&r.parent, 2)?;
        let prefix = format!("{}/books/", r.parent);
        let books = self.books.lock().expect("books lock");
        let found: Vec<Result<Book, Status>> = books
            .values()
            .filter(|b| b.name.starts_with(&prefix) && (r.genre == 0 || b.genre == r.genre))
            .cloned()
            .map(Ok)
            .collect();
        Ok(Response::new(tokio_stream::iter(found)))
    }

    async fn archive_book(&self, req: Request<ArchiveBookRequest>) -> Result<Response<Book>, Status> {
        let name = req.into_inner().name;
        check_name(&name, 4)?;
        let mut books = self.books.lock().expect("books lock");
        let book = books.get_mut(&name).ok_or_else(|| Status::not_found(format!("no book {name}")))?;
        book.archived = true;
        Ok(Response::new(book.clone()))
    }
}

/// Serves the library, with server reflection (v1 and v1alpha), on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let reflection =
        || tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(LibraryServiceServer::new(Library::default()))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
