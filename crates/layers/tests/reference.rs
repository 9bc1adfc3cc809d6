//! Independent checks: small inputs whose outputs and gradients were worked out by hand. The
//! PyTorch code that gives the same numbers sits in a comment beside each, so a reader can
//! regenerate them.

use backprop_layers::{accuracy, CrossEntropy, Linear, LogSoftmax, Loss, Module, ModuleExt, Mse, Relu, Softmax};
use ndarray::{array, Array2};

fn assert_all_close(got: &Array2<f32>, want: &Array2<f32>, tol: f32) {
    assert_eq!(got.shape(), want.shape());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "got {got}, want {want}");
    }
}

#[test]
fn linear_by_hand() {
    // lin = torch.nn.Linear(2, 3)
    // lin.weight.data = torch.tensor([[1., 0.], [-1., 1.], [.5, 2.]]); lin.bias.data = torch.tensor([.1, .2, .3])
    // x = torch.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    // y = lin(x)                       # [[1.1, 1.2, 4.8], [3.1, 1.2, 9.8]]
    // y.backward(torch.ones(2, 3))     # lin.weight.grad = [[4, 6]] * 3, lin.bias.grad = [2, 2, 2]
    //                                  # x.grad = [[0.5, 3.0], [0.5, 3.0]]
    let mut lin =
        Linear::from_parameters(array![[1.0f32, 0.0], [-1.0, 1.0], [0.5, 2.0]], array![0.1, 0.2, 0.3]).unwrap();
    let y = lin.forward(array![[1.0f32, 2.0], [3.0, 4.0]].view()).unwrap();
    assert_all_close(&y, &array![[1.1, 1.2, 4.8], [3.1, 1.2, 9.8]], 1e-6);
    let dx = lin.backward(Array2::ones((2, 3)).view()).unwrap();
    assert_eq!(lin.weight_grad, array![[4.0, 6.0], [4.0, 6.0], [4.0, 6.0]]);
    assert_eq!(lin.bias_grad, array![2.0, 2.0, 2.0]);
    assert_eq!(dx, array![[0.5, 3.0], [0.5, 3.0]]);
}

#[test]
fn gradients_accumulate_until_zero_grad() {
    let mut lin =
        Linear::from_parameters(array![[1.0f32, 0.0], [-1.0, 1.0], [0.5, 2.0]], array![0.1, 0.2, 0.3]).unwrap();
    for _ in 0..2 {
        lin.forward(array![[1.0f32, 2.0], [3.0, 4.0]].view()).unwrap();
        lin.backward(Array2::ones((2, 3)).view()).unwrap();
    }
    assert_eq!(lin.bias_grad, array![4.0, 4.0, 4.0]);
    assert_eq!(lin.weight_grad.row(0), array![8.0, 12.0]);
    lin.zero_grad();
    assert!(lin.weight_grad.iter().chain(&lin.bias_grad).all(|&v| v == 0.0));
}

#[test]
fn relu_by_hand() {
    // x = torch.tensor([[-1., 0., 2.]], requires_grad=True); y = torch.relu(x)   # [[0, 0, 2]]
    // y.backward(torch.tensor([[5., 5., 5.]]))                                     # x.grad = [[0, 0, 5]]
    let mut relu = Relu::new();
    let y = relu.forward(array![[-1.0f32, 0.0, 2.0]].view()).unwrap();
    assert_eq!(y, array![[0.0, 0.0, 2.0]]);
    let dx = relu.backward(array![[5.0f32, 5.0, 5.0]].view()).unwrap();
    assert_eq!(dx, array![[0.0, 0.0, 5.0]]);
    // fastai's GeneralRelu(leak=0.1, sub=0.4, maxv=1.0):
    // x = [-2, 0.5, 3] → leaky [-0.2, 0.5, 3] → −0.4 → [-0.6, 0.1, 2.6] → clamp_max(1) → [-0.6, 0.1, 1.0]
    // grads for g = 1: [0.1, 1, 0]
    let mut general = Relu::general(0.1f32, 0.4, Some(1.0));
    let y = general.forward(array![[-2.0f32, 0.5, 3.0]].view()).unwrap();
    assert_all_close(&y, &array![[-0.6, 0.1, 1.0]], 1e-6);
    let dx = general.backward(Array2::ones((1, 3)).view()).unwrap();
    assert_all_close(&dx, &array![[0.1, 1.0, 0.0]], 1e-7);
    assert_eq!(
        Relu::<f32>::shifted().forward(array![[1.0f32, -1.0]].view()).unwrap(),
        array![[0.5, -0.5]]
    );
}

#[test]
fn mse_by_hand() {
    // The notebook's mse: (output.squeeze(-1) - targ).pow(2).mean()
    // p = torch.tensor([[1.], [2.], [4.]], requires_grad=True); t = torch.tensor([1., 3., 2.])
    // loss = (p.squeeze(-1) - t).pow(2).mean()   # 5/3
    // loss.backward()                            # p.grad = [[0], [-2/3], [4/3]]
    let mut mse = Mse::new();
    let loss = mse
        .forward(array![[1.0f32], [2.0], [4.0]].view(), &[1.0, 3.0, 2.0])
        .unwrap();
    assert!((loss - 5.0 / 3.0).abs() < 1e-6);
    assert_all_close(
        &mse.backward().unwrap(),
        &array![[0.0], [-2.0 / 3.0], [4.0 / 3.0]],
        1e-6,
    );
}

