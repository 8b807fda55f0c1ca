//! The reference note's network end to end: N = 2 examples, D = 3 inputs, H = 4 ReLU hidden
//! units, K = 2 outputs, MSE loss, plain SGD.
//!
//! Prints the shape of every tensor, the loss before and after a few SGD steps, and the worst
//! relative error of the gradient check (analytic backward vs central finite differences).
//!
//!     cargo run --release --example seed

use ndarray::Array2;
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};
use two_layer_net::{GradCheck, Loss, Mse, TwoLayerNet, check_gradients};

fn main() -> Result<(), two_layer_net::Error> {
    println!("BLAS: {}", two_layer_net::blas_info());
    let (n, d, h, k) = (2, 3, 4, 2);
    let (lr, steps) = (1e-2, 25);
    let mut rng = StdRng::seed_from_u64(0);

    // As in the note: W ~ N(0, 1), b = 0; X and y ~ N(0, 1).
    let mut net = TwoLayerNet::<f64>::new(d, h, k, &mut rng)?;
    let x = Array2::from_shape_simple_fn((n, d), || StandardNormal.sample(&mut rng));
    let y = Array2::from_shape_simple_fn((n, k), || StandardNormal.sample(&mut rng));

    let yhat = net.forward(x.view())?.to_owned();
    let mut dyhat = Array2::zeros((n, k));
    let loss0 = Mse.loss_and_grad(yhat.view(), y.view(), dyhat.view_mut())?;
    let mut dx = Array2::zeros((n, d));
    net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut())?;

    let g = net.gradients()?;
    println!("shapes (N={n}, D={d}, H={h}, K={k}):");
    for (name, shape) in [
        ("X", x.dim()),
        ("W1", net.w1().dim()),
        ("b1", (1, net.b1().len())),
        ("Y1 = X·W1 + b1", (n, h)),
        ("H1 = relu(Y1)", (n, h)),
        ("W2", net.w2().dim()),
        ("b2", (1, net.b2().len())),
        ("ŷ = H1·W2 + b2", yhat.dim()),
        ("y", y.dim()),
        ("dŷ = (2/N)(ŷ − y)", dyhat.dim()),
        ("dW2 = H1ᵀ·dŷ", g.w2().dim()),
        ("db2 = Σ_rows dŷ", (1, g.b2().len())),
        ("dH1 = dŷ·W2ᵀ", (n, h)),
        ("dY1 = dH1 ⊙ 1(Y1 > 0)", (n, h)),
        ("dW1 = Xᵀ·dY1", g.w1().dim()),
        ("db1 = Σ_rows dY1", (1, g.b1().len())),
        ("dX = dY1·W1ᵀ", dx.dim()),
    ] {
        println!("  {name:<24} {} × {}", shape.0, shape.1);
    }

    let report = check_gradients(&net, x.view(), y.view(), &Mse, GradCheck::default())?;
    println!(
        "gradient check: worst relative error {:.3e} at {}[{}, {}] over {} entries",
        report.max_rel_error, report.worst.0, report.worst.1, report.worst.2, report.checked
    );
    // A NaN error fails too.
    if report.max_rel_error.is_nan() || report.max_rel_error >= 1e-6 {
        eprintln!("the gradient check failed (worst relative error ≥ 1e-6)");
        std::process::exit(1);
    }

    let mut loss = loss0;
    for _ in 0..steps {
        loss = net.train_step(x.view(), y.view(), &Mse, lr)?;
    }
    let yhat = net.forward(x.view())?;
    let after = Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut())?;
    println!("loss before: {loss0:.6}");
    println!("loss after {steps} SGD steps (lr = {lr}): {after:.6} (step {steps} started at {loss:.6})");
    if after >= loss0 {
        eprintln!("the loss did not go down");
        std::process::exit(1);
    }
    Ok(())
}
