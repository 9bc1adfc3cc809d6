use std::collections::HashMap;

use backprop_init::{rng, Init};
use backprop_layers::gradcheck::{self, LossObjective};
use backprop_layers::{CrossEntropy, Linear, Module, ModuleExt, Mse, Relu};
use backprop_model::checkpoint::{self, Tensors};
use backprop_model::{mlp, ModelError, Sequential};
use ndarray::{Array2, ArrayD, IxDyn};

fn f64_mlp(sizes: &[usize], seed: u64) -> Sequential<f64> {
    let f32_model = mlp(sizes, Init::PytorchLinear, &mut rng(seed));
    let mut model = Sequential::<f64>::new();
    let tensors = checkpoint::state_dict(&f32_model);
    for i in 0..sizes.len() - 1 {
        if i > 0 {
            model.push(Relu::new());
        }
        let w = tensors[&format!("{}.weight", 2 * i)]
            .mapv(|v| v as f64)
            .into_dimensionality()
            .unwrap();
        let b = tensors[&format!("{}.bias", 2 * i)]
            .mapv(|v| v as f64)
            .into_dimensionality()
            .unwrap();
        model.push(Linear::from_parameters(w, b).unwrap());
    }
    model
}

#[test]
fn sequential_passes_the_gradient_check_with_each_loss() {
    let x = Init::StandardNormal.weight(5, 7, &mut rng(1)).mapv(|v| v as f64);
    let labels = [0usize, 3, 2, 1, 3];
    let mut model = f64_mlp(&[7, 6, 5, 4], 2);
    let report = gradcheck::check(
        &mut model,
        &x,
        &mut LossObjective {
            loss: CrossEntropy::new(),
            target: &labels[..],
        },
    )
    .unwrap();
    assert!(report.max_error() < 1e-6, "{report}");
    assert_eq!(report.checked, 7 * 6 + 6 + 6 * 5 + 5 + 5 * 4 + 4 + 5 * 7);
    let targets = [1.0, 2.0, 3.0, 4.0, 5.0];
    let mut model = f64_mlp(&[7, 6, 1], 3);
    let report = gradcheck::check(
        &mut model,
        &x,
        &mut LossObjective {
            loss: Mse::new(),
            target: &targets[..],
        },
    )
    .unwrap();
    assert!(report.max_error() < 1e-6, "{report}");
}

#[test]
fn gradients_accumulate_through_the_stack_until_zero_grad() {
    let mut model = mlp(&[4, 3, 2], Init::KAIMING_RELU, &mut rng(0));
    let x = Array2::from_shape_fn((2, 4), |(i, j)| (i + j) as f32 * 0.5 - 0.7);
    let y = model.forward(x.view()).unwrap();
    let dx = model.backward(Array2::ones(y.dim()).view()).unwrap();
    assert_eq!(dx.dim(), (2, 4));
    let mut first = Vec::new();
    model.visit_parameters(&mut |name, _, g| first.push((name.to_string(), g.to_owned())));
    assert!(first.iter().any(|(_, g)| g.iter().any(|&v| v != 0.0)));
    // A second backward adds the same gradients again: twice the first.
    model.backward(Array2::ones(y.dim()).view()).unwrap();
    model.visit_parameters(&mut |name, _, g| {
        let once = &first.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(once.iter().zip(g.iter()).all(|(o, g)| *g == 2.0 * o), "{name}");
    });
    model.zero_grad();
    model.visit_parameters(&mut |name, _, g| assert!(g.iter().all(|&v| v == 0.0), "{name}"));
}

#[test]
fn names_count_and_summary() {
    let model = mlp(&[784, 50, 10], Init::KAIMING_RELU, &mut rng(0));
    let shapes = model.parameter_shapes();
    assert_eq!(
        shapes,
        vec![
            ("0.weight".to_string(), vec![50, 784]),
            ("0.bias".to_string(), vec![50]),
            ("2.weight".to_string(), vec![10, 50]),
            ("2.bias".to_string(), vec![10]),
        ]
    );
    insta::assert_snapshot!(model.summary(784).unwrap());
    let err = model.summary(100).unwrap_err().to_string();
    assert!(err.contains("Linear(784 → 50)") && err.contains("[B, 784]"), "{err}");
}

