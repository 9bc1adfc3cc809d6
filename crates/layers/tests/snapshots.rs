//! Exact outputs and gradients of each layer on a small seeded input, pinned with insta.
//! Numbers are printed at six decimals by the crate's own `format_tensor`.

use backprop_init::{rng, Init};
use backprop_layers::snapshot::format_tensor;
use backprop_layers::{CrossEntropy, Linear, LogSoftmax, Loss, Module, Mse, Relu, Softmax};
use ndarray::Array2;

fn input(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    Init::StandardNormal.weight(rows, cols, &mut rng(seed))
}

fn show(parts: &[(&str, Array2<f32>)]) -> String {
    parts
        .iter()
        .map(|(name, a)| format_tensor(name, a.view().into_dyn(), 6))
        .collect()
}

#[test]
fn linear_forward_and_backward() {
    let mut lin = Linear::new(5, 3, Init::PytorchLinear, &mut rng(1));
    let x = input(4, 5, 2);
    let y = lin.forward(x.view()).unwrap();
    let g = input(4, 3, 3);
    let dx = lin.backward(g.view()).unwrap();
    let mut text = show(&[
        ("x", x),
        ("weight", lin.weight.clone()),
        ("y", y),
        ("grad_output", g),
        ("grad_input", dx),
    ]);
    text += &format_tensor("weight_grad", lin.weight_grad.view().into_dyn(), 6);
    text += &format_tensor("bias_grad", lin.bias_grad.view().into_dyn(), 6);
    insta::assert_snapshot!(text);
}

#[test]
fn relu_variants() {
    let x = input(3, 4, 4);
    let g = input(3, 4, 5);
    let mut text = String::new();
    for (name, mut relu) in [
        ("relu", Relu::new()),
        ("shifted", Relu::shifted()),
        ("general", Relu::general(0.1, 0.4, Some(0.6))),
    ] {
        let y = relu.forward(x.view()).unwrap();
        let dx = relu.backward(g.view()).unwrap();
        text += &show(&[(&format!("{name} y"), y), (&format!("{name} grad_input"), dx)]);
    }
    insta::assert_snapshot!(show(&[("x", x), ("grad_output", g)]) + &text);
}

#[test]
fn softmax_and_log_softmax() {
    let x = input(2, 5, 6) * 3.0;
    let g = input(2, 5, 7);
    let mut s = Softmax::default();
    let mut ls = LogSoftmax::default();
    let (sy, lsy) = (s.forward(x.view()).unwrap(), ls.forward(x.view()).unwrap());
    let (sdx, lsdx) = (s.backward(g.view()).unwrap(), ls.backward(g.view()).unwrap());
    insta::assert_snapshot!(show(&[
        ("x", x),
        ("softmax", sy),
        ("softmax grad_input", sdx),
        ("log_softmax", lsy),
        ("log_softmax grad_input", lsdx)
    ]));
}

#[test]
fn losses() {
    let logits = input(4, 10, 8) * 2.0;
    let labels = [3usize, 0, 9, 3];
    let mut ce = CrossEntropy::new();
    let ce_loss = ce.forward(logits.view(), &labels).unwrap();
    let prediction = input(4, 1, 9) + 4.0;
    let targets = [3.0f32, 0.0, 9.0, 3.0];
    let mut mse = Mse::new();
    let mse_loss = mse.forward(prediction.view(), &targets).unwrap();
    let text = format!(
        "cross_entropy {ce_loss:.6}\n{}mse {mse_loss:.6}\n{}",
        show(&[("logits", logits), ("ce grad", ce.backward().unwrap())]),
        show(&[("prediction", prediction), ("mse grad", mse.backward().unwrap())])
    );
    insta::assert_snapshot!(text);
}
