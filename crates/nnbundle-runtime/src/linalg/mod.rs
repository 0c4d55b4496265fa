//! Linear algebra under the ops: matrix products (`gemm`), depthwise
//! convolution (`depthwise`), matrix-vector
//! products (`matvec`), Winograd convolution (`winograd`), the vectorized
//! sigmoid (`sigmoid`) and per-thread
//! work buffers (`scratch`). Nothing here imports from the ops.

pub(crate) mod depthwise;
pub(crate) mod gemm;
pub(crate) mod matvec;
pub(crate) mod scratch;
pub(crate) mod sigmoid;
pub(crate) mod winograd;

/// ReLU as a select the compiler vectorizes; NaN stays NaN, as in PyTorch.
/// The `ReLU` op and every fused ReLU use this one definition, so their
/// results are bit-identical.
#[inline(always)]
pub(crate) fn relu<T: num_traits::Zero + PartialOrd>(x: T) -> T {
    if x < T::zero() { T::zero() } else { x }
}

/// What a product does to each output element once its sum is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// Nothing: the sum is the output.
    None,
    /// A fused ReLU ([`relu`]: the select of the `ReLU` op, so bit-identical).
    Relu,
}

impl Epilogue {
    /// [`Epilogue::Relu`] for a kernel with a fused ReLU, else [`Epilogue::None`].
    pub(crate) fn relu_if(fused: bool) -> Self {
        if fused { Epilogue::Relu } else { Epilogue::None }
    }

    /// The epilogue of one value (the micro-kernels test the epilogue once
    /// per tile instead).
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Epilogue::None => x,
            Epilogue::Relu => relu(x),
        }
    }
}

/// Whether a test of an AVX-512 path can run here. When the path reports
/// itself unavailable, the test is skipped with a note, except under
/// `CI=true` on a CPU whose `/proc/cpuinfo` lists `avx512f`: there the
/// detection is wrong, and the test fails instead of passing unchecked.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn avx512_test_runs(available: bool) -> bool {
    if available {
        return true;
    }
    let cpu_has_it = std::fs::read_to_string("/proc/cpuinfo")
        .is_ok_and(|info| info.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "avx512f")));
    assert!(
        !(cpu_has_it && std::env::var("CI").as_deref() == Ok("true")),
        "the CPU lists avx512f but the AVX-512 path reports itself unavailable: the bit-for-bit test did not run"
    );
    eprintln!("skipped: this CPU lacks AVX-512F");
    false
}
