//! What create and extension requests carry: their form (multipart, as the SDKs send it, or JSON)
//! and the reference image of image-to-video, given as an uploaded file or as a base64 `data:` URL.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use reel_media::ImageFit;
use serde_json::Value;

use crate::api::Limits;
use crate::error::ApiError;

/// A request's fields: text fields by name, uploaded files by field name.
#[derive(Debug, Default)]
pub struct Form {
    pub fields: HashMap<String, String>,
    pub files: HashMap<String, Bytes>,
}

impl Form {
    /// The first field left over, as the 400 OpenAI answers for unknown arguments.
    pub fn refuse_unknown(&self) -> Result<(), ApiError> {
        match self.fields.keys().chain(self.files.keys()).min() {
            Some(unknown) => Err(ApiError::invalid(Some(unknown), format!("unrecognized request argument supplied: {unknown}"))),
            None => Ok(()),
        }
    }
}

/// Reads a body as a form: `multipart/form-data` (parts with a file name, or named in
/// `file_fields`, are files; others must be among them) or a JSON object, whose values become text
/// fields and whose objects become `name[key]` fields, the way the SDKs spell them in multipart.
pub async fn read_form(limits: &Limits, request: Request, file_fields: &[&str]) -> Result<Form, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut form = Form::default();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            if field.file_name().is_some() || file_fields.contains(&name.as_str()) {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > limits.max_upload_bytes {
                    return Err(ApiError::too_large(format!("the upload '{name}' has {} bytes; the limit is {}", bytes.len(), limits.max_upload_bytes)));
                }
                if !file_fields.contains(&name.as_str()) {
                    return Err(ApiError::invalid(Some(&name), format!("unexpected file field '{name}'")));
                }
                form.files.insert(name, bytes);
            } else {
                form.fields.insert(name, field.text().await.map_err(multipart_error)?);
            }
        }
        return Ok(form);
    }
    let bytes = axum::body::to_bytes(request.into_body(), limits.max_body_bytes)
        .await
        .map_err(|_| ApiError::too_large(format!("the request body exceeds {} bytes", limits.max_body_bytes)))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| ApiError::invalid(None, "the body must be a JSON object"))?;
    for (name, value) in object {
        match value {
            Value::Object(inner) => {
                for (key, value) in inner {
                    if let Some(text) = json_text(value) {
                        form.fields.insert(format!("{name}[{key}]"), text);
                    }
                }
            }
            value => {
                if let Some(text) = json_text(value) {
                    form.fields.insert(name.clone(), text);
                }
            }
        }
    }
    Ok(form)
}

/// A JSON value as a form field's text (`null` is no field).
fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("the request body is too large: {e}"))
    } else {
        ApiError::invalid(None, format!("malformed multipart body: {e}"))
    }
}

/// The parameter every reference-image problem names.
pub const REFERENCE: &str = "input_reference";

/// A reference image as the request gives it, not yet decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub bytes: Vec<u8>,
    pub fit: ImageFit,
}

/// Takes the reference image out of a create form: the file `input_reference`, the field
/// `input_reference[image_url]` (or `input_reference` as text) holding a `data:image/...;base64,`
/// URL, and the fit `input_reference_fit`. Remote URLs and file ids are refused: reel fetches
/// nothing and has no Files API.
pub fn take_reference(form: &mut Form, limits: &Limits) -> Result<Option<Reference>, ApiError> {
    let fit = form
        .fields
        .remove("input_reference_fit")
        .map(|f| f.trim().parse::<ImageFit>().map_err(|e| ApiError::invalid(Some("input_reference_fit"), format!("input_reference_fit: {e}"))))
        .transpose()?;
    if let Some(file_id) = form.fields.remove("input_reference[file_id]") {
        return Err(ApiError::invalid(
            Some(REFERENCE),
            format!(
                "input_reference[file_id] ('{file_id}') names a file of OpenAI's Files API, which reel does not have: upload the image \
                 as the input_reference file, or give input_reference[image_url] as a data:image/...;base64,... URL"
            ),
        ));
    }
    let url = form.fields.remove("input_reference[image_url]").or_else(|| form.fields.remove(REFERENCE));
    let bytes = match (form.files.remove(REFERENCE), url) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(Some(REFERENCE), "give input_reference either as an uploaded file or as an image_url, not both"));
        }
        (Some(file), None) => file.to_vec(),
        (None, Some(url)) => decode_data_url(&url).map_err(|message| ApiError::invalid(Some(REFERENCE), message))?,
        (None, None) => {
            return match fit {
                Some(_) => Err(ApiError::invalid(Some("input_reference_fit"), "input_reference_fit applies only with an input_reference image")),
                None => Ok(None),
            };
        }
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid(Some(REFERENCE), "the input_reference image is empty"));
    }
    if bytes.len() > limits.max_upload_bytes {
        return Err(ApiError::too_large(format!("the input_reference image has {} bytes; the limit is {}", bytes.len(), limits.max_upload_bytes)));
    }
    Ok(Some(Reference { bytes, fit: fit.unwrap_or_default() }))
}

