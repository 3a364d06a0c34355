//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<tag-or-digest>`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::{parse_digest, ApiResult, App, CONTENT_DIGEST, OCI_SUBJECT};
use crate::digest::{Algorithm, Digest};
use crate::error::{ApiError, ErrorCode};
use crate::manifest;
use crate::names::valid_tag;
use crate::storage::ManifestMeta;

enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(r: &str) -> Result<Reference, ApiError> {
    if r.contains(':') {
        return parse_digest(r).map(Reference::Digest);
    }
    if valid_tag(r) {
        Ok(Reference::Tag(r.to_string()))
    } else {
        Err(ApiError::new(ErrorCode::ManifestInvalid)
            .message("invalid tag")
            .detail(json!({ "tag": r })))
    }
}

fn unknown(reference: &str) -> ApiError {
    ApiError::new(ErrorCode::ManifestUnknown).detail(json!({ "reference": reference }))
}

/// For reads and deletes a malformed tag names nothing, so it is unknown (404) rather than
/// invalid; only pushes reject it as a bad request.
fn lookup_reference(r: &str) -> Result<Reference, ApiError> {
    match parse_reference(r) {
        Err(_) if !r.contains(':') => Err(unknown(r)),
        other => other,
    }
}

async fn resolve(app: &App, name: &str, reference: &str) -> Result<Digest, ApiError> {
    match lookup_reference(reference)? {
        Reference::Digest(d) => Ok(d),
        Reference::Tag(t) => app
            .storage
            .resolve_tag(name, &t)
            .await?
            .ok_or_else(|| unknown(reference)),
    }
}

pub async fn get(app: &App, name: &str, reference: &str, head: bool) -> ApiResult {
    let digest = resolve(app, name, reference).await?;
    let meta = app
        .storage
        .manifest_meta(name, &digest)
        .await?
        .ok_or_else(|| unknown(reference))?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, meta.media_type.as_str())
        .header(header::CONTENT_LENGTH, meta.size)
        .header(header::ETAG, format!("\"{digest}\""))
        .header(CONTENT_DIGEST, digest.to_string());
    let body = if head {
        Body::empty()
    } else {
        Body::from(app.storage.read_blob_bytes(&digest).await?)
    };
    builder.body(body).map_err(ApiError::internal)
}

pub async fn put(app: &App, name: &str, reference: &str, req: Request) -> ApiResult {
    let reference = parse_reference(reference)?;
    let limit = app.limits.max_manifest_bytes;
    let too_large = || {
        ApiError::new(ErrorCode::SizeInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .message(format!("manifest larger than {limit} bytes"))
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::new(ErrorCode::ManifestInvalid)
                .message(format!("reading manifest body: {e}")))
        }
    };
    let parsed = manifest::parse(content_type.as_deref(), &body).map_err(|e| {
        ApiError::new(ErrorCode::ManifestInvalid).detail(json!({ "reason": e.to_string() }))
    })?;
    let digest = match &reference {
        Reference::Digest(d) => {
            let actual = Digest::of(d.algorithm(), &body);
            if actual != *d {
                return Err(ApiError::new(ErrorCode::DigestInvalid).detail(json!({
                    "expected": d.to_string(),
                    "actual": actual.to_string(),
                })));
            }
            actual
        }
        Reference::Tag(_) => Digest::of(Algorithm::Sha256, &body),
    };

    // Shared for the whole check-then-store, so collection cannot delete a referenced blob
    // between the two.
    let _gc = app.storage.gc_lock().read().await;
    let mut missing: Option<ApiError> = None;
    let mut note_missing = |d: &Digest| {
        let detail = json!({ "digest": d.to_string() });
        missing = Some(match missing.take() {
            None => ApiError::new(ErrorCode::ManifestBlobUnknown).detail(detail),
            Some(e) => e.push(ErrorCode::ManifestBlobUnknown, detail),
        });
    };
    for b in parsed.blobs.iter().filter(|b| !b.external) {
        let present = app.storage.blob_linked(name, &b.digest).await?
            && app.storage.blob_size(&b.digest).await?.is_some();
        if !present {
            note_missing(&b.digest);
        }
    }
    for m in &parsed.manifests {
        if app.storage.manifest_meta(name, &m.digest).await?.is_none() {
            note_missing(&m.digest);
        }
    }
    if let Some(e) = missing {
        return Err(e);
    }

    let meta = ManifestMeta {
        media_type: parsed.media_type.clone(),
        size: body.len() as u64,
        artifact_type: parsed.artifact_type.clone(),
        subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
        annotations: parsed.annotations.clone(),
    };
    app.storage.put_manifest(name, &digest, &meta, body).await?;
    if let Some(subject) = &parsed.subject {
        let mut desc = json!({
            "mediaType": meta.media_type,
            "digest": digest.to_string(),
            "size": meta.size,
        });
        if let Some(at) = &meta.artifact_type {
            desc["artifactType"] = json!(at);
        }
        if let Some(a) = &meta.annotations {
            desc["annotations"] = a.clone();
        }
        app.storage
            .add_referrer(name, &subject.digest, &digest, desc)
            .await?;
    }
    if let Reference::Tag(t) = &reference {
        app.storage.set_tag(name, t, &digest).await?;
    }
    app.metrics.manifest_pushed();
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header(header::CONTENT_LENGTH, 0)
        .header(CONTENT_DIGEST, digest.to_string());
    if let Some(subject) = &parsed.subject {
        builder = builder.header(OCI_SUBJECT, subject.digest.to_string());
    }
    builder.body(Body::empty()).map_err(ApiError::internal)
}

pub async fn delete(app: &App, name: &str, reference: &str) -> ApiResult {
    let found = match lookup_reference(reference)? {
        Reference::Digest(d) => app.storage.delete_manifest(name, &d).await?,
        Reference::Tag(t) => app.storage.delete_tag(name, &t).await?,
    };
    if !found {
        return Err(unknown(reference));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(ApiError::internal)
}
