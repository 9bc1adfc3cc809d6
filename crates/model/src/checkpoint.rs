//! Checkpoints in safetensors, with PyTorch's names and shapes.
//!
//! A model saved here loads in PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path))` for
//! `nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))`, and a file saved from
//! that PyTorch model loads here. This module works on bytes; writing files (atomically) is
//! the job of `backprop-train`.

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use backprop_layers::{Linear, Module, Relu};

use crate::error::ModelError;
use crate::sequential::Sequential;

/// A named f32 tensor, owned.
pub type Tensors = BTreeMap<String, ArrayD<f32>>;

/// Serializes named f32 tensors (and optional string metadata) to safetensors bytes.
pub fn tensors_to_bytes(tensors: &Tensors, metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>, ModelError> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.shape().to_vec(),
                t.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| ModelError::Format(e.to_string()))?;
    safetensors::serialize(views, metadata).map_err(|e| ModelError::Format(e.to_string()))
}

/// Parses safetensors bytes into named f32 tensors (F32 only; other dtypes are an error naming
/// the key) and the metadata.
pub fn tensors_from_bytes(bytes: &[u8]) -> Result<(Tensors, HashMap<String, String>), ModelError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Format(e.to_string()))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Format(e.to_string()))?;
    let mut out = Tensors::new();
    for (name, view) in file.tensors() {
        out.insert(name.clone(), tensor_f32(&name, &view)?);
    }
    Ok((out, metadata.metadata().clone().unwrap_or_default()))
}

/// An F32 tensor view as an array.
pub fn tensor_f32(name: &str, view: &TensorView) -> Result<ArrayD<f32>, ModelError> {
    if view.dtype() != Dtype::F32 {
        return Err(ModelError::Dtype {
            key: name.into(),
            expected: "F32",
            got: format!("{:?}", view.dtype()),
        });
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| ModelError::Format(format!("{name}: {e}")))
}

/// The model's parameters by PyTorch name (`state_dict`).
pub fn state_dict(model: &Sequential<f32>) -> Tensors {
    let mut out = Tensors::new();
    model.visit_parameters(&mut |name, value, _| {
        out.insert(name.to_string(), value.to_owned());
    });
    out
}

/// The model as safetensors bytes: its tensors only, with PyTorch's keys.
pub fn to_safetensors(model: &Sequential<f32>) -> Result<Vec<u8>, ModelError> {
    tensors_to_bytes(&state_dict(model), None)
}

/// Loads tensors into `model`, strictly (as `load_state_dict(strict=True)`): every parameter
/// must be present with its exact shape, and no other key may be present.
pub fn load_state_dict(model: &mut Sequential<f32>, tensors: &Tensors) -> Result<(), ModelError> {
    let expected = model.parameter_shapes();
    for (key, shape) in &expected {
        let t = tensors
            .get(key)
            .ok_or_else(|| ModelError::MissingKey { key: key.clone() })?;
        if t.shape() != shape.as_slice() {
            return Err(ModelError::Shape {
                key: key.clone(),
                expected: shape.clone(),
                got: t.shape().to_vec(),
            });
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !expected.iter().any(|(e, _)| e == *k)) {
        return Err(ModelError::UnexpectedKey { key: extra.clone() });
    }
    model.visit_parameters_mut(&mut |name, mut value, _| value.assign(&tensors[name]));
    Ok(())
}

/// Builds an MLP from a checkpoint alone: a Linear layer at each index that has `N.weight`
/// and `N.bias`, a ReLU between consecutive Linear layers.
pub fn mlp_from_tensors(tensors: &Tensors) -> Result<Sequential<f32>, ModelError> {
    let mut indices = Vec::new();
    for key in tensors.keys() {
        let index = key
            .split_once('.')
            .and_then(|(i, name)| (name == "weight" || name == "bias").then_some(i))
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| ModelError::UnexpectedKey { key: key.clone() })?;
        if !indices.contains(&index) {
            indices.push(index);
        }
    }
    indices.sort_unstable();
    if indices.is_empty() {
        return Err(ModelError::Format("the checkpoint holds no tensors".into()));
    }
    let mut model = Sequential::new();
    let mut previous_out: Option<usize> = None;
    for (n, &index) in indices.iter().enumerate() {
        // Module indices must be those of Linear, ReLU, Linear, ...: 0, 2, 4, ...
        if index != 2 * n {
            return Err(ModelError::Format(format!(
                "layer index {index} does not fit an MLP of Linear and ReLU layers (expected {})",
                2 * n
            )));
        }
        let get = |name: &str| {
            let key = format!("{index}.{name}");
            tensors.get(&key).ok_or(ModelError::MissingKey { key })
        };
        let (w, b) = (get("weight")?, get("bias")?);
        let weight: Array2<f32> = w.clone().into_dimensionality().map_err(|_| ModelError::Shape {
            key: format!("{index}.weight"),
            expected: vec![previous_out.unwrap_or(0), 0],
            got: w.shape().to_vec(),
        })?;
        let bias: Array1<f32> = b.clone().into_dimensionality().map_err(|_| ModelError::Shape {
            key: format!("{index}.bias"),
            expected: vec![weight.nrows()],
            got: b.shape().to_vec(),
        })?;
        if let Some(out) = previous_out.filter(|&o| o != weight.ncols()) {
            return Err(ModelError::Shape {
                key: format!("{index}.weight"),
                expected: vec![weight.nrows(), out],
                got: weight.shape().to_vec(),
            });
        }
        if n > 0 {
            model.push(Relu::new());
        }
        previous_out = Some(weight.nrows());
        model.push(Linear::from_parameters(weight, bias)?);
    }
    Ok(model)
}
