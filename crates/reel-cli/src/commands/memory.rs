//! Resident memory of this process, from the kernel (Linux; elsewhere unknown).

/// Peak resident memory since start or since the last [`reset_peak_memory`], in bytes.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the kernel's peak-RSS counter of this process.
pub fn reset_peak_memory() {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+); failure only means the
    // peak is measured from the process start instead.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
