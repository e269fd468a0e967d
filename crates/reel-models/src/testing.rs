//! Helpers for parity tests against the reference fixtures in `tests/fixtures/` (written by
//! `scripts/fixtures/*.py`). A missing fixture is a test failure that says how to make it.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The repository's `tests/fixtures` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A path under `tests/fixtures`, which must exist.
pub fn fixture(relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    assert!(
        path.exists(),
        "parity fixture {} is missing: regenerate it with the reference scripts in scripts/fixtures/",
        path.display()
    );
    path
}

/// All tensors of a fixture file, on the CPU.
pub fn load_tensors(relative: &str) -> HashMap<String, Tensor> {
    let path = fixture(relative);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read parity fixture {}: {e}", path.display()))
}

/// One named tensor of a loaded fixture.
pub fn take(tensors: &HashMap<String, Tensor>, name: &str) -> Tensor {
    tensors
        .get(name)
        .unwrap_or_else(|| panic!("parity fixture has no tensor '{name}'"))
        .clone()
}

/// ||actual - expected|| / ||expected|| over the whole tensor, in f64.
pub fn relative_error(actual: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let a = actual.to_device(&Device::Cpu).and_then(|t| t.to_dtype(DType::F64)).unwrap();
    let e = expected.to_device(&Device::Cpu).and_then(|t| t.to_dtype(DType::F64)).unwrap();
    let diff = (&a - &e).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let norm = e.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(norm > 0.0, "reference tensor is all zeros: it cannot test anything");
    (diff / norm).sqrt()
}

/// Asserts the relative error is within `tolerance`, naming the case.
pub fn assert_close(case: &str, actual: &Tensor, expected: &Tensor, tolerance: f64) {
    let error = relative_error(actual, expected);
    assert!(
        error <= tolerance,
        "{case}: relative error {error:.3e} exceeds the tolerance {tolerance:.0e}"
    );
    eprintln!("{case}: relative error {error:.3e} (tolerance {tolerance:.0e})");
}

/// The device parity tests run on: `REEL_TEST_DEVICE` (cpu, cuda, cuda:N, metal), CPU by default.
pub fn test_device() -> Device {
    let name = std::env::var("REEL_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    crate::device::parse_device(&name).unwrap_or_else(|e| panic!("REEL_TEST_DEVICE: {e}"))
}

/// Copies a folder tree (fixtures into a temporary folder a test may change).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
