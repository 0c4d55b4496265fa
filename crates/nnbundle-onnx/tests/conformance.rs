//! The ONNX backend node tests vendored in `tests/data/onnx-node/` (from
//! onnx 1.22.0; provenance in its README): import
//! each `model.onnx`, run it on `input_K.npy`, compare with `output_K.npy`.
//!
//! Test-harness adjustments (documented in spec/CONFORMANCE.md):
//! - graph inputs that feed an op's attribute-like operands (a Reshape's
//!   shape, Gather's indices, Slice's bounds, Pad's pads, Resize's scales,
//!   an LSTM's weights, ...: [`FROZEN_FROM`]) are frozen into the model as
//!   initializers, with the values of the case's data;
//! - shapes come from `tensors.json` (the `.pb` files' shapes): the `.npy`
//!   copies write ONNX scalars as shape `(1,)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nnbundle_container::npy;
use nnbundle_format::Tensor;
use nnbundle_onnx::proto::{ModelProto, TensorProto};
use nnbundle_runtime::{Model, Value};
use prost::Message;

/// ONNX's backend tolerance.
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;

// Why the excluded cases are outside the vocabulary.
const INT_CLIP: &str =
    "integer Clip: the vocabulary's Hardtanh computes on floats (integer arithmetic is not in opset 2)";
const INT_POW: &str = "Pow with an integer operand or mixed dtypes: the vocabulary's Pow takes one float dtype";
const UINT: &str = "u32/u64 tensors, which no bundle stores";
const PEEP: &str = "LSTM peepholes: nn.LSTM has none";
const BOOL_MAX: &str = "ReduceMax of bools: the vocabulary reduces floats";
const EMPTY_MAX: &str = "ReduceMax over an empty dimension is an error, as torch.amax's (ONNX gives -inf)";
const CONV3D: &str = "3-D transposed convolution: the vocabulary has 1-D and 2-D";
const CUBIC: &str = "cubic interpolation: nn.Upsample's bicubic is not in opset 2";
const FRACTION: &str =
    "a scale whose output size is fractional: ONNX maps coordinates by the scale, Upsample by the sizes' ratio";
const ANTIALIAS: &str = "antialiased resizing is not in opset 2";
const ASPECT: &str = "keep_aspect_ratio_policy: sizes derived from an aspect policy are not in opset 2";
const SELU_PARAMS: &str = "Selu with its own alpha and gamma: nn.SELU has fixed constants";
const PRELU_AXES: &str = "PRelu slopes along dimensions other than 1: nn.PReLU has one slope or one per channel";
const CROP: &str = "tf_crop_and_resize coordinates are not in opset 2";

