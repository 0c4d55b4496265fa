//! The textbook basics: save and load one tensor, then a dict of tensors.
//!
//! Usage: `cargo run --example tensors [OUTPUT_FOLDER]` (default: a temporary folder).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nnbundle::{Tensor, load_tensor, load_tensors, save_tensor, save_tensors};

fn describe(t: &Tensor) -> String {
    let values = match t.dtype() {
        nnbundle::DType::I64 => format!("{:?}", t.to_vec::<i64>().expect("dtype checked")),
        nnbundle::DType::F32 => format!("{:?}", t.to_vec::<f32>().expect("dtype checked")),
        other => format!("<{other} data>"),
    };
    format!("{values} (dtype {}, shape {:?})", t.dtype(), t.shape())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    // x = torch.arange(4); torch.save(x, 'x-file'); x2 = torch.load('x-file')
    let x = Tensor::from_vec(vec![4], (0..4i64).collect())?;
    let x_file = dir.join("x-file.nnb");
    save_tensor(&x_file, &x)?;
    let x2 = load_tensor(&x_file)?;
    println!("x2 = {}", describe(&x2));
    assert_eq!(x2, x);

    // y = torch.zeros(4); torch.save({'x': x, 'y': y}, 'mydict'); torch.load('mydict')
    let y = Tensor::from_vec(vec![4], vec![0.0f32; 4])?;
    let mydict = BTreeMap::from([("x".to_string(), x), ("y".to_string(), y)]);
    let dict_file = dir.join("mydict.nnb");
    save_tensors(&dict_file, &mydict)?;
    let mydict2 = load_tensors(&dict_file)?;
    for (name, tensor) in &mydict2 {
        println!("mydict2[{name:?}] = {}", describe(tensor));
    }
    assert_eq!(mydict2, mydict);
    println!("saved and reloaded in {}", dir.display());
    Ok(())
}
