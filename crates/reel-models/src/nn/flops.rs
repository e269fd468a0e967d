//! Counting the floating-point operations a model really performs: the matrix products of linear
//! layers and attention record themselves here while a count is running, so that cost formulas
//! (reel's estimator) can be checked against the code they describe.

use std::cell::Cell;

thread_local! {
    /// The running count on this thread, or `None` when nobody counts (then recording is free).
    static COUNT: Cell<Option<f64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the FLOPs (a multiply-add counts two) of the matrix
/// products it performed on this thread.
pub fn count_flops<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let outer = COUNT.with(|c| c.replace(Some(0.0)));
    let result = f();
    let counted = COUNT.with(|c| c.replace(outer)).unwrap_or(0.0);
    // A count running outside this one includes what this one saw.
    COUNT.with(|c| c.set(c.get().map(|outer| outer + counted)));
    (result, counted)
}

/// Records a product of an (m, k) by a (k, n) matrix, `batch` times.
pub(crate) fn record_matmul(batch: usize, m: usize, k: usize, n: usize) {
    COUNT.with(|c| {
        if let Some(count) = c.get() {
            c.set(Some(count + 2.0 * (batch * m) as f64 * k as f64 * n as f64));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nest_and_stop() {
        record_matmul(1, 2, 3, 4);
        let ((), outer) = count_flops(|| {
            record_matmul(1, 2, 3, 4);
            let ((), inner) = count_flops(|| record_matmul(2, 1, 1, 1));
            assert_eq!(inner, 4.0);
        });
        assert_eq!(outer, 48.0 + 4.0);
    }
}
