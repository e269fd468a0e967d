//! A wrong or partial checkpoint folder gives an error that names the file and the tensors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use reel_models::testing::{copy_dir, fixture};
use reel_models::wan::WanTransformer;
use reel_models::weights::ComponentFolder;

/// A copy of the tiny Wan2.2-TI2V transformer folder that a test may break.
fn copy_of_ti2v() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-wan2.2-ti2v/transformer"), dir.path());
    dir
}

fn load_error(dir: &Path) -> String {
    match ComponentFolder::open(dir).and_then(|folder| WanTransformer::load(&folder, DType::F32, &Device::Cpu)) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let file = dir.join("diffusion_pytorch_model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &file).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn missing_folder_and_config_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_error(&dir.path().join("nowhere"));
    assert!(err.contains("nowhere") && err.contains("not a folder"), "{err}");
    let err = load_error(dir.path());
    assert!(err.contains("config.json") && err.contains("is missing"), "{err}");
}

#[test]
fn malformed_config_names_the_file() {
    let dir = copy_of_ti2v();
    std::fs::write(dir.path().join("config.json"), "{\"num_layers\": ").unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("config.json") && err.contains("not a valid model config"), "{err}");
}

#[test]
fn folder_without_weights_says_what_is_expected() {
    let dir = copy_of_ti2v();
    std::fs::remove_file(dir.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("no weights") && err.contains("diffusion_pytorch_model.safetensors"), "{err}");
}

#[test]
fn missing_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-wan2.1/transformer"), dir.path());
    std::fs::remove_file(dir.path().join("diffusion_pytorch_model-00002-of-00004.safetensors")).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("diffusion_pytorch_model-00002-of-00004.safetensors") && err.contains("missing"), "{err}");
}

#[test]
fn truncated_weights_file_is_named() {
    let dir = copy_of_ti2v();
    let file = dir.path().join("diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("diffusion_pytorch_model.safetensors") && err.contains("corrupt"), "{err}");
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_all_listed() {
    let dir = copy_of_ti2v();
    edit_weights(dir.path(), |tensors| {
        tensors.remove("blocks.1.ffn.net.2.weight").unwrap();
        let bias = tensors.remove("proj_out.bias").unwrap();
        tensors.insert("proj_out.extra_bias".into(), bias);
        let table = tensors.remove("scale_shift_table").unwrap();
        tensors.insert("scale_shift_table".into(), table.reshape((2, 48)).unwrap());
    });
    let err = load_error(dir.path());
    for expected in [
        "missing tensors",
        "blocks.1.ffn.net.2.weight [48, 96]",
        "proj_out.bias",
        "wrong shape",
        "scale_shift_table: expected [1, 2, 48], found [2, 48]",
        "unexpected tensors",
        "proj_out.extra_bias",
    ] {
        assert!(err.contains(expected), "error lacks '{expected}':\n{err}");
    }
}

#[test]
fn config_of_another_size_lists_what_is_missing() {
    let dir = copy_of_ti2v();
    edit_config(dir.path(), |config| config["num_layers"] = 4.into());
    let err = load_error(dir.path());
    // Two extra blocks of 25 tensors each: twelve are named, the rest counted.
    assert!(err.contains("50 missing tensors") && !err.contains("blocks.3.") && err.contains("and 38 more"), "{err}");
}

#[test]
fn image_branch_weights_missing_from_a_checkpoint_are_named() {
    // A config with Wan2.1-I2V's image branch over weights without it.
    let dir = copy_of_ti2v();
    edit_config(dir.path(), |config| {
        config["image_dim"] = 40.into();
        config["added_kv_proj_dim"] = 48.into();
    });
    let err = load_error(dir.path());
    assert!(err.contains("missing tensors") && err.contains("condition_embedder.image_embedder") && err.contains("attn2.add_k_proj"), "{err}");
    // An image branch whose added keys and values are not the model's width is refused by name.
    edit_config(dir.path(), |config| config["added_kv_proj_dim"] = 32.into());
    let err = load_error(dir.path());
    assert!(err.contains("added_kv_proj_dim") && err.contains("width 48"), "{err}");
}

#[test]
fn parameters_are_counted_from_every_shard_and_a_corrupt_one_is_named() {
    let folder = ComponentFolder::open(fixture("tiny-wan2.1/transformer")).unwrap();
    assert!(folder.weight_files().len() > 1, "the fixture should be sharded");
    let loaded: usize = folder
        .weight_files()
        .iter()
        .flat_map(|file| candle_core::safetensors::load(file, &Device::Cpu).unwrap().into_values())
        .map(|tensor| tensor.elem_count())
        .sum();
    assert_eq!(folder.parameter_count().unwrap(), loaded as u64);

    let dir = copy_of_ti2v();
    let file = dir.path().join("diffusion_pytorch_model.safetensors");
    std::fs::write(&file, b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}").unwrap();
    let err = ComponentFolder::open(dir.path()).unwrap().parameter_count().unwrap_err().to_string();
    assert!(err.contains("diffusion_pytorch_model.safetensors") && err.contains("corrupt"), "{err}");
}
