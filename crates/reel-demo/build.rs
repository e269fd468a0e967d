//! Embeds the trained demo checkpoint (`models/demo` at the repository root) into the library, so
//! the `reel` binary carries its model wherever it is copied. Without a checkpoint the list is
//! empty and reel says so at run time.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, root, files);
        } else if path.extension().is_some_and(|e| e == "json" || e == "safetensors") {
            let relative = path.strip_prefix(root).expect("inside root").to_string_lossy().replace('\\', "/");
            files.push((relative, path.canonicalize().expect("existing file")));
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../models/demo");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    for (_, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let entries: String = files
        .iter()
        .map(|(name, path)| format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()))
        .collect();
    let code = format!("/// The files of the bundled checkpoint: (relative path, contents).\npub static FILES: &[(&str, &[u8])] = &[\n{entries}];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled_files.rs");
    std::fs::write(out, code).unwrap();
}