/// The name `ImageFit` parses from.
pub fn fit_name(fit: ImageFit) -> &'static str {
    match fit {
        ImageFit::Crop => "crop",
        ImageFit::Pad => "pad",
        ImageFit::Stretch => "stretch",
    }
}

/// Base64 with or without padding, as browsers and SDKs write it.
const BASE64: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// The bytes of a `data:image/...;base64,...` URL; errors say what is wrong with it.
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let url = url.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err("input_reference[image_url] is a remote URL, and reel does not fetch remote URLs: give the image itself, \
                    as a data:image/png;base64,... URL or as the uploaded input_reference file"
            .into());
    }
    let Some(rest) = url.get(..5).filter(|s| s.eq_ignore_ascii_case("data:")).map(|_| &url[5..]) else {
        return Err("input_reference[image_url] must be a data:image/...;base64,... URL (or upload the image as the input_reference file)".into());
    };
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| "input_reference[image_url] is not a valid data URL: it has no ',' between the media type and the data".to_string())?;
    let mut parts = header.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    if !media_type.starts_with("image/") {
        return Err(format!("input_reference[image_url] holds '{media_type}', not an image: give a data:image/png (or jpeg, webp, gif) URL"));
    }
    if !parts.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err("input_reference[image_url] must be base64-encoded: data:image/png;base64,...".into());
    }
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64.decode(data.as_bytes()).map_err(|e| format!("input_reference[image_url] is not valid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_and_bad_ones_say_why() {
        assert_eq!(decode_data_url("data:image/png;base64,iVBORw==").unwrap(), [0x89, b'P', b'N', b'G']);
        assert_eq!(decode_data_url(" DATA:image/PNG;base64,iVBORw \n").unwrap(), [0x89, b'P', b'N', b'G']);
        let err = |url: &str| decode_data_url(url).unwrap_err();
        assert!(err("https://example.com/a.png").contains("does not fetch remote URLs"));
        assert!(err("HTTP://example.com/a.png").contains("does not fetch remote URLs"));
        assert!(err("file:///etc/passwd").contains("must be a data:image"));
        assert!(err("data:image/png;base64").contains("no ','"));
        assert!(err("data:text/plain;base64,aGk=").contains("not an image"));
        assert!(err("data:image/png,rawbytes").contains("base64-encoded"));
        assert!(err("data:image/png;base64,***").contains("not valid base64"));
    }

    #[test]
    fn references_come_from_files_urls_or_json_text() {
        let limits = Limits::default();
        let mut form = Form::default();
        assert_eq!(take_reference(&mut form, &limits).unwrap(), None);
        form.files.insert(REFERENCE.into(), Bytes::from_static(b"png"));
        form.fields.insert("input_reference_fit".into(), "pad".into());
        assert_eq!(take_reference(&mut form, &limits).unwrap(), Some(Reference { bytes: b"png".to_vec(), fit: ImageFit::Pad }));
        assert!(form.fields.is_empty() && form.files.is_empty());
        form.fields.insert("input_reference".into(), "data:image/png;base64,cG5n".into());
        assert_eq!(take_reference(&mut form, &limits).unwrap().unwrap().fit, ImageFit::Crop);
        form.fields.insert("input_reference[file_id]".into(), "file-123".into());
        assert!(take_reference(&mut form, &limits).unwrap_err().message.contains("Files API"));
        form.fields.insert("input_reference_fit".into(), "squash".into());
        assert_eq!(take_reference(&mut form, &limits).unwrap_err().param.as_deref(), Some("input_reference_fit"));
        form.fields.insert("input_reference_fit".into(), "pad".into());
        assert_eq!(take_reference(&mut form, &limits).unwrap_err().param.as_deref(), Some("input_reference_fit"));
    }
}
