//! Export (next).
/// The ONNX opset exports target.
pub const EXPORT_OPSET: i64 = 17;
/// Placeholder.
pub fn export() {}