/// Cases whose semantics are outside the vocabulary by design, with the reason.
const EXCLUDED: &[(&str, &str)] = &[
    ("test_clip_default_int8_inbounds", INT_CLIP),
    ("test_clip_default_int8_max", INT_CLIP),
    ("test_clip_default_int8_min", INT_CLIP),
    ("test_convtranspose_3d", CONV3D),
    ("test_lstm_with_peepholes", PEEP),
    ("test_pow_types_float32_int32", INT_POW),
    ("test_pow_types_float32_int64", INT_POW),
    ("test_pow_types_float32_uint32", UINT),
    ("test_pow_types_float32_uint64", UINT),
    ("test_pow_types_int32_float32", INT_POW),
    ("test_pow_types_int32_int32", INT_POW),
    ("test_pow_types_int64_float32", INT_POW),
    ("test_pow_types_int64_int64", INT_POW),
    ("test_prelu_broadcast", PRELU_AXES),
    ("test_prelu_example", PRELU_AXES),
    ("test_reduce_max_bool_inputs", BOOL_MAX),
    ("test_reduce_max_empty_set", EMPTY_MAX),
    ("test_resize_downsample_scales_cubic", CUBIC),
    ("test_resize_downsample_scales_cubic_A_n0p5_exclude_outside", CUBIC),
    ("test_resize_downsample_scales_cubic_align_corners", CUBIC),
    ("test_resize_downsample_scales_cubic_antialias", CUBIC),
    ("test_resize_downsample_scales_linear", FRACTION),
    ("test_resize_downsample_scales_linear_align_corners", FRACTION),
    ("test_resize_downsample_scales_linear_antialias", ANTIALIAS),
    ("test_resize_downsample_scales_linear_half_pixel_symmetric", FRACTION),
    ("test_resize_downsample_scales_nearest", FRACTION),
    ("test_resize_downsample_sizes_cubic", CUBIC),
    ("test_resize_downsample_sizes_cubic_antialias", CUBIC),
    ("test_resize_downsample_sizes_linear_antialias", ANTIALIAS),
    ("test_resize_downsample_sizes_nearest_not_larger", ASPECT),
    ("test_resize_downsample_sizes_nearest_not_smaller", ASPECT),
    ("test_resize_tf_crop_and_resize", CROP),
    ("test_resize_tf_crop_and_resize_axes_2_3", CROP),
    ("test_resize_tf_crop_and_resize_axes_3_2", CROP),
    ("test_resize_tf_crop_and_resize_extrapolation_value", CROP),
    ("test_resize_upsample_scales_cubic", CUBIC),
    ("test_resize_upsample_scales_cubic_A_n0p5_exclude_outside", CUBIC),
    ("test_resize_upsample_scales_cubic_align_corners", CUBIC),
    ("test_resize_upsample_scales_cubic_asymmetric", CUBIC),
    ("test_resize_upsample_scales_linear_half_pixel_symmetric", FRACTION),
    ("test_resize_upsample_sizes_cubic", CUBIC),
    ("test_resize_upsample_sizes_nearest_not_larger", ASPECT),
    ("test_resize_upsample_sizes_nearest_not_smaller", ASPECT),
    ("test_selu", SELU_PARAMS),
    ("test_selu_example", SELU_PARAMS),
];

fn cases_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx-node");
    assert!(dir.is_dir(), "the vendored conformance cases are missing at {}", dir.display());
    dir
}

fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    use nnbundle_format::DType;
    let data_type = match t.dtype() {
        DType::F32 => 1,
        DType::U8 => 2,
        DType::I8 => 3,
        DType::I16 => 5,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F16 => 10,
        DType::F64 => 11,
        DType::BF16 => 16,
    };
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type,
        name: name.to_owned(),
        raw_data: t.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    match t.dtype() {
        nnbundle_format::DType::F32 => t.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
        nnbundle_format::DType::F64 => t.to_vec::<f64>().unwrap(),
        nnbundle_format::DType::I64 => t.to_vec::<i64>().unwrap().into_iter().map(|v| v as f64).collect(),
        nnbundle_format::DType::I32 => t.to_vec::<i32>().unwrap().into_iter().map(f64::from).collect(),
        nnbundle_format::DType::Bool => {
            t.to_vec::<bool>().unwrap().into_iter().map(|b| f64::from(u8::from(b))).collect()
        }
        other => panic!("unexpected output dtype {other}"),
    }
}

/// ONNX ops whose inputs from this position on are what the vocabulary takes
/// as attributes or parameters (ONNX passes them as tensors): a case that
/// feeds them as graph inputs has them frozen to its data.
const FROZEN_FROM: &[(&str, usize)] = &[
    ("Reshape", 1),
    ("Gather", 1),
    ("Slice", 1),
    ("Squeeze", 1),
    ("Unsqueeze", 1),
    ("Pad", 1),
    ("Resize", 1),
    ("Upsample", 1),
    ("ReduceMean", 1),
    ("ReduceSum", 1),
    ("ReduceMax", 1),
    ("Clip", 1),
    ("LSTM", 1),
    ("GRU", 1),
    ("Split", 1),
    ("InstanceNormalization", 1),
    ("GroupNormalization", 1),
    ("Expand", 1),
    ("Tile", 1),
    ("PRelu", 1),
];

