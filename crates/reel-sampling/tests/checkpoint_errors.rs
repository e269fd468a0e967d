//! Incomplete or mismatched checkpoint folders are refused with errors that name what is wrong.

use std::path::Path;

use reel_models::testing::{copy_dir, fixture};
use reel_sampling::checkpoint::WanCheckpoint;

fn copy_of(model: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(model), dir.path());
    dir
}

fn open_error(dir: &Path) -> String {
    WanCheckpoint::open(dir).err().map(|e| e.to_string()).expect("opening should fail")
}

#[test]
fn a_component_folder_is_not_a_checkpoint() {
    let err = open_error(&fixture("tiny-wan2.1/transformer"));
    assert!(err.contains("model_index.json") && err.contains("whole checkpoint"), "{err}");
}

#[test]
fn missing_components_are_listed() {
    let dir = copy_of("tiny-wan2.1");
    std::fs::remove_dir_all(dir.path().join("tokenizer")).unwrap();
    std::fs::remove_dir_all(dir.path().join("vae")).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("vae, tokenizer") && err.contains("incomplete"), "{err}");
}

#[test]
fn a_second_expert_without_boundary_is_refused() {
    let dir = copy_of("tiny-wan2.2-a14b");
    let index_path = dir.path().join("model_index.json");
    let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index.as_object_mut().unwrap().remove("boundary_ratio");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("boundary_ratio"), "{err}");
}

#[test]
fn another_pipeline_class_is_refused() {
    let dir = copy_of("tiny-wan2.1");
    let index_path = dir.path().join("model_index.json");
    let text = std::fs::read_to_string(&index_path).unwrap().replace("\"WanPipeline\"", "\"LTXPipeline\"");
    std::fs::write(&index_path, text).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("LTXPipeline") && err.contains("WanImageToVideoPipeline"), "{err}");
}

#[test]
fn an_image_to_video_checkpoint_without_its_clip_encoder_is_incomplete() {
    let dir = copy_of("tiny-wan2.1-i2v");
    std::fs::remove_dir_all(dir.path().join("image_encoder")).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("image_encoder") && err.contains("incomplete"), "{err}");
}

#[test]
fn vae_and_transformer_of_different_models_are_refused() {
    let dir = copy_of("tiny-wan2.1");
    std::fs::remove_dir_all(dir.path().join("vae")).unwrap();
    copy_dir(&fixture("tiny-wan2.2-ti2v/vae"), &dir.path().join("vae"));
    let checkpoint = WanCheckpoint::open(dir.path()).unwrap();
    let err = checkpoint.geometry().unwrap_err().to_string();
    assert!(err.contains("6 latent channels") && err.contains("expects 4"), "{err}");
}

#[test]
fn a_corrupt_scheduler_config_names_the_file() {
    let dir = copy_of("tiny-wan2.1");
    std::fs::write(dir.path().join("scheduler/scheduler_config.json"), "{\"_class_name\": ").unwrap();
    let checkpoint = WanCheckpoint::open(dir.path()).unwrap();
    let err = checkpoint.scheduler_config().unwrap_err().to_string();
    assert!(err.contains("scheduler_config.json") && err.contains("invalid scheduler config"), "{err}");
}