#[test]
fn checkpoints_round_trip_and_rebuild() {
    let model = mlp(&[784, 256, 256, 10], Init::PytorchLinear, &mut rng(5));
    let bytes = checkpoint::to_safetensors(&model).unwrap();
    let (tensors, _) = checkpoint::tensors_from_bytes(&bytes).unwrap();
    let mut fresh = mlp(&[784, 256, 256, 10], Init::Zeros, &mut rng(0));
    checkpoint::load_state_dict(&mut fresh, &tensors).unwrap();
    assert_eq!(checkpoint::state_dict(&fresh), checkpoint::state_dict(&model));
    let rebuilt = checkpoint::mlp_from_tensors(&tensors).unwrap();
    assert_eq!(format!("{rebuilt:?}"), format!("{model:?}"));
    assert_eq!(checkpoint::state_dict(&rebuilt), checkpoint::state_dict(&model));
}

#[test]
fn loading_names_the_key_and_both_shapes() {
    let model = mlp(&[4, 3, 2], Init::PytorchLinear, &mut rng(5));
    let good = checkpoint::state_dict(&model);
    let mut target = mlp(&[4, 3, 2], Init::Zeros, &mut rng(0));

    let mut wrong: Tensors = good.clone();
    wrong.insert("2.weight".into(), ArrayD::zeros(IxDyn(&[2, 5])));
    let err = checkpoint::load_state_dict(&mut target, &wrong)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tensor `2.weight` has shape [2, 5] in the checkpoint but [2, 3] in the model"
    );

    let mut missing = good.clone();
    missing.remove("0.bias");
    let err = checkpoint::load_state_dict(&mut target, &missing).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingKey { key } if key == "0.bias"),
        "{err}"
    );

    let mut extra = good.clone();
    extra.insert("4.weight".into(), ArrayD::zeros(IxDyn(&[1, 2])));
    let err = checkpoint::load_state_dict(&mut target, &extra).unwrap_err();
    assert!(
        err.to_string().contains("`4.weight` that the model does not have"),
        "{err}"
    );

    let err = checkpoint::tensors_from_bytes(b"not safetensors")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid safetensors"), "{err}");
    // A gap in the layer indices is not an MLP of Linear and ReLU layers.
    let mut gap = good.clone();
    let w = gap.remove("2.weight").unwrap();
    let b = gap.remove("2.bias").unwrap();
    gap.insert("4.weight".into(), w);
    gap.insert("4.bias".into(), b);
    assert!(checkpoint::mlp_from_tensors(&gap)
        .unwrap_err()
        .to_string()
        .contains("layer index 4"));
}

/// A file laid out as `safetensors.torch.save_file(model.state_dict(), path)` writes it for
/// `nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))`: a little-endian u64 header
/// length, a JSON header with `__metadata__: {"format": "pt"}` and byte offsets, then the data.
#[test]
fn a_pytorch_style_file_loads() {
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("0.bias", vec![3], vec![0.1, 0.2, 0.3]),
        ("0.weight", vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("2.bias", vec![1], vec![-1.0]),
        ("2.weight", vec![1, 3], vec![0.5, -0.5, 0.25]),
    ];
    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut data = Vec::new();
    for (name, shape, values) in &tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header += &format!(
            ",\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        );
    }
    header += "}";
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(&data);

    let (loaded, metadata) = checkpoint::tensors_from_bytes(&bytes).unwrap();
    assert_eq!(metadata, HashMap::from([("format".to_string(), "pt".to_string())]));
    let mut model = checkpoint::mlp_from_tensors(&loaded).unwrap();
    // y = relu(x·W0ᵀ + b0)·W2ᵀ + b2 at x = [1, 1]: h = relu([3.1, 7.2, 11.3]); y = 1.55 − 3.6 + 2.825 − 1
    let y = model.forward(Array2::ones((1, 2)).view()).unwrap();
    assert!((y[[0, 0]] - (-0.225)).abs() < 1e-6, "{y}");
}
