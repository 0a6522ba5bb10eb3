//! The admin API (`--admin-token`): documents read as JSON or exported, imported, and deleted
//! for good, by whoever holds the token.
//!
//! - `GET /v1/docs/{id}`: the document as JSON; `GET /v1/docs/{id}/export`: its saved bytes.
//!   Both 404 when this server holds no such document (or it was deleted).
//! - `POST /v1/docs` with saved bytes: a new document, stored before the answer (201,
//!   `{"url": "automerge:…"}`).
//! - `DELETE /v1/docs/{id}`: removed from memory and storage, with a tombstone that keeps any
//!   client still holding it from bringing it back (204).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tandem_repo::{DocHandle, DocumentRef, Repo, RepoError};
use tracing::{info, warn};

/// What the admin API needs.
#[derive(Clone)]
pub(crate) struct Admin {
    /// The bearer token every request must carry.
    pub(crate) token: String,
    pub(crate) repo: Repo,
    /// The largest document a `POST` may carry.
    pub(crate) max_body: usize,
}

/// Answers a request under `/v1/`.
pub(crate) async fn handle(admin: &Admin, request: Request) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !authorization.is_some_and(|token| same_secret(token.trim(), &admin.token)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the admin token is required (Authorization: Bearer)\n",
        )
            .into_response();
    }
    let path = request.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = request.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::POST, ["v1", "docs"]) => create(admin, request.into_body()).await,
        (&Method::GET, ["v1", "docs", id]) => match held(admin, id).await {
            Ok(handle) => match handle.to_json() {
                Ok(value) => axum::Json(value).into_response(),
                Err(error @ tandem_repo::HandleError::TooDeep(_)) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, format!("{error}\n")).into_response()
                }
                Err(_) => not_found(),
            },
            Err(response) => response,
        },
        (&Method::GET, ["v1", "docs", id, "export"]) => match held(admin, id).await {
            Ok(handle) => match handle.with_doc(|doc| doc.save()) {
                Ok(bytes) => {
                    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
                }
                Err(_) => not_found(),
            },
            Err(response) => response,
        },
        (&Method::DELETE, ["v1", "docs", id]) => {
            let document_id = match id.to_document_id() {
                Ok(document_id) => document_id,
                Err(error) => return bad_request(error),
            };
            match admin.repo.delete(&document_id).await {
                Ok(()) => {
                    info!(%document_id, "document deleted through the admin API");
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(error) => failed(error),
            }
        }
        (_, ["v1", "docs", ..]) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, POST (on /v1/docs) or DELETE\n",
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The document if this server holds it (in memory or storage): a document only clients hold
/// is not the server's (they are not asked), and a deleted one is gone.
async fn held(admin: &Admin, id: &str) -> Result<DocHandle, Response> {
    let document_id = id.to_document_id().map_err(bad_request)?;
    match admin.repo.find_stored(&document_id).await {
        Ok(handle) => Ok(handle),
        Err(RepoError::Unavailable(_) | RepoError::Deleted(_)) => Err(not_found()),
        Err(error) => Err(failed(error)),
    }
}

async fn create(admin: &Admin, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, admin.max_body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a document may hold at most {} bytes\n", admin.max_body),
            )
                .into_response()
        }
    };
    let handle = match admin.repo.import(&bytes).await {
        Ok(handle) => handle,
        Err(error @ RepoError::InvalidDocument(_)) => return bad_request(error),
        Err(error) => return failed(error),
    };
    // Answered only once stored: the caller may hand the URL out at once.
    if let Err(error) = admin
        .repo
        .flush_documents([handle.document_id().clone()])
        .await
    {
        return failed(error);
    }
    info!(document_id = %handle.document_id(), bytes = bytes.len(), "document imported through the admin API");
    (
        StatusCode::CREATED,
        axum::Json(json!({ "url": handle.url().to_string() })),
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such document\n").into_response()
}

fn bad_request(error: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response()
}

fn failed(error: RepoError) -> Response {
    warn!(%error, "admin request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response()
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