/// Runs one case; `Err` says why it failed.
fn run_case(dir: &Path) -> Result<(), String> {
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let shapes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("tensors.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let load = |file: String| -> Result<Tensor, String> {
        let t = npy::from_npy(&std::fs::read(data.join(&file)).map_err(|e| e.to_string())?)?;
        let pb = file.replace(".npy", ".pb");
        let shape: Vec<usize> = shapes[&pb]["shape"]
            .as_array()
            .ok_or("tensors.json lacks the shape")?
            .iter()
            .map(|d| d.as_u64().unwrap_or(0) as usize)
            .collect();
        Tensor::from_bytes(t.dtype(), shape, t.as_bytes().to_vec()).map_err(|e| e.to_string())
    };
    let graph = model.graph.as_mut().ok_or("no graph")?;

    // Freeze attribute-like inputs (not a Gather's indices into a stored table: that is an Embedding).
    let stored: Vec<&String> = graph.initializer.iter().map(|t| &t.name).collect();
    let frozen: Vec<String> = graph
        .node
        .iter()
        .filter(|n| !(n.op_type == "Gather" && n.input.first().is_some_and(|d| stored.contains(&d))))
        .filter_map(|n| FROZEN_FROM.iter().find(|(op, _)| *op == n.op_type).map(|(_, from)| n.input.iter().skip(*from)))
        .flatten()
        .cloned()
        .collect();
    let mut inputs = Vec::new();
    let mut kept = Vec::new();
    // Before IR 4 initializers are listed as inputs too; the data files hold the others.
    let initialized: Vec<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let fed: Vec<_> = graph.input.iter().filter(|i| !initialized.contains(&i.name)).cloned().collect();
    for (k, input) in fed.into_iter().enumerate() {
        let tensor = load(format!("input_{k}.npy"))?;
        if frozen.contains(&input.name) {
            graph.initializer.push(to_proto(&input.name, &tensor));
        } else {
            inputs.push(tensor);
            kept.push(input);
        }
    }
    graph.input = kept;

    let imported = nnbundle_onnx::import_model(&model).map_err(|e| e.to_string())?;
    let mut weights = imported.weights.clone();
    for (alias, target) in &imported.aliases {
        weights.insert(alias.clone(), imported.weights[target].clone());
    }
    let runtime = Model::new(imported.graph.clone(), weights).map_err(|e| e.to_string())?;
    let named: BTreeMap<String, Value> = runtime
        .graph()
        .inputs()
        .iter()
        .zip(inputs)
        .map(|(i, t)| Ok((i.name.clone(), Value::from_tensor(&t).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    let outputs = runtime.run(named).map_err(|e| e.to_string())?;
    for (k, name) in runtime.graph().outputs().iter().enumerate() {
        let want = load(format!("output_{k}.npy"))?;
        let got = outputs[name].to_tensor();
        if got.shape() != want.shape() {
            return Err(format!("output {k}: shape {:?}, expected {:?}", got.shape(), want.shape()));
        }
        let (g, w) = (as_f64(&got), as_f64(&want));
        if let Some((i, (a, b))) = g
            .iter()
            .zip(&w)
            .enumerate()
            .find(|(_, (a, b))| !(a == b || (*a - *b).abs() <= ATOL + RTOL * b.abs() || (a.is_nan() && b.is_nan())))
        {
            return Err(format!("output {k}: element {i} is {a}, expected {b}"));
        }
    }
    Ok(())
}

#[test]
fn onnx_backend_node_cases() {
    let root = cases_dir();
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(!cases.is_empty(), "no case folders under {}", root.display());
    let mut per_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("summary.json")).unwrap()).unwrap();
        let op = summary["nodes"][0]["op"].as_str().unwrap_or("?").to_owned();
        if let Some((_, why)) = EXCLUDED.iter().find(|(c, _)| *c == name) {
            println!("excluded {name}: {why}");
            // An exclusion that no longer fails is stale.
            if run_case(case).is_ok() {
                failures.push(format!("{name} passes: take it out of EXCLUDED"));
            }
            continue;
        }
        let entry = per_op.entry(op.clone()).or_default();
        entry.1 += 1;
        match run_case(case) {
            Ok(()) => entry.0 += 1,
            Err(e) => failures.push(format!("{name} ({op}): {e}")),
        }
    }
    for (op, (pass, total)) in &per_op {
        println!("{op}: {pass}/{total}");
    }
    let (pass, total) = per_op.values().fold((0, 0), |(p, t), (a, b)| (p + a, t + b));
    println!("conformance: {pass} passed, {} failed", total - pass);
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}
