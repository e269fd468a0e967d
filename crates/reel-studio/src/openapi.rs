//! The OpenAPI 3.1 description served at `/openapi.json`: the Videos API as reel implements it,
//! including reel's optional extensions to create (seed, steps, guidance, negative_prompt, fps,
//! input_reference_fit) and its films (a storyboard made into one narrated, subtitled video).

use serde_json::{json, Value};

/// Every route the router serves, as (method, path) pairs of this document (tested against each other).
pub const ROUTES: [(&str, &str); 14] = [
    ("get", "/v1/models"),
    ("post", "/v1/videos"),
    ("get", "/v1/videos"),
    ("get", "/v1/videos/{video_id}"),
    ("delete", "/v1/videos/{video_id}"),
    ("get", "/v1/videos/{video_id}/content"),
    ("post", "/v1/videos/{video_id}/remix"),
    ("post", "/v1/videos/edits"),
    ("post", "/v1/videos/extensions"),
    ("post", "/v1/videos/characters"),
    ("get", "/v1/videos/characters/{character_id}"),
    ("post", "/v1/films"),
    ("get", "/v1/films/{video_id}"),
    ("post", "/v1/estimates"),
];

fn error_responses() -> Value {
    let error = json!({"description": "An error in OpenAI's shape", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({"400": error, "401": error, "404": error, "409": error, "413": error, "429": error})
}

fn video_response() -> Value {
    json!({"200": {"description": "The video", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Video"}}}}})
}

fn with_errors(mut responses: Value) -> Value {
    responses.as_object_mut().expect("object").extend(error_responses().as_object().expect("object").clone());
    responses
}

fn video_id_param() -> Value {
    json!({"name": "video_id", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn unsupported(summary: &str) -> Value {
    json!({"summary": format!("{summary} (not supported yet: answers 400 with code `unsupported`)"), "responses": error_responses()})
}

pub fn document() -> Value {
    let create_fields = json!({
        "prompt": {"type": "string", "description": "What the video shows"},
        "model": {"type": "string", "description": "A served model (GET /v1/models); sora-2 and sora-2-pro mean the default model"},
        "size": {"type": "string", "description": "WIDTHxHEIGHT; defaults to the model's size"},
        "seconds": {"type": "string", "description": "Length in seconds; defaults to the model's clip length"},
        "input_reference": {"description": "Image-to-video: the image the video starts from (PNG, JPEG, WebP or GIF), as an uploaded file \
            (multipart), or as an object whose image_url is a data:image/...;base64,... URL (multipart: the field input_reference[image_url]). \
            reel fetches no remote URLs and has no Files API: http(s) URLs and file_id are refused with 400. Needs a model that starts \
            from given frames (the demo model, Wan2.2-TI2V-5B).",
            "oneOf": [{"type": "string", "format": "binary"}, {"$ref": "#/components/schemas/ImageInputReference"}]},
        "input_reference_fit": {"type": "string", "enum": ["crop", "pad", "stretch"], "default": "crop",
            "description": "reel extension: how an image of another size or shape becomes the first frame: crop (cover and cut the overflow), \
            pad (fit inside with black bars) or stretch"},
        "seed": {"type": "integer", "description": "reel extension: seed of the noise (same seed, same video)"},
        "steps": {"type": "integer", "description": "reel extension: denoising steps"},
        "guidance": {"type": "number", "description": "reel extension: classifier-free guidance scale"},
        "negative_prompt": {"type": "string", "description": "reel extension: what the video should not show"},
        "fps": {"type": "number", "description": "reel extension: frames per second"}
    });
    let create_schema = json!({"type": "object", "required": ["prompt"], "properties": create_fields});
    let extend_fields = json!({
        "prompt": {"type": "string", "description": "What the continuation shows"},
        "seconds": {"type": "string", "enum": ["4", "8", "12", "16", "20"], "description": "Length of the new part; the new video's `seconds` is the stitched total"},
        "video": {"description": "The video to continue: {\"id\": ...}, a completed video of this studio (multipart: the field video[id]), \
            or an uploaded H.264 MP4 file",
            "oneOf": [{"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}, {"type": "string", "format": "binary"}]},
        "model": {"type": "string", "description": "reel extension, uploads only: the model that continues the video (an extension of a video of this studio uses its model)"},
        "seed": {"type": "integer", "description": "reel extension: seed of the noise"},
        "steps": {"type": "integer", "description": "reel extension: denoising steps (default: the source's)"},
        "guidance": {"type": "number", "description": "reel extension: classifier-free guidance scale (default: the source's)"},
        "negative_prompt": {"type": "string", "description": "reel extension: what the video should not show"}
    });
    let extend_schema = json!({"type": "object", "required": ["prompt", "seconds", "video"], "properties": extend_fields});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "reel Videos API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "OpenAI-compatible Videos API served by reel. Authenticate with `Authorization: Bearer <key>`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/models": {"get": {"summary": "List served models", "responses": with_errors(json!({"200": {"description": "Models"}}))}},
            "/v1/videos": {
                "post": {"summary": "Create a video", "requestBody": {"required": true, "content": {
                    "application/json": {"schema": create_schema}, "multipart/form-data": {"schema": create_schema}}},
                    "responses": with_errors(video_response())},
                "get": {"summary": "List videos (cursor pagination)", "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"}}],
                    "responses": with_errors(json!({"200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VideoList"}}}}}))}
            },
            "/v1/videos/{video_id}": {
                "get": {"summary": "Retrieve a video", "parameters": [video_id_param()], "responses": with_errors(video_response())},
                "delete": {"summary": "Delete a video and its files", "parameters": [video_id_param()],
                           "responses": with_errors(json!({"200": {"description": "Deleted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Deleted"}}}}}))}
            },
            "/v1/videos/{video_id}/content": {"get": {"summary": "Download the video, its thumbnail or its spritesheet",
                "parameters": [video_id_param(), {"name": "variant", "in": "query", "schema": {"type": "string", "enum": ["video", "thumbnail", "spritesheet", "subtitles", "subtitles_srt"], "default": "video",
                    "description": "subtitles (WebVTT) and subtitles_srt (SubRip) are reel extensions, for films"}}],
                "responses": with_errors(json!({"200": {"description": "The file", "content": {"video/mp4": {}, "image/webp": {}, "image/jpeg": {}, "text/vtt": {}, "application/x-subrip": {}}}, "410": {"description": "Expired"}}))}},
            "/v1/videos/{video_id}/remix": {"post": {"summary": "Remix a completed video with a new prompt (same settings, seed, reference image; an extension is extended again from the same source)",
                "parameters": [video_id_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}}}}},
                "responses": with_errors(video_response())}},
            "/v1/videos/edits": {"post": unsupported("Edit a video")},
            "/v1/videos/extensions": {"post": {"summary": "Extend a completed video: its frames, then seconds more from its last frames with a new prompt \
                (same model, size and frame rate). 404 for an unknown video, 409 for one not completed (failed ones included).",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": extend_schema}, "application/json": {"schema": extend_schema}}},
                "responses": with_errors(video_response())}},
            "/v1/videos/characters": {"post": unsupported("Create a character")},
            "/v1/videos/characters/{character_id}": {"get": unsupported("Retrieve a character")},
            "/v1/films": {"post": {"summary": "reel extension: make a film from a storyboard (docs/storyboard.md); its model names a served model, `demo` the bundled one",
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"description": "A storyboard (docs/storyboard.schema.json)", "type": "object"}},
                    "application/yaml": {"schema": {"type": "string", "description": "A storyboard in YAML"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["storyboard"], "properties": {"storyboard": {"type": "string", "format": "binary", "description": "A .yaml, .yml or .json storyboard file"}}}}}},
                "responses": with_errors(json!({"200": {"description": "The film", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Film"}}}}}))}},
            "/v1/estimates": {"post": {"summary": "reel extension: estimate the work, time, cost, energy and memory of a video request before queueing it",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "model": {"type": "string"}, "size": {"type": "string"}, "seconds": {"type": "string"}, "fps": {"type": "number"},
                    "steps": {"type": "integer"}, "guidance": {"type": "number"}, "prompt": {"type": "string", "description": "optional, ignored"},
                    "gpu": {"type": "string", "default": "cpu", "description": "cpu (this server, measured), h100, h200, h800, a100, a800, l40s or rtx4090"},
                    "count": {"type": "integer", "default": 1}, "utilisation": {"type": "number"}, "price_per_hour": {"type": "number"}}}}}},
                "responses": with_errors(json!({"200": {"description": "The estimate: stages with FLOPs, seconds and memory; totals; assumptions"}}))}},
            "/v1/films/{video_id}": {"get": {"summary": "reel extension: retrieve a film with each shot's status", "parameters": [video_id_param()],
                "responses": with_errors(json!({"200": {"description": "The film", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Film"}}}}}))}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Video": {"type": "object", "required": ["id", "object", "created_at", "model", "progress", "seconds", "size", "status"], "properties": {
                    "id": {"type": "string"}, "object": {"const": "video"}, "created_at": {"type": "integer"},
                    "completed_at": {"type": ["integer", "null"]}, "expires_at": {"type": ["integer", "null"]},
                    "error": {"type": ["object", "null"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                    "model": {"type": "string"}, "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                    "prompt": {"type": ["string", "null"]}, "remixed_from_video_id": {"type": ["string", "null"]},
                    "extended_from_video_id": {"type": ["string", "null"], "description": "reel extension: the video an extension continues"},
                    "seconds": {"type": "string"}, "size": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "in_progress", "completed", "failed"]},
                    "seed": {"type": "integer", "description": "reel extension: the seed used"},
                    "warning": {"type": "string", "description": "reel extension, present when the video differs from its request: \
                        a prompt longer than the model's text encoder reads was cut (the message says by how many tokens)"}}},
                "Film": {"description": "A video made from a storyboard: every field of Video (object aside), its title and its shots; \
                    listed among the videos, where it has object `video` and its shots", "type": "object", "properties": {"object": {"const": "film"}, "title": {"type": "string"},
                    "shots": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "prompt": {"type": "string"},
                        "duration": {"type": "number"}, "status": {"type": "string", "enum": ["queued", "rendering", "cached", "completed"]},
                        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                        "warning": {"type": "string", "description": "Present when the shot will not be made quite as written (a prompt too long for the text encoder)"}}}}}},
                "VideoList": {"type": "object", "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Video"}},
                    "first_id": {"type": ["string", "null"]}, "last_id": {"type": ["string", "null"]}, "has_more": {"type": "boolean"}}},
                "ImageInputReference": {"type": "object", "properties": {
                    "image_url": {"type": "string", "description": "A data:image/...;base64,... URL"},
                    "file_id": {"type": "string", "description": "Not supported: reel has no Files API (400)"}}},
                "Deleted": {"type": "object", "properties": {"id": {"type": "string"}, "object": {"const": "video.deleted"}, "deleted": {"type": "boolean"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing from openapi.json");
        }
        assert_eq!(doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum::<usize>(), ROUTES.len());
    }
}