#[test]
fn cross_entropy_by_hand() {
    // F.cross_entropy(torch.tensor([[1., 2., 3.]], requires_grad=True), torch.tensor([2]))
    //   = logsumexp([1,2,3]) − 3 = ln(e⁻² + e⁻¹ + 1) = 0.40760596
    //   grad = softmax − onehot = [0.09003057, 0.24472847, 0.66524096 − 1]
    // F.cross_entropy(torch.zeros(1, 2), torch.tensor([0])) = ln 2, grad [−0.5, 0.5]
    // Over the batch of both (padded to 3 classes with a −inf-free row [0, 0, 0] → ln 3 for
    // the second): mean = (0.40760596 + 1.09861229) / 2 = 0.75310912, grads halved.
    let mut ce = CrossEntropy::new();
    let logits = array![[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]];
    let loss = ce.forward(logits.view(), &[2, 0]).unwrap();
    assert!((loss - 0.753_109_1).abs() < 1e-6, "{loss}");
    let g = ce.backward().unwrap();
    let third = 1.0 / 3.0;
    let want = array![[0.09003057, 0.24472847, -0.33475904], [third - 1.0, third, third]] / 2.0;
    assert_all_close(&g, &want, 1e-6);
    assert_eq!(accuracy(logits.view(), &[2, 0]).unwrap(), 1.0);
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    // F.cross_entropy(torch.tensor([[1e4, -1e4]]), torch.tensor([1])) = 2e4; class 0 → 0.
    let mut ce = CrossEntropy::new();
    let logits = array![[1e4f32, -1e4], [1e4, -1e4]];
    let loss = ce.forward(logits.view(), &[1, 0]).unwrap();
    assert_eq!(loss, 1e4); // (2e4 + 0) / 2
    let g = ce.backward().unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_all_close(&g, &array![[0.5, -0.5], [0.0, 0.0]], 1e-7);
    let ls = LogSoftmax::default().forward(array![[-1e4f32, 1e4]].view()).unwrap();
    assert_eq!(ls, array![[-2e4, 0.0]]);
    let s = Softmax::default().forward(array![[-1e4f32, 1e4]].view()).unwrap();
    assert_eq!(s, array![[0.0, 1.0]]);
}

#[test]
fn bad_inputs_name_the_layer_and_both_shapes() {
    let mut lin = Linear::from_parameters(Array2::<f32>::zeros((50, 784)), ndarray::Array1::zeros(50)).unwrap();
    let err = lin.forward(Array2::zeros((64, 783)).view()).unwrap_err().to_string();
    assert_eq!(err, "Linear(784 → 50): input has shape [64, 783], expected [B, 784]");
    let err = lin.backward(Array2::zeros((64, 50)).view()).unwrap_err().to_string();
    assert!(err.contains("before forward"), "{err}");
    lin.forward(Array2::zeros((64, 784)).view()).unwrap();
    let err = lin.backward(Array2::zeros((32, 50)).view()).unwrap_err().to_string();
    assert!(err.contains("[32, 50]") && err.contains("[64, 50]"), "{err}");

    let mut ce = CrossEntropy::new();
    let err = ce
        .forward(Array2::<f32>::zeros((4, 10)).view(), &[1, 2, 3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CrossEntropy") && err.contains("3 labels") && err.contains("[4, 10]"),
        "{err}"
    );
    let err = ce
        .forward(Array2::<f32>::zeros((2, 10)).view(), &[1, 10])
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 10 at position 1"), "{err}");
    let err = Mse::new()
        .forward(Array2::<f32>::zeros((4, 2)).view(), &[0.0; 4])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("MSE") && err.contains("[4, 2]") && err.contains("[4, 1]"),
        "{err}"
    );
    let err = Linear::from_parameters(Array2::<f32>::zeros((3, 2)), ndarray::Array1::zeros(4))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bias") && err.contains("[3]") && err.contains("[4]"),
        "{err}"
    );
}

/// The bias gradient is summed from slices when the output gradient is contiguous and row by
/// row otherwise: both give the same bits. (The products may take other paths for other
/// layouts, which round differently: those are compared within a tolerance.)
#[test]
fn a_strided_output_gradient_gives_the_same_gradients() {
    let x = Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 - j as f32) * 0.7);
    let g = Array2::from_shape_fn((5, 4), |(i, j)| ((i * 3 + j) % 5) as f32 * 0.3 - 0.5);
    let g_column_major = g.t().as_standard_layout().into_owned(); // [4, 5], so .t() is strided
    let fresh = || Linear::from_parameters(Array2::from_elem((4, 3), 0.25f32), ndarray::Array1::zeros(4)).unwrap();
    let (mut contiguous, mut strided) = (fresh(), fresh());
    contiguous.forward(x.view()).unwrap();
    strided.forward(x.view()).unwrap();
    let dx = contiguous.backward(g.view()).unwrap();
    assert!(g_column_major.t().as_slice().is_none());
    assert_all_close(&strided.backward(g_column_major.t()).unwrap(), &dx, 1e-6);
    assert_eq!(strided.bias_grad, contiguous.bias_grad);
    assert_all_close(&strided.weight_grad, &contiguous.weight_grad, 1e-6);
    assert_eq!(contiguous.bias_grad, g.sum_axis(ndarray::Axis(0)));
}

#[test]
fn softmax_of_a_transposed_view_gives_the_bits_of_its_copy() {
    // A column-major input (the transposed view of a [5, 3] array) goes through the same
    // vectorized exponentials as a row-major one.
    let stored = Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 - 2.0) * 0.7 + j as f32 * 1.3);
    let (view, copy) = (stored.t(), stored.t().as_standard_layout().into_owned());
    for (a, b) in [
        (backprop_layers::softmax(view), backprop_layers::softmax(copy.view())),
        (
            backprop_layers::log_softmax(view),
            backprop_layers::log_softmax(copy.view()),
        ),
    ] {
        assert_eq!(a.dim(), (3, 5));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    let s = backprop_layers::softmax(view);
    for row in s.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-6, "{row}");
    }
}
